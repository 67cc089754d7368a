"""The structured outputs the graph asks models for, and how a spec becomes a signature and JSON schemas.

Every model output that code consumes is one of these Pydantic models (or a model carrying a tool's JSON schema,
see `arguments_model`), requested with `with_structured_output` and validated before use. Tool arguments are
validated with the tool's JSON schema itself (`argument_problems`, jsonschema) and keep their JSON types.
"""

from __future__ import annotations

import json
import keyword
from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

JsonType = Literal["string", "integer", "number", "boolean", "array", "object"]
_PYTHON_TYPES: dict[str, str] = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
}


Route = Literal["compute", "chat", "clarify", "decline", "chain"]
ROUTES: tuple[str, ...] = ("compute", "chat", "clarify", "decline", "chain")


class TurnDecision(BaseModel):
    """decide: the first decision of every turn, with its reason (one model call, on every turn)."""

    route: Route = Field(
        description="compute: a deterministic computation over values the user gave; chat: a greeting, thanks, "
        "or a question about the agent or its library; clarify: a computation whose inputs are missing; "
        "decline: needs live or outside data, personal data, an action in the world, or what the sandbox forbids; "
        "chain: several computations in one request, later ones using earlier results."
    )
    reason: str = Field(description="One sentence: why this route (and, for compute, why this tool or none).")
    tool: str | None = Field(
        default=None,
        description="compute only: the name of the one candidate tool that computes exactly what the request "
        "needs, or null to engineer a new tool. Null for every other route.",
    )
    reply: str | None = Field(
        default=None,
        description="chat and decline: the answer to the user (decline: one honest sentence on why, and what you "
        "can do instead); clarify: the one precise question to ask. Null for compute.",
    )
    arguments_json: str | None = Field(
        default=None,
        description='compute with a tool only: its keyword arguments taken from the request (or the clarifications '
        'or earlier turns), exactly as given, as a JSON object fitting the tool\'s parameters schema, e.g. '
        '{"text": "abc"}. Null otherwise; never invent a value (choose clarify instead).',
    )
    show_tool: str | None = Field(
        default=None,
        description="chat only: the name of a library tool whose real signature, tests and code the user asks to "
        "see; they are appended to the reply. Null otherwise.",
    )
    steps: list[str] = Field(
        default_factory=list,
        description="chain only: the plan, one small computation per step, in order. Empty otherwise.",
    )


class Parameter(BaseModel):
    """One typed parameter of a tool."""

    name: str = Field(description="A Python identifier.")
    type: JsonType = Field(description="The JSON type of the value.")
    items: JsonType | None = Field(default=None, description="For arrays: the JSON type of the items.")
    description: str = Field(description="What the parameter means, with units or format if any.")


class Returns(BaseModel):
    """The tool's return value."""

    type: JsonType
    items: JsonType | None = None
    description: str


class WorkedExample(BaseModel):
    """One worked example: the arguments as a JSON object and the expected result as JSON."""

    arguments_json: str = Field(description='The keyword arguments as a JSON object, e.g. {"text": "abc"}.')
    result_json: str = Field(description='The expected return value as JSON, e.g. "cba".')


class ToolSpec(BaseModel):
    """spec: what the new tool is, before any test or code exists."""

    name: str = Field(description="snake_case function name, lower case, e.g. reverse_string.")
    description: str = Field(description="One or two sentences a person or a model would search for.")
    parameters: list[Parameter] = Field(description="The parameters, in order. All are required.")
    returns: Returns
    example: WorkedExample
    edge_cases: list[str] = Field(description="How the tool behaves at the edges: empty input, bad values, ...")
    imports: list[str] = Field(default_factory=list, description="Modules the code will import (allowed only).")
    request_arguments_json: str = Field(
        default="",
        description='The arguments that answer the user\'s request with this tool, taken from the request exactly '
        'as given, as a JSON object fitting the parameters, e.g. {"text": "hello world"}.',
    )


class TestSuite(BaseModel):
    """write_tests: the pytest module test_tool.py."""

    __test__ = False
    tests: str = Field(description="The full source of test_tool.py; it imports the function from `tool`.")


