"""Training: truncated backpropagation through time on simulated and imported cohorts.

Sources: a simulator training cohort (`patients`, seed `seed`, validated on seed `val_seed`)
and/or cohort directories (`cohorts`: imported real data or saved simulator cohorts). Each
directory's patients are split by `inference.dataset.split_of` (a salted hash of the patient
id: fixed, recorded in metrics.json, no stay in two splits) into train, validation and a
held-out test split that training never reads.

Each mini-batch of patients is run through its whole stay in chunks of `chunk` readings; the
recurrent state is carried from chunk to chunk and detached, so gradients flow at most one
chunk back (truncated BPTT) while the model still sees the whole stay, exactly as it will
when streaming. Positives are rare, so the loss weighs them by negatives/positives of their
own source; the head's bias is shifted back by the calibration source's log(pos_weight)
afterwards (weighting moves every logit by that constant; ranking is unchanged). A cohort
with outcomes but no timed events (PhysioNet 2012) labels every reading of a stay with the
stay's outcome (in-hospital death) and is validated on the last risk of each stay. The best epoch by
the mean validation AUROC over sources is kept (early stopping). Finally the logit is
Platt-scaled (a * logit + b, fitted on the validation readings of the real cohorts when there
are any, else all) and folded into the head, so the streaming `step` is unchanged.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from inference import checkpoint
from inference.dataset import PatientSeries, Padded, cohort_series, load_cohort_dir, make_cohort, normalisation, pad, split_of
from inference.evaluate import score
from inference.model import ModelConfig, RiskModel
from inference.stats import auprc, auroc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run. The defaults train on a simulated cohort alone;
    the shipped checkpoint's recipe adds imported cohorts (its MODEL_CARD.md, `make train`)."""

    out: str = "checkpoint"
    patients: int = 400
    hours: float = 48.0
    seed: int = 1
    val_patients: int = 200
    val_seed: int = 2
    cell: str = "gru"
    hidden: int = 48
    horizon_hours: float = 6.0
    trend_hours: str = "0.5,2,8"  # comma-separated running-mean time constants ("" = none)
    epochs: int = 30
    patience: int = 6
    batch: int = 50
    chunk: int = 180
    lr: float = 3e-3
    weight_decay: float = 1e-4
    max_minutes: float = 12.0
    device: str = "auto"
    threads: int = 2
    cohorts: str = ""  # comma-separated cohort directories (imported or simulated) to train on as well
    split_salt: str = "wardwatch-split-1"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    elapsed: bool = True
    real_batch: int = 128
    init_from: str = ""  # a checkpoint directory to start from ('default': the shipped one); its normalisation is kept
    source_weights: str = ""  # "SOURCE=W,...": multiply that source's loss by W (default 1 each)
    ema: float = 0.0  # > 0: validate and keep an exponential moving average of the weights with this decay per update
    calibrate_on: str = ""  # comma-separated sources whose validation readings fit the Platt scaling ("" = the real ones with timed events)

    def __post_init__(self) -> None:
        if self.seed == self.val_seed:
            raise ValueError(f"val_seed={self.val_seed}: must differ from seed={self.seed}")
        if self.patients < 0 or (self.patients == 0 and not self.cohort_list):
            raise ValueError(f"patients={self.patients}: expected at least 1 (or 0 with --cohorts)")
        if not (0 < self.val_fraction and 0 <= self.test_fraction and self.val_fraction + self.test_fraction < 1):
            raise ValueError(f"val_fraction={self.val_fraction}, test_fraction={self.test_fraction}: expected 0 < val, 0 <= test, sum < 1")
        for name in ("val_patients", "epochs", "batch", "chunk", "real_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected at least 1")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema={self.ema}: expected 0 (off) or a decay in (0, 1)")
        self.source_weight_map  # noqa: B018  (validates the syntax early)

    @property
    def source_weight_map(self) -> dict[str, float]:
        """`source_weights` parsed: {source: loss multiplier}."""
        weights: dict[str, float] = {}
        for item in (i.strip() for i in self.source_weights.split(",")):
            if not item:
                continue
            name, sep, value = item.partition("=")
            try:
                weight = float(value)
            except ValueError:
                weight = -1.0
            if not sep or not name.strip() or not weight > 0:
                raise ValueError(f"source_weights={self.source_weights!r}: expected SOURCE=W,... with W > 0")
            weights[name.strip()] = weight
        return weights

    @property
    def calibration_list(self) -> list[str]:
        return [c.strip() for c in self.calibrate_on.split(",") if c.strip()]


    @property
    def cohort_list(self) -> list[str]:
        return [c.strip() for c in self.cohorts.split(",") if c.strip()]


