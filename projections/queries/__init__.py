"""Queries on the read models the projectors write (PostgreSQL tables, Redis live state).

The API and the web pages read through these and never write; the connection's search_path
resolves table names in the read-model schema (see ``producers.services.Namespace``). Listings are
keyset-paginated: they take the sort key of the last row already shown (``after``, None for the
first page) and return at most ``limit`` rows. Turning that key into an opaque cursor is the API's
business (``producers.listings``).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from infra.postgres import translate

__all__ = ["Reader"]


class Reader:
    """Base of the read-model queries: two helpers returning rows as dicts."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def _all(self, query: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        try:
            async with self._pool.connection() as conn:
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(query, params)
                return await cur.fetchall()
        except psycopg.Error as e:  # the adapter's DatabaseError family (the API answers 503)
            raise translate(e, "querying the read model") from e

    async def _one(self, query: str, params: tuple[Any, ...] | list[Any] = ()) -> dict[str, Any] | None:
        rows = await self._all(query, params)
        return rows[0] if rows else None
