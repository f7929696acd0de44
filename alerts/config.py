"""The alert service's settings (on top of every stream service's, runtime.config)."""

from __future__ import annotations

from dataclasses import dataclass

from alerts.rules import DEFAULT_RULES_PATH, load_rules
from runtime.config import StreamConfig, setting


@dataclass(frozen=True)
class AlertsConfig(StreamConfig):
    metrics_port: int = setting(9104, "port for Prometheus /metrics (0 = any free port, -1 = off)")
    rules: str = setting(str(DEFAULT_RULES_PATH), "alert rules file (YAML; see alerts/default_rules.yaml)")

    def __post_init__(self) -> None:
        super().__post_init__()
        load_rules(self.rules)  # a bad rules file stops the service at start-up, with one line
