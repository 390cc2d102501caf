"""``esports replay``: a topic's decoded events in a time window, exported for analytics.

- ``command``: the export and the command's ``run`` / ``main``
- ``options``: the command's options
- ``window``: the time window (ISO-8601 bounds as record-timestamp milliseconds)
- ``source``: the window's records read from every partition, merged in timestamp order
- ``arrow``, ``writers``: the Arrow schema and the JSON lines, CSV and Parquet writers
- ``decoding``: a topic's newest schemas and one record decoded (shared with ``esports export``)

Importing this package imports nothing heavy (no pyarrow): the CLI builds every parser at start
(from ``options``) and imports ``command`` only when the command runs.
"""
