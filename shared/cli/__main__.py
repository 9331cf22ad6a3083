"""`python -m shared.cli`: run the command line."""

import sys

from shared.cli.commands import main

sys.exit(main())
