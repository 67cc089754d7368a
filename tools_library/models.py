"""Typed records of the tool library. Knows nothing of LangGraph."""

from __future__ import annotations

import builtins
import keyword
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,63}")  # used with fullmatch: `$` would accept "abc\n"
_RESERVED = frozenset(sys.stdlib_module_names) | frozenset(dir(builtins)) | {"test", "tests", "conftest", "tool"}


class ToolNameError(ValueError):
    """A tool name that is not a safe, plain, lower-case Python identifier."""


def validate_tool_name(name: str) -> str:
    """Return `name` if it is a safe tool name, else raise ToolNameError saying why."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ToolNameError(
            f"Tool name {name!r} is not allowed: use 1-64 lower-case letters, digits and underscores, "
            "starting with a letter."
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ToolNameError(f"Tool name {name!r} is a Python keyword.")
    if name in _RESERVED:
        raise ToolNameError(f"Tool name {name!r} shadows a standard-library module or builtin.")
    return name


def utc_now() -> datetime:
    return datetime.now(UTC)


class Provenance(BaseModel):
    """Where a tool version came from."""

    request: str = Field(description="The user request that led to the tool.")
    model_id: str = Field(default="", description="The chat model that wrote it, provider:model.")
    created_at: datetime = Field(default_factory=utc_now)
    code_sha256: str = ""
    tests_sha256: str = ""
    sandbox_image_id: str = ""
    source: Literal["synthesized", "seed", "import", "benchmark"] = "synthesized"
    thread_id: str | None = None


class UsageStats(BaseModel):
    calls: int = 0
    failures: int = 0
    last_used: datetime | None = None


class ToolDraft(BaseModel):
    """What a caller hands to `register`: everything but the version and library bookkeeping."""

    name: str
    signature: str = Field(description="e.g. def reverse_string(text: str) -> str")
    description: str
    parameters_schema: dict[str, Any] = Field(default_factory=dict, description="JSON schema of the kwargs.")
    returns_schema: dict[str, Any] = Field(default_factory=dict, description="JSON schema of the result.")
    code: str
    tests: str
    verification: dict[str, Any] = Field(
        default_factory=dict, description="The sandbox TestReport (as a dict) that proved the code."
    )
    provenance: Provenance

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return validate_tool_name(value)


class ToolManifest(ToolDraft):
    """One stored version of a tool: its manifest.json."""

    version: int = Field(ge=1)
    status: Literal["active", "retired"] = "active"
    usage: UsageStats = Field(default_factory=UsageStats)
    current: bool = Field(default=True, description="This version is the tool's active (current) version.")

    def card(self) -> str:
        """The text a model or a person sees when choosing a tool: name, signature and description."""
        return f"{self.name}: {self.signature}\n{self.description}"


class SearchHit(BaseModel):
    """One retrieval result. `score` is the fused score the reuse signal is computed from."""

    name: str
    version: int
    signature: str
    description: str
    score: float
    dense_score: float | None = None
    lexical_score: float | None = None
    rank: int = Field(ge=1)


class ReuseDecision(BaseModel):
    """The library's own reuse-or-create signal, computed from scores alone (no model)."""

    choice: str | None = Field(description="The tool to reuse, or None to create one.")
    confidence: float = Field(ge=0.0, le=1.0)
    above_floor: bool = Field(description="False: no candidate is worth showing a model at all.")
    reason: str = ""


def make_stub(function_name: str, signature: str) -> str:
    """tool.py for the red phase: the tool's signature, raising NotImplementedError (tests must fail on it)."""
    return (
        f"{signature}:\n"
        f'    """Red-phase stub: no implementation exists yet."""\n'
        f'    raise NotImplementedError("{function_name} is not implemented yet (red phase)")\n'
    )
