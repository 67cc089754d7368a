"""Fixtures of the tool library's tests: a temporary SEA_HOME for each test."""

from __future__ import annotations

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
