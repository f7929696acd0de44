"""The ward view's Kafka side, with no HTTP in it: `Feed`, the thread that reads `vitals`, `risk` and
`alerts` (read_committed) into the `Ward` in memory, and `Acknowledger`, which produces the
clinicians' acknowledge and snooze commands to `alerts.control`. `wardwatch.wardview` serves both."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from alerts.messages import Acknowledge, Command, encode_command
from runtime.topics import ALERTS, ALERTS_CONTROL, RISK
from runtime.topics import VITALS as VITALS_TOPIC
from wardwatch.ward import Ward

if TYPE_CHECKING:
    from wardwatch.wardview import WardMetrics, WardViewConfig

log = logging.getLogger(__name__)


class Feed(threading.Thread):
    """Reads vitals, risk and alerts into the ward until `stop`; reconnects after broker errors."""

    def __init__(self, config: WardViewConfig, ward: Ward, metrics: WardMetrics, stop: threading.Event) -> None:
        super().__init__(name="wardview-feed", daemon=True)
        self.config, self.ward, self.metrics, self.stop_event = config, ward, metrics, stop

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._consume()
            except Exception as exc:  # the page stays up and says it is reconnecting
                self.ward.set_connected(False)
                log.warning("feed interrupted, reconnecting error=%r", exc)
                self.stop_event.wait(2.0)

    def _consume(self) -> None:
        from runtime.kafka.admin import ensure_topics
        from runtime.kafka.client import BEGINNING, TopicPartition, from_config, wait_for_broker
        from runtime.topics import specs

        cfg = self.config
        kafka = from_config(cfg)
        wait_for_broker(kafka)
        ensure_topics(kafka, specs(VITALS_TOPIC, RISK, ALERTS, ALERTS_CONTROL), cfg.partitions,
                      cfg.replication_factor, cfg.topic_prefix)
        c = kafka.consumer(client_id="wardwatch-wardview", group_id=None, max_poll_records=2000)
        try:
            tps = [TopicPartition(cfg.topic(t), p) for t in (ALERTS, RISK, VITALS_TOPIC) for p in c.partitions_for(cfg.topic(t))]
            starts = dict.fromkeys(tps, BEGINNING)
            # Open alerts need the whole (small) alerts topic; vitals and risk only their tail.
            tails = [tp for tp in tps if tp.topic != cfg.topic(ALERTS)]
            for tp, end in c.end_offsets(tails).items():
                if end > cfg.lookback_records:
                    starts[tp] = end - cfg.lookback_records
            c.assign(starts)
            self.ward.set_connected(True)
            log.info("feed reading topics=%s partitions=%d", [ALERTS, RISK, VITALS_TOPIC], len(tps))
            prefix = len(cfg.topic_prefix)
            while not self.stop_event.is_set():
                records = c.poll(0.3, 2000)
                counts: dict[str, int] = {}
                for r in records:
                    topic = r.topic[prefix:]
                    counts[topic] = counts.get(topic, 0) + 1
                    reason = self.ward.apply(topic, r.value)
                    if reason:
                        self.metrics.stream.reject(reason)
                for topic, n in counts.items():
                    self.metrics.stream.records_in.labels(self.metrics.stream.stage, topic).inc(n)
                self.metrics.patients.set(len(self.ward.patients))
        finally:
            c.close()


class Acknowledger:
    """Produces acknowledge commands to `alerts.control`, keyed by patient_id (its partition)."""

    def __init__(self, config: WardViewConfig) -> None:
        self.config = config
        self._producer: Any = None
        self._lock = threading.Lock()

    def send(self, patient_id: str, alert_id: str, ts_ms: int, by: str) -> None:
        self.command(Acknowledge(patient_id=patient_id, alert_id=alert_id, ts_ms=ts_ms, by=by))

    def command(self, command: Command) -> None:
        """Produce one control command (keyed by its patient) and wait for Kafka's acknowledgement."""
        from runtime.kafka.client import from_config

        with self._lock:
            if self._producer is None:
                self._producer = from_config(self.config).producer(client_id="wardwatch-wardview-ack")
            delivery = self._producer.send_acked(self.config.topic(ALERTS_CONTROL), encode_command(command),
                                                 key=command.patient_id.encode())
        delivery.wait(15)

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout_s=5)
                self._producer = None
