"""Running the alert processor as a service: its settings, partition assignment and how it is built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from alerts.processor import AlertProcessor
from alerts.rules import DEFAULT_RULES_PATH, Rules, load_rules
from runtime.config import StreamConfig, setting
from runtime.kafka.client import RANGE
from runtime.metrics import StreamMetrics

# risk and alerts.control are co-partitioned: partition p of both must land on one process,
# because a command for a patient acts on the state built from that patient's risk records.
ASSIGNOR: Final = RANGE


@dataclass(frozen=True)
class AlertsConfig(StreamConfig):
    metrics_port: int = setting(9104, "port for Prometheus /metrics (0 = any free port, -1 = off)")
    rules: str = setting(str(DEFAULT_RULES_PATH), "alert rules file (YAML; see alerts/default_rules.yaml)")

    def __post_init__(self) -> None:
        super().__post_init__()
        load_rules(self.rules)  # a bad rules file stops the service at start-up, with one line


def build_alerts(rules: Rules, metrics: StreamMetrics) -> AlertProcessor:
    """The processor `runtime.service.run_stream` runs."""
    return AlertProcessor(rules, metrics)
