"""`python -m core …`: the command line (see core/cli.py)."""

import sys

from core import cli

sys.exit(cli.main())
