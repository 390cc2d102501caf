"""Websocket edge nodes: connections, subscriptions, fan-out, heartbeats, resume."""
