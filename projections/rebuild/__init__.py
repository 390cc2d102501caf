"""``esports rebuild``: rebuild read models from the topics beside the live ones, then swap them in.

- ``command``: the rebuild itself (shadow, catch-up, swaps) and the command's ``run``
- ``options``: the command's options
- ``catch_up``: shadow stores brought to target positions, each writing its own batches
- ``reader``: the projectors' topics read once between two positions, decoded once, shared out
- ``worker``: a share of the catch-up in a forked second process
- ``swap``: the atomic PostgreSQL and Redis swaps
- ``progress``: the progress line on stderr

Importing this package imports nothing heavy: the CLI builds every parser at start (from
``options``) and imports ``command`` only when the command runs.
"""
