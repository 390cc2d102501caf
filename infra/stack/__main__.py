"""`python -m infra.stack up|down|status|jars` (the same as `esports infra ...`)."""

import sys

from infra.stack import main

sys.exit(main(prog="python -m infra.stack"))
