"""The command side: the FastAPI app turning REST calls into events (lands with the API issue)."""
