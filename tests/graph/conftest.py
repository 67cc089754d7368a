"""Fixtures for the graph tests: a seeded library in a temporary SEA_HOME, scripted models, a run helper.

The library, the embeddings and the Docker sandbox are real; only the chat model is scripted.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from graph import resources
from graph.scripted import ScriptedChatModel, register_scripted, unregister_scripted
from sea.settings import get_settings

MakeScript = Callable[..., tuple[ScriptedChatModel, str]]


def _point_at(home: Path) -> dict[str, str | None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("SEA_")}
    for key in saved:
        if key not in ("SEA_SANDBOX_IMAGE", "SEA_TEST_POSTGRES_URI"):
            os.environ.pop(key)
    os.environ["SEA_HOME"] = str(home)
    get_settings.cache_clear()
    resources.reset()
    return saved  # type: ignore[return-value]


def _restore(saved: dict[str, str | None]) -> None:
    resources.reset()
    for key in [k for k in os.environ if k.startswith("SEA_")]:
        os.environ.pop(key)
    os.environ.update({k: v for k, v in saved.items() if v is not None})
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def seeded_home_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose library holds the verified starter tools (seeded once per session)."""
    home = tmp_path_factory.mktemp("sea-seeded")
    saved = _point_at(home)
    try:
        library = resources.get_library()
        if "calculate_percentage" not in {tool.name for tool in library.list_tools()}:
            # A busy machine can time a seed's sandbox run out; seeding again only installs what's missing.
            report = library.seed()
            refused = [f"{r.name}: {r.reason}" for r in report.results if r.outcome == "refused"]
            assert not refused, f"seeding failed: {refused}"
    finally:
        _restore(saved)
    return home


@pytest.fixture
def sea_home(tmp_path: Path, seeded_home_template: Path) -> Iterator[Path]:
    """A fresh copy of the seeded data directory as SEA_HOME, with no other SEA_* setting from outside."""
    home = tmp_path / "sea-home"
    shutil.copytree(seeded_home_template, home)
    saved = _point_at(home)
    try:
        yield home
    finally:
        _restore(saved)


@pytest.fixture
def script() -> Iterator[MakeScript]:
    """`script(responses=[...])` or `script(TurnDecision=[...], text=[...])`: a registered scripted model and its id."""
    names: list[str] = []

    def make(responses: list[Any] | None = None, **by_kind: list[Any]) -> tuple[ScriptedChatModel, str]:
        model = ScriptedChatModel(responses=list(responses or []), by_kind=by_kind)
        name = f"test-{uuid.uuid4().hex[:10]}"
        names.append(name)
        return model, register_scripted(name, model)

    yield make
    for name in names:
        unregister_scripted(name)
