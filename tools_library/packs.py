"""Tool packs: a zip of tool versions with a manifest of every file's sha256.

A pack holds `pack.json` and, per tool, `tools/<name>/{manifest.json, tool.py, test_tool.py}`. Reading one
trusts nothing: entry names (no absolute paths, no `..`, no symlinks, nothing unexpected), sizes, every
file's sha256 against `pack.json`, every tool name and manifest. Nothing is extracted to disk. The sha256
list detects damage and tampering of single files; it is not a signature (whoever rewrites the whole pack
can rewrite `pack.json` too), which is why the library re-runs every imported tool's tests in the sandbox.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import uuid
import zipfile
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from tools_library.models import ToolDraft, ToolManifest, ToolNameError, utc_now, validate_tool_name
from tools_library.store import CODE_FILE, MANIFEST_FILE, TESTS_FILE, ToolLibraryError, sha256_text

PACK_MANIFEST = "pack.json"
PACK_FORMAT = "sea-tool-pack"
PACK_FORMAT_VERSION = 1
MAX_PACK_BYTES = 50 * 1024 * 1024
MAX_ENTRIES = 3 * 500 + 1
MAX_FILE_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 64 * 1024 * 1024
MAX_JSON_DEPTH = 64  # nesting of arrays and objects in pack.json and a tool's manifest
_TOOL_FILES = (MANIFEST_FILE, CODE_FILE, TESTS_FILE)
# Manifest fields that describe the exporting library, not the tool: the importing library sets its own.
_LIBRARY_FIELDS = {"format", "version", "status", "usage", "current", "code", "tests"}


class PackError(ToolLibraryError):
    """A pack that cannot be imported at all: unreadable, malformed, unsafe or altered."""


class InstallResult(BaseModel):
    """What happened to one tool of a pack (or one starter tool)."""

    name: str
    version: int | None = None
    outcome: Literal["installed", "unchanged", "refused"]
    reason: str = ""


class PackReport(BaseModel):
    """The outcome of an import or a seed: one result per tool."""

    path: str
    results: list[InstallResult] = Field(default_factory=list)

    @property
    def refused(self) -> list[InstallResult]:
        return [r for r in self.results if r.outcome == "refused"]


def write_pack(path: Path, manifests: list[ToolManifest]) -> None:
    """Write `manifests` (one version per tool) to a pack file, replacing `path` atomically."""
    names = [m.name for m in manifests]
    if len(set(names)) != len(names):
        raise PackError("A pack holds one version per tool; some tools were named twice.")
    files: dict[str, str] = {}
    for manifest in manifests:
        stored = manifest.model_dump(mode="json", exclude={"code", "tests", "status", "usage", "current"})
        meta = {"format": 1, **stored}
        files[f"tools/{manifest.name}/{MANIFEST_FILE}"] = json.dumps(meta, indent=2, sort_keys=True) + "\n"
        files[f"tools/{manifest.name}/{CODE_FILE}"] = manifest.code
        files[f"tools/{manifest.name}/{TESTS_FILE}"] = manifest.tests
    pack_manifest = {
        "format": PACK_FORMAT,
        "format_version": PACK_FORMAT_VERSION,
        "created_at": utc_now().isoformat(),
        "tools": [{"name": m.name, "version": m.version} for m in manifests],
        "files": {entry: sha256_text(text) for entry, text in files.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(PACK_MANIFEST, json.dumps(pack_manifest, indent=2, sort_keys=True) + "\n")
            for entry, text in files.items():
                archive.writestr(entry, text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_pack(path: Path) -> list[ToolDraft]:
    """Check a pack completely and return its tools as drafts (not yet verified); PackError if unsafe."""
    if not path.is_file():
        raise PackError(f"There is no pack file at {path}.")
    if path.stat().st_size > MAX_PACK_BYTES:
        raise PackError(f"The pack {path} is larger than {MAX_PACK_BYTES // (1024 * 1024)} MB; refused.")
    if not zipfile.is_zipfile(path):
        raise PackError(f"{path} is not a tool pack (not a zip file).")
    try:
        with zipfile.ZipFile(path) as archive:
            contents = _read_entries(path, archive)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise PackError(f"The pack {path} is damaged and cannot be read: {exc}.") from exc

    if PACK_MANIFEST not in contents:
        raise PackError(f"The pack {path} has no {PACK_MANIFEST}; it is not a tool pack.")
    pack_manifest = _json(contents.pop(PACK_MANIFEST), f"{PACK_MANIFEST} of {path}")
    if pack_manifest.get("format") != PACK_FORMAT or pack_manifest.get("format_version") != PACK_FORMAT_VERSION:
        raise PackError(f"The pack {path} is not a version-{PACK_FORMAT_VERSION} {PACK_FORMAT} file.")
    listed = pack_manifest.get("files")
    if not isinstance(listed, dict):
        raise PackError(f"The {PACK_MANIFEST} of {path} lists no files.")
    if set(listed) != set(contents):
        missing = sorted(set(listed) - set(contents))
        extra = sorted(set(contents) - set(listed))
        raise PackError(
            f"The pack {path} has been altered: files missing {missing} or not listed {extra} in {PACK_MANIFEST}; "
            "nothing was imported."
        )
    for entry, data in contents.items():
        if hashlib.sha256(data).hexdigest() != listed[entry]:
            raise PackError(
                f"The pack {path} has been altered or damaged: {entry} does not match its sha256 in "
                f"{PACK_MANIFEST}; nothing was imported."
            )

    by_tool: dict[str, dict[str, bytes]] = defaultdict(dict)
    for entry, data in contents.items():
        _, name, filename = entry.split("/")
        by_tool[name][filename] = data
    return [_draft(path, name, files) for name, files in sorted(by_tool.items())]


def _read_entries(path: Path, archive: zipfile.ZipFile) -> dict[str, bytes]:
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise PackError(f"The pack {path} has more than {MAX_ENTRIES} entries; refused.")
    contents: dict[str, bytes] = {}
    total = 0
    for info in infos:
        entry = info.filename
        _check_entry_name(path, entry)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise PackError(f"The pack {path} contains a symbolic link ({entry}); refused.")
        if info.is_dir():
            raise PackError(f"The pack {path} contains an unexpected folder entry ({entry}); refused.")
        if entry in contents:
            raise PackError(f"The pack {path} contains {entry} twice; refused.")
        if info.file_size > MAX_FILE_BYTES:
            raise PackError(f"{entry} in the pack {path} is larger than {MAX_FILE_BYTES} bytes; refused.")
        # Read at most one byte past the cap: the declared size of a crafted entry may lie.
        with archive.open(info) as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise PackError(f"{entry} in the pack {path} is larger than {MAX_FILE_BYTES} bytes; refused.")
        total += len(data)
        if total > MAX_TOTAL_BYTES:
            raise PackError(f"The pack {path} unpacks to more than {MAX_TOTAL_BYTES} bytes; refused.")
        contents[entry] = data
    return contents


def _check_entry_name(path: Path, entry: str) -> None:
    """Allow only `pack.json` and `tools/<valid name>/<tool file>`: no absolute paths, `..`, or backslashes."""
    unsafe = (
        entry.startswith(("/", "\\"))
        or "\\" in entry
        or ":" in entry
        or "\x00" in entry
        or any(part in ("", ".", "..") for part in entry.split("/"))
    )
    if unsafe:
        raise PackError(f"The pack {path} contains an unsafe path {entry!r}; refused.")
    if entry == PACK_MANIFEST:
        return
    parts = PurePosixPath(entry).parts
    if len(parts) != 3 or parts[0] != "tools" or parts[2] not in _TOOL_FILES:
        raise PackError(f"The pack {path} contains an unexpected file {entry!r}; refused.")
    try:
        validate_tool_name(parts[1])
    except ToolNameError as exc:
        raise PackError(f"The pack {path} contains a tool with a refused name: {exc}") from exc


def _draft(path: Path, name: str, files: dict[str, bytes]) -> ToolDraft:
    missing = [f for f in _TOOL_FILES if f not in files]
    if missing:
        raise PackError(f"Tool {name!r} in the pack {path} lacks {', '.join(missing)}; refused.")
    try:
        code = files[CODE_FILE].decode("utf-8")
        tests = files[TESTS_FILE].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PackError(f"Tool {name!r} in the pack {path} has a file that is not UTF-8 text.") from exc
    meta = _json(files[MANIFEST_FILE], f"the manifest of {name!r} in {path}")
    if meta.get("name") != name:
        raise PackError(f"The manifest of {name!r} in the pack {path} names another tool ({meta.get('name')!r}).")
    fields = {k: v for k, v in meta.items() if k not in _LIBRARY_FIELDS}
    try:
        draft = ToolDraft(**fields, code=code, tests=tests)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise PackError(f"The manifest of {name!r} in the pack {path} is invalid at {where}: {first['msg']}.") from exc
    if (draft.provenance.code_sha256, draft.provenance.tests_sha256) != (sha256_text(code), sha256_text(tests)):
        raise PackError(f"Tool {name!r} in the pack {path} does not match the hashes in its own manifest; refused.")
    return draft


def _json(data: bytes, what: str) -> dict[str, Any]:
    """A JSON object of at most MAX_JSON_DEPTH levels; PackError otherwise (never a RecursionError)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PackError(f"The {what} is not UTF-8 text.") from exc
    if _nesting(text) > MAX_JSON_DEPTH:
        raise PackError(f"The {what} is nested more than {MAX_JSON_DEPTH} levels deep; refused.")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PackError(f"The {what} is not valid JSON.") from exc
    if not isinstance(value, dict):
        raise PackError(f"The {what} is not a JSON object.")
    return value


def _nesting(text: str) -> int:
    """The deepest nesting of `[`/`{` in a JSON text, outside strings (a linear scan, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
