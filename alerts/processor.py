"""The alert stage's processor: `risk` and `alerts.control` in, `alerts` and `alerts.state` out.

Thin by design: parse, hand each record to its partition's `PartitionAlerts` (pure), write the
events and the changed per-patient states. Records are applied in the order given (each
partition's in offset order), so the same input from the same restored state gives the same
output. Control commands are applied where they arrive among a partition's risk records.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from prometheus_client import Counter, Gauge, Histogram

from alerts.messages import ESCALATED, RAISED, STATUSES, MessageError, parse_command, parse_risk
from alerts.partition import Outcome, PartitionAlerts
from alerts.rules import DATA_GAP_RULE, SEVERITIES, TECHNICAL, Rules
from alerts.state import CorruptState, decode, encode
from ingest import Reason
from runtime.metrics import LATENCY_BUCKETS, StreamMetrics
from runtime.records import InRecord, OutRecord, dead_letter, encoded_record, json_record, tombstone
from runtime.topics import ALERTS, ALERTS_CONTROL, ALERTS_STATE, RISK, VITALS_DLQ

log = logging.getLogger(__name__)

STAGE: Final = "alerts"

BAD_RISK: Final = "bad_risk"
BAD_COMMAND: Final = "bad_command"

# Seconds to minutes: alerts follow debounced readings, so the tail is long.
ALERT_LATENCY_BUCKETS: Final = (*LATENCY_BUCKETS, 60.0, 300.0)


class AlertMetrics:
    """Alert-specific series on the process registry; never labelled by patient."""

    def __init__(self, stream: StreamMetrics) -> None:
        r = stream.registry
        self.alerts = Counter("wardwatch_alerts", "Alert events by severity and status", ["severity", "status"], registry=r)
        self.active = Gauge("wardwatch_active_alerts", "Open alerts in the partitions this process owns", ["severity"], registry=r)
        self.reading_to_alert = Histogram(
            "wardwatch_reading_to_alert_seconds",
            "From the risk record's Kafka timestamp to the alert event that it raised or escalated",
            buckets=ALERT_LATENCY_BUCKETS,
            registry=r,
        )
        self.commands = Counter("wardwatch_alert_commands", "Control commands by kind and result", ["command", "result"], registry=r)
        self.restore_corrupt = Counter("wardwatch_alert_state_corrupt", "Changelog values that were not an alert state", registry=r)
        for severity in (*SEVERITIES, TECHNICAL):
            self.active.labels(severity)
            for status in STATUSES:
                self.alerts.labels(severity, status)


class AlertProcessor:
    """Runs the alert rules per partition; the Processor protocol of runtime.processor."""

    stage = STAGE
    input_topics = (RISK, ALERTS_CONTROL)  # risk first: file mode reads its input as the first topic
    output_topics = (ALERTS, ALERTS_STATE, VITALS_DLQ)
    changelog_topic = ALERTS_STATE
    dead_letter_topic = VITALS_DLQ

    def __init__(self, rules: Rules, metrics: StreamMetrics, clock: Callable[[], float] = time.time) -> None:
        self.rules = rules
        self.metrics = metrics
        self.alert_metrics = AlertMetrics(metrics)
        self.clock = clock  # only for the latency metric: never for what is emitted
        self.partitions: dict[int, PartitionAlerts] = {}

    # -- state lifecycle -----------------------------------------------------------------------
    def restore(self, partition: int, changelog: Iterable[tuple[bytes, bytes | None]]) -> None:
        latest: dict[bytes, bytes | None] = {}
        for key, value in changelog:
            latest[key] = value  # compacted topic, oldest first: the last value per key wins
        part = PartitionAlerts(self.rules)
        for key, value in latest.items():
            if value is None:
                continue
            try:
                part.load(key.decode(), decode(value, self.rules))
            except (CorruptState, UnicodeDecodeError) as exc:
                self.alert_metrics.restore_corrupt.inc()
                log.warning("alert state not restored partition=%d error=%s", partition, exc)
        self.partitions[partition] = part
        self._update_active()

    def drop(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.partitions.pop(p, None)
        self._update_active()

    # -- the batch -----------------------------------------------------------------------------
    def process(self, records: Sequence[InRecord]) -> list[OutRecord]:
        out: list[OutRecord] = []
        changed: dict[tuple[int, str], None] = {}  # ordered set: (partition, patient_id)
        now_ms = self.clock() * 1000.0
        for record in records:
            part = self.partitions.get(record.partition)
            if part is None:  # file mode and tests: no assignment, start empty
                part = self.partitions[record.partition] = PartitionAlerts(self.rules)
            if record.topic == ALERTS_CONTROL:
                outcome = self._command(record, part, out)
            else:
                outcome = self._risk(record, part, out)
            if outcome is None:
                continue
            for patient_id in outcome.changed:
                changed[(record.partition, patient_id)] = None
            for event in outcome.events:
                out.append(json_record(ALERTS, event.patient_id, event.to_dict()))
                self.alert_metrics.alerts.labels(event.severity, event.status).inc()
                # Only events a risk record caused: a gap or forget fires on another's reading.
                if record.topic == RISK and event.status in (RAISED, ESCALATED) and event.rule != DATA_GAP_RULE:
                    self.alert_metrics.reading_to_alert.observe(max(0.0, (now_ms - record.timestamp_ms) / 1000.0))
        for partition, patient_id in changed:
            state = self.partitions[partition].patients.get(patient_id)
            if state is None:
                out.append(tombstone(ALERTS_STATE, patient_id, partition))
            else:
                out.append(encoded_record(ALERTS_STATE, patient_id, encode(state), partition=partition))
        self._update_active()
        return out

    def _risk(self, record: InRecord, part: PartitionAlerts, out: list[OutRecord]) -> Outcome | None:
        try:
            reading = parse_risk(record.value)
        except MessageError as exc:
            self._reject(record, BAD_RISK, f"not a risk record: {exc}", out)
            return None
        if part.is_late(reading):
            last = part.patients[reading.patient_id].last_ts_ms
            self._reject(record, Reason.LATE.value, f"ts_ms={reading.ts_ms} is {last - reading.ts_ms} ms older than the patient's last risk record", out)
            return None
        return part.on_risk(reading)

    def _command(self, record: InRecord, part: PartitionAlerts, out: list[OutRecord]) -> Outcome | None:
        try:
            command = parse_command(record.value)
        except MessageError as exc:
            self._reject(record, BAD_COMMAND, f"not an alerts.control command: {exc}", out)
            return None
        outcome = part.on_command(command)
        kind = type(command).__name__.lower()
        self.alert_metrics.commands.labels(kind, outcome.ignored or "applied").inc()
        if outcome.ignored:
            log.info("command ignored command=%s reason=%s partition=%d offset=%d", kind, outcome.ignored, record.partition, record.offset)
        return outcome

    def _reject(self, record: InRecord, reason: str, detail: str, out: list[OutRecord]) -> None:
        self.metrics.reject(reason)
        out.append(dead_letter(VITALS_DLQ, record, stage=STAGE, reason=reason, detail=detail))

    def _update_active(self) -> None:
        counts: Tally[str] = Tally()
        for part in self.partitions.values():
            counts.update(part.open_by_severity)
        for severity in (*SEVERITIES, TECHNICAL):
            self.alert_metrics.active.labels(severity).set(counts.get(severity, 0))

