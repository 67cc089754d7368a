"""`python -m tools_library ...`: see tools_library/cli.py."""

import sys

from tools_library.cli import main

sys.exit(main())
