"""A per-process cache of command-side facts, forgotten when PostgreSQL says their row changed.

The hottest command, ``POST /streams``, needs two facts besides its body: the caller's account exists,
and the channel is theirs. Both live in the command side's own tables (``credentials``,
``channel_claims``: written by the API, not read models), and both are facts a row keeps for life: an
account's id, a claim's id and owner are never updated (a role is, and is never cached here). A row
is only deleted by the compensation of a command whose event nothing recorded.

Still, a cached fact must never outlive its row, whichever process changes it: every update or delete
of those tables notifies (``producers/migrations/0002_change_notices.sql``, ``pg_notify`` at commit),
and :meth:`FactCache.listen` forgets the row named in each notice. The cache answers only while its
listening connection is up and ``LISTEN`` is in force: it starts empty and unused, is cleared and
left unused whenever that connection fails, and is cleared again once it listens anew. A read that
raced a notice is not kept (:attr:`FactCache.generation`). Each fact also expires after
``ttl_s``, a bound for a notice lost without its connection failing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import psycopg

log = logging.getLogger(__name__)

NOTICE_CHANNEL = "esports_command_side"
RECONNECT_S = (0.1, 0.5, 1.0, 2.0, 5.0)


class FactCache:
    """Facts by ``(table, key)`` of one command schema, each until its row changes or ``ttl_s`` ends."""

    def __init__(self, schema: str, *, ttl_s: float = 60.0, max_entries: int = 65536) -> None:
        self._schema = schema
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._facts: dict[tuple[str, str], tuple[Any, float]] = {}
        self.listening = False  # only while notices are sure to arrive does the cache answer
        self.generation = 0  # moved by every forgetting: a read begun before one is not kept

    def get(self, table: str, key: str) -> Any | None:
        """The fact kept for the row, or None (unknown, expired, or the cache is not listening)."""
        entry = self._facts.get((table, key))
        if entry is None or not self.listening:
            return None
        if entry[1] < time.monotonic():
            del self._facts[table, key]
            return None
        return entry[0]

    def put(self, table: str, key: str, fact: Any, generation: int) -> None:
        """Keep ``fact``, read after :attr:`generation` was ``generation``, unless a notice came since."""
        if not self.listening or generation != self.generation:
            return
        if len(self._facts) >= self._max_entries:
            self._facts.clear()
        self._facts[table, key] = (fact, time.monotonic() + self._ttl_s)

    def forget(self, table: str, key: str | None = None) -> None:
        """Forget one row's fact (a change this process made or was told of), or a whole table's."""
        self.generation += 1
        if key is None:
            for kept in [k for k in self._facts if k[0] == table]:
                del self._facts[kept]
        else:
            self._facts.pop((table, key), None)

    def forget_all(self) -> None:
        self.generation += 1
        self._facts.clear()

    def on_notice(self, payload: str) -> None:
        """A change notice: ``"<schema> <table> <key>"`` (no key: the table was truncated)."""
        schema, _, rest = payload.partition(" ")
        if schema != self._schema:
            return
        table, _, key = rest.partition(" ")
        self.forget(table, key or None)

    async def listen(self, dsn: str) -> None:
        """Follow the change notices until cancelled, reconnecting (the cache unused meanwhile)."""
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {NOTICE_CHANNEL}")
                    self.forget_all()  # whatever changed while nobody listened
                    self.listening = True
                    failures = 0
                    async for notice in conn.notifies():
                        self.on_notice(notice.payload)
            except Exception as e:  # whatever broke the connection, the cache stays off until it is back
                log.warning("command-side change notices interrupted, cache off until back: %s", e)
            finally:
                self.listening = False
                self.forget_all()
            await asyncio.sleep(RECONNECT_S[min(failures, len(RECONNECT_S) - 1)])
            failures += 1
