"""``python -m projections [--schema S] [--redis-prefix P]``: the projector service (see ``service``)."""

import sys

from projections.service import main

sys.exit(main())
