"""Throughput of a process under test on the same input: the harness scenarios 1-4 and 7 share.

Preloaded: the input is in `vitals` before the process starts; throughput is counted from the
first to the last output a read_committed consumer sees (start-up and restore excluded).
Live (scale-out): the processes join their group first, then the input is produced as fast
as the broker takes it, so every member owns its partitions before the first record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from bench.common import Input, Observer, create_topics, fresh_prefix, preload, spawn, stop
from runtime.topics import RISK, VITALS, VITALS_DLQ


@dataclass(frozen=True)
class Throughput:
    name: str
    readings: int
    outputs: int
    readings_per_s: float
    seconds: float
    processes: int = 1
    capped: bool = False  # stopped at the time cap before all outputs arrived

    def as_dict(self) -> dict[str, object]:
        return {"readings": self.readings, "outputs_seen": self.outputs, "readings_per_s": round(self.readings_per_s, 1),
                "window_s": round(self.seconds, 2), "processes": self.processes, "time_capped": self.capped}


def run_preloaded(bootstrap: str, name: str, data: Input, command: list[str], logdir: Path,
                  time_cap_s: float = 120.0, start_timeout_s: float = 90.0) -> Throughput:
    """`command` gets `{prefix}` and `{instance}` substituted; one process, input preloaded."""
    prefix = fresh_prefix(name)
    create_topics(bootstrap, prefix)
    preload(bootstrap, prefix + VITALS, data.records)
    observer = Observer(bootstrap, [prefix + RISK, prefix + VITALS_DLQ])
    process = spawn([a.format(prefix=prefix, instance=f"{name}-1") for a in command], logdir / f"{name}.log")
    try:
        started = time.monotonic()
        while observer.seen.count == 0 and time.monotonic() - started < start_timeout_s:
            if process.poll() is not None:
                raise RuntimeError(f"{name}: process exited with {process.returncode}; see {logdir / (name + '.log')}")
            time.sleep(0.05)
        seen = observer.wait_for(len(data.records), time_cap_s)
    finally:
        stop([process])
        observer.close()
    return _result(name, data, seen, 1, time_cap_s)


def run_live(bootstrap: str, name: str, data: Input, command: list[str], group: str, processes: int, logdir: Path,
             time_cap_s: float = 120.0, join_timeout_s: float = 120.0) -> Throughput:
    """`processes` copies of `command` in one group (`group` gets `{prefix}`), then the input."""
    prefix = fresh_prefix(name)
    create_topics(bootstrap, prefix)
    observer = Observer(bootstrap, [prefix + RISK, prefix + VITALS_DLQ])
    procs = [spawn([a.format(prefix=prefix, instance=f"{name}-{i}") for a in command], logdir / f"{name}-{i}.log")
             for i in range(1, processes + 1)]
    try:
        _wait_for_group(bootstrap, group.format(prefix=prefix), processes, join_timeout_s, procs)
        preload(bootstrap, prefix + VITALS, data.records)
        seen = observer.wait_for(len(data.records), time_cap_s)
    finally:
        stop(procs)
        observer.close()
    return _result(name, data, seen, processes, time_cap_s)


def _result(name: str, data: Input, seen, processes: int, time_cap_s: float) -> Throughput:
    window = seen.receive_s[-1] - seen.receive_s[0] if seen.count > 1 else 0.0
    return Throughput(name, len(data.records), seen.count, seen.throughput(), window, processes,
                      capped=seen.count < len(data.records))


def _wait_for_group(bootstrap: str, group: str, members: int, timeout_s: float, procs) -> None:
    """Until the group is Stable with `members` members, each holding partitions."""
    from runtime.kafka import security

    admin = AdminClient({"bootstrap.servers": bootstrap, **security.current_properties()})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"group {group}: a member exited with {p.returncode} before joining")
        try:
            info = admin.describe_consumer_groups([group])[group].result(timeout=10)
        except KafkaException:  # the group does not exist yet (its coordinator says so)
            time.sleep(0.25)
            continue
        if info.state == ConsumerGroupState.STABLE and len(info.members) == members:
            time.sleep(1.0)  # let the last assignment's restore finish
            return
        time.sleep(0.25)
    raise TimeoutError(f"group {group} did not reach {members} stable members in {timeout_s:.0f}s")
