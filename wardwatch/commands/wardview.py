"""`wardwatch wardview`: the live ward page (vitals, risk sparkline, NEWS2, alerts to acknowledge), behind a login."""

from __future__ import annotations

import argparse

from runtime.config import ConfigError
from wardwatch import __version__
from wardwatch.users import UserError
from wardwatch.wardview import STAGE, WardView, WardViewConfig
from wardwatch.commands import listening, serve_until_stopped, settings_command


def register(sub: argparse._SubParsersAction) -> None:
    settings_command(
        sub,
        "wardview",
        WardViewConfig,
        run,
        log_name=STAGE,
        help="serve the live ward view: per-patient vitals, risk, NEWS2 and alerts to acknowledge",
        description="A web page (default http://127.0.0.1:8080/) that shows every patient live from the vitals, "
        "risk and alerts topics, to signed-in users (--users-file or WARDWATCH_USERS; make entries with "
        "`wardwatch user add`). Clinicians' Acknowledge buttons send the command, naming them, to alerts.control. "
        "HTTPS with --tls-certfile/--tls-keyfile; WARDWATCH_SESSION_SECRET keeps sign-ins across restarts.",
    )


def run(config: WardViewConfig) -> int:
    try:
        with listening(config):
            view = WardView(config)
    except UserError as exc:
        raise ConfigError(str(exc)) from None
    view.metrics.stream.build.info({"version": __version__})
    return serve_until_stopped(view, 1.0)
