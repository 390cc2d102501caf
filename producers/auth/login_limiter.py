"""Failure windows: failures counted in fixed Redis windows per subject, and a block past a limit.

:class:`FailureWindow` is the mechanism (one counter per subject and window, INCR + EXPIRE NX in one
transaction); :class:`LoginLimiter` counts failed logins per username and per client IP with it, and
the ingest key check counts wrong stream keys per publisher address (``producers/routes/internal.py``).
"""

from __future__ import annotations

from infra.redis import DRIVER_ERRORS, RedisClient, translate

__all__ = ["WINDOW_S", "FailureWindow", "LoginLimiter"]

WINDOW_S = 60


class FailureWindow:
    """Counts failures of ``kind`` per subject in fixed windows of ``window_s``; at ``limit`` failures a
    subject is blocked until its window ends."""

    def __init__(
        self, client: RedisClient, *, prefix: str, kind: str, limit: int, window_s: int = WINDOW_S
    ) -> None:
        self._redis = client
        self._prefix = f"{prefix}api:{kind}:"
        self._kind = kind
        self.limit = limit
        self._window_s = window_s

    def _key(self, subject: str) -> str:
        return self._prefix + subject

    async def blocked_for(self, *subjects: str) -> int:
        """Seconds until another attempt is allowed for all ``subjects`` (0 = allowed now)."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for subject in subjects:
                    pipe.get(self._key(subject))
                    pipe.ttl(self._key(subject))
                replies = await pipe.execute()
        except DRIVER_ERRORS as e:
            raise translate(e, f"reading {self._kind} counts") from e
        waits = [
            max(int(ttl), 1)
            for count, ttl in zip(replies[::2], replies[1::2], strict=True)
            if count is not None and int(count) >= self.limit
        ]
        return max(waits, default=0)

    async def record(self, *subjects: str) -> list[int]:
        """One more failure for each of ``subjects``; their counts in this window, this one included."""
        counts = []
        try:
            # A transaction per key (INCR and its expiry together): two keys may be in two Redis
            # Cluster slots, and a MULTI/EXEC cannot span slots.
            for subject in subjects:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.incr(self._key(subject))
                    pipe.expire(self._key(subject), self._window_s, nx=True)
                    count, _ = await pipe.execute()
                counts.append(int(count))
        except DRIVER_ERRORS as e:
            raise translate(e, f"counting a {self._kind}") from e
        return counts

    async def clear(self, subject: str) -> None:
        try:
            await self._redis.delete(self._key(subject))
        except DRIVER_ERRORS as e:
            raise translate(e, f"clearing {self._kind} counts") from e


class LoginLimiter:
    """Counts failed logins; at the limit (per username or per IP) logins answer 429 until the window ends."""

    def __init__(self, client: RedisClient, *, prefix: str, per_minute: int) -> None:
        self._window = FailureWindow(client, prefix=prefix, kind="login-fail", limit=per_minute)

    @staticmethod
    def _subjects(username: str, ip: str) -> tuple[str, str]:
        return f"user:{username.lower()}", f"ip:{ip}"

    async def blocked_for(self, username: str, ip: str) -> int:
        """Seconds until another attempt is allowed (0 = allowed now)."""
        return await self._window.blocked_for(*self._subjects(username, ip))

    async def record_failure(self, username: str, ip: str) -> None:
        await self._window.record(*self._subjects(username, ip))

    async def record_success(self, username: str, ip: str) -> None:
        """A correct password clears the username's counter (the IP's keeps counting other users' misses)."""
        await self._window.clear(self._subjects(username, ip)[0])
