"""The local Redis: one server by default, or with ``ESPORTS_REDIS__CLUSTER=true`` a Redis Cluster.

The cluster is three primaries on loopback (no replicas), node N on ``redis.port + N-1`` with its
cluster bus 10000 above that. The service "redis" starts, checks and stops all of them; on the first
start it joins them with ``redis-cli --cluster create`` (the 16384 slots split in three). Each node's
``nodes.conf`` keeps the membership, so later starts rejoin the same cluster with its AOF data::

    run_dir/redis/redis.conf               the standalone config (cluster nodes include it)
    run_dir/redis/appendonlydir/           the standalone server's append-only file
    run_dir/redis/cluster/node-N/          node N's redis.conf, nodes.conf and appendonlydir/
    run_dir/logs/redis-N.log               node N's output; run_dir/logs/redis.log: the cluster's forming
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from infra.settings import Settings
from infra.stack import processes
from infra.stack.service import Port, Service, StackError, render

if TYPE_CHECKING:
    import redis.asyncio as aioredis

CLUSTER_NODES = 3
BUS_OFFSET = 10000  # Redis's default distance from a node's client port to its cluster bus port
CREATE_TIMEOUT_S = 60.0


def nodes(settings: Settings) -> range:
    """The local node numbers: 1 alone, or 1..3 in a cluster."""
    return range(1, (CLUSTER_NODES if settings.redis.cluster else 1) + 1)


def node_name(settings: Settings, node: int) -> str:
    """The pid-file and log name of a node: "redis" alone, "redis-N" in a cluster."""
    return f"redis-{node}" if settings.redis.cluster else "redis"


def node_port(settings: Settings, node: int) -> int:
    return settings.redis.port + node - 1


def _client_ports(settings: Settings) -> list[int]:
    return [node_port(settings, node) for node in nodes(settings)]


def node_dir(settings: Settings, node: int) -> Path:
    base = settings.stack.run_dir / "redis"
    return base / "cluster" / f"node-{node}" if settings.redis.cluster else base


def _bus_port(settings: Settings, node: int) -> int:
    bus = node_port(settings, node) + BUS_OFFSET
    if bus > 65535:
        raise StackError(
            f"ESPORTS_REDIS__PORT={settings.redis.port} is too high for a cluster: each node's bus listens "
            f"{BUS_OFFSET} above its port; choose one up to {65535 - BUS_OFFSET - CLUSTER_NODES + 1}"
        )
    return bus


def ports(settings: Settings) -> list[Port]:
    """The client port of each node (node 1's first: the address), then the cluster's bus ports."""
    if not settings.redis.cluster:
        return [Port(settings.redis.port, "ESPORTS_REDIS__PORT", "Redis")]
    offset = {node: "" if node == 1 else f" + {node - 1}" for node in nodes(settings)}
    return [
        Port(node_port(settings, node), f"ESPORTS_REDIS__PORT{offset[node]}", f"Redis (node {node})")
        for node in nodes(settings)
    ] + [
        Port(
            _bus_port(settings, node),
            f"ESPORTS_REDIS__PORT + {BUS_OFFSET + node - 1}",
            f"Redis cluster bus (node {node})",
        )
        for node in nodes(settings)
    ]


# ----------------------------------------------------------------------------- lifecycle


def _binary(name: str) -> str:
    if (path := shutil.which(name)) is None:
        raise StackError(f"{name} not found: run infra/local/install-system.sh (redis-server)")
    return path


def prepare(settings: Settings) -> None:
    """Render redis.conf from settings, and in a cluster each node's config including it."""
    _binary("redis-server")
    base = settings.stack.run_dir / "redis"
    base.mkdir(parents=True, exist_ok=True)
    render(
        "redis/redis.conf.tmpl",
        base / "redis.conf",
        port=settings.redis.port,
        data_dir=base,
        maxmemory=settings.redis.maxmemory,
    )
    _add_acl_user(settings, base / "redis.conf")
    if settings.redis.cluster:
        _binary("redis-cli")
        for node in nodes(settings):
            _prepare_node(settings, node, base / "redis.conf")


def _add_acl_user(settings: Settings, config: Path) -> None:
    """With ESPORTS_REDIS__USERNAME and a password: that ACL user alone may connect (the default user
    is switched off). The file holds the password, so it is made readable by its owner only."""
    redis = settings.redis
    password = redis.auth_password()
    if redis.username is None or password is None:
        return
    if any(c.isspace() for c in redis.username + password):
        raise StackError("ESPORTS_REDIS__USERNAME and its password cannot hold spaces (redis.conf)")
    with config.open("a") as file:
        file.write("\n# ESPORTS_REDIS__USERNAME: the ACL user of the platform; no anonymous access\n")
        file.write(f"user default off\nuser {redis.username} on >{password} ~* &* +@all\n")
    config.chmod(0o600)


def _prepare_node(settings: Settings, node: int, base_config: Path) -> None:
    data = node_dir(settings, node)
    data.mkdir(parents=True, exist_ok=True)
    render(
        "redis/cluster-node.conf.tmpl",
        data / "redis.conf",
        base_config=base_config,
        port=node_port(settings, node),
        data_dir=data,
        bus_port=_bus_port(settings, node),
    )


def start(settings: Settings) -> None:
    """Start every node that is not running (a partly running cluster gets its missing nodes)."""
    for node in nodes(settings):
        if processes.our_pid(settings, node_name(settings, node)) is None:
            start_node(settings, node)


def start_node(settings: Settings, node: int) -> None:
    data = node_dir(settings, node)
    command = [_binary("redis-server"), str(data / "redis.conf")]
    processes.spawn(settings, node_name(settings, node), command, cwd=data)


# ----------------------------------------------------------------------------- checks


def _connect(port: int, settings: Settings | None = None) -> aioredis.Redis:
    import redis.asyncio as aioredis

    from infra.redis import security_options

    options = security_options(settings.redis) if settings is not None else {}
    return aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=3, decode_responses=True, **options)