def pick_device(name: str) -> torch.device:
    """`auto`: a GPU if one is present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _cohort(patients: int, hours: float, seed: int, horizon: float) -> tuple[dict[str, object], list[PatientSeries]]:
    started = time.perf_counter()
    description, cohort = make_cohort(patients, hours, seed)
    series = cohort_series(cohort, horizon)
    log.info("cohort ready seed=%d patients=%d readings=%d seconds=%.1f", seed, len(series), sum(map(len, series)), time.perf_counter() - started)
    return description, series


def validation_metrics(model: RiskModel, series: list[PatientSeries], label: str = "events") -> dict[str, float]:
    """Per-reading metrics; for a stay outcome (`in_hospital_death`) the last risk of each stay against it."""
    if label == "events":
        labels = np.concatenate([s.labels for s in series])
        risk = np.concatenate(score(model, series))
    else:
        labels = np.array([s.labels[-1] for s in series])
        risk = np.array([r[-1] for r in score(model, series)])
    eps = 1e-7
    loss = -np.mean(labels * np.log(risk + eps) + (1 - labels) * np.log(1 - risk + eps))
    return {"auroc": auroc(labels, risk), "auprc": auprc(labels, risk), "log_loss": float(loss)}


def source_name(path: str) -> str:
    """The name a cohort directory's patients are split under: its summary's source, else the folder name."""
    import json

    summary = Path(path) / "summary.json"
    if summary.is_file():
        source = json.loads(summary.read_text()).get("source")
        if isinstance(source, str):
            return source
    return Path(path).resolve().name


def split_cohort_dir(path: str, horizon: float, config: TrainConfig) -> tuple[str, dict[str, list[PatientSeries]], dict[str, Any]]:
    """A cohort directory's series by split (train/val/test) and a description of the split."""
    started = time.perf_counter()
    loaded = load_cohort_dir(path, horizon)
    source = source_name(path)
    label = "events"
    series = loaded.series
    if loaded.outcomes and not any(s.event_ts_ms is not None for s in series):
        # No timed events, only outcomes: every reading of a stay carries the stay's outcome.
        label = "in_hospital_death"
        series = [dataclasses.replace(s, labels=np.full(len(s), float(bool(loaded.outcomes.get(s.patient_id, {}).get("in_hospital_death"))),
                                                         dtype=np.float32)) for s in series]
    parts: dict[str, list[PatientSeries]] = {"train": [], "val": [], "test": []}
    for s in series:
        parts[split_of(source, s.patient_id, config.split_salt, config.val_fraction, config.test_fraction)].append(s)
    description = {
        "path_name": Path(path).name,
        "source": source,
        "label": label,
        **{f"{k}_patients": len(v) for k, v in parts.items()},
        **{f"{k}_events": sum(s.event_ts_ms is not None for s in v) for k, v in parts.items()},
        "train_readings": sum(map(len, parts["train"])),
    }
    log.info("cohort ready dir=%s source=%s %s seconds=%.1f", path, source, {k: len(v) for k, v in parts.items()}, time.perf_counter() - started)
    return source, parts, description


