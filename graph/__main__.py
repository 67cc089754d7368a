"""`python -m graph`: see graph/cli.py."""

from graph.cli import main

raise SystemExit(main())
