"""The engine's HTTP side: the live wallboard, incidents from the browser, /metrics, /healthz, /readyz."""

from ivr.http.server import BoardServer, parse_bind

__all__ = ["BoardServer", "parse_bind"]
