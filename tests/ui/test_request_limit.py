"""The app's chat input refuses a request over SEA_MAX_REQUEST_CHARS with one sentence, and runs nothing.

Real app (AppTest), real checkpointer, library and sandbox check in a temporary SEA_HOME whose library holds one
tool written through the store (so the app does not seed); the scripted demo model is chosen explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sea.settings import Settings
from tests.ui.ui_helpers import APP, point_at, restore
from tools_library.models import Provenance, ToolDraft
from tools_library.store import ToolStore

LIMIT = 150


@pytest.fixture
def small_limit_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "sea-home"
    ToolStore(Settings(home=home).tools_dir).add_version(
        ToolDraft(
            name="add_numbers", signature="def add_numbers(a: float, b: float) -> float",
            description="Add two numbers.", code="def add_numbers(a: float, b: float) -> float:\n    return a + b\n",
            tests="from tool import add_numbers\n\n\ndef test_adds():\n    assert add_numbers(1, 2) == 3\n",
            verification={"verdict": "passed", "passed": 1}, provenance=Provenance(request="test"),
        )
    )
    saved = point_at(home, SEA_MODEL="scripted:demo", SEA_MAX_REQUEST_CHARS=str(LIMIT))
    try:
        yield home
    finally:
        restore(saved)


def test_a_request_over_the_limit_is_refused_in_one_sentence_and_nothing_runs(small_limit_home: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=120).run(timeout=300)
    assert not at.exception
    assert not at.chat_input[0].max_chars  # Streamlit would cut a longer request silently and run the rest
    at.chat_input[0].set_value("w" * (LIMIT + 1)).run(timeout=300)
    assert not at.exception
    warnings = [str(w.value) for w in at.warning]
    assert (f"The request is {LIMIT + 1:,} characters long, over the limit of {LIMIT:,} (SEA_MAX_REQUEST_CHARS): "
            "shorten it to the task itself.") in warnings, warnings
    assert not at.status  # no node ran
    assert not [m for m in at.chat_message if m.name == "user"]
