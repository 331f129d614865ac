"""`python -m playground ...`: see playground.cli."""

import sys

from .cli import main

sys.exit(main())
