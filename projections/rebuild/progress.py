"""The rebuild's progress on stderr: a redrawn bar on a terminal, plain periodic lines otherwise.

Work is counted in log offsets (the end offsets captured at start minus the shadow's stored
positions), so the total is known before the first event is read and the ETA means something.
"""

from __future__ import annotations

import asyncio
import time
from typing import TextIO

__all__ = ["Progress", "format_duration", "render"]

BAR = 24


def format_duration(seconds: float) -> str:
    """``1:02:03``, ``2:03`` or ``0:07``."""
    whole = max(0, int(seconds + 0.5))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def render(phase: str, done: int, total: int, elapsed_s: float, *, bar: bool) -> str:
    """One progress line (pure): share, counts, events/s since start and the ETA at that rate."""
    done = min(done, total)
    share = done / total if total else 1.0
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    eta = format_duration((total - done) / rate) if rate > 0 else "?"
    if done >= total:
        eta = "0:00"
    graphic = ""
    if bar:
        filled = int(share * BAR)
        graphic = "[" + "#" * filled + "." * (BAR - filled) + "] "
    return (
        f"rebuild {phase}: {graphic}{share:4.0%} {done:,}/{total:,} events  {rate:,.0f} events/s  ETA {eta}"
    )


class Progress:
    """Counts applied events and shows them on ``stream`` until closed.

    On a terminal the line is redrawn every ``tty_interval_s``; otherwise one line is printed every
    ``plain_interval_s`` (log files and CI stay readable). ``quiet`` shows nothing.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        quiet: bool = False,
        tty_interval_s: float = 0.2,
        plain_interval_s: float = 5.0,
    ) -> None:
        self._stream = stream
        self._quiet = quiet
        self._tty = stream.isatty()
        self._interval_s = tty_interval_s if self._tty else plain_interval_s
        self.phase = "catching up"
        self.total = 0
        self.done = 0
        self._started = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self, total: int) -> None:
        self.total, self.done, self._started = total, 0, time.monotonic()
        if not self._quiet and self._task is None:
            if not self._tty:
                self._write(final=False)  # the total, in the log, before the first interval
            self._task = asyncio.create_task(self._show(), name="rebuild progress")

    def advance(self, events: int) -> None:
        self.done += events

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    def line(self) -> str:
        return render(self.phase, self.done, self.total, self.elapsed_s, bar=self._tty)

    def note(self, message: str) -> None:
        """A line of its own (not overwritten by the bar)."""
        if not self._quiet:
            self._stream.write(("\r\x1b[K" if self._tty else "") + f"rebuild: {message}\n")
            self._stream.flush()

    async def close(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
        self._write(final=True)

    async def _show(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            self._write(final=False)

    def _write(self, *, final: bool) -> None:
        if self._tty:
            self._stream.write("\r\x1b[K" + self.line() + ("\n" if final else ""))
        else:
            self._stream.write(self.line() + "\n")
        self._stream.flush()
