"""Training: truncated backpropagation through time on simulator cohorts.

Each mini-batch of patients is run through its whole stay in chunks of `chunk` readings; the
recurrent state is carried from chunk to chunk and detached, so gradients flow at most one
chunk back (truncated BPTT) while the model still sees the whole stay, exactly as it will
when streaming. Positives are rare, so the loss weighs them by negatives/positives; the
head's bias is shifted back by log(pos_weight) afterwards so that the risk is calibrated
again (weighting moves every logit by that constant; ranking is unchanged). Validation is a
cohort from another seed; the best epoch by validation AUROC is kept (early stopping).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from inference import checkpoint
from inference.dataset import PatientSeries, cohort_series, make_cohort, normalisation, pad
from inference.evaluate import auprc, auroc, score
from inference.model import ModelConfig, RiskModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run; the defaults reproduce the shipped checkpoint."""

    out: str = str(checkpoint.default_checkpoint_path())
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

    def __post_init__(self) -> None:
        if self.seed == self.val_seed:
            raise ValueError(f"val_seed={self.val_seed}: must differ from seed={self.seed}")
        for name in ("patients", "val_patients", "epochs", "batch", "chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected at least 1")


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


def validation_metrics(model: RiskModel, series: list[PatientSeries]) -> dict[str, float]:
    labels = np.concatenate([s.labels for s in series])
    risk = np.concatenate(score(model, series))
    eps = 1e-7
    loss = -np.mean(labels * np.log(risk + eps) + (1 - labels) * np.log(1 - risk + eps))
    return {"auroc": auroc(labels, risk), "auprc": auprc(labels, risk), "log_loss": float(loss)}


def train(config: TrainConfig, progress: bool = True) -> tuple[str, dict[str, Any]]:
    """Train, keep the best epoch, write the checkpoint to `config.out`; returns (version, metrics)."""
    started = time.perf_counter()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    device = pick_device(config.device)
    train_cohort, train_series = _cohort(config.patients, config.hours, config.seed, config.horizon_hours)
    val_cohort, val_series = _cohort(config.val_patients, config.hours, config.val_seed, config.horizon_hours)

    mean, std = normalisation(train_series)
    trends = tuple(float(t) for t in config.trend_hours.split(",") if t.strip())
    model = RiskModel(ModelConfig(config.cell, config.hidden, config.horizon_hours, trends), mean, std).to(device)
    data = pad(train_series).to(device)
    positives = float(data.labels[data.valid].sum())
    negatives = float(data.valid.sum()) - positives
    if positives == 0:
        raise ValueError(f"training cohort seed={config.seed} has no positive readings: add patients or hours")
    pos_weight = torch.tensor(negatives / positives, device=device)
    log.info("training device=%s readings=%d positives=%d pos_weight=%.2f", device, int(data.valid.sum()), int(positives), float(pos_weight))

    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, mode="max", factor=0.5, patience=1)
    generator = torch.Generator().manual_seed(config.seed)
    batches = math.ceil(data.patients / config.batch)
    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"auroc": -1.0}
    stale = 0
    bar = tqdm(total=config.epochs * batches, desc="train", unit="batch", disable=not progress, dynamic_ncols=True)
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(data.patients, generator=generator).to(device)
        losses = []
        for b in range(batches):
            part = data.select(order[b * config.batch : (b + 1) * config.batch])
            state = None
            for chunk in part.chunks(config.chunk):
                logits, state = model.forward_sequence(chunk.values, chunk.mask, chunk.delta, chunk.last_values, chunk.last_mask, state)
                state = state.detach()  # truncate: the next chunk starts from here without a gradient path back
                if not bool(chunk.valid.any()):
                    continue
                loss = F.binary_cross_entropy_with_logits(logits[chunk.valid], chunk.labels[chunk.valid], pos_weight=pos_weight)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimiser.step()
                losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{np.mean(losses):.3f}")
        val = validation_metrics(model.cpu(), val_series)
        model.to(device)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), **{f"val_{k}": v for k, v in val.items()}})
        log.info("epoch=%d train_loss=%.4f val_auroc=%.4f val_auprc=%.4f", epoch, np.mean(losses), val["auroc"], val["auprc"])
        plateau.step(val["auroc"])
        if val["auroc"] > best["auroc"]:
            best = {"auroc": val["auroc"], "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
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
    with torch.no_grad():
        model.head.bias.sub_(torch.log(pos_weight.cpu()))  # undo the weighting's shift: calibrated risk
    val = validation_metrics(model, val_series)
    val_labels = np.concatenate([s.labels for s in val_series])
    val_news2 = np.concatenate([s.news2 for s in val_series]).astype(float)
    metrics = {
        "train_config": asdict(config) | {"out": None},
        "train_cohort": train_cohort,
        "val_cohort": val_cohort,
        "pos_weight": float(pos_weight),
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "history": history,
        "validation": val,
        "validation_news2": {"auroc": auroc(val_labels, val_news2), "auprc": auprc(val_labels, val_news2)},
        "training_seconds": round(time.perf_counter() - started, 1),
        "device": str(device),
        "torch": torch.__version__,
    }
    version = checkpoint.save(Path(config.out), model, metrics)
    log.info("checkpoint written dir=%s model=%s val_auroc=%.4f seconds=%.0f", config.out, version, val["auroc"], metrics["training_seconds"])
    return version, metrics
