"""Polls: each stream's board of polls and votes, folded and settled purely (``board``), and the agent."""
