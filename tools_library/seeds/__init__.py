"""Starter tools: each folder holds `tool.py`, `test_tool.py` and `meta.json` (name, signature, description,
parameters and returns JSON schema). `ToolLibrary.seed()` verifies each in the sandbox before registering it."""

from __future__ import annotations

import json
from pathlib import Path

from tools_library.models import Provenance, ToolDraft

SEEDS_DIR = Path(__file__).parent


def seed_drafts() -> list[ToolDraft]:
    """The starter tools as unverified drafts, sorted by name."""
    drafts = []
    for folder in sorted(p for p in SEEDS_DIR.iterdir() if (p / "meta.json").is_file()):
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        drafts.append(
            ToolDraft(
                **meta,
                code=(folder / "tool.py").read_text(encoding="utf-8"),
                tests=(folder / "test_tool.py").read_text(encoding="utf-8"),
                provenance=Provenance(request=f"Starter tool {meta['name']}.", source="seed"),
            )
        )
    return drafts
