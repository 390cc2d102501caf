"""`python -m tests.chaos` (what `make chaos` runs): a long chaos run and its table.

    python -m tests.chaos --minutes 10        # a broker killed every 30 s, a tier process between
    python -m tests.chaos --short             # the variant inside `make test` (about 80 s of load)

Exit code 0 when nothing acknowledged was lost, duplicated or reordered and every tally and read
model equals its recount or replay; 1 otherwise (the table says what); 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from infra.settings import Settings
from tests.chaos.scenario import long_plan, run_all, short_plan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long run (default 10)")
    parser.add_argument("--short", action="store_true", help="one fault of each kind (about 80 s of load)")
    args = parser.parse_args(argv)
    plan = short_plan() if args.short else long_plan(args.minutes)

    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {message}", file=sys.stderr, flush=True)

    report = run_all(Settings(), plan, say=say)
    print(report.table())
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
