"""Notifications: who is told what and when (``notifier``, pure) and the agent with its audience reader."""
