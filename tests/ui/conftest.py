"""Fixtures for the UI tests: a seeded library in a temporary SEA_HOME, the real sandbox, the scripted demo.

The library, the embeddings, the checkpointer and the Docker sandbox are real; only the chat model is the
scripted demo, selected explicitly with SEA_MODEL=scripted:demo (or left unset to test the no-model page).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from graph import resources
from tests.ui.ui_helpers import point_at, restore


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose library holds the verified starter tools (seeded once per session)."""
    home = tmp_path_factory.mktemp("sea-ui-seeded")
    saved = point_at(home)
    try:
        library = resources.get_library()
        if "calculate_percentage" not in {tool.name for tool in library.list_tools()}:
            report = library.seed()  # a busy machine can time one seed run out; a second pass adds what's missing
            refused = [f"{r.name}: {r.reason}" for r in report.results if r.outcome == "refused"]
            assert not refused, f"seeding failed: {refused}"
    finally:
        restore(saved)
    return home


def _copy_home(tmp_path: Path, seeded_home: Path) -> Path:
    home = tmp_path / "sea-home"
    shutil.copytree(seeded_home, home)
    return home


@pytest.fixture
def demo_home(tmp_path: Path, seeded_home: Path) -> Iterator[Path]:
    """A fresh copy of the seeded data directory, with SEA_MODEL=scripted:demo chosen explicitly."""
    saved = point_at(_copy_home(tmp_path, seeded_home), SEA_MODEL="scripted:demo")
    try:
        yield Path(os.environ["SEA_HOME"])
    finally:
        restore(saved)


@pytest.fixture
def unconfigured_home(tmp_path: Path, seeded_home: Path) -> Iterator[Path]:
    """A fresh copy of the seeded data directory with no model configured at all."""
    saved = point_at(_copy_home(tmp_path, seeded_home))
    try:
        yield Path(os.environ["SEA_HOME"])
    finally:
        restore(saved)
