"""The ward view: its in-memory ward (pure), its sign-in pieces, and the page in headless
Chromium against a real broker and running ingest, score and alerts — no session means the
login form; a viewer cannot acknowledge (403); a cross-site form post and a post without the
CSRF token are refused; a clinician acknowledges and the `acknowledged` event names them; a
screenshot is taken. And, with no broker, a ward filled with the shipped model's explained risk
records and the alert engine's events: cards and alerts explain themselves, the alert header
fits on one line at 1400 px (that screenshot is copied to docs/wardview.png when
WARDWATCH_UPDATE_DOCS=1)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
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


CLINICIAN, VIEWER = ("nurse-7", "clinician-password-7"), ("student-3", "viewer-password-3")


def users_file(directory: Path) -> Path:
    """Two users made with the CLI, the passwords through stdin (never argv)."""
    path = directory / "users"
    for (name, password), role in ((CLINICIAN, "clinician"), (VIEWER, "viewer")):
        done = subprocess.run([sys.executable, "-m", "wardwatch", "user", "add", name, "--role", role, "--users-file", str(path)],
                              input=password + "\n", text=True, capture_output=True, cwd=REPO, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stderr
    text = path.read_text()
    assert "$argon2id$" in text and CLINICIAN[1] not in text and VIEWER[1] not in text
    assert (path.stat().st_mode & 0o777) == 0o600
    return path


class AttackerSite:
    """Another site (http://localhost:PORT, while the ward view is http://127.0.0.1:PORT) whose
    page posts a form to the ward view's acknowledge endpoint as soon as it loads."""

    def __init__(self, target: str) -> None:
        page = (f'<!doctype html><form id="f" method="post" action="{target}" enctype="text/plain">'
                '<input name=\'{"patient_id":"WARD01","alert_id":"x","pad":"\' value=\'"}\'></form>'
                '<script>document.getElementById("f").submit()</script>').encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sign_in(page, url: str, user: tuple[str, str]) -> None:  # noqa: ANN001
    page.goto(url + "login")
    page.fill('input[name="username"]', user[0])
    page.fill('input[name="password"]', user[1])
    page.click('button[type="submit"]')
    page.wait_for_url(url)


def post_from_page(page, path: str, body: dict, csrf: bool = True) -> int:  # noqa: ANN001
    """A fetch from the signed-in page itself (same origin, session cookie), with or without the CSRF token."""
    return page.evaluate("""async ([path, body, csrf]) => {
        const me = await (await fetch("/api/me")).json();
        const headers = {"Content-Type": "application/json"};
        if (csrf) headers["X-CSRF-Token"] = me.csrf;
        return (await fetch(path, {method: "POST", headers, body: JSON.stringify(body)})).status;
    }""", [path, body, csrf])


@pytest.mark.kafka
def test_the_page_needs_a_login_and_only_a_clinician_acknowledges_as_themselves(kafka_bootstrap: str, topic_prefix: str, workdir: Path) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    patients = ["WARD01", "WARD02", "WARD03", "WARD04"]
    common = ["--bootstrap-servers", kafka_bootstrap, "--topic-prefix", topic_prefix]
    port = free_port()
    users = users_file(workdir)
    create_topics(kafka_bootstrap, topic_prefix)
    services = [
        spawn("ingest", ["ingest", *common, "--metrics-port", "0"], workdir),
        spawn("score", ["score", *common, "--metrics-port", "0", "--checkpoint", "untrained"], workdir),
        spawn("alerts", ["alerts", *common, "--metrics-port", "0"], workdir),
        spawn("wardview", ["wardview", *common, "--port", str(port), "--users-file", str(users), "--login-attempts", "3"], workdir),
    ]
    url = f"http://127.0.0.1:{port}/"
    shot = workdir / "wardview.png"
    attacker = AttackerSite(url + "api/acknowledge")
    try:
        # 20 minutes of event time: WARD01's NEWS2 is 7+ long enough to raise an emergency alert.
        produce(kafka_bootstrap, topic_prefix + VITALS_RAW, readings(patients, 20, deteriorating="WARD01"))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            errors: list[str] = []

            def loaded(page) -> bool:  # noqa: ANN001
                for service in services:
                    assert service.alive(), service.log()
                try:
                    page.goto(url, timeout=5000)
                    return True
                except Exception:
                    return False

            # No session: the page sends the browser to the login form; the API answers 401.
            viewer = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
            wait_until(lambda: loaded(viewer), 60, message="the ward view to answer")
            assert viewer.url == url + "login"
            assert viewer.request.get(url + "api/ward").status == 401
            # A wrong password is refused (and counted, without the name).
            viewer.fill('input[name="username"]', VIEWER[0])
            viewer.fill('input[name="password"]', "not-the-password")
            with viewer.expect_response(lambda r: r.url == url + "login" and r.request.method == "POST") as failed:
                viewer.click('button[type="submit"]')
            assert failed.value.status == 401
            expect(viewer.locator(".error")).to_contain_text("Wrong user name or password")

            # A viewer sees the ward but cannot acknowledge: no button, and the API says 403.
            sign_in(viewer, url, VIEWER)
            viewer.on("pageerror", lambda exc: errors.append(str(exc)))
            expect(viewer.locator("article.card")).to_have_count(len(patients), timeout=60_000)
            expect(viewer.locator("#me")).to_have_text(f"{VIEWER[0]} · viewer")
            sick_for_viewer = viewer.locator('article.card[data-patient-id="WARD01"] li.alert').first
            expect(sick_for_viewer).to_be_visible(timeout=90_000)
            alert_id = sick_for_viewer.get_attribute("data-alert-id")
            assert viewer.locator("button.ack").count() == 0
            assert post_from_page(viewer, "/api/acknowledge", {"patient_id": "WARD01", "alert_id": alert_id}) == 403

            # A clinician: a cross-site form post and a same-site post without the CSRF token are refused.
            clinician = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
            clinician.on("pageerror", lambda exc: errors.append(str(exc)))
            sign_in(clinician, url, CLINICIAN)
            with clinician.expect_response(lambda r: r.url == url + "api/acknowledge") as forged:
                clinician.goto(attacker.url)
            assert forged.value.status in (401, 403), forged.value.status
            clinician.goto(url)
            assert post_from_page(clinician, "/api/acknowledge", {"patient_id": "WARD01", "alert_id": alert_id}, csrf=False) == 403

            # The clinician acknowledges; the page never asks who they are.
            expect(clinician.locator("#conn")).to_have_text("Live", timeout=10_000)
            expect(clinician.locator("#me")).to_have_text(f"{CLINICIAN[0]} · clinician")
            sick = clinician.locator('article.card[data-patient-id="WARD01"]')
            button = sick.locator(f'button.ack[data-alert="{alert_id}"]')
            expect(button).to_be_visible(timeout=30_000)
            button.click()
            done = sick.locator(f'li.alert[data-alert-id="{alert_id}"] .ack-done')
            expect(done).to_have_text("✓ Acknowledged", timeout=30_000)
            expect(clinician.locator("#recent")).to_contain_text("acknowledged")
            clinician.screenshot(path=str(shot))
            cookie = next(c for c in clinician.context.cookies() if c["name"] == "wardwatch_session")
            assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
            assert not errors, errors
            browser.close()
        events = [r.json() for r in read_committed(kafka_bootstrap, topic_prefix + ALERTS, quiet_s=2)]
        acked = [e for e in events if e["alert_id"] == alert_id and e["status"] == "acknowledged"]
        assert len(acked) == 1 and acked[0]["by"] == CLINICIAN[0] and acked[0]["reason"] == f"acknowledged by {CLINICIAN[0]}", events
        commands = [r.json() for r in read_committed(kafka_bootstrap, topic_prefix + ALERTS_CONTROL, quiet_s=1)]
        assert commands == [{"command": "acknowledge", "patient_id": "WARD01", "alert_id": alert_id,
                             "ts_ms": commands[0]["ts_ms"], "by": CLINICIAN[0]}]  # only the clinician's, nothing forged
        for service in services:
            assert service.alive(), service.log()
        wardview_log = "".join(s.log() for s in services if s.name == "wardview")
        assert "WARD01" not in wardview_log, "the ward view logs a patient id"
        assert CLINICIAN[1] not in wardview_log and VIEWER[1] not in wardview_log
        metrics = http_get(f"http://127.0.0.1:{port}/metrics")
        assert 'wardwatch_wardview_login_failures_total{reason="bad_credentials"} 1.0' in metrics
        assert VIEWER[0] not in metrics and CLINICIAN[0] not in metrics
    finally:
        attacker.close()
        for service in services:
            service.stop()
    assert shot.stat().st_size > 10_000


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


# -- sign-in pieces (pure) -----------------------------------------------------------------------
def test_users_are_checked_against_argon2_hashes_and_roles_decide_who_acknowledges() -> None:
    from wardwatch.users import Users, new_user, parse

    lines = "\n".join([new_user("nurse-7", "clinician", "clinician-password").line(), new_user("student-3", "viewer", "viewer-password").line()])
    users = Users(parse(lines, "test"))
    assert users.authenticate("nurse-7", "clinician-password").may_acknowledge is True
    assert users.authenticate("student-3", "viewer-password").may_acknowledge is False
    assert users.authenticate("nurse-7", "viewer-password") is None
    assert users.authenticate("nobody", "clinician-password") is None


@pytest.mark.parametrize(("text", "problem"), [
    ("nurse-7:admin:$argon2id$x", "role"), ("nurse-7:viewer:plaintext-password", "argon2"), ("bad name:viewer:$argon2id$x", "name"),
])
def test_a_bad_user_entry_is_one_clear_error(text: str, problem: str) -> None:
    from wardwatch.users import UserError, parse

    with pytest.raises(UserError, match=problem):
        parse(text, "users")


def test_failed_sign_ins_are_limited_per_name_and_per_address_within_the_window() -> None:
    from wardwatch.wardview import LoginLimiter

    limiter = LoginLimiter(attempts=3, window_s=60)
    keys = ["user:nurse-7", "addr:10.0.0.1"]
    for t in range(3):
        assert limiter.wait(keys, now=t) == 0.0
        limiter.failed(keys, now=t)
    assert limiter.wait(keys, now=3) == pytest.approx(57)
    assert limiter.wait(["user:nurse-7", "addr:10.0.0.2"], now=3) > 0  # the name is locked from any address
    assert limiter.wait(["user:other", "addr:10.0.0.1"], now=3) > 0  # and the address for any name
    assert limiter.wait(keys, now=61) == 0.0  # the window passed
    limiter.succeeded(keys)
    assert limiter.wait(keys, now=3) == 0.0


def test_over_https_the_session_cookie_is_secure_and_http_only(tmp_path: Path) -> None:
    import httpx

    from tests.support.https import client_context, self_signed
    from wardwatch.users import new_user
    from wardwatch.wardview import WardView, WardViewConfig

    cert, key = self_signed(tmp_path)
    config = WardViewConfig(port=0, users=new_user("nurse-7", "clinician", "clinician-password").line(),
                            tls_certfile=str(cert), tls_keyfile=str(key), bootstrap_servers="127.0.0.1:1")
    view = WardView(config)
    view.server.start()  # the HTTP side only: no broker needed to sign in
    try:
        with httpx.Client(verify=client_context(cert), base_url=f"https://localhost:{view.port}", timeout=10) as client:
            wait_until(lambda: _answers(client), 20, message="the ward view over HTTPS")
            assert client.get("/").status_code == 303
            form = client.get("/login")
            csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
            signed_in = client.post("/login", data={"username": "nurse-7", "password": "clinician-password", "csrf": csrf},
                                    headers={"Origin": f"https://localhost:{view.port}"})
            assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
            cookie = signed_in.headers["set-cookie"].lower()
            assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
            assert client.get("/api/me").json()["user"] == "nurse-7"
    finally:
        view.shutdown()


def _answers(client) -> bool:  # noqa: ANN001
    try:
        client.get("/healthz")
        return True
    except Exception:
        return False


# -- explanations on the page (real scorer output, real alert engine, real browser; no broker) ----
def explained_ward(ward: Ward) -> None:
    """Fill `ward` as the pipeline would: a small simulated ward plus three scripted patients, scored
    by the shipped model with explanations, their alerts from the alert engine with the default rules."""
    from alerts.engine import on_reading
    from alerts.messages import parse_risk
    from alerts.rules import load_rules
    from ingest import encode_reading
    from runtime.records import InRecord
    from sim.cohort import CohortConfig, generate
    from tests.test_explain import scorer, scripted, shipped

    cohort = generate(CohortConfig(patients=6, hours=6, seed=1001))
    values = [json.dumps(r).encode() for r in cohort.readings]
    named = {"WARD-RR": scripted(6 * 60, rr=lambda h: 14.0 if h < 2 else 28.0),
             "WARD-BP": scripted(4 * 60 + 1, sbp=lambda h: 125.0 if h < 2 else 125.0 - (h - 2) * 20),
             "WARD-OK": scripted(6 * 60)}
    for name, scripted_readings in named.items():
        values += [encode_reading(_renamed(r, name)) for r in scripted_readings]
    step, version = shipped()
    out = scorer(step, version).process([InRecord(VITALS, 0, i, None, v, 0) for i, v in enumerate(values)])
    rules, states = load_rules(), {}
    for value in values:
        ward.apply(VITALS, value)
    for r in out:
        if r.topic != RISK:
            continue
        assert ward.apply(RISK, r.value) is None
        reading = parse_risk(r.value)
        transition = on_reading(states.get(reading.patient_id), reading, rules)
        states[reading.patient_id] = transition.state
        for event in transition.events:
            assert ward.apply(ALERTS, json.dumps(event.to_dict()).encode()) is None


def _renamed(reading, name: str):  # noqa: ANN001, ANN202
    from dataclasses import replace

    return replace(reading, patient_id=name, device_id=name)


def test_cards_and_alerts_explain_themselves_and_the_alert_header_fits_at_1400px(tmp_path: Path) -> None:
    executable = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    from wardwatch.users import new_user
    from wardwatch.wardview import WardView, WardViewConfig

    config = WardViewConfig(port=0, users=new_user(*CLINICIAN[:1], "clinician", CLINICIAN[1]).line(), bootstrap_servers="127.0.0.1:1")
    view = WardView(config)
    explained_ward(view.ward)
    view.ward.set_connected(True)
    view.server.start()  # the HTTP side only: the ward is already filled
    url = f"http://127.0.0.1:{view.port}/"
    shot = tmp_path / "wardview.png"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            wait_until(lambda: _page_answers(page, url), 30, message="the ward view to answer")
            sign_in(page, url, CLINICIAN)

            rr = page.locator('article.card[data-patient-id="WARD-RR"]')
            expect(rr.locator(".explain .chip").first).to_have_attribute("data-input", "rr", timeout=20_000)
            assert "dom" in rr.locator(".explain .chip").first.get_attribute("class")
            expect(rr.locator('.v[data-vital="rr"] .tr')).to_contain_text("+14")  # 14 -> 28 over 4 h
            expect(rr.locator(".risk .thr")).to_have_text("alert ≥ 60%")
            expect(rr.locator(".risk .base")).to_contain_text("4 h ago")
            why = rr.locator("li.alert .why-words").first
            expect(why).to_contain_text("RR 28/min raises risk")
            expect(why).to_contain_text("NEWS2")
            expect(page.locator('article.card[data-patient-id="WARD-BP"] .explain .chip').first).to_have_attribute("data-input", "bp")
            expect(page.locator('article.card[data-patient-id="WARD-OK"] .explain')).to_contain_text("no single input stands out")

            # The header is one line beside nothing: pill, rule and time on a single row, never wrapping.
            for header in page.locator("li.alert .alert-top").all():
                box, rule = header.bounding_box(), header.locator(".rule").bounding_box()
                assert box is not None and rule is not None and rule["height"] < 20 and box["height"] < 32, (box, rule)  # one line, not four
            assert page.locator("li.alert").count() >= 2
            page.screenshot(path=str(shot), full_page=False)
            assert not errors, errors
            browser.close()
    finally:
        view.shutdown()
    assert shot.stat().st_size > 10_000
    # A test run must not change the working tree: refresh the README's picture only on request.
    if os.environ.get("WARDWATCH_UPDATE_DOCS") == "1":
        shutil.copyfile(shot, REPO / "docs" / "wardview.png")


def _page_answers(page, url: str) -> bool:  # noqa: ANN001
    try:
        page.goto(url + "login", timeout=5000)
        return True
    except Exception:
        return False
