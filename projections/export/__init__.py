"""``esports export``: chosen topics into a Parquet dataset partitioned by topic and date, exactly once.

- ``command``: the command's ``run`` / ``main``, filters resolved against the catalog, schema files
- ``options``: the command's options (importable without pyarrow: the CLI builds every parser at start)
- ``layout``: file names, staging names, where a partition resumes (pure)
- ``filters``: what a filtered one-shot export keeps (pure)
- ``files``: the open file per partition, rolled by records, bytes, age and date
- ``store``: a folder or S3-compatible object storage (pyarrow filesystems); commit = rename / upload
- ``exporter``: the read loop (rounds over the group-less log reader) and the recovery at start

Arrow schemas, decoding and the Parquet writer are ``esports replay``'s (:mod:`projections.replay`).
"""
