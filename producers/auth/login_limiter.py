"""Failed-login limiter: fixed one-minute windows counted in Redis, per username and per client IP."""

from __future__ import annotations

from infra.redis import DRIVER_ERRORS, RedisClient, translate

WINDOW_S = 60


class LoginLimiter:
    """Counts failed logins; at the limit (per username or per IP) logins answer 429 until the window ends."""

    def __init__(self, client: RedisClient, *, prefix: str, per_minute: int) -> None:
        self._redis = client
        self._prefix = prefix
        self._limit = per_minute

    def _keys(self, username: str, ip: str) -> tuple[str, str]:
        return (
            f"{self._prefix}api:login-fail:user:{username.lower()}",
            f"{self._prefix}api:login-fail:ip:{ip}",
        )

    async def blocked_for(self, username: str, ip: str) -> int:
        """Seconds until another attempt is allowed (0 = allowed now)."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in self._keys(username, ip):
                    pipe.get(key)
                    pipe.ttl(key)
                user_count, user_ttl, ip_count, ip_ttl = await pipe.execute()
        except DRIVER_ERRORS as e:
            raise translate(e, "reading login attempts") from e
        waits = [
            max(int(ttl), 1)
            for count, ttl in ((user_count, user_ttl), (ip_count, ip_ttl))
            if count is not None and int(count) >= self._limit
        ]
        return max(waits, default=0)

    async def record_failure(self, username: str, ip: str) -> None:
        try:
            # A transaction per key (INCR and its expiry together): the two keys may be in two
            # Redis Cluster slots, and a MULTI/EXEC cannot span slots.
            for key in self._keys(username, ip):
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, WINDOW_S, nx=True)
                    await pipe.execute()
        except DRIVER_ERRORS as e:
            raise translate(e, "counting a failed login") from e

    async def record_success(self, username: str, ip: str) -> None:
        """A correct password clears the username's counter (the IP's keeps counting other users' misses)."""
        try:
            await self._redis.delete(self._keys(username, ip)[0])
        except DRIVER_ERRORS as e:
            raise translate(e, "clearing login attempts") from e
