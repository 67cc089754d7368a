"""Helpers shared by the UI tests: where the app is, and pointing SEA_HOME at a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

from graph import resources
from sea.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "ui" / "app.py"
KEEP = ("SEA_SANDBOX_IMAGE", "SEA_TEST_POSTGRES_URI")


def point_at(home: Path, **env: str) -> dict[str, str]:
    """Make `home` the data directory with only `env` as further SEA_* settings; returns what to restore."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("SEA_")}
    for key in saved:
        if key not in KEEP:
            os.environ.pop(key)
    os.environ["SEA_HOME"] = str(home)
    os.environ.update(env)
    get_settings.cache_clear()
    resources.reset()
    return saved


def restore(saved: dict[str, str]) -> None:
    """Undo `point_at`."""
    resources.reset()
    for key in [k for k in os.environ if k.startswith("SEA_")]:
        os.environ.pop(key)
    os.environ.update(saved)
    get_settings.cache_clear()
