"""Chat moderation: the pure rules and decisions (``decisions``, ``chat_rules``, ``actions``,
``commands``, ``messages``, ``rules``, ``state``), the roster of roles and follows (``roster``), and the
agent (``agent``)."""
