"""The model's shape, without PyTorch: what a checkpoint's config.json holds.

Both runtimes read it: `inference.model.RiskModel` (PyTorch, training and evaluation) and
`inference.step.OnnxStep` (ONNX Runtime, the services), which only needs the state size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from inference.features import N_FEATURES


@dataclass(frozen=True)
class ModelConfig:
    cell: str = "gru"  # "gru" or "lstm"
    hidden: int = 48
    horizon_hours: float = 6.0
    # Time constants of per-vital running means kept in the state (empty: none). The input
    # then also carries how far each observed vital is from each running mean: a trend, and
    # a deviation from the patient's own baseline, that a GRU stepping every minute would
    # otherwise have to learn to integrate over hours.
    trend_hours: tuple[float, ...] = ()
    # Keep hours since the patient's first reading in the state (one float) and give the cell
    # log(1 + hours) as an input: how far into a stay a reading is matters (an ICU's first
    # hours differ from its third day). The step interface is unchanged: the time since the
    # previous reading is the smallest `delta` over the inputs seen before.
    elapsed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "trend_hours", tuple(float(t) for t in self.trend_hours))
        if any(t <= 0 for t in self.trend_hours):
            raise ValueError(f"trend_hours={self.trend_hours}: expected positive time constants")
        if self.cell not in ("gru", "lstm"):
            raise ValueError(f"cell={self.cell!r}: expected 'gru' or 'lstm'")
        if not 4 <= self.hidden <= 1024:
            raise ValueError(f"hidden={self.hidden}: expected 4-1024")

    @property
    def recurrent_size(self) -> int:
        """The cell's state: h for a GRU, h then c for an LSTM."""
        return self.hidden * (2 if self.cell == "lstm" else 1)

    @property
    def state_size(self) -> int:
        """Floats of state per patient: the recurrent state, then the running means [K, D]
        flattened, then hours since the first reading (when `elapsed`)."""
        return self.recurrent_size + len(self.trend_hours) * N_FEATURES + int(self.elapsed)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
