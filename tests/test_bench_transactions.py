"""The back-to-back transaction benchmark's arithmetic (bench/transactions.py)."""

from __future__ import annotations

import pytest

from bench.transactions import CLIENT_DEFAULT_BACKOFF_MS, summarize, table
from runtime.kafka.client.base import TXN_RETRY_BACKOFF_MS


def test_each_series_gets_its_percentiles_and_rate_and_the_runtimes_backoff_its_ratio() -> None:
    slow = [0.1] * 9 + [0.2]  # seconds per transaction
    fast = [0.01] * 9 + [0.05]
    r = summarize({f"confluent {CLIENT_DEFAULT_BACKOFF_MS}": slow, f"confluent {TXN_RETRY_BACKOFF_MS}": fast})
    default, ours = r[f"confluent {CLIENT_DEFAULT_BACKOFF_MS}"], r[f"confluent {TXN_RETRY_BACKOFF_MS}"]
    assert (default["p50_ms"], default["p90_ms"], default["max_ms"], default["transactions"]) == (100.0, 100.0, 200.0, 10)
    assert default["per_s"] == pytest.approx(10 / 1.1, abs=0.05)
    assert ours["per_s"] == pytest.approx(10 / 0.14, abs=0.05)
    assert ours["per_s_vs_default"] == pytest.approx((10 / 0.14) / (10 / 1.1), abs=0.01)
    assert "per_s_vs_default" not in default
    assert len(table(r)) == 4


def test_a_client_measured_at_one_backoff_only_gets_no_ratio() -> None:
    r = summarize({f"kafka-python {TXN_RETRY_BACKOFF_MS}": [0.02, 0.03]})
    assert "per_s_vs_default" not in r[f"kafka-python {TXN_RETRY_BACKOFF_MS}"]
