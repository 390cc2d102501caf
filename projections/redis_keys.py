"""Every Redis read-model key, spelled once: what the projectors write, ``esports rebuild`` swaps and
the API reads.

A key is ``<prefix>{<read model>}<name>``, e.g. ``{redis.live}stream:s-1``:

- ``<prefix>``: the namespace, "" in production; tests and benches take one each, and ``esports
  rebuild`` builds its shadow under ``rebuild:<prefix>``. It stays a plain string prefix, so a
  namespace (or a shadow) is found with ``MATCH <prefix>*``.
- ``{<read model>}``: a Redis Cluster hash tag, the projector's name. A cluster hashes only what is
  between the first ``{`` and the next ``}``, so every key of one read model, its offsets hash and
  its rebuild shadow are in one hash slot. The writes need exactly that: a projector's batch is one
  WATCH + MULTI/EXEC over its offsets and every key it changes (``live:streams`` together with the
  stream hashes, chat windows of several streams), and the swap is one script renaming shadow keys
  over live ones; neither may cross slots. A tag per stream could not hold a batch, which carries
  many streams with one set of offsets. Different read models hash to different slots, so they
  spread over the nodes. A standalone Redis ignores the braces: the layout is the same on both.
- ``<name>``: the key inside the read model (``stream:<stream_id>``, ``chat:recent:<stream_id>``...).

A layout object lists its keys for ``esports rebuild``: every public string attribute is a key and
every one-argument method a family of keys (``keys.stream("*")``); :meth:`ReadModelKeys.patterns`.
"""

from __future__ import annotations

import inspect
import re
from typing import ClassVar

__all__ = [
    "ChatKeys",
    "IngestHealthKeys",
    "LiveKeys",
    "MatchViewerKeys",
    "ReadModelKeys",
    "checked_prefix",
    "glob_escape",
    "hash_tag",
]

_ANY = "\x00any\x00"  # stands for a key family's variable part while deriving its pattern


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis MATCH pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def checked_prefix(prefix: str) -> str:
    """``prefix`` if it can be a key prefix; ``ValueError`` if a brace in it would become the hash tag."""
    if "{" in prefix or "}" in prefix:
        raise ValueError(f"Redis key prefix {prefix!r}: a brace would change the keys' hash slot")
    return prefix


def hash_tag(read_model: str) -> str:
    """The hash tag of a read model's keys (what a cluster hashes to place them)."""
    return f"{{{read_model}}}"


class ReadModelKeys:
    """The key layout of one read model under one prefix (see the module docstring)."""

    read_model: ClassVar[str]
    _NOT_KEYS: ClassVar[frozenset[str]] = frozenset({"prefix", "read_model", "patterns"})

    def __init__(self, prefix: str = "") -> None:
        self.prefix = checked_prefix(prefix)
        self.offsets = self._key(f"offsets:{self.read_model}")

    def _key(self, name: str) -> str:
        return f"{self.prefix}{hash_tag(self.read_model)}{name}"

    def patterns(self) -> list[str]:
        """The MATCH patterns of every key of this layout (its prefix included)."""
        found = set()
        for name in dir(self):
            if name.startswith("_") or name in self._NOT_KEYS:
                continue
            value = getattr(self, name)
            if isinstance(value, str):
                found.add(glob_escape(value))
            elif callable(value) and len(inspect.signature(value).parameters) == 1:
                found.add(glob_escape(value(_ANY)).replace(_ANY, "*"))
        return sorted(found)


class LiveKeys(ReadModelKeys):
    """``redis.live``: the live listing (sorted set) and a hash per stream; the API reads both."""

    read_model = "redis.live"

    def __init__(self, prefix: str = "") -> None:
        super().__init__(prefix)
        self.live = self._key("live:streams")

    def stream(self, stream_id: str) -> str:
        return self._key(f"stream:{stream_id}")


class ChatKeys(ReadModelKeys):
    """``redis.chat``: each stream's recent visible chat and the window it is computed from."""

    read_model = "redis.chat"

    def recent(self, stream_id: str) -> str:
        return self._key(f"chat:recent:{stream_id}")

    def window(self, stream_id: str) -> str:
        return self._key(f"chat:window:{stream_id}")


class MatchViewerKeys(ReadModelKeys):
    """``redis.match_viewers``: each match's audience hash (the API's match objects read it)."""

    read_model = "redis.match_viewers"

    def match(self, match_id: str) -> str:
        return self._key(f"match:{match_id}:viewers")


class IngestHealthKeys(ReadModelKeys):
    """``redis.ingest``: each stream's latest ingest health report (the API's dashboard reads it)."""

    read_model = "redis.ingest"

    def stream(self, stream_id: str) -> str:
        return self._key(f"ingest:{stream_id}")
