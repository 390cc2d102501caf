"""Processes of the local stack: pid files with start ticks, detached spawning, stopping, ports, logs.

A pid file holds "<pid> <start ticks>"; a pid counts as ours only while /proc shows the same start
time, so a recycled pid is never signalled.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

from infra.settings import Settings

STOP_TIMEOUT_S = 30.0  # SIGTERM → SIGKILL grace; candidate setting: stack.stop_timeout_s
LOG_TAIL_LINES = 40


def say(message: str) -> None:
    """Progress for the person at the terminal (stderr; stdout is for tables and paths)."""
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- pid files


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        with suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it was our child
        return None
    return fields


def _start_ticks(pid: int) -> str | None:
    stat = proc_stat(pid)
    return stat[19] if stat else None  # field 22 of stat: start time in clock ticks since boot


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.stack.run_dir / "pids" / f"{name}.pid"


def write_pid(settings: Settings, name: str, pid: int) -> None:
    _pid_file(settings, name).write_text(f"{pid} {_start_ticks(pid)}\n")


def forget_pid(settings: Settings, name: str) -> None:
    _pid_file(settings, name).unlink(missing_ok=True)


def our_pid(settings: Settings, name: str) -> int | None:
    """The pid of the live process we started for `name`, or None (stale pid files are removed)."""
    path = _pid_file(settings, name)
    try:
        pid_text, ticks = path.read_text().split()
    except (OSError, ValueError):
        return None
    if _start_ticks(int(pid_text)) == ticks:
        return int(pid_text)
    path.unlink(missing_ok=True)
    return None


def live_nodes(settings: Settings, service: str) -> dict[str, int]:
    """Every live process of a multi-node service by pid-file name: `service` alone (one node) or
    `service-N` (a cluster's nodes), whatever the settings say now, so a cluster is still found (and
    stopped) by a later command run without the setting that started it."""
    names = sorted(
        path.stem
        for path in (settings.stack.run_dir / "pids").glob(f"{service}*.pid")
        if path.stem == service
        or (path.stem.startswith(f"{service}-") and path.stem[len(service) + 1 :].isdigit())
    )
    return {name: pid for name in names if (pid := our_pid(settings, name)) is not None}


def tree_rss(pid: int) -> int:
    """Resident memory of `pid` and all its descendants, in bytes."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := proc_stat(int(entry.name))):
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        with suppress(OSError):
            rss_pages = int(Path(f"/proc/{current}/statm").read_text().split()[1])
            total += rss_pages * os.sysconf("SC_PAGE_SIZE")
    return total


# ----------------------------------------------------------------------------- starting and stopping


def spawn(
    settings: Settings, name: str, argv: list[str], *, cwd: Path, env: Mapping[str, str] | None = None
) -> int:
    """Start `argv` detached (own session, output appended to its log) and record its pid."""
    with log_path(settings, name).open("ab") as log:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    write_pid(settings, name, process.pid)
    return process.pid


def send_term(pid: int) -> None:
    """SIGTERM without waiting (to stop several processes at once, then `terminate` each)."""
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, it just is not ours to signal
    return True


def terminate(pid: int, name: str, *, group: bool = False) -> None:
    """SIGTERM, wait up to STOP_TIMEOUT_S, then SIGKILL.

    With `group`, signal the whole process group `pid` leads (its workers too) and wait until it is
    empty: a worker outliving its parent would keep the port.
    """
    as_group = group and _leads_group(pid)

    def alive() -> bool:
        return proc_stat(pid) is not None or (as_group and _group_alive(pid))

    def send(sig: signal.Signals) -> None:
        with suppress(ProcessLookupError):
            if as_group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    send(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive():
        say(f"{name} (pid {pid}) ignored SIGTERM for {STOP_TIMEOUT_S:.0f}s; sending SIGKILL")
        send(signal.SIGKILL)


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


# ----------------------------------------------------------------------------- logs


def log_path(settings: Settings, name: str) -> Path:
    return settings.stack.run_dir / "logs" / f"{name}.log"


def log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def log_tail(path: Path, lines: int = LOG_TAIL_LINES, since: int = 0) -> str:
    """The last `lines` lines of `path` written after byte offset `since`."""
    try:
        with path.open("rb") as log:
            log.seek(max(since, log.seek(0, os.SEEK_END) - 64 * 1024))
            return b"\n".join(log.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return "(no log yet)"


# ----------------------------------------------------------------------------- ports


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could not bind `host:port` now."""
    # Bind like a server does (SO_REUSEADDR, so TIME_WAIT leftovers of our last run do not count).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def port_holder(port: int) -> str:
    """' (pid N: command)' for the process listening on `port`, when /proc lets us see it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                cols = row.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "0A":  # 0A = LISTEN
                    inodes.add(f"socket:[{cols[9]}]")
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in fd_dir.iterdir()):
                cmd = " ".join((fd_dir.parent / "cmdline").read_bytes().decode(errors="replace").split())
                return f" (pid {fd_dir.parent.name}: {cmd[:80]})"
    return ""
