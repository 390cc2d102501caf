"""The Redis adapter: one client factory (a standalone Redis or a Redis Cluster) and driver-error
translation.

With ``settings.redis.cluster`` the client is a :class:`~redis.asyncio.cluster.RedisCluster`: it
routes each command to the node holding its key's hash slot, splits non-transactional pipelines and
multi-key DEL by slot, and scans every primary in ``scan_iter``. What it cannot split is what needs
one node: a MULTI/EXEC (with its WATCH), a script, a RENAME. Their keys must share a hash slot, which
the read models' key layout guarantees (``projections/redis_keys.py``: one hash tag per read model).
Callers use the commands both clients share and need not know which one they have.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import RedisCluster

from infra.settings import RedisSettings

__all__ = [
    "DRIVER_ERRORS",
    "CacheAuthenticationFailed",
    "CacheError",
    "CacheUnavailable",
    "RedisClient",
    "make_client",
    "security_options",
    "translate",
]

RedisClient = aioredis.Redis | RedisCluster
# What redis-py raises: RedisError, and for a cluster client RedisClusterException too (a slot no
# node covers after a failure, keys of one transaction in two slots), which is not a RedisError.
DRIVER_ERRORS = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException)
_UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,  # a cluster without a majority, or a slot whose primary failed
    redis.exceptions.TryAgainError,  # a slot being migrated
    redis.exceptions.SlotNotCoveredError,
)


class CacheError(Exception):
    """Base of this adapter's errors; ``retriable`` says whether trying again can help."""

    retriable = False


class CacheUnavailable(CacheError):
    """Redis could not be reached or dropped the connection."""

    retriable = True


class CacheAuthenticationFailed(CacheError):
    """Redis refused the ACL user or its password (waiting does not help)."""


def translate(error: BaseException, action: str) -> CacheError:
    """The one place redis-py errors become ours."""
    if isinstance(
        error, redis.exceptions.AuthenticationError | redis.exceptions.AuthenticationWrongNumberOfArgsError
    ):
        return CacheAuthenticationFailed(f"{action}: Redis refused the credentials ({error})")
    if isinstance(error, _UNAVAILABLE):
        return CacheUnavailable(f"{action}: Redis unavailable ({error})")
    return CacheError(f"{action}: {error}")


def make_client(settings: RedisSettings, *, name: str) -> RedisClient:
    """A client for one service; strings in and out (keys and values are UTF-8 text).

    A cluster client connects lazily (on its first command) to ``host:port``, any node, and learns
    the others from it; ``ValueError`` if ``db`` is not 0 (a cluster has only database 0).
    """
    if not settings.cluster:
        return aioredis.Redis(
            host=settings.host,
            port=settings.port,
            db=settings.db,
            client_name=name,
            decode_responses=True,
            health_check_interval=30,
            **security_options(settings),
        )
    if settings.db != 0:
        raise ValueError(
            f"ESPORTS_REDIS__DB={settings.db} with ESPORTS_REDIS__CLUSTER set: a cluster has only database 0"
        )
    return RedisCluster(
        host=settings.host,
        port=settings.port,
        client_name=name,
        decode_responses=True,
        health_check_interval=30,
        **security_options(settings),
    )


def security_options(settings: RedisSettings) -> dict[str, Any]:
    """redis-py's AUTH (an ACL user) and TLS arguments from settings: none by default."""
    options: dict[str, Any] = {}
    if (password := settings.auth_password()) is not None:
        options |= {"username": settings.username, "password": password}
    if settings.tls:
        cafile = str(settings.tls_cafile) if settings.tls_cafile else None
        options |= {"ssl": True, "ssl_ca_certs": cafile, "ssl_cert_reqs": "required"}
    return options
