"""Training and evaluation on cohort directories: columnar features equal the streaming ones,
patient-level splits, the elapsed-time state, bootstrap intervals, and an end-to-end run on
the committed samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ingest import Limits, validate_object
from ingest.importers import import_physionet2012, import_physionet2019
from inference import checkpoint
from inference.dataset import carried_news2, carried_news2_arrays, load_cohort_dir, split_of
from inference.features import sequence_inputs
from inference.model import ModelConfig, RiskModel
from inference.stats import PatientBootstrap, auroc, calibration
from inference.train import TrainConfig, platt, train
from wardwatch.cli import main

DATA = Path(__file__).parent / "data"
NEVER = Limits(max_age_ms=2**62, max_future_ms=2**62)


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cohorts")
    import_physionet2019(DATA / "physionet2019").write(root / "p19")
    import_physionet2012(DATA / "physionet2012").write(root / "p12")
    return {"p19": root / "p19", "p12": root / "p12"}


@pytest.mark.parametrize("name", ["p19", "p12"])
def test_columnar_inputs_equal_streaming_inputs(cohorts: dict[str, Path], name: str) -> None:
    """The columnar path (training) builds exactly the features and NEWS2 the reading path (scorer) does."""
    loaded = load_cohort_dir(str(cohorts[name]), 6.0)
    readings: dict[str, list] = {}
    for line in (cohorts[name] / "readings.jsonl").read_text().splitlines():
        r = validate_object(json.loads(line), 0, NEVER)
        readings.setdefault(r.patient_id, []).append(r)
    assert len(loaded.series) == len(readings)
    for s in loaded.series:
        rs = sorted(readings[s.patient_id], key=lambda r: r.ts_ms)
        if s.event_ts_ms is not None:
            rs = [r for r in rs if r.ts_ms < s.event_ts_ms]
        expected = sequence_inputs(rs)
        for field in ("values", "mask", "delta_hours", "last_values", "last_mask", "ts_ms"):
            np.testing.assert_allclose(getattr(s.inputs, field), getattr(expected, field), rtol=0, atol=1e-5, err_msg=field)
        totals, single3 = carried_news2(rs)
        assert s.news2.tolist() == totals.tolist() and s.news2_single3.tolist() == single3.tolist()
        again, _ = carried_news2_arrays(expected)
        assert again.tolist() == totals.tolist()


def test_labels_at_the_right_times(cohorts: dict[str, Path]) -> None:
    loaded = load_cohort_dir(str(cohorts["p19"]), 6.0)
    s = next(s for s in loaded.series if s.patient_id == "p100013")
    hours_before = (s.event_ts_ms - s.inputs.ts_ms) / 3_600_000
    assert (hours_before > 0).all()  # cut at the event
    assert s.labels.tolist() == ((hours_before > 0) & (hours_before <= 6)).astype(float).tolist()
    assert s.labels.sum() > 0
    stable = next(s for s in loaded.series if s.patient_id == "p100001")
    assert stable.event_ts_ms is None and stable.labels.sum() == 0


def test_patient_split_is_fixed_and_disjoint() -> None:
    ids = [f"p{i}" for i in range(5000)]
    first = [split_of("src", p, "salt", 0.15, 0.15) for p in ids]
    assert first == [split_of("src", p, "salt", 0.15, 0.15) for p in ids]  # fixed
    counts = {k: first.count(k) for k in ("train", "val", "test")}
    assert 600 < counts["test"] < 900 and 600 < counts["val"] < 900 and sum(counts.values()) == 5000
    assert first != [split_of("src", p, "other", 0.15, 0.15) for p in ids]  # the salt matters
    # A patient's split does not depend on which other patients are present.
    assert [split_of("src", p, "salt", 0.15, 0.15) for p in ids[::7]] == first[::7]


def test_elapsed_state_counts_hours_since_first_reading() -> None:
    torch.manual_seed(0)
    model = RiskModel(ModelConfig(hidden=8, trend_hours=(2.0,), elapsed=True)).eval()
    assert model.state_size == 8 + 8 + 1
    from inference.features import array_inputs

    ts = np.array([0, 3_600_000, 9_000_000, 9_060_000], dtype=np.int64)
    values = np.zeros((4, 8), dtype=np.float32)
    mask = np.zeros((4, 8), dtype=np.float32)
    values[:, 0], mask[:, 0] = 80, 1
    values[2, 3], mask[2, 3] = 37, 1  # temperature first seen at 2.5 h
    inputs = array_inputs(values, mask, ts)
    state = model.initial_state(1)
    for t in range(4):
        with torch.no_grad():
            state, _ = model.step(state, *(torch.from_numpy(getattr(inputs, f)[t : t + 1]) for f in ("values", "mask", "delta_hours", "last_values", "last_mask")))
        assert float(state[0, -1]) == pytest.approx((ts[t] - ts[0]) / 3_600_000, abs=1e-5)


def test_bootstrap_intervals_cover_the_point_estimate() -> None:
    rng = np.random.default_rng(0)
    patient = np.repeat(np.arange(300), 10)
    labels = (rng.random(3000) < 0.1).astype(float)
    scores = labels * 0.8 + rng.random(3000)
    boot = PatientBootstrap(patient, labels, replicates=100)
    m = boot.metrics(scores)
    assert m["auroc"] == pytest.approx(auroc(labels, scores))
    assert m["auroc_ci"][0] < m["auroc"] < m["auroc_ci"][1] and m["auroc_ci"][1] - m["auroc_ci"][0] < 0.1
    d = boot.difference(m, boot.metrics(rng.random(3000)))
    assert d["auroc_difference_ci"][0] > 0.1


def test_platt_and_calibration() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-(2.0 * x - 1.0)))).astype(float)
    a, b = platt(x, y)
    assert a == pytest.approx(2.0, abs=0.15) and b == pytest.approx(-1.0, abs=0.1)
    cal = calibration(y, 1 / (1 + np.exp(-(a * x + b))))
    assert cal["brier"] < cal["brier_reference"]
    assert all(abs(row["predicted"] - row["observed"]) < 0.05 for row in cal["reliability"])
    # Wide, rare-positive logits (an undamped Newton step once diverged here): still a fit that keeps the ranking.
    x = rng.normal(size=50000) * 8
    y = (rng.random(50000) < 1 / (1 + np.exp(-(0.3 * x - 4)))).astype(float)
    a, b = platt(np.r_[x, np.full(10, 60.0)], np.r_[y, np.ones(10)])
    assert a == pytest.approx(0.3, abs=0.03) and b == pytest.approx(-4.0, abs=0.2)


def test_train_and_evaluate_on_samples(cohorts: dict[str, Path], tmp_path: Path) -> None:
    """`wardwatch train` on an imported cohort plus a tiny simulated one, then `evaluate` on both data sets."""
    out = tmp_path / "ck"
    config = TrainConfig(out=str(out), patients=6, val_patients=6, hours=6.0, cohorts=str(cohorts["p19"]), hidden=8, epochs=1,
                         val_fraction=0.3, test_fraction=0.2, split_salt="s", real_batch=16, batch=6, threads=1)
    version, metrics = train(config, progress=False)
    model, loaded_version = checkpoint.load(out)
    assert loaded_version == version and model.config.elapsed
    recorded = checkpoint.load_metrics(out)
    assert recorded["split"]["salt"] == "s" and recorded["sources"]["physionet2019"]["test_patients"] > 0
    sizes = recorded["sources"]["physionet2019"]
    assert sizes["train_patients"] + sizes["val_patients"] + sizes["test_patients"] == 34
    assert recorded["calibration"]["method"] == "platt"
    report_dir = tmp_path / "report"
    assert main(["evaluate", "--checkpoint", str(out), "--cohort", str(cohorts["p19"]), "--cohort", str(cohorts["p12"]),
                 "--split", "all", "--replicates", "20", "--out", str(report_dir)]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    p19, p12 = report["cohorts"]["p19 (all)"], report["cohorts"]["p12 (all)"]
    assert p19["patients"] == 34 and len(p19["model"]["auroc_ci"]) == 2 and "brier" in p19["calibration"]
    assert p12["outcomes"]["deaths"] == 4 and {"model_last_risk", "news2_max", "saps_i", "sofa"} <= set(p12["outcomes"]["scores"])
    assert (report_dir / "report.md").read_text().startswith("# Model vs NEWS2 on cohort directories")
    assert (report_dir / "roc.png").stat().st_size > 0
    # The alerts: the real alert engine over the scorer's risk, on the same patients, with the cohort's events.
    sepsis = {json.loads(line)["patient_id"] for line in (cohorts["p19"] / "events.jsonl").read_text().splitlines() if line}
    assert set(p19["alerts"]) == {"default", "news2_only", "model_only"}
    assert all(q["events"] == len(sepsis) > 0 and q["patient_days"] > 0 for q in p19["alerts"].values())
    assert all(q["events"] == 0 for q in p12["alerts"].values())
    assert "## Alerts" in (report_dir / "report.md").read_text()


def test_scorer_streams_an_elapsed_model_on_hourly_real_stays_as_training_scores_them(cohorts: dict[str, Path]) -> None:
    """The scorer (one reading at a time, in batches) gives the risk `evaluate` computes from the columnar path."""
    from inference.evaluate import score
    from inference.processor import ScorerProcessor, ScorerSettings
    from ingest import encode_reading
    from runtime.metrics import StreamMetrics, new_registry
    from runtime.records import InRecord
    from runtime.topics import RISK, VITALS

    torch.manual_seed(5)
    model = RiskModel(ModelConfig(hidden=16, trend_hours=(0.5, 2.0, 8.0), elapsed=True))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.eval()
    loaded = load_cohort_dir(str(cohorts["p12"]), 6.0)
    expected = {s.patient_id: r for s, r in zip(loaded.series, score(model, loaded.series))}
    from inference.export import export_step
    from inference.step import OnnxStep

    # The serving path: the elapsed-time model exported to ONNX, as the scorer runs it.
    step = OnnxStep(export_step(model, "elapsed-test"), model.config)
    scorer = ScorerProcessor(step, "elapsed-test", StreamMetrics(new_registry(), "score"), ScorerSettings())
    lines = [validate_object(json.loads(line), 0, NEVER) for line in (cohorts["p12"] / "readings.jsonl").read_text().splitlines()]
    items = [InRecord(VITALS, 0, i, r.patient_id.encode(), encode_reading(r), 0) for i, r in enumerate(lines)]
    out = []
    for start in range(0, len(items), 97):
        out.extend(scorer.process(items[start : start + 97]))
    streamed: dict[str, list[float]] = {}
    for record in out:
        if record.topic == RISK:
            body = json.loads(record.value)
            streamed.setdefault(body["patient_id"], []).append(body["risk"])
    assert set(streamed) == set(expected)
    for patient, risk in expected.items():
        np.testing.assert_allclose(streamed[patient], risk, rtol=0, atol=1e-5)


def test_source_weights_and_calibration_sources_are_parsed_checked_and_recorded(cohorts: dict[str, Path], tmp_path: Path) -> None:
    """`--source-weights` scales one source's loss; `--calibrate-on sim` fits the Platt scaling on the simulated
    validation readings instead of the real ones (the population the alert thresholds are set for); `--ema`
    judges epochs on averaged weights."""
    assert TrainConfig(patients=1, source_weights="physionet2019=2, sim=0.5").source_weight_map == {"physionet2019": 2.0, "sim": 0.5}
    for bad in ("physionet2019", "=2", "sim=0", "sim=x"):
        with pytest.raises(ValueError, match="source_weights"):
            TrainConfig(patients=1, source_weights=bad)
    base = dict(patients=6, val_patients=6, hours=6.0, cohorts=str(cohorts["p19"]), hidden=8, epochs=1, val_fraction=0.3,
                test_fraction=0.2, split_salt="s", real_batch=16, batch=6, threads=1)
    with pytest.raises(ValueError, match="not training sources"):
        train(TrainConfig(out=str(tmp_path / "bad"), source_weights="physionet2012=2", **base), progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ema"):
        TrainConfig(patients=1, ema=1.0)
    _, metrics = train(TrainConfig(out=str(tmp_path / "ck"), source_weights="physionet2019=3", calibrate_on="sim", ema=0.5, **base),  # type: ignore[arg-type]
                       progress=False)
    assert metrics["calibration"]["fitted_on"] == ["sim validation"]
    assert metrics["train_config"]["source_weights"] == "physionet2019=3"
