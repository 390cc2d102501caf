"""The local PostgreSQL cluster, run with Debian's binaries as the `postgres` user when we are root."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from contextlib import suppress
from pathlib import Path

from pydantic import SecretStr

from infra.security import new_password, write_secret
from infra.settings import REPO_ROOT, Settings, secret_value
from infra.stack import processes
from infra.stack.certs import server_cert
from infra.stack.service import Port, Service, StackError, render

PG_BIN = Path("/usr/lib/postgresql/15/bin")  # Debian's postgresql-15; candidate setting: postgres.bin_dir


def ports(settings: Settings) -> list[Port]:
    return [Port(settings.postgres.port, "ESPORTS_POSTGRES__PORT", "PostgreSQL")]


def _pg_user() -> str | None:
    """The OS user that runs PostgreSQL: `postgres` when we are root (it refuses root), else nobody else."""
    return "postgres" if os.geteuid() == 0 else None


def _pg_run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    user = _pg_user()
    command = [str(PG_BIN / argv[0]), *argv[1:]]
    command = ["runuser", "-u", user, "--", *command] if user else command
    result = subprocess.run(command, capture_output=True, text=True, start_new_session=True)
    if check and result.returncode != 0:
        raise StackError(f"{argv[0]} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def _untraversable(path: Path, user: str) -> Path | None:
    """The first ancestor of `path` that `user` cannot enter, if any."""
    entry = pwd.getpwnam(user)
    for directory in reversed(path.parents):
        info = directory.stat()
        bit = 0o100 if info.st_uid == entry.pw_uid else 0o010 if info.st_gid == entry.pw_gid else 0o001
        if not info.st_mode & bit:
            return directory
    return None


def _chown_to_pg(*paths: Path) -> None:
    if (user := _pg_user()) is not None:
        for path in paths:
            shutil.chown(path, user, user)


# ----------------------------------------------------------------------------- lifecycle


def prepare(settings: Settings) -> None:
    """Check the binaries and paths, initdb on first start, render esports.conf from settings."""
    if not (PG_BIN / "postgres").is_file():
        raise StackError(f"{PG_BIN}/postgres not found: run infra/local/install-system.sh (postgresql-15)")
    base = settings.stack.run_dir / "postgres"
    base.mkdir(parents=True, exist_ok=True)
    data, sockets, log = base / "data", base / "socket", processes.log_path(settings, "postgres")
    if (user := _pg_user()) and (blocked := _untraversable(data, user)):
        raise StackError(
            f"PostgreSQL refuses to run as root, so it runs as '{user}', who cannot enter "
            f"{blocked}: `chmod o+x {blocked}` or set ESPORTS_STACK__RUN_DIR to a path "
            f"'{user}' can reach (e.g. under /tmp)"
        )
    if len(str(sockets / f".s.PGSQL.{settings.postgres.port}")) > 100:
        raise StackError(
            f"unix socket path under {sockets} is too long (over 100 bytes); "
            "use a shorter ESPORTS_STACK__RUN_DIR"
        )
    for directory in (data, sockets):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    log.touch()
    _chown_to_pg(data, sockets, log)
    if not (data / "PG_VERSION").is_file():
        _initdb(data)
    render(
        "postgres/esports.conf.tmpl",
        data / "esports.conf",
        port=settings.postgres.port,
        socket_dir=sockets,
        max_connections=settings.postgres.max_connections,
        shared_buffers=settings.postgres.shared_buffers,
    )
    if settings.postgres.ssl:
        _enable_ssl(settings, data)
    _chown_to_pg(data / "esports.conf")


def _enable_ssl(settings: Settings, data: Path) -> None:
    """ssl=on with a certificate of the local CA (copied into the data dir: PostgreSQL wants its key
    owned by the server's user, mode 0600)."""
    cert = server_cert(settings.stack.run_dir / "tls", "postgres")
    for source, target in ((cert.cert, data / "server.crt"), (cert.key, data / "server.key")):
        shutil.copyfile(source, target)
        target.chmod(0o600)
        _chown_to_pg(target)
    with (data / "esports.conf").open("a") as conf:
        conf.write("\n# ESPORTS_POSTGRES__SSL: TLS with the local CA's certificate (clients: verify-full)\n")
        conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        conf.write("ssl_min_protocol_version = 'TLSv1.2'\n")


def _initdb(data: Path) -> None:
    processes.say("initialising PostgreSQL cluster (first start)…")
    _pg_run(
        "initdb",
        "-D",
        str(data),
        "-U",
        "postgres",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
    )
    with (data / "postgresql.conf").open("a") as conf:
        conf.write("\ninclude 'esports.conf'  # written by infra/stack/postgres.py\n")


def start(settings: Settings) -> None:
    data = settings.stack.run_dir / "postgres" / "data"
    log = processes.log_path(settings, "postgres")
    _pg_run("pg_ctl", "start", "-D", str(data), "-l", str(log), "-W", "-s")
    deadline = time.monotonic() + 10  # pg_ctl -W returns at once; postmaster.pid follows within ms
    while _postmaster_pid(settings) is None and time.monotonic() < deadline:
        time.sleep(0.05)


def _postmaster_pid(settings: Settings) -> int | None:
    """The running postmaster of our data dir (from postmaster.pid), or None."""
    with suppress(OSError, ValueError, IndexError):
        text = (settings.stack.run_dir / "postgres" / "data" / "postmaster.pid").read_text()
        pid = int(text.splitlines()[0])
        # A stale postmaster.pid after a crash may name a pid since reused by something else.
        if processes.proc_stat(pid) and b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    return None


def find_pid(settings: Settings) -> int | None:
    """The postmaster of our data dir, adopted into the pid file (e.g. after a crash), or the pid file's."""
    if (pid := _postmaster_pid(settings)) is not None:
        if processes.our_pid(settings, "postgres") != pid:
            processes.write_pid(settings, "postgres", pid)
        return pid
    return processes.our_pid(settings, "postgres")


async def provision(settings: Settings) -> str:
    """Create (or update) the role and database from settings; return the server version."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    pg = settings.postgres
    sockets = settings.stack.run_dir / "postgres" / "socket"
    # The superuser over the run_dir socket (trust auth; the socket dir is 0700, owner and root only).
    admin_dsn = f"host={sockets} port={pg.port} user=postgres dbname=postgres"
    async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
        exists = await (await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [pg.user])).fetchone()
        verb = "ALTER" if exists else "CREATE"
        await conn.execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(pg.user), sql.Literal(secret_value(SecretStr(pg.password), pg.password_file))
            )
        )
        if not await (
            await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [pg.database])
        ).fetchone():
            await conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(pg.database), sql.Identifier(pg.user)
                )
            )
    if pg.service_roles:
        await _service_roles(settings, make_conninfo(admin_dsn, dbname=pg.database))
    return await probe(settings)


async def _service_roles(settings: Settings, admin_dsn: str) -> None:
    """ESPORTS_POSTGRES__SERVICE_ROLES: a least-privilege role per service (infra/postgres_roles.py)."""
    import psycopg

    from infra.postgres_roles import ServiceRoles, create_service_roles, declared_tables

    roles = ServiceRoles()
    passwords = {role: role_password_file(settings, role).read_text().strip() for role in roles.names()}
    async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
        await create_service_roles(
            conn,
            roles,
            passwords,
            command_tables=declared_tables(REPO_ROOT / "producers" / "migrations"),
            adopt_from=settings.postgres.user,
        )


def role_password_file(settings: Settings, role: str) -> Path:
    """The file of a service role's password (0600, created with a random one on first use)."""
    path = settings.stack.run_dir / "postgres" / "roles" / f"{role}.password"
    if not path.is_file():
        write_secret(path, new_password())
    return path


def service_env(settings: Settings, role: str | None) -> dict[str, str]:
    """The environment that makes a local app connect as its own role (with service_roles)."""
    if not settings.postgres.service_roles or role is None:
        return {}
    return {
        "ESPORTS_POSTGRES__USER": role,
        "ESPORTS_POSTGRES__PASSWORD_FILE": str(role_password_file(settings, role)),
    }


async def probe(settings: Settings) -> str:
    """A query as the application's role; returns the server version."""
    import psycopg

    pg = settings.postgres.model_copy(update={"host": "127.0.0.1"})
    async with await psycopg.AsyncConnection.connect(pg.dsn, connect_timeout=3) as conn:
        row = await (await conn.execute("SHOW server_version")).fetchone()
        ssl = await (
            await conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        ).fetchone()
    tls = ", TLS" if ssl and ssl[0] else ""
    return f"PostgreSQL {row[0] if row else '?'}{tls}"


def stop(settings: Settings, pid: int) -> None:
    data = settings.stack.run_dir / "postgres" / "data"
    timeout = str(int(processes.STOP_TIMEOUT_S))
    result = _pg_run("pg_ctl", "stop", "-D", str(data), "-m", "fast", "-w", "-t", timeout, check=False)
    if result.returncode != 0 and processes.proc_stat(pid):
        raise StackError(f"pg_ctl stop failed:\n{result.stdout}{result.stderr}")


SERVICE = Service(
    name="postgres",
    ports=ports,
    prepare=prepare,
    start=start,
    ready=provision,
    probe=probe,
    stop=stop,
    find_pid=find_pid,
)
