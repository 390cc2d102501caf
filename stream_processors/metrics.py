"""The processor worker's counters, rendered in Prometheus' text exposition format (for ``/metrics``).

A handful of counters does not need a client library: they live in one object the agents increment
(one event loop, no locks) and the web page renders.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

CONTENT_TYPE = "text/plain; version=0.0.4"  # aiohttp appends the charset itself


class ProcessorMetrics:
    """Counters of one worker process (they restart at zero with it, as Prometheus expects)."""

    def __init__(self) -> None:
        self.events = Counter[str]()  # consumed lifecycle causes, by event type
        self.decisions = Counter[str]()  # published decisions, by kind
        self.dead_letters = Counter[str]()  # undecodable or unprocessable records, by reason
        self.chat_events = Counter[str]()  # consumed moderation causes, by event type
        self.chat_decisions = Counter[str]()  # published moderation decisions, by kind
        self.roster_events = Counter[str]()  # users events folded into the chat roster, by type
        self.heartbeats = 0  # viewer heartbeats folded into presence
        self.viewer_counts = 0  # ViewerCountChanged published
        self.partial_reports = 0  # partial-count reports published by the presence worker
        self.poll_events = Counter[str]()  # consumed poll events, by event type
        self.votes = 0  # votes read by the vote worker
        self.poll_ignored = Counter[str]()  # poll events that changed nothing, by reason
        self.poll_tallies = Counter[str]()  # PollTallyUpdated published, by kind (running, final)
        self.redelivered_decided = Counter[str]()  # redelivered causes found decided on the output, by agent
        self.skipped = Counter[str]()  # records an offset commit moved past unacknowledged, by agent
        self.publish_retries = 0  # failed publish attempts that were retried
        self.publishing_blocked = False  # a publish is being retried right now (health says so)

    def render(self) -> str:
        """All metrics, Prometheus text format."""
        blocks = [
            _counter("esports_lifecycle_events_total", "Lifecycle causes consumed.", "type", self.events),
            _counter("esports_lifecycle_decisions_total", "Decisions published.", "kind", self.decisions),
            _counter("esports_chat_events_total", "Moderation causes consumed.", "type", self.chat_events),
            _counter(
                "esports_chat_decisions_total", "Moderation decisions published.", "kind", self.chat_decisions
            ),
            _counter(
                "esports_chat_roster_events_total", "Users events in the roster.", "type", self.roster_events
            ),
            _counter("esports_viewer_heartbeats_total", "Heartbeats counted.", None, {"": self.heartbeats}),
            _counter(
                "esports_viewer_counts_total", "Viewer counts published.", None, {"": self.viewer_counts}
            ),
            _counter(
                "esports_viewer_partial_reports_total",
                "Partial-count reports published (per presence partition and merge partition).",
                None,
                {"": self.partial_reports},
            ),
            _counter("esports_poll_events_total", "Poll events consumed.", "type", self.poll_events),
            _counter("esports_poll_votes_total", "Votes tallied.", None, {"": self.votes}),
            _counter("esports_poll_ignored_total", "Poll events ignored.", "reason", self.poll_ignored),
            _counter("esports_poll_tallies_total", "Poll tallies published.", "kind", self.poll_tallies),
            _counter(
                "esports_processor_dead_letters_total",
                "Records sent to the DLQ.",
                "reason",
                self.dead_letters,
            ),
            _counter(
                "esports_processor_redelivered_decided_total",
                "Redelivered causes whose decision was already published (not decided again).",
                "agent",
                self.redelivered_decided,
            ),
            _counter(
                "esports_processor_skipped_records_total",
                "Records an offset commit moved past that the agent never acknowledged (lost).",
                "agent",
                self.skipped,
            ),
            _counter(
                "esports_processor_publish_retries_total",
                "Retried publishes.",
                None,
                {"": self.publish_retries},
            ),
        ]
        return "".join(blocks)


def _counter(name: str, help_text: str, label: str | None, values: Counter[str] | dict[str, int]) -> str:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
    lines.extend(_samples(name, label, values.items()))
    return "\n".join(lines) + "\n"


def _samples(name: str, label: str | None, items: Iterable[tuple[str, int]]) -> list[str]:
    if label is None:
        return [f"{name} {value}" for _, value in items]
    return [f'{name}{{{label}="{_escape(key)}"}} {value}' for key, value in sorted(items)]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
