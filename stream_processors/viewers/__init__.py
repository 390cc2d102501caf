"""Viewer presence: concurrent counts per stream (``counts``, ``counts_agent``), the audience of a match
(``match_audience``, ``match_audience_agent``) and the presence store both agents share (``store``)."""
