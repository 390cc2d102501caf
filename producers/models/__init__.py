"""Request and response bodies of the REST API (separate from the read-model rows they are built from)."""
