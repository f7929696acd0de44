"""The ward view: its in-memory ward (pure), and the page in headless Chromium against a real
broker and running ingest, score and alerts — patients appear, an alert is acknowledged
through alerts.control, and a screenshot is taken (copied to docs/wardview.png when
WARDWATCH_UPDATE_DOCS=1)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from runtime.topics import ALERTS, ALERTS_CONTROL, RISK, VITALS, VITALS_RAW
from tests.support.kafka import create_topics, produce, read_committed, spawn, wait_until
from tests.support.tools import require_tool
from tests.test_observability_prometheus import free_port, readings
from wardwatch.wardview import Ward

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def vitals(patient_id: str, ts_ms: int, **values: float) -> bytes:
    return json.dumps({"patient_id": patient_id, "device_id": "D1", "seq": 1, "ts_ms": ts_ms, **values}).encode()


def risk(patient_id: str, ts_ms: int, value: float, news2: int) -> bytes:
    return json.dumps({"patient_id": patient_id, "ts_ms": ts_ms, "seq": 1, "risk": value, "news2": news2,
                       "news2_single3": False, "news2_scores": {"hr": 1}, "model": "m1"}).encode()


def alert(patient_id: str, alert_id: str, status: str, severity: str = "urgent", ts_ms: int = 1000) -> bytes:
    return json.dumps({"alert_id": alert_id, "patient_id": patient_id, "ts_ms": ts_ms, "status": status,
                       "severity": severity, "rule": "news2_aggregate", "reason": "NEWS2 6", "raised_ts_ms": 900,
                       "acknowledged": status == "acknowledged"}).encode()


# -- the ward in memory --------------------------------------------------------------------------
def test_latest_vitals_carry_forward_and_a_late_reading_never_hides_a_newer_one() -> None:
    ward = Ward()
    assert ward.apply(VITALS, vitals("P1", 1000, hr=80.0, temp=37.0)) is None
    ward.apply(VITALS, vitals("P1", 2000, hr=90.0))
    ward.apply(VITALS, vitals("P1", 1500, hr=60.0))
    p = ward.snapshot()["patients"][0]
    assert p["vitals"]["hr"] == 90.0 and p["vitals"]["temp"] == 37.0
    assert p["vitals_ts_ms"]["temp"] == 1000


def test_risk_history_is_bounded_and_feeds_the_sparkline() -> None:
    ward = Ward(history=5)
    for i in range(8):
        ward.apply(RISK, risk("P1", 1000 * i, i / 10, news2=i))
    p = ward.snapshot()["patients"][0]
    assert [r for _, r in p["history"]] == [0.3, 0.4, 0.5, 0.6, 0.7]
    assert p["news2"] == 7 and p["risk"] == 0.7 and p["model"] == "m1"


def test_alert_lifecycle_open_acknowledged_resolved() -> None:
    ward = Ward()
    ward.apply(ALERTS, alert("P1", "A1", "raised"))
    ward.apply(ALERTS, alert("P2", "A2", "raised", "emergency"))
    snap = ward.snapshot()
    assert [p["patient_id"] for p in snap["patients"]] == ["P2", "P1"], "the most severe open alert first"
    assert snap["open_alerts"] == {"urgent": 1, "emergency": 1}
    ward.mark_ack_pending("P1", "A1")
    assert ward.open_alert("P1", "A1") is not None
    assert ward.snapshot()["patients"][1]["alerts"][0]["ack_pending"] is True
    ward.apply(ALERTS, alert("P1", "A1", "acknowledged", ts_ms=2000))
    a1 = ward.snapshot()["patients"][1]["alerts"][0]
    assert a1["acknowledged"] is True and a1["ack_pending"] is False
    ward.apply(ALERTS, alert("P1", "A1", "resolved", ts_ms=3000))
    assert ward.open_alert("P1", "A1") is None
    assert [e["status"] for e in ward.snapshot()["recent"]][:2] == ["resolved", "acknowledged"]


@pytest.mark.parametrize("value", [
    None, b"\xff\xfe", b"[1, 2]", b'{"patient_id": 7, "ts_ms": 1}', b'{"patient_id": "P1"}',
    b'{"patient_id": "P1", "ts_ms": -5}', b'{"patient_id": "P1", "ts_ms": 1, "risk": "high"}',
    b'{"patient_id": "P1", "ts_ms": 1, "risk": 2.5}', b'{"patient_id": "' + b"x" * 500 + b'", "ts_ms": 1}',
])
def test_bad_records_are_rejected_with_a_reason_and_never_raise(value: bytes | None) -> None:
    ward = Ward()
    assert ward.apply(RISK, value) is not None
    assert ward.apply(ALERTS, value) is not None
    assert ward.snapshot()["patients"] == [] and ward.version == 0


def test_the_ward_keeps_at_most_max_patients() -> None:
    ward = Ward(max_patients=3)
    for i in range(5):
        ward.apply(VITALS, vitals(f"P{i}", 1000 + i, hr=70.0))
    assert sorted(p["patient_id"] for p in ward.snapshot()["patients"]) == ["P2", "P3", "P4"]


# -- the page, in a real browser, on a real pipeline ---------------------------------------------
def chromium_or_skip() -> str:
    require_tool("chromium", "chromium", CHROMIUM)
    return CHROMIUM


@pytest.mark.kafka
def test_the_page_shows_patients_live_and_acknowledges_an_alert(kafka_bootstrap: str, topic_prefix: str, workdir: Path) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    patients = ["WARD01", "WARD02", "WARD03", "WARD04"]
    common = ["--bootstrap-servers", kafka_bootstrap, "--topic-prefix", topic_prefix]
    port = free_port()
    create_topics(kafka_bootstrap, topic_prefix)
    services = [
        spawn("ingest", ["ingest", *common, "--metrics-port", "0"], workdir),
        spawn("score", ["score", *common, "--metrics-port", "0", "--checkpoint", "untrained"], workdir),
        spawn("alerts", ["alerts", *common, "--metrics-port", "0"], workdir),
        spawn("wardview", ["wardview", *common, "--port", str(port)], workdir),
    ]
    url = f"http://127.0.0.1:{port}/"
    shot = workdir / "wardview.png"
    try:
        # 20 minutes of event time: WARD01's NEWS2 is 7+ long enough to raise an emergency alert.
        produce(kafka_bootstrap, topic_prefix + VITALS_RAW, readings(patients, 20, deteriorating="WARD01"))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            def loaded() -> bool:
                for service in services:
                    assert service.alive(), service.log()
                try:
                    page.goto(url, timeout=5000)
                    return True
                except Exception:
                    return False

            wait_until(loaded, 60, message="the ward view to answer")
            expect(page.locator("article.card")).to_have_count(len(patients), timeout=60_000)
            expect(page.locator("#conn")).to_have_text("Live", timeout=10_000)
            sick = page.locator('article.card[data-patient-id="WARD01"]')
            expect(sick.locator(".news2")).to_contain_text("NEWS2", timeout=30_000)
            button = sick.locator("button.ack").first
            expect(button).to_be_visible(timeout=90_000)
            alert_id = button.get_attribute("data-alert")
            page.fill("#ack-by", "nurse-7")
            # Live, not reloaded: the page updated itself from the stream until now.
            button.click()
            done = sick.locator(f'li.alert[data-alert-id="{alert_id}"] .ack-done')
            expect(done).to_have_text("✓ Acknowledged", timeout=30_000)
            expect(page.locator("#recent")).to_contain_text("acknowledged")
            page.screenshot(path=str(shot))
            assert not errors, errors
            browser.close()
        events = [r.json() for r in read_committed(kafka_bootstrap, topic_prefix + ALERTS, quiet_s=2)]
        acked = [e for e in events if e["alert_id"] == alert_id and e["status"] == "acknowledged"]
        assert acked and acked[0]["reason"] == "acknowledged by nurse-7", events
        commands = [r.json() for r in read_committed(kafka_bootstrap, topic_prefix + ALERTS_CONTROL, quiet_s=1)]
        assert commands == [{"command": "acknowledge", "patient_id": "WARD01", "alert_id": alert_id,
                             "ts_ms": commands[0]["ts_ms"], "by": "nurse-7"}]
        for service in services:
            assert service.alive(), service.log()
        assert "WARD01" not in "".join(s.log() for s in services if s.name == "wardview"), "the ward view logs a patient id"
    finally:
        for service in services:
            service.stop()
    assert shot.stat().st_size > 10_000
    # A test run must not change the working tree: refresh the README's picture only on request.
    if os.environ.get("WARDWATCH_UPDATE_DOCS") == "1":
        shutil.copyfile(shot, REPO / "docs" / "wardview.png")