async def _version(port: int, settings: Settings | None = None) -> str:
    """PING and INFO of the server on `port`; its version."""
    async with _connect(port, settings) as client:
        await client.ping()
        info = await client.info("server")
    return str(info["redis_version"])


async def _cluster_info(port: int) -> dict[str, str]:
    """CLUSTER INFO of the node on `port` (cluster_state, cluster_known_nodes, ...)."""
    async with _connect(port) as client:
        info = await client.cluster("INFO")
    if isinstance(info, str):  # older redis-py answers the raw text
        info = dict(line.split(":", 1) for line in info.split() if ":" in line)
    return {str(key): str(value) for key, value in info.items()}


async def probe(settings: Settings) -> str:
    """PING and INFO (every node, each with cluster_state:ok in a cluster); the server version."""
    if wrong := mismatch(settings):
        raise StackError(wrong)
    if not settings.redis.cluster:
        return f"Redis {await _version(settings.redis.port, settings)}"
    if stopped := sorted({node_name(settings, node) for node in nodes(settings)} - set(running(settings))):
        raise StackError(f"{', '.join(stopped)} not running (`esports infra up redis` starts them)")
    client_ports = _client_ports(settings)
    versions = await asyncio.gather(*map(_version, client_ports))
    infos = await asyncio.gather(*map(_cluster_info, client_ports))
    if unhealthy := [
        f"{port}: {info.get('cluster_state')}, {info.get('cluster_known_nodes')} nodes known"
        for port, info in zip(client_ports, infos, strict=True)
        if info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != str(len(client_ports))
    ]:
        raise StackError(f"cluster not ok on node(s) {'; '.join(unhealthy)}")
    return f"Redis {versions[0]}, cluster of {len(client_ports)}"


