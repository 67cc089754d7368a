"""`streamlit run ui/app.py` (`make app`): the Self-Engineering Agent's chat page. The page lives in ui/page.py."""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts ui/ on sys.path, not the project root that holds the `graph`, `ui` and `sea` packages.
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ui.page import main  # noqa: E402

main()
