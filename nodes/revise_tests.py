"""revise_tests: the only way tests change after the red phase. The model must argue from the spec; the
revision and its argument are appended to the audit list, and the revised tests go through the red phase."""

from __future__ import annotations

import difflib
import hashlib
from typing import Any

from langgraph.runtime import Runtime

from graph import prompts
from graph.context import Context
from graph.progress import emit
from graph.schemas import TestRevision
from graph.state import State
from graph.static_checks import check_test_code, test_function_names
from graph.structured import call_structured
from nodes.common import allowed_modules, context_of, failures_text, model_of, request_text


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def revise_tests(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Record an argued revision of the tests and hand the new tests to the red phase."""
    context = context_of(runtime)
    spec = state["spec"]
    old_tests = state["tests"]
    objection = state.get("test_objection") or {}
    allowed = allowed_modules()
    old_names = set(test_function_names(old_tests))

    def check(revision: TestRevision) -> list[str]:
        problems = check_test_code(revision.tests, spec["name"], allowed)
        if len(revision.argument.strip()) < 20:
            problems.append("The argument must explain, from the spec, why the tests are wrong.")
        if not revision.changed_tests:
            problems.append("Name the tests you changed in changed_tests.")
        unknown = sorted(set(revision.changed_tests) - old_names)
        if unknown:
            problems.append(f"changed_tests names tests that don't exist: {', '.join(unknown)}.")
        if revision.tests.strip() == old_tests.strip():
            problems.append("The revised tests are identical to the current ones.")
        return problems

    emit("progress", message=f"Revising tests (recorded): objection to {objection.get('test_name')}")
    revision, usage = call_structured(
        model_of(context),
        TestRevision,
        prompts.revise_tests(
            request_text(state), spec, old_tests, failures_text(state.get("verify_report") or {}), objection
        ),
        usage=state.get("usage"),
        retries=context.structured_output_retries,
        check=check,
    )
    audit = list(state.get("test_revisions") or [])
    audit.append(
        {
            "revision": len(audit) + 1,
            "after_repair": state.get("repairs") or 0,
            "objection": objection,
            "argument": revision.argument,
            "changed_tests": revision.changed_tests,
            "old_tests_sha256": _sha(old_tests),
            "new_tests_sha256": _sha(revision.tests),
            "diff": "".join(
                difflib.unified_diff(
                    old_tests.splitlines(keepends=True),
                    revision.tests.splitlines(keepends=True),
                    "test_tool.py (before)",
                    "test_tool.py (revised)",
                )
            ),
        }
    )
    emit("code", kind="tests", text=revision.tests)
    return {"tests": revision.tests, "test_revisions": audit, "test_objection": None, "usage": usage}
