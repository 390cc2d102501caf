"""The node's counters and their Prometheus text exposition (written by hand: a few lines of format)."""

from __future__ import annotations

from dataclasses import dataclass, fields

_HELP = {
    "connections": ("gauge", "Open websocket connections."),
    "connections_total": ("counter", "Websocket connections accepted since start."),
    "subscriptions": ("gauge", "Stream subscriptions held by open connections."),
    "deliveries": ("counter", "Messages written to subscribers (one per subscriber per message)."),
    "drops": ("counter", "Connections dropped as slow consumers (close 1013)."),
    "consumed": ("counter", "Events read from Kafka by the node's reader."),
    "published": ("counter", "Events published to Kafka (chat, moderation, votes), heartbeats one per beat."),
    "client_errors": ("counter", "Client frames answered with an error."),
    "rate_limited": ("counter", "Client frames refused by the per-connection rate limit."),
    "refused_handshakes": ("counter", "Handshakes refused (origin, token, per-IP cap, draining)."),
    "reloads": ("counter", "Resumes the history window no longer covered (notice reload)."),
    "paused": ("gauge", "1 while sending is paused (Kafka unreachable: writes refused), else 0."),
    "pauses": ("counter", "Times sending was paused since start."),
}


@dataclass(slots=True)
class Metrics:
    """Plain counters, bumped inline on the event loop (one thread: no locks)."""

    connections: int = 0
    connections_total: int = 0
    subscriptions: int = 0
    deliveries: int = 0
    drops: int = 0
    consumed: int = 0
    published: int = 0
    client_errors: int = 0
    rate_limited: int = 0
    refused_handshakes: int = 0
    reloads: int = 0
    paused: int = 0
    pauses: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def prometheus(self, node_id: str) -> str:
        """The text exposition format (version 0.0.4), every metric labelled with the node."""
        label = node_id.replace("\\", "\\\\").replace('"', '\\"')
        lines = []
        for name, value in self.as_dict().items():
            kind, help_text = _HELP[name]
            metric = f"esports_edge_{name}"
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}"]
            lines.append(f'{metric}{{node="{label}"}} {value}')
        return "\n".join(lines) + "\n"
