"""Viewer presence: sessions counted per partition of ``viewers.presence`` (``presence``,
``presence_worker``), their partial counts merged per stream (``counts``) and per match
(``match_audience``) by the agents of ``counts_agent`` (``merge``)."""
