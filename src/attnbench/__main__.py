"""``python -m attnbench``: the command line (see :mod:`attnbench.cli`)."""

import sys

from .cli import main

sys.exit(main())