async def ready(settings: Settings) -> str:
    """`probe`, after forming the cluster if its nodes are all new (first start; restarts rejoin)."""
    if settings.redis.cluster and not mismatch(settings):
        await _form(settings)
    return await probe(settings)


async def _form(settings: Settings) -> None:
    client_ports = _client_ports(settings)
    infos = await asyncio.gather(*map(_cluster_info, client_ports))  # every node answers first
    new = [port for port, info in zip(client_ports, infos, strict=True) if _is_new(info)]
    if len(new) == len(client_ports):
        await asyncio.to_thread(create_cluster, settings)
    elif new:
        raise StackError(
            f"node(s) on {', '.join(map(str, new))} not in the cluster the others form (nodes.conf lost?): "
            f"`esports infra down redis`, delete {settings.stack.run_dir / 'redis' / 'cluster'} "
            f"and `up` again for a new, empty cluster"
        )


def _is_new(info: dict[str, str]) -> bool:
    """Whether a node has never joined a cluster: it knows only itself and serves no slot."""
    return info.get("cluster_known_nodes") == "1" and info.get("cluster_slots_assigned") == "0"


def create_cluster(settings: Settings) -> None:
    """`redis-cli --cluster create` over every node, its output appended to run_dir/logs/redis.log."""
    addresses = [f"127.0.0.1:{port}" for port in _client_ports(settings)]
    command = [_binary("redis-cli"), "--cluster", "create", *addresses]
    command += ["--cluster-replicas", "0", "--cluster-yes"]
    processes.say(f"forming the Redis cluster of {', '.join(addresses)} (first start)…")
    log = processes.log_path(settings, "redis")
    offset = processes.log_size(log)
    with log.open("ab") as out:
        done = subprocess.run(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TERM": "dumb"},  # no colour codes in the log
            timeout=CREATE_TIMEOUT_S,
        )
    if done.returncode != 0:
        raise StackError(f"{' '.join(command)} failed:\n{processes.log_tail(log, since=offset)}")


# ----------------------------------------------------------------------------- running nodes


def running(settings: Settings) -> dict[str, int]:
    """Every live local Redis node by name (see `processes.live_nodes`)."""
    return processes.live_nodes(settings, "redis")


def mismatch(settings: Settings) -> str | None:
    """Why the running local Redis is not the one `settings` describe (standalone or cluster), or None."""
    live = running(settings)
    wanted = {node_name(settings, node) for node in nodes(settings)}
    if not live or set(live) <= wanted:
        return None
    if settings.redis.cluster:
        return (
            "the local Redis runs standalone, but ESPORTS_REDIS__CLUSTER=true asks for a cluster: "
            "unset it to use the running one, or `esports infra down redis` first"
        )
    return (
        f"the local Redis runs as a cluster ({', '.join(live)}), but ESPORTS_REDIS__CLUSTER is off: "
        f"set ESPORTS_REDIS__CLUSTER=true to use it, or `esports infra down redis` first"
    )


def find_pid(settings: Settings) -> int | None:
    """A live node's pid (the lowest node's), or None when no node runs."""
    return next(iter(running(settings).values()), None)


def complete(settings: Settings) -> bool:
    """Whether every node runs (`up` starts the missing ones of a partly running cluster)."""
    return all(processes.our_pid(settings, node_name(settings, node)) for node in nodes(settings))


def stop(settings: Settings, pid: int) -> None:
    """Stop every running node, all at once (SIGTERM: each flushes its AOF and saves nodes.conf)."""
    live = running(settings)
    for node_pid in live.values():
        processes.send_term(node_pid)
    for name, node_pid in live.items():
        processes.terminate(node_pid, name)
        processes.forget_pid(settings, name)


SERVICE = Service(
    name="redis",
    ports=ports,
    prepare=prepare,
    start=start,
    ready=ready,
    probe=probe,
    stop=stop,
    find_pid=find_pid,
    complete=complete,
)
