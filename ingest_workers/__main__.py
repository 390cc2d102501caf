"""`python -m ingest_workers` runs an ingest node (as `esports ingest` does)."""

import sys

from infra.settings import Settings
from ingest_workers.node import run

sys.exit(run(Settings()))
