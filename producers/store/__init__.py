"""The command side's private tables (producers/migrations): credentials, refresh tokens, channel
claims, stream-key hashes, idempotency records. Not read models: nothing is rebuilt from the log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from infra.postgres import translate


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Turn psycopg errors into the adapter's DatabaseError family (the API answers 503 for those)."""
    try:
        yield
    except psycopg.Error as e:
        raise translate(e, action) from e
