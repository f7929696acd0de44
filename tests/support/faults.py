"""The fault tools live in bench/faults.py, shared with the soak run (bench/soak.py)."""

from bench.faults import ProxiedBroker, TcpProxy, paused, proxied_broker, wait_exit

__all__ = ["ProxiedBroker", "TcpProxy", "paused", "proxied_broker", "wait_exit"]
