"""What the attack suite tried and what came back, summed over its modules (printed at the end)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class Tally:
    """Requests tried, 5xx seen, refusals as expected, payloads rendered and script executions."""

    requests: int = 0
    server_errors: int = 0
    refusals: int = 0
    rendered: int = 0
    executions: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    def saw(self, response: httpx.Response, *, refused: bool = False) -> httpx.Response:
        """Count one response (``refused``: the expected refusal of an attack)."""
        self.requests += 1
        self.statuses[response.status_code] += 1
        self.server_errors += response.status_code >= 500
        self.refusals += refused
        return response

    def tried(self, *, refused: bool) -> None:
        """Count one attempt that is not an HTTP exchange (a pull URL checked before FFmpeg)."""
        self.requests += 1
        self.refusals += refused

    def to_json(self) -> dict[str, object]:
        """The figures as plain data (a pytest-xdist worker hands them to the controller)."""
        return {
            "requests": self.requests,
            "server_errors": self.server_errors,
            "refusals": self.refusals,
            "rendered": self.rendered,
            "executions": self.executions,
            "statuses": {str(code): n for code, n in self.statuses.items()},
        }

    def add(self, data: dict[str, object]) -> None:
        """Add another process's figures (:meth:`to_json`) to these."""
        for name in ("requests", "server_errors", "refusals", "rendered", "executions"):
            value = data.get(name, 0)
            assert isinstance(value, int)
            setattr(self, name, getattr(self, name) + value)
        statuses = data.get("statuses", {})
        assert isinstance(statuses, dict)
        self.statuses.update({int(code): int(n) for code, n in statuses.items()})

    def summary(self) -> str:
        return (
            f"requests tried {self.requests}, refusals as expected {self.refusals}, "
            f"5xx {self.server_errors}, payloads rendered {self.rendered}, "
            f"script executions {self.executions}"
        )


TALLY = Tally()
