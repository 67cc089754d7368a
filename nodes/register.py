"""register: the verified tool into the library, with its verification report and provenance. Idempotent: the
library keys versions by content hash, so a replayed or resumed run registers nothing twice."""

from __future__ import annotations

import hashlib
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from graph.context import Context
from graph.progress import emit
from graph.resources import get_library, get_sandbox_client
from graph.state import State
from nodes.common import context_of
from nodes.decide import tool_record


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def register(state: State, runtime: Runtime[Context], config: RunnableConfig) -> dict[str, Any]:
    """Register the verified tool; the state's `tool` becomes the registered version."""
    from tools_library.models import Provenance, ToolDraft

    context = context_of(runtime)
    spec, code, tests = state["spec"], state["code"], state["tests"]
    report = dict(state.get("verify_report") or {})
    image_id = report.get("image_id") or get_sandbox_client().image_id()
    verification = {
        **report,
        "red_phase": {k: v for k, v in (state.get("red_report") or {}).items() if k in ("verdict", "reasons")},
        "repairs": state.get("repairs") or 0,
        "test_revisions": state.get("test_revisions") or [],
    }
    draft = ToolDraft(
        name=spec["name"],
        signature=spec["signature"],
        description=spec["description"],
        parameters_schema=spec["parameters_schema"],
        returns_schema=spec["returns_schema"],
        code=code,
        tests=tests,
        verification=verification,
        provenance=Provenance(
            request=state["request"],
            model_id=context.model or "",
            code_sha256=_sha(code),
            tests_sha256=_sha(tests),
            sandbox_image_id=image_id,
            source="synthesized",
            thread_id=(config.get("configurable") or {}).get("thread_id"),
        ),
    )
    from tools_library import DuplicateToolError

    try:
        manifest = get_library().register(draft)
    except DuplicateToolError as exc:
        # The library already holds a verified tool doing the same thing: use it rather than a twin.
        emit("progress", message=f"Not registered: {exc} Using {exc.existing.name} instead.")
        return {"tool": tool_record(exc.existing, source="library")}
    emit("progress", message=f"Registered {manifest.name} v{manifest.version} in the library")
    return {"tool": tool_record(manifest, source="synthesized")}
