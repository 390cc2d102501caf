"""Serves the web tier (API and pages, :mod:`web.app`) under uvicorn: ``run(settings)``, i.e. ``esports api``.

With ``settings.api.workers > 1`` uvicorn starts worker processes that import :func:`app_factory`,
each building its Settings from the same environment. uvicorn handles SIGINT/SIGTERM: it stops
accepting, finishes in-flight requests, runs the lifespan shutdown (closing Kafka, PostgreSQL and
Redis), and ``run`` returns 0.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys

import uvicorn
from fastapi import FastAPI

from infra import logs
from infra.gc_tuning import tune_for_throughput
from infra.settings import Settings
from web.app import create_app
from web.http_protocol import HeadTimeoutProtocol, set_head_timeout

log = logging.getLogger(__name__)


def app_factory() -> FastAPI:
    """The app of one uvicorn worker process (its own composition root)."""
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    set_head_timeout(settings.api.head_timeout_s)
    return served(create_app(settings))


def served(app: FastAPI) -> FastAPI:
    """``app``, with everything built so far (modules, routes, schemas: most of the heap) moved out of
    the garbage collector's sight, and the collector set for many short-lived objects (see
    :mod:`infra.gc_tuning`): a collection then scans only what requests allocate, and rarely."""
    tune_for_throughput()
    return app


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            return e.errno != errno.EADDRINUSE
    return True


def run(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit code."""
    api = settings.api
    if not port_free(api.host, api.port):
        print(
            f"esports api: port {api.port} on {api.host} is taken; move it with ESPORTS_API__PORT",
            file=sys.stderr,
        )
        return 1
    options: dict[str, object] = {
        "host": api.host,
        "port": api.port,
        "log_config": None,  # keep infra.logs' configuration
        "access_log": False,  # per-route counts and latency are in /metrics; no URLs in logs
        "proxy_headers": False,
        "timeout_graceful_shutdown": 10,
        "http": HeadTimeoutProtocol,  # httptools, plus a deadline for each request's head
    }
    set_head_timeout(api.head_timeout_s)
    stop_requested = False

    def note_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    # uvicorn re-raises the signal that stopped it once it has shut down, to let the previous
    # handler run; with this one in place that is a no-op and `run` returns 0 instead of dying.
    previous = {sig: signal.signal(sig, note_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if api.workers > 1:
            uvicorn.run("web.server:app_factory", factory=True, workers=api.workers, **options)  # type: ignore[arg-type]
        else:
            uvicorn.run(served(create_app(settings)), **options)  # type: ignore[arg-type]
    except SystemExit as e:  # uvicorn exits 3 when the lifespan (e.g. a missing secret) failed
        return int(e.code or 0) if isinstance(e.code, int) else 1
    except KeyboardInterrupt:
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("API stopped%s", " on request" if stop_requested else "")
    return 0
