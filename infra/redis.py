"""The Redis adapter: one client factory and driver-error translation."""

from __future__ import annotations

import redis.asyncio as aioredis
import redis.exceptions

from infra.settings import RedisSettings


class CacheError(Exception):
    """Base of this adapter's errors; ``retriable`` says whether trying again can help."""

    retriable = False


class CacheUnavailable(CacheError):
    """Redis could not be reached or dropped the connection."""

    retriable = True


def translate(error: BaseException, action: str) -> CacheError:
    """The one place redis-py errors become ours."""
    if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return CacheUnavailable(f"{action}: Redis unavailable ({error})")
    return CacheError(f"{action}: {error}")


def make_client(settings: RedisSettings, *, name: str) -> aioredis.Redis:
    """A client for one service; strings in and out (keys and values are UTF-8 text)."""
    return aioredis.Redis(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        client_name=name,
        decode_responses=True,
        health_check_interval=30,
    )
