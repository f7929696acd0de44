"""`wardwatch wardview`: the live ward page (vitals, risk sparkline, NEWS2, alerts to acknowledge), behind a login."""

from __future__ import annotations

import argparse
import ssl

from runtime import logs
from runtime.config import ConfigError, add_arguments, load
from runtime.service import stop_on_signals
from wardwatch import __version__
from wardwatch.users import UserError
from wardwatch.wardview import STAGE, WardView, WardViewConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "wardview",
        help="serve the live ward view: per-patient vitals, risk, NEWS2 and alerts to acknowledge",
        description="A web page (default http://127.0.0.1:8080/) that shows every patient live from the vitals, "
        "risk and alerts topics, to signed-in users (--users-file or WARDWATCH_USERS; make entries with "
        "`wardwatch user add`). Clinicians' Acknowledge buttons send the command, naming them, to alerts.control. "
        "HTTPS with --tls-certfile/--tls-keyfile; WARDWATCH_SESSION_SECRET keeps sign-ins across restarts.",
    )
    add_arguments(p, WardViewConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(WardViewConfig, args)
    logs.setup(config.log_level, STAGE)
    try:
        view = WardView(config)
    except UserError as exc:
        raise ConfigError(str(exc)) from None
    except ssl.SSLError as exc:
        raise ConfigError(f"--tls-certfile={config.tls_certfile} --tls-keyfile={config.tls_keyfile}: not a usable certificate and key ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"--host={config.host} --port={config.port}: cannot listen ({exc.strerror or exc})") from None
    view.metrics.stream.build.info({"version": __version__})
    stop = stop_on_signals()
    view.start()
    while not stop.wait(1.0):
        if not view.server.is_alive():
            view.shutdown()
            return 1
    view.shutdown()
    return 0
