"""Static checks of generated code and tests, before anything runs in the sandbox. Pure Python.

These are a fast filter that turns obvious mistakes and attempts to bend the tests into clear feedback for the
model; the sandbox stays the security boundary.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

TEST_EXTRA_MODULES = frozenset({"pytest", "hypothesis", "hypothesis.strategies", "tool"})

# Calls that have no place in a pure tool or its tests.
_FORBIDDEN_CALLS = frozenset(
    {"__import__", "eval", "exec", "compile", "open", "breakpoint", "input", "globals", "locals", "vars",
     "setattr", "delattr", "exit", "quit"}
)  # fmt: skip
_FORBIDDEN_ATTRIBUTES = frozenset(
    {"__subclasses__", "__globals__", "__builtins__", "__code__", "__closure__", "__dict__", "__class__",
     "__bases__", "__mro__", "__getattribute__", "f_globals", "f_locals", "_exit", "exit", "modules"}
)  # fmt: skip
# pytest features that would let a test pass without checking anything, or reach into the runner.
_FORBIDDEN_PYTEST = frozenset(
    {"skip", "skipif", "xfail", "importorskip", "exit", "main", "register_assert_rewrite", "hookimpl",
     "hookspec", "Config", "Session", "Item", "Function", "MonkeyPatch", "StashKey"}
)  # fmt: skip
_FORBIDDEN_FIXTURES = frozenset(
    {"monkeypatch", "mocker", "request", "pytestconfig", "capsys", "capfd", "tmp_path", "tmpdir",
     "tmp_path_factory", "recwarn", "caplog", "testdir", "pytester"}
)  # fmt: skip


def _parse(source: str, label: str) -> tuple[ast.Module | None, list[str]]:
    try:
        return ast.parse(source), []
    except SyntaxError as exc:
        return None, [f"{label} does not parse: {exc.msg} (line {exc.lineno})."]


def imported_modules(tree: ast.AST) -> list[tuple[str, int]]:
    """Every module an import statement names (with `from X import Y` also as X.Y), with its line."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append(("." * node.level + (node.module or ""), node.lineno))
            else:
                found.append((node.module or "", node.lineno))
    return found


def _import_problems(tree: ast.AST, allowed: frozenset[str], label: str) -> list[str]:
    problems = []
    for module, line in imported_modules(tree):
        if module.startswith(".") or module not in allowed:
            problems.append(f"{label}: importing {module!r} (line {line}) is not allowed.")
    return problems


def _call_and_attribute_problems(tree: ast.AST, label: str) -> list[str]:
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FORBIDDEN_CALLS:
            problems.append(f"{label}: calling {node.func.id}() (line {node.lineno}) is not allowed.")
        elif isinstance(node, ast.Attribute) and node.attr in _FORBIDDEN_ATTRIBUTES:
            problems.append(f"{label}: using .{node.attr} (line {node.lineno}) is not allowed.")
    return problems


def _top_level_function(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    return None


def signature_text(func: ast.FunctionDef) -> str:
    """`def name(a: str, b: float) -> str` as written in the code (annotations unparsed)."""
    params = []
    for arg in func.args.args:
        params.append(f"{arg.arg}: {ast.unparse(arg.annotation)}" if arg.annotation else arg.arg)
    returns = f" -> {ast.unparse(func.returns)}" if func.returns else ""
    return f"def {func.name}({', '.join(params)}){returns}"


def check_tool_code(code: str, function_name: str, signature: str, allowed: Iterable[str]) -> list[str]:
    """Problems with tool.py: it parses, defines `signature` at top level, imports only allowed modules."""
    tree, problems = _parse(code, "The code")
    if tree is None:
        return problems
    func = _top_level_function(tree, function_name)
    if func is None:
        problems.append(f"The code does not define the function {function_name} at module level.")
    else:
        extra = func.args
        if extra.vararg or extra.kwarg or extra.kwonlyargs or extra.posonlyargs:
            problems.append(f"{function_name} must take exactly the spec's parameters: {signature}.")
        elif signature_text(func) != signature:
            problems.append(
                f"{function_name} is defined as `{signature_text(func)}` but the spec's signature is `{signature}`."
            )
    problems.extend(_import_problems(tree, frozenset(allowed), "The code"))
    problems.extend(_call_and_attribute_problems(tree, "The code"))
    return problems


def check_test_code(tests: str, function_name: str, allowed: Iterable[str]) -> list[str]:
    """Problems with test_tool.py: it parses, imports the function from `tool`, has tests, and doesn't cheat."""
    tree, problems = _parse(tests, "The tests")
    if tree is None:
        return problems
    imports_function = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "tool"
        and not node.level
        and any(alias.name == function_name for alias in node.names)
        for node in tree.body
    )
    if not imports_function:
        problems.append(f"The tests must import the function with `from tool import {function_name}`.")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "tool" for a in node.names):
            problems.append("The tests may not import the tool module itself; use `from tool import ...`.")
        if isinstance(node, ast.ImportFrom) and node.module == "tool":
            for alias in node.names:
                if alias.name != function_name:
                    problems.append(f"The tests import {alias.name!r} from tool; only {function_name} exists.")
    test_functions = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    ]
    if not test_functions:
        problems.append("The tests contain no test function (a function whose name starts with test_).")
    top_level_names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    for name in sorted({n for n in top_level_names if top_level_names.count(n) > 1}):
        problems.append(f"{name} is defined more than once; the later definition hides the earlier test.")
    for func in test_functions:
        for arg in [*func.args.args, *func.args.kwonlyargs]:
            if arg.arg in _FORBIDDEN_FIXTURES:
                problems.append(f"{func.name} uses the fixture {arg.arg!r}, which is not allowed.")
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == function_name:
                problems.append(f"The tests redefine {function_name}; they must test the imported one.")
            if node.name.startswith("pytest_"):
                problems.append(f"The tests define the pytest hook {node.name}, which is not allowed.")
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and (target.id == function_name or target.id == "pytest_plugins"):
                    problems.append(f"The tests assign to {target.id}, which is not allowed.")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "pytest"
            and node.attr in _FORBIDDEN_PYTEST
        ):
            problems.append(f"The tests use pytest.{node.attr} (line {node.lineno}), which is not allowed.")
        elif isinstance(node, ast.Attribute) and node.attr in ("skip", "skipif", "xfail"):
            problems.append(f"The tests use a {node.attr} mark (line {node.lineno}); every test must run.")
        if isinstance(node, ast.Name) and node.id == "conftest":
            problems.append("The tests may not refer to conftest.")
    allowed_here = frozenset(allowed) | TEST_EXTRA_MODULES
    problems.extend(_import_problems(tree, allowed_here, "The tests"))
    problems.extend(_call_and_attribute_problems(tree, "The tests"))
    return list(dict.fromkeys(problems))


def test_function_names(tests: str) -> list[str]:
    """Names of the test functions in a test module (top level and in Test classes)."""
    try:
        tree = ast.parse(tests)
    except SyntaxError:
        return []
    return [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    ]


test_function_names.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
