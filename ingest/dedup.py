"""De-duplication of readings by (patient, device, seq) in a bounded window, per input partition.

Devices resend after a lost acknowledgement (at-least-once), and gateways retry; the second
copy must not be scored twice. Identity is the device's `seq`, scoped to the patient (a device
serves one patient at a time, and it keeps windows small). A seen seq remembers its `ts_ms`:
the same seq with another event time is a device that restarted its counter, so it is accepted
and replaces the old entry rather than losing the new reading.

Corrections (FHIR `amended`/`corrected`) are not duplicates: `ingest.fhir` gives a correction a
seq that also covers its status and values, so the key differs from the reading it corrects,
and the corrected value reaches the scorer; a resent copy of the same correction has the same
key and is dead-lettered `duplicate` like any resend.

Bounds: per (patient, device), entries older than `window_ms` of event time behind that
device's newest reading are forgotten, and at most `max_seqs` are kept; a (patient, device)
silent for `window_ms` behind its partition's newest reading is forgotten entirely; at most
`max_devices` per partition (least recently seen go first). A duplicate older than the window
passes here and meets the scorer's late check instead.

Durability: every change is a record on the compacted `ingest.state` changelog, key
"patient\\x1fdevice\\x1fseq" (identifiers are printable, so the separator cannot occur in them),
value {"ts_ms": ...}, or a tombstone when forgotten. The stage emits them in the same
transaction as its outputs, on the input record's partition, so a restart restores exactly
the window that the committed output reflects.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ingest.contract import Reading
from ingest.validate import OFFLINE_LIMITS, Limits, Rejected, validate_object

SEPARATOR = "\x1f"

Device = tuple[str, str]  # (patient_id, device_id)


class ReadingId(NamedTuple):
    """What makes two readings the same reading: one device's `seq` for one patient, at one event time.

    The one definition of "a duplicate" in wardwatch: ingest de-duplicates live records by it
    (within its window) and training de-duplicates cohorts by it (inference/dataset.py).
    """

    patient_id: str
    device_id: str
    seq: int
    ts_ms: int


def reading_id(reading: Reading) -> ReadingId:
    """The identity of `reading` for de-duplication."""
    return ReadingId(reading.patient_id, reading.device_id, reading.seq, reading.ts_ms)


def unique_readings(raw: Iterable[Any], limits: Limits = OFFLINE_LIMITS) -> Iterator[Reading]:
    """The readings of a whole recorded batch (a cohort) that ingest passes on, in order: the
    valid ones, validated and normalised, each once. Offline, so no window bounds the memory."""
    seen: set[ReadingId] = set()
    for obj in raw:
        try:
            reading = validate_object(obj, 0, limits)
        except Rejected:
            continue
        key = reading_id(reading)
        if key not in seen:
            seen.add(key)
            yield reading


@dataclass(frozen=True, slots=True)
class DedupSettings:
    window_ms: int = 3_600_000
    max_seqs: int = 256
    max_devices: int = 50_000


@dataclass(slots=True)
class _Window:
    seqs: OrderedDict[int, int] = field(default_factory=OrderedDict)  # seq -> ts_ms, oldest first
    newest_ts: int = -1


@dataclass(slots=True)
class _Partition:
    devices: OrderedDict[Device, _Window] = field(default_factory=OrderedDict)  # least recent first
    newest_ts: int = -1
    seqs: int = 0  # over all its devices: size() is read every batch, and a partition may hold 50,000 devices


def state_key(device: Device, seq: int) -> bytes:
    return f"{device[0]}{SEPARATOR}{device[1]}{SEPARATOR}{seq}".encode()


def parse_key(key: bytes) -> tuple[Device, int] | None:
    parts = key.decode("utf-8", "replace").split(SEPARATOR)
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return (parts[0], parts[1]), int(parts[2])


class DedupState:
    """Seen seqs of every partition this process owns, and the changelog records still to write."""

    def __init__(self, settings: DedupSettings = DedupSettings()) -> None:
        self.settings = settings
        self._partitions: dict[int, _Partition] = {}
        # (partition, key) -> ts_ms or None (tombstone); the latest change per key wins.
        self._pending: dict[tuple[int, bytes], int | None] = {}

    def seen(self, partition: int, identity: ReadingId) -> bool:
        """True if this exact reading was seen; otherwise remember it and return False."""
        patient_id, device_id, seq, ts_ms = identity
        part = self._partitions.setdefault(partition, _Partition())
        device = (patient_id, device_id)
        window = part.devices.get(device)
        if window is None:
            window = part.devices[device] = _Window()
        part.devices.move_to_end(device)
        known = window.seqs.get(seq)
        if known == ts_ms:
            return True
        if known is None:
            part.seqs += 1
        else:
            del window.seqs[seq]  # a restarted counter: the new reading takes the seq's place, at the end
        window.seqs[seq] = ts_ms
        self._pending[(partition, state_key(device, seq))] = ts_ms
        window.newest_ts = max(window.newest_ts, ts_ms)
        part.newest_ts = max(part.newest_ts, ts_ms)
        self._prune(partition, part, device, window)
        return False

    def _prune(self, partition: int, part: _Partition, device: Device, window: _Window) -> None:
        s = self.settings
        horizon = window.newest_ts - s.window_ms
        while window.seqs:
            seq, ts = next(iter(window.seqs.items()))
            if ts >= horizon and len(window.seqs) <= s.max_seqs:
                break
            del window.seqs[seq]
            part.seqs -= 1
            self._pending[(partition, state_key(device, seq))] = None
        # Least recently seen devices sit at the front: stop at the first still-current one.
        while part.devices:
            oldest, old = next(iter(part.devices.items()))
            if oldest == device or (old.newest_ts >= part.newest_ts - s.window_ms and len(part.devices) <= s.max_devices):
                break
            self._forget(partition, part, oldest)

    def _forget(self, partition: int, part: _Partition, device: Device) -> None:
        seqs = part.devices.pop(device).seqs
        part.seqs -= len(seqs)
        for seq in seqs:
            self._pending[(partition, state_key(device, seq))] = None

    def changes(self) -> list[tuple[int, bytes, bytes | None]]:
        """(partition, key, value) changelog records since the last call, and forget them."""
        out = [
            (partition, key, None if ts is None else b'{"ts_ms": %d}' % ts)  # json.dumps({"ts_ms": ts}), faster
            for (partition, key), ts in self._pending.items()
        ]
        self._pending.clear()
        return out

    def restore(self, partition: int, changelog: Iterable[tuple[bytes, bytes | None]]) -> int:
        """Rebuild `partition` from its changelog, oldest first; returns the entries kept."""
        part = self._partitions[partition] = _Partition()
        for key, value in changelog:
            parsed = parse_key(key)
            if parsed is None:
                continue  # not ours: a corrupt key must not stop a restore
            device, seq = parsed
            if value is None:
                window = part.devices.get(device)
                if window is not None:
                    window.seqs.pop(seq, None)
                continue
            try:
                ts = int(json.loads(value)["ts_ms"])
            except (ValueError, KeyError, TypeError):
                continue
            window = part.devices.setdefault(device, _Window())
            part.devices.move_to_end(device)
            window.seqs.pop(seq, None)
            window.seqs[seq] = ts
            window.newest_ts = max(window.newest_ts, ts)
            part.newest_ts = max(part.newest_ts, ts)
        for device in [d for d, w in part.devices.items() if not w.seqs]:
            del part.devices[device]
        part.seqs = sum(len(w.seqs) for w in part.devices.values())
        return part.seqs

    def drop(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        for partition in gone:
            self._partitions.pop(partition, None)
        self._pending = {k: v for k, v in self._pending.items() if k[0] not in gone}

    def size(self) -> int:
        """Seqs held over all partitions (for a gauge and for tests of the bound)."""
        return sum(p.seqs for p in self._partitions.values())
