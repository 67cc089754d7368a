"""Helpers the nodes share: the run's context and model, the sandbox's allow-list, report summaries."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.runtime import Runtime

from graph.context import Context, resolve_context
from graph.models import get_chat_model
from graph.progress import emit
from graph.resources import get_library


def context_of(runtime: Runtime[Context] | None) -> Context:
    """The run's Context (defaults from settings when the caller passed none)."""
    return resolve_context(runtime.context if runtime is not None else None)


def model_of(context: Context) -> BaseChatModel:
    """The run's chat model; raises ModelNotConfiguredError with instructions when there is none."""
    return get_chat_model(context.model, base_url=context.model_base_url, temperature=context.model_temperature)


def request_text(state: Any) -> str:
    """What the turn's nodes work on: the user's request with this turn's clarifications (questions asked and
    the user's answers) below it; during a chain, the current step, the earlier steps' results and the request."""
    request = str(state.get("request") or "")
    asked = state.get("clarifications") or []
    if asked:
        lines = "\n".join(f"- Asked: {c['question']} Answered: {c['answer']}" for c in asked)
        request = f"{request}\n\nClarifications (the user's own answers):\n{lines}"
    chain = state.get("chain") or {}
    steps, done = list(chain.get("steps") or []), list(chain.get("results") or [])
    if not steps or len(done) >= len(steps):
        return request
    text = steps[len(done)]
    if done:
        text += "\n\nResults of the earlier steps (use them exactly as they are):\n" + "\n".join(
            f"- step {r['step']} ({r['request']}): {json.dumps(r['result'])}" for r in done
        )
    return f"{text}\n\nThis is step {len(done) + 1} of {len(steps)} of the user's request: {request}"


def search_library(request: str, k: int) -> dict[str, Any]:
    """The top-k candidate tools for a request and the library's own reuse signal, as state values."""
    library = get_library()
    hits = library.search(request, k=k)
    signal = library.reuse_decision(hits)
    emit(
        "progress",
        message=f"Found {len(hits)} candidate tool(s)"
        + (f", best {hits[0].name} ({hits[0].score:.2f})" if hits else "")
        + f"; {signal.reason}",
    )
    return {
        "candidates": [hit.model_dump(mode="json") for hit in hits],
        "library_signal": signal.model_dump(mode="json"),
    }


def tool_record(manifest: Any, source: str) -> dict[str, Any]:
    """The state's view of a tool version: what execute and respond need."""
    return {
        "name": manifest.name,
        "version": manifest.version,
        "signature": manifest.signature,
        "description": manifest.description,
        "parameters_schema": manifest.parameters_schema,
        "source": source,
    }


def sandbox_description() -> str:
    """What the sandbox offers tool code, for the prompts."""
    from sandbox.image_manifest import describe_for_prompt

    return describe_for_prompt()


def allowed_modules() -> frozenset[str]:
    """Modules tool code may import."""
    from sandbox.image_manifest import allowed_modules as allowed

    return allowed()


def summarize_report(report: Any) -> dict[str, Any]:
    """A sandbox TestReport as a plain dict for the state (output streams trimmed)."""
    data = report.model_dump(mode="json")
    data["stdout"] = data.get("stdout", "")[-2000:]
    data["stderr"] = data.get("stderr", "")[-2000:]
    return data


def failures_text(report: dict[str, Any], limit: int = 12) -> str:
    """The per-test failures of a report (or its static-check problems) as lines for a prompt or a user."""
    if report.get("problems"):
        return "\n".join(f"- {p}" for p in report["problems"])
    lines = [
        f"- {t['name']}: {t['outcome']}: {t.get('message', '')[:600]}"
        for t in report.get("tests", [])
        if t.get("outcome") in ("failed", "error")
    ][:limit]
    missing = sorted(
        set(report.get("expected_tests", [])) - {t["name"].split("::")[-1] for t in report.get("tests", [])}
    )
    if missing:
        lines.append(f"- not collected or not reported: {', '.join(missing)}")
    if not lines:
        lines.append(f"- {report.get('verdict', 'error')}: {report.get('message', '')}")
    return "\n".join(lines)
