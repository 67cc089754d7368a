"""Fixtures of the tool library's tests: a temporary SEA_HOME for each test, the real sandbox, seeded homes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sea.settings import Settings, get_settings


@pytest.fixture
def sea_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh, empty SEA_HOME for one test; the project's own .sea is never touched."""
    home = tmp_path / "sea-home"
    monkeypatch.setenv("SEA_HOME", str(home))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def sandbox():
    """The real Docker sandbox (one warm container), shared by the library tests: `register` verifies in it."""
    from sandbox import Sandbox

    sb = Sandbox(Settings(), pool_size=1)
    yield sb
    sb.close()


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory, sandbox) -> Path:
    """A data directory whose library holds the starter tools, verified in the sandbox once per session."""
    from tools_library import ToolLibrary

    home = tmp_path_factory.mktemp("sea-seeded") / "home"
    library = ToolLibrary.open(Settings(home=home), sandbox)
    try:
        refused = [f"{r.name}: {r.reason}" for r in library.seed().results if r.outcome == "refused"]
        assert not refused, f"seeding failed: {refused}"
    finally:
        library.close()
    return home


@pytest.fixture
def seeded_home(sea_home: Settings, seeded_template: Path) -> Settings:
    """SEA_HOME holding a copy of the seeded template (files and index)."""
    shutil.copytree(seeded_template, sea_home.home)
    return sea_home
