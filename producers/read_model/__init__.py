"""Queries against the read models the projectors write (PostgreSQL tables, Redis live state).

The API never writes these; the connection's search_path resolves table names in the read-model
schema (see ``producers.services.Namespace``).
"""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from producers.store import translated


class Reader:
    """Base of the read-model queries: two helpers returning rows as dicts."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def _all(self, query: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        with translated("querying the read model"):
            async with self._pool.connection() as conn:
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(query, params)
                return await cur.fetchall()

    async def _one(self, query: str, params: tuple[Any, ...] | list[Any] = ()) -> dict[str, Any] | None:
        rows = await self._all(query, params)
        return rows[0] if rows else None
