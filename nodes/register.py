"""register: the tool into the library, which runs its tests in the sandbox itself and stores that report with
the provenance. Idempotent: the library keys versions by content hash, so a replayed or resumed run registers
nothing twice. The state's `verify_report` is never trusted: a forked or edited state whose code does not pass
its tests ends the run honestly, with nothing registered."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from graph.context import Context
from graph.progress import emit
from graph.resources import get_library
from graph.state import State
from nodes.common import context_of, request_text, tool_record


def register(state: State, runtime: Runtime[Context], config: RunnableConfig) -> dict[str, Any]:
    """Register the tool; the state's `tool` becomes the registered version, or the run ends with the reason."""
    from tools_library import DuplicateToolError, InvalidToolError, NotVerifiedError
    from tools_library.models import Provenance, ToolDraft

    context = context_of(runtime)
    spec, code, tests = state["spec"], state["code"], state["tests"]
    # Notes on how the tool was made; the verdict, totals and tests come from the library's own sandbox run.
    notes = {
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
        verification=notes,
        provenance=Provenance(
            request=request_text(state),
            model_id=context.model or "",
            source="synthesized",
            thread_id=(config.get("configurable") or {}).get("thread_id"),
        ),
    )
    emit("progress", message=f"Registering {draft.name}: the library runs its tests in the sandbox")
    try:
        manifest = get_library().register(draft)
    except DuplicateToolError as exc:
        # The library already holds a verified tool doing the same thing: use it rather than a twin.
        emit("progress", message=f"Not registered: {exc} Using {exc.existing.name} instead.")
        update: dict[str, Any] = {"tool": tool_record(exc.existing, source="library")}
        proposed = state.get("proposed_arguments") or {}
        if proposed.get("tool") == draft.name:  # the twin takes the same arguments (execute checks its schema)
            update["proposed_arguments"] = {**proposed, "tool": exc.existing.name}
        return update
    except (NotVerifiedError, InvalidToolError) as exc:
        emit("progress", message=f"Not registered: {exc}")
        return {"outcome": "gave_up", "failure": _refusal(draft.name, exc)}
    emit("progress", message=f"Registered {manifest.name} v{manifest.version} in the library")
    return {"tool": tool_record(manifest, source="synthesized")}


def _refusal(name: str, exc: Exception) -> str:
    """One sentence saying that nothing was registered, and why."""
    report = getattr(exc, "report", None) or {}
    if report.get("verdict"):
        detail = " ".join(str(report.get("message") or report["verdict"]).split()).rstrip(".")
        return (
            f"Nothing was registered: the library ran the tests of {name} against its code in the sandbox and "
            f"they did not pass ({report['verdict']}: {detail})."
        )
    return f"Nothing was registered: {' '.join(str(exc).split())}"
