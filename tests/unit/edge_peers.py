"""A subscriber double for the edge's fan-out: keeps the websocket frames written to it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Peer:
    """A subscriber with room for every frame; ``messages`` decodes the text frames it got."""

    user_id: str | None = None
    frames: list[bytes] = field(default_factory=list)

    @property
    def ws(self) -> Any:
        raise NotImplementedError

    def fits(self) -> bool:
        return True

    def write_frame(self, frame: bytes) -> None:
        self.frames.append(frame)

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(f[4:] if f[1] == 126 else f[2:]) for f in self.frames]
