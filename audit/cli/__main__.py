"""`python -m audit.cli`: the same entry point as the `fluoro-audit` script."""

import sys

from audit.cli import main

sys.exit(main())
