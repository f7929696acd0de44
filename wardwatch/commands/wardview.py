"""`wardwatch wardview`: the live ward page (vitals, risk sparkline, NEWS2, alerts to acknowledge)."""

from __future__ import annotations

import argparse
import threading

from runtime import logs
from runtime.config import add_arguments, load
from runtime.service import stop_on_signals
from wardwatch import __version__
from wardwatch.wardview import STAGE, WardView, WardViewConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "wardview",
        help="serve the live ward view: per-patient vitals, risk, NEWS2 and alerts to acknowledge",
        description="A web page (default http://127.0.0.1:8080/) that shows every patient live from the vitals, "
        "risk and alerts topics; its Acknowledge buttons send the command to alerts.control.",
    )
    add_arguments(p, WardViewConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(WardViewConfig, args)
    logs.setup(config.log_level, STAGE)
    view = WardView(config)
    view.metrics.stream.build.info({"version": __version__})
    stop = stop_on_signals()
    server = threading.Thread(target=view.serve_forever, name="wardview-http", daemon=True)
    server.start()
    while not stop.wait(1.0):
        if not server.is_alive():
            return 1
    view.shutdown()
    return 0
