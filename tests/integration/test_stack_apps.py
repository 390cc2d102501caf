"""Application services under the stack's lifecycle, with stand-in apps in a run dir of their own.

The stand-ins are tiny Python HTTP servers (the real `esports api|processors|projector` are not
needed), so this exercises the real spawn → /health → pid file → stop path without touching the
shared stack's run dir or ports.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from infra import stack
from infra.settings import Settings
from infra.stack import apps, processes
from tests.ports import free_port

pytestmark = pytest.mark.integration

# Serves GET /health on argv[1]; forks a worker first (it must stop with its parent), and says so.
HEALTH_SERVER = """
import http.server, subprocess, sys
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(f"fake app listening, worker {worker.pid}", flush=True)

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/health"
        body = b'{"status": "ok"}' if ok else b"not found"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""
EXITS_AT_ONCE = "print('esports: error: invalid choice: broken'); raise SystemExit(2)"
NEVER_ANSWERS = "import time; print('warming up', flush=True); time.sleep(300)"


def _settings(run_dir: Path, port: int, start_timeout_s: float = 30.0) -> Settings:
    base = Settings()
    return base.model_copy(
        update={
            "stack": base.stack.model_copy(update={"run_dir": run_dir, "start_timeout_s": start_timeout_s}),
            "api": base.api.model_copy(update={"host": "127.0.0.1", "port": port}),
        }
    )


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Isolated settings, and stand-in apps `fake`, `broken` and `mute` on the api port setting."""
    port = free_port()
    stand_ins = {
        "fake": (sys.executable, "-c", HEALTH_SERVER, str(port)),
        "broken": (sys.executable, "-c", EXITS_AT_ONCE),
        "mute": (sys.executable, "-c", NEVER_ANSWERS),
    }
    table = dict(apps.APP_TABLE)
    for name, argv in stand_ins.items():
        table[name] = apps.App(name=name, argv=argv, port_setting="api.port", host_setting="api.host")
    monkeypatch.setattr(apps, "APP_TABLE", MappingProxyType(table))
    settings = _settings(tmp_path / "run", port)
    yield settings
    stack.down_apps(settings, list(stand_ins))  # whatever a failed test left running


def _worker_pid(settings: Settings) -> int:
    log = processes.log_path(settings, "fake").read_text()
    return int(log.split("worker ")[1].split()[0])


def test_up_status_second_up_and_down(settings: Settings) -> None:
    (started,) = stack.up(settings, ["fake"])
    worker = _worker_pid(settings)

    assert started.running and started.pid
    assert started.address == f"127.0.0.1:{settings.api.port}"
    assert started.detail.startswith(f"GET http://127.0.0.1:{settings.api.port}/health: 200")
    assert (settings.stack.run_dir / "pids" / "fake.pid").is_file()

    (seen,) = stack.status(settings, ["fake"])
    assert seen.running and seen.pid == started.pid and seen.rss_bytes
    assert seen.log == settings.stack.run_dir / "logs" / "fake.log"

    (again,) = stack.up(settings, ["fake"])
    assert again.pid == started.pid

    stack.down(settings, ["fake"])
    assert processes.proc_stat(started.pid) is None
    assert processes.proc_stat(worker) is None  # the whole process group stopped
    assert not (settings.stack.run_dir / "pids" / "fake.pid").exists()
    (after,) = stack.status(settings, ["fake"])
    assert not after.running and after.pid is None


def test_down_without_names_stops_apps_before_the_infrastructure(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    (started,) = stack.up(settings, ["fake"])
    capsys.readouterr()

    stack.down(settings)

    err = capsys.readouterr().err
    assert processes.proc_stat(started.pid or 0) is None
    assert err.index(f"stopping fake (pid {started.pid})") < err.index("kafka not running")


def test_an_app_that_exits_is_reported_at_once_with_its_log(settings: Settings) -> None:
    began = time.monotonic()

    with pytest.raises(stack.StackError) as failure:
        stack.up(settings, ["broken"])

    assert time.monotonic() - began < 10  # not the 30 s start timeout
    assert "broken exited" in str(failure.value)
    assert "invalid choice: broken" in str(failure.value)


def test_an_app_that_never_answers_times_out_and_says_how_to_stop_it(
    tmp_path: Path, settings: Settings
) -> None:
    impatient = _settings(settings.stack.run_dir, settings.api.port, start_timeout_s=2)

    with pytest.raises(stack.StackError) as failure:
        stack.up(impatient, ["mute"])

    message = str(failure.value)
    assert "mute did not answer within 2s (still running as pid" in message
    assert "`esports infra down mute` stops it" in message
    assert "warming up" in message
    stack.down(impatient, ["mute"])
    assert stack.status(impatient, ["mute"])[0].pid is None


def test_a_taken_app_port_starts_nothing(settings: Settings) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", settings.api.port))
        listener.listen()

        with pytest.raises(stack.StackError, match="ESPORTS_API__PORT=<free port>"):
            stack.up(settings, ["fake"])

    assert not (settings.stack.run_dir / "pids" / "fake.pid").exists()


def test_status_lists_the_platform_apps_next_to_the_infrastructure() -> None:
    settings = Settings()

    statuses = {s.name: s for s in stack.status(settings, stack.ALL)}

    assert tuple(statuses) == stack.ALL
    assert statuses["api"].address == f"{settings.api.host}:{settings.api.port}"
    assert statuses["processors"].address == f"127.0.0.1:{settings.processors.web_port}"
    assert statuses["projector"].address == f"127.0.0.1:{settings.projections.web_port}"
    assert statuses["projector"].log == settings.stack.run_dir / "logs" / "projector.log"
