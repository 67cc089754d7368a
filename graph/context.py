"""Run-static settings passed as `context=Context(...)` and read in nodes through `Runtime[Context]`.

Precedence for every field: an explicit value, then the SEA_* environment variable, then the default in
`sea.settings.Settings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from sea.settings import get_settings


def _setting(name: str) -> Any:
    return field(default_factory=lambda: getattr(get_settings(), name))


@dataclass
class Context:
    """What a run may tune: the model, the synthesis bounds and retrieval depth."""

    model: str | None = _setting("model")
    model_base_url: str | None = _setting("model_base_url")
    model_temperature: float = _setting("model_temperature")
    max_repairs: int = _setting("max_repairs")
    max_test_revisions: int = _setting("max_test_revisions")
    max_test_rewrites: int = _setting("max_test_rewrites")
    max_clarifications: int = _setting("max_clarifications")
    retrieve_k: int = _setting("retrieve_k")
    structured_output_retries: int = _setting("structured_output_retries")


def resolve_context(context: Context | dict[str, Any] | None) -> Context:
    """The run's Context: as given, built from a dict (Studio, the SDK), or the defaults when absent."""
    if isinstance(context, Context):
        return context
    if isinstance(context, dict):
        known = {f.name for f in fields(Context)}
        return Context(**{k: v for k, v in context.items() if k in known and v is not None})
    return Context()