def batches_of(series: list[PatientSeries], size: int) -> list[Padded]:
    """Padded mini-batches of similar length (little padding), fixed once."""
    ordered = sorted(series, key=len)
    return [pad(ordered[i : i + size]) for i in range(0, len(ordered), size)]


def platt(logits: np.ndarray, labels: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """(a, b) minimising the log loss of sigmoid(a * logit + b): damped Newton steps on two parameters."""
    x, y = logits.astype(np.float64), labels.astype(np.float64)

    def loss(a: float, b: float) -> float:
        z = a * x + b
        return float(np.mean(np.logaddexp(0.0, z) - y * z))  # stable log loss

    a, b = 1.0, 0.0
    current = loss(a, b)
    for _ in range(iterations):
        p = 0.5 * (1.0 + np.tanh(0.5 * (a * x + b)))  # sigmoid without overflow
        g = np.array([np.mean((p - y) * x), np.mean(p - y)])
        w = p * (1 - p) + 1e-12
        h = np.array([[np.mean(w * x * x), np.mean(w * x)], [np.mean(w * x), np.mean(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        scale = 1.0
        while scale > 1e-6:  # backtrack until the loss goes down
            candidate = (a - scale * step[0], b - scale * step[1])
            value = loss(*candidate)
            if value <= current:
                break
            scale /= 2
        else:
            break
        a, b = candidate
        if abs(current - value) < 1e-12:
            current = value
            break
        current = value
    return float(a), float(b)


@torch.no_grad()
def logits_of(model: RiskModel, series: list[PatientSeries]) -> np.ndarray:
    risk = np.concatenate(score(model, series)).astype(np.float64)
    risk = np.clip(risk, 1e-7, 1 - 1e-7)
    return np.log(risk / (1 - risk))


def train(config: TrainConfig, progress: bool = True) -> tuple[str, dict[str, Any]]:
    """Train, keep the best epoch, calibrate, write the checkpoint to `config.out`; returns (version, metrics)."""
    started = time.perf_counter()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    device = pick_device(config.device)
    horizon = config.horizon_hours

    train_sets: dict[str, list[PatientSeries]] = {}
    val_sets: dict[str, list[PatientSeries]] = {}
    described: dict[str, Any] = {}
    real_sources: list[str] = []
    labels: dict[str, str] = {"sim": "events"}
    if config.patients > 0:
        described["sim_train"], train_sets["sim"] = _cohort(config.patients, config.hours, config.seed, horizon)
        described["sim_val"], val_sets["sim"] = _cohort(config.val_patients, config.hours, config.val_seed, horizon)
    for path in config.cohort_list:
        source, parts, description = split_cohort_dir(path, horizon, config)
        if source in train_sets:
            raise ValueError(f"cohort {path}: source {source!r} given twice")
        train_sets[source], val_sets[source] = parts["train"], parts["val"]
        described[source] = description
        labels[source] = description["label"]
        if json_summary(path).get("imported"):
            real_sources.append(source)

    all_train = [s for v in train_sets.values() for s in v]
    mean, std = normalisation(all_train)
    trends = tuple(float(t) for t in config.trend_hours.split(",") if t.strip())
    model_config = ModelConfig(config.cell, config.hidden, horizon, trends, config.elapsed)
    if config.init_from:
        model = warm_start(config.init_from, model_config).to(device)
    else:
        model = RiskModel(model_config, mean, std).to(device)
    batches: list[tuple[str, Padded]] = []
    for source, series in train_sets.items():
        size = config.batch if source == "sim" else config.real_batch
        batches += [(source, b.to(device)) for b in batches_of(series, size)]
    # Positives are rare and their rate differs by source (sepsis hours, deteriorations, deaths):
    # each source's positives are weighed by its own negatives/positives.
    pos_weights: dict[str, torch.Tensor] = {}
    for source in train_sets:
        positives = sum(float(b.labels[b.valid].sum()) for src, b in batches if src == source)
        readings = sum(float(b.valid.sum()) for src, b in batches if src == source)
        if positives == 0:
            raise ValueError(f"training source {source!r} has no positive readings: add patients, hours or cohorts with events")
        pos_weights[source] = torch.tensor((readings - positives) / positives, device=device)
    source_weights = config.source_weight_map
    unknown = sorted(set(source_weights) - set(train_sets)) + sorted(set(config.calibration_list) - set(val_sets))
    if unknown:
        raise ValueError(f"source(s) {unknown} named in source_weights/calibrate_on are not training sources {sorted(train_sets)}")
    log.info("training device=%s sources=%s pos_weights=%s source_weights=%s", device, list(train_sets),
             {k: round(float(v), 2) for k, v in pos_weights.items()}, source_weights)

    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, mode="max", factor=0.5, patience=1)
    generator = torch.Generator().manual_seed(config.seed)
    # With `ema`, the epochs are judged (and the best kept) on an exponential moving average of
    # the weights: the per-source, heavily weighted mini-batches make single updates noisy.
    averaged = copy.deepcopy(model) if config.ema > 0 else None
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"auroc": -1.0}
    stale = 0
    bar = tqdm(total=config.epochs * len(batches), desc="train", unit="batch", disable=not progress, dynamic_ncols=True)
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses = []
        for b in torch.randperm(len(batches), generator=generator).tolist():
            source, part = batches[b]
            state = None
            for chunk in part.chunks(config.chunk):
                logits, state = model.forward_sequence(chunk.values, chunk.mask, chunk.delta, chunk.last_values, chunk.last_mask, state)
                state = state.detach()  # truncate: the next chunk starts from here without a gradient path back
                if not bool(chunk.valid.any()):
                    continue
                loss = F.binary_cross_entropy_with_logits(logits[chunk.valid], chunk.labels[chunk.valid], pos_weight=pos_weights[source])
                loss = loss * source_weights.get(source, 1.0)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimiser.step()
                if averaged is not None:
                    with torch.no_grad():
                        for mean_p, p in zip(averaged.parameters(), model.parameters()):
                            mean_p.lerp_(p, 1.0 - config.ema)
                losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{np.mean(losses):.3f}")
        judged = averaged if averaged is not None else model
        judged.cpu()
        val = {source: validation_metrics(judged, series, labels[source]) for source, series in val_sets.items() if _scorable(series)}
        judged.to(device)
        if not val:
            raise ValueError("no validation split has both positive and negative readings: add patients or cohorts")
        mean_auroc = float(np.mean([v["auroc"] for v in val.values()]))
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_mean_auroc": mean_auroc,
                        **{f"val_{source}_{k}": v for source, m in val.items() for k, v in m.items()}})
        log.info("epoch=%d train_loss=%.4f val_mean_auroc=%.4f %s", epoch, np.mean(losses), mean_auroc,
                 " ".join(f"{source}={m['auroc']:.4f}" for source, m in val.items()))
        plateau.step(mean_auroc)
        if mean_auroc > best["auroc"]:
            best = {"auroc": mean_auroc, "epoch": epoch, "state": copy.deepcopy(judged.state_dict())}
            stale = 0
        else:
            stale += 1
        minutes = (time.perf_counter() - started) / 60
        if stale >= config.patience or minutes >= config.max_minutes:
            log.info("stopping epoch=%d reason=%s", epoch, "early_stopping" if stale >= config.patience else "time_budget")
            break
    bar.close()

    model.load_state_dict(best["state"])
    model = model.cpu().eval()
    calibration_sources = (config.calibration_list
                           or [s for s in real_sources if labels[s] == "events" and _scorable(val_sets.get(s, []))]
                           or [s for s in val_sets if labels[s] == "events" and _scorable(val_sets[s])] or list(val_sets)[:1])
    with torch.no_grad():  # undo the weighting's constant shift (of the calibration source); Platt does the rest
        model.head.bias.sub_(torch.log(pos_weights[calibration_sources[0]].cpu()))
    cal_series = [s for source in calibration_sources for s in val_sets[source]]
    a, b = platt(logits_of(model, cal_series), np.concatenate([s.labels for s in cal_series]))
    with torch.no_grad():  # sigmoid(a * (w h + c) + b): fold into the head
        model.head.weight *= a
        model.head.bias.copy_(model.head.bias * a + b)
    val = {source: validation_metrics(model, series, labels[source]) for source, series in val_sets.items() if _scorable(series)}
    val_news2 = {}
    for source, series in val_sets.items():
        if _scorable(series):
            if labels[source] == "events":
                y = np.concatenate([s.labels for s in series])
                news2 = np.concatenate([s.news2 for s in series]).astype(float)
            else:  # the stay's maximum NEWS2 against its outcome
                y = np.array([s.labels[-1] for s in series])
                news2 = np.array([s.news2.max() for s in series], dtype=float)
            val_news2[source] = {"auroc": auroc(y, news2), "auprc": auprc(y, news2)}
    metrics = {
        "train_config": asdict(config) | {"out": None, "cohorts": [Path(c).name for c in config.cohort_list]},
        "init_from_version": checkpoint.load(checkpoint.default_checkpoint_path() if config.init_from == "default" else Path(config.init_from))[1]
        if config.init_from else None,
        "sources": described,
        "split": {"rule": "sha256(salt NUL source NUL patient_id)[:8] / 2**64: < test_fraction test, < test+val val, else train",
                  "salt": config.split_salt, "val_fraction": config.val_fraction, "test_fraction": config.test_fraction},
        "pos_weights": {k: float(v) for k, v in pos_weights.items()},
        "calibration": {"method": "platt", "a": a, "b": b, "fitted_on": [f"{s} validation" for s in calibration_sources]},
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "history": history,
        "validation": val,
        "validation_news2": val_news2,
        "training_seconds": round(time.perf_counter() - started, 1),
        "device": str(device),
        "torch": torch.__version__,
    }
    version = checkpoint.save(Path(config.out), model, metrics)
    log.info("checkpoint written dir=%s model=%s seconds=%.0f", config.out, version, metrics["training_seconds"])
    return version, metrics


def warm_start(path: str, config: ModelConfig) -> RiskModel:
    """A model with `config` initialised from a checkpoint: weights copied where shapes match;
    input columns the checkpoint lacks (e.g. the elapsed-time input) start at zero, so the
    warm-started model first computes exactly what the checkpoint did."""
    source, _ = checkpoint.load(checkpoint.default_checkpoint_path() if path == "default" else Path(path))
    if (source.config.cell, source.config.hidden, source.config.trend_hours) != (config.cell, config.hidden, config.trend_hours):
        raise ValueError(f"init_from={path}: config {source.config.to_dict()} does not fit {config.to_dict()}")
    model = RiskModel(config, source.mean, source.std)
    state = model.state_dict()
    for name, tensor in source.state_dict().items():
        target = state[name]
        if target.shape == tensor.shape:
            target.copy_(tensor)
        elif name.startswith("cell.weight_ih") and target.shape[0] == tensor.shape[0]:
            target.zero_()
            target[:, : tensor.shape[1]] = tensor
        else:
            raise ValueError(f"init_from={path}: {name} has shape {tuple(tensor.shape)}, expected {tuple(target.shape)}")
    model.load_state_dict(state)
    return model


def _scorable(series: list[PatientSeries]) -> bool:
    """Validation series with both positive and negative readings (an AUROC exists)."""
    if not series:
        return False
    positives = sum(float(s.labels.sum()) for s in series)
    return 0 < positives < sum(len(s) for s in series)


def json_summary(path: str) -> dict[str, Any]:
    import json

    file = Path(path) / "summary.json"
    return json.loads(file.read_text()) if file.is_file() else {}