class Implementation(BaseModel):
    """implement: the module tool.py."""

    code: str = Field(description="The full source of tool.py defining the function with the spec's signature.")


class TestObjection(BaseModel):
    """A repair step's claim that a test contradicts the spec."""

    __test__ = False
    test_name: str = Field(description="The test function the objection is about.")
    argument: str = Field(description="Why the test is wrong, argued from the spec's text.")


class Repair(BaseModel):
    """repair: a new implementation, and optionally an objection to one test."""

    analysis: str = Field(description="What the failures show is wrong with the implementation.")
    code: str = Field(description="The full corrected source of tool.py.")
    test_objection: TestObjection | None = Field(
        default=None,
        description="Only if a test contradicts the spec: which and why. The tests are otherwise fixed.",
    )


class TestRevision(BaseModel):
    """revise_tests: the recorded, argued change of the tests."""

    __test__ = False
    argument: str = Field(description="Why the changed tests are wrong, quoting the spec.")
    changed_tests: list[str] = Field(description="The names of the test functions changed or removed.")
    tests: str = Field(description="The full revised source of test_tool.py.")


# ---------------------------------------------------------------------------------------------------------
# From a spec to a signature and JSON schemas


def type_schema(json_type: str, items: str | None = None) -> dict[str, Any]:
    """A JSON schema fragment for a JSON type (and its item type for arrays)."""
    schema: dict[str, Any] = {"type": json_type}
    if json_type == "array" and items:
        schema["items"] = {"type": items}
    return schema


def python_annotation(json_type: str, items: str | None = None) -> str:
    """The Python annotation for a JSON type: list[str] for an array of strings, and so on."""
    base = _PYTHON_TYPES[json_type]
    if json_type == "array" and items:
        return f"list[{_PYTHON_TYPES[items]}]"
    return base


def signature_of(spec: ToolSpec) -> str:
    """`def name(a: str, b: float) -> str`: the signature the code must define."""
    params = ", ".join(f"{p.name}: {python_annotation(p.type, p.items)}" for p in spec.parameters)
    return f"def {spec.name}({params}) -> {python_annotation(spec.returns.type, spec.returns.items)}"


def parameters_schema_of(spec: ToolSpec) -> dict[str, Any]:
    """The JSON schema of the tool's keyword arguments."""
    return {
        "type": "object",
        "properties": {p.name: {**type_schema(p.type, p.items), "description": p.description} for p in spec.parameters},
        "required": [p.name for p in spec.parameters],
        "additionalProperties": False,
    }


def returns_schema_of(spec: ToolSpec) -> dict[str, Any]:
    """The JSON schema of the tool's result."""
    return {**type_schema(spec.returns.type, spec.returns.items), "description": spec.returns.description}


def spec_problems(spec: ToolSpec, allowed: frozenset[str]) -> list[str]:
    """What is wrong with a spec, beyond its shape: names, imports and the worked example."""
    problems: list[str] = []
    names = [p.name for p in spec.parameters]
    for name in names:
        if not name.isidentifier() or keyword.iskeyword(name):
            problems.append(f"Parameter name {name!r} is not a Python identifier.")
    if len(set(names)) != len(names):
        problems.append("Parameter names must be unique.")
    bad = sorted(set(spec.imports) - allowed)
    if bad:
        problems.append(f"These modules are not available in the sandbox: {', '.join(bad)}.")
    try:
        example_args = json.loads(spec.example.arguments_json)
        json.loads(spec.example.result_json)
    except json.JSONDecodeError as exc:
        problems.append(f"The worked example is not valid JSON: {exc}.")
    else:
        if not isinstance(example_args, dict):
            problems.append("The worked example's arguments must be a JSON object.")
        else:
            problems.extend(f"Worked example: {p}" for p in argument_problems(parameters_schema_of(spec), example_args))
    if spec.request_arguments_json.strip():
        try:
            request_args = json.loads(spec.request_arguments_json)
        except json.JSONDecodeError as exc:
            problems.append(f"request_arguments_json is not valid JSON: {exc}.")
        else:
            problems.extend(
                f"request_arguments_json: {p}" for p in argument_problems(parameters_schema_of(spec), request_args)
            )
    return problems


