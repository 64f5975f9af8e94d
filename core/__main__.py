"""`python -m core …`: the command line (see core/cli/__init__.py)."""

import sys

from core import cli

sys.exit(cli.main())