def parse_arguments_json(text: str | None) -> dict[str, Any] | None:
    """A JSON object given as text (a decision's or a spec's arguments), or None when absent or not an object."""
    if not text or not text.strip():
        return None
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


# ---------------------------------------------------------------------------------------------------------
# Arguments against a tool's JSON schema: validated with the schema itself (jsonschema), never coerced, so an
# integer stays an integer and a string a string. A Pydantic model only carries the schema to the model.


def arguments_model(parameters_schema: dict[str, Any], name: str = "ToolArguments") -> type[BaseModel]:
    """A Pydantic model whose JSON schema is the tool's own (each field's schema verbatim, the same required
    list), for a structured call. It accepts any value and a missing one (`Any`, unset), so parsing changes
    nothing and refuses nothing but unknown names: `argument_problems` does the checking, all of it at once."""
    properties: dict[str, Any] = parameters_schema.get("properties") or {}
    required = [p for p in parameters_schema.get("required") or [] if p in properties]
    fields: dict[str, Any] = {
        pname: (Annotated[Any, WithJsonSchema(dict(pschema or {}))], Field(default=None))
        for pname, pschema in properties.items()
    }

    def tool_schema(schema: dict[str, Any]) -> None:
        schema["required"] = required
        for field_schema in (schema.get("properties") or {}).values():
            field_schema.pop("default", None)  # unset is not null: no default the model could copy

    config = ConfigDict(extra="forbid", json_schema_extra=tool_schema)
    model = create_model(name, __config__=config, **fields)
    model.__doc__ = "The keyword arguments to call the tool with, taken from the user's request."
    return model


def _closed(parameters_schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of keyword arguments: an object, with no argument beyond its properties unless it says so."""
    return {"type": "object", **parameters_schema, "additionalProperties": parameters_schema.get(
        "additionalProperties", False)}  # fmt: skip


def argument_problems(parameters_schema: dict[str, Any], arguments: Any) -> list[str]:
    """Why `arguments` don't fit the schema, one short line each (`path: message`); empty when they do."""
    try:
        validator = Draft202012Validator(_closed(parameters_schema))
        errors = sorted(validator.iter_errors(arguments), key=lambda e: [str(p) for p in e.absolute_path])
    except SchemaError as exc:
        return [f"the tool's parameters schema is invalid: {exc.message}"]
    problems = []
    for error in errors:
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            extra = sorted(set(error.instance) - set((error.schema or {}).get("properties") or {}))
            problems.extend(f"{name}: not a parameter of this tool" for name in extra)
            continue
        if error.validator == "required" and not error.absolute_path:
            missing = [n for n in (error.validator_value or []) if n not in (error.instance or {})]
            problems.extend(f"{name}: required, but not given" for name in missing[:1] or ["arguments"])
            continue
        where = ".".join(str(p) for p in error.absolute_path) or "arguments"
        problems.append(f"{where}: {error.message}")
    return problems


def _fit(value: Any, schema: dict[str, Any]) -> Any:
    """A whole-number float where the schema says integer becomes that integer (3.0 -> 3); nothing else changes."""
    kind = schema.get("type")
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "array" and isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_fit(item, schema["items"]) for item in value]
    if kind == "object" and isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        return {k: _fit(v, schema["properties"].get(k) or {}) for k, v in value.items()}
    return value


def validated_arguments(parameters_schema: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments as given, once they fit the schema (ValueError with the problems otherwise). Nothing is
    coerced: 300 stays 300 for a number, "7" stays a string; only 3.0 for an integer becomes 3."""
    problems = argument_problems(parameters_schema, arguments)
    if problems:
        raise ValueError("; ".join(problems))
    return _fit(dict(arguments), {"type": "object", "properties": parameters_schema.get("properties") or {}})
