"""Tool versions on disk: the library's source of truth.

Layout under `Settings.tools_dir`::

    .library.lock                 one lock for every writer of this library (filelock)
    <name>/v0001/tool.py          the code (always `tool.py`)
    <name>/v0001/test_tool.py     its tests (`from tool import <name>`)
    <name>/v0001/manifest.json    everything else about the version (immutable once written)
    <name>/state.json             active version, newest version known, status (replaced atomically)
    <name>/usage.json             usage statistics per version (replaced atomically)

A version folder is written beside its final place as `.tmp-*`, every file and the folder are fsynced, and
one `rename` makes it visible: that rename is the commit point. `state.json` records rollbacks and
retirements; a version newer than the newest one `state.json` knows of is a registration whose pointer
update did not happen (the process died after the rename), so it is the active one ("roll forward").
Orphan `.tmp-*` folders and files are removed when the store is opened.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock, Timeout
from pydantic import ValidationError

from tools_library.models import (
    Provenance,
    ToolDraft,
    ToolManifest,
    ToolNameError,
    UsageStats,
    utc_now,
    validate_tool_name,
)

log = logging.getLogger(__name__)

CODE_FILE = "tool.py"
TESTS_FILE = "test_tool.py"
MANIFEST_FILE = "manifest.json"
STATE_FILE = "state.json"
USAGE_FILE = "usage.json"
LOCK_FILE = ".library.lock"
GENERATION_FILE = ".generation"
TMP_PREFIX = ".tmp-"
MANIFEST_FORMAT = 1
_VERSION_DIR = re.compile(r"v([0-9]{4,})")  # fullmatch: no trailing newline, ASCII digits only
# The fields of a ToolManifest that are not stored in manifest.json (files or mutable side files hold them).
_NOT_IN_MANIFEST = {"code", "tests", "status", "usage", "current"}

# Fault injection for tests: SEA_LIBRARY_FAULT=<point> and SEA_LIBRARY_FAULT_ACTION=kill|sleep:<seconds>.
FAULT_ENV = "SEA_LIBRARY_FAULT"
FAULT_ACTION_ENV = "SEA_LIBRARY_FAULT_ACTION"


class ToolLibraryError(Exception):
    """Base of the library's errors; the message is one clear sentence meant for users."""


class ToolNotFoundError(ToolLibraryError):
    """No such tool, or no such version of a tool."""


class ToolRetiredError(ToolNotFoundError):
    """The tool exists but is retired: it is not offered until rolled back or re-registered."""


class CorruptToolError(ToolLibraryError):
    """A stored version's files do not match its manifest."""


class LibraryBusyError(ToolLibraryError):
    """Another process held the library lock for too long."""


def sha256_text(text: str) -> str:
    """The hex sha256 of a text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(code: str, tests: str) -> str:
    """The identity of a version's content: the same code and tests give the same hash."""
    return content_hash_of(sha256_text(code), sha256_text(tests))


def content_hash_of(code_sha256: str, tests_sha256: str) -> str:
    """`content_hash` from the two files' sha256 (as a manifest records them)."""
    return hashlib.sha256(f"{code_sha256}\n{tests_sha256}".encode()).hexdigest()


@dataclass(frozen=True)
class VersionCard:
    """What the index and the twin check need of a tool's active version, read from manifest.json alone."""

    name: str
    version: int
    signature: str
    description: str
    code_sha256: str
    tests_sha256: str
    status: str


def version_dir_name(version: int) -> str:
    return f"v{version:04d}"


def _fault(point: str) -> None:
    """Test hook: die or stall at a named point of a write, when the environment asks for it."""
    if os.environ.get(FAULT_ENV) != point:
        return
    action = os.environ.get(FAULT_ACTION_ENV, "kill")
    if action.startswith("sleep:"):
        time.sleep(float(action.split(":", 1)[1]))
    else:
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` so that readers see the old content or the new, never a mix."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{uuid.uuid4().hex}")
    try:
        _write_file_synced(tmp, text)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(path.parent)


class ToolStore:
    """Versioned tools as folders on disk, with atomic, locked writes."""

    def __init__(self, root: Path, *, lock_timeout_s: float = 60.0) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.root / LOCK_FILE), timeout=lock_timeout_s)

    # ---- locking and recovery -------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the library's write lock (re-entrant within one process)."""
        try:
            with self._lock:
                yield
        except Timeout as exc:
            raise LibraryBusyError(
                f"The tool library at {self.root} is locked by another process; try again shortly."
            ) from exc

    def recover(self) -> list[Path]:
        """Remove what interrupted writes left behind; return the removed paths."""
        removed: list[Path] = []
        with self.locked():
            for entry in self.root.iterdir():
                if entry.name.startswith(TMP_PREFIX):
                    removed.append(entry)
                    _remove(entry)
                    continue
                if not entry.is_dir() or entry.name.startswith("."):
                    continue
                for child in entry.iterdir():
                    if child.name.startswith(TMP_PREFIX):
                        removed.append(child)
                        _remove(child)
                # A tool folder whose first version never got committed holds nothing else.
                if not self._version_numbers(entry) and not any(entry.iterdir()):
                    removed.append(entry)
                    entry.rmdir()
        if removed:
            log.warning("Removed %d leftover(s) of interrupted writes: %s", len(removed), removed)
        return removed

    # ---- reading --------------------------------------------------------------------------------

    def tool_dir(self, name: str) -> Path:
        return self.root / validate_tool_name(name)

    def version_path(self, name: str, version: int) -> Path:
        """The folder of one stored version (a runnable unit: `pytest` there runs its tests)."""
        return self.tool_dir(name) / version_dir_name(version)

    def names(self) -> list[str]:
        """Every stored tool name (retired ones included), sorted."""
        found = []
        for entry in sorted(self.root.iterdir()):
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            try:
                validate_tool_name(entry.name)
            except ToolNameError:
                log.warning("Ignoring a folder that is not a valid tool name: %s", entry)
                continue
            if self._version_numbers(entry):
                found.append(entry.name)
        return found

    @staticmethod
    def _version_numbers(tool_dir: Path) -> list[int]:
        if not tool_dir.is_dir():
            return []
        numbers = []
        for child in tool_dir.iterdir():
            match = _VERSION_DIR.fullmatch(child.name)
            if match and child.is_dir():
                numbers.append(int(match.group(1)))
        return sorted(numbers)

    def version_numbers(self, name: str) -> list[int]:
        """The stored version numbers of a tool, ascending (empty if the tool is unknown)."""
        return self._version_numbers(self.tool_dir(name))

    def state(self, name: str) -> dict[str, Any]:
        """`{"active": int, "latest": int, "status": "active"|"retired"}`; ToolNotFoundError if unknown."""
        numbers = self.version_numbers(name)
        if not numbers:
            raise ToolNotFoundError(f"There is no tool named {name!r} in the library.")
        newest = numbers[-1]
        recorded = _read_json(self.tool_dir(name) / STATE_FILE) or {}
        latest = _as_int(recorded.get("latest"))
        if latest is None or newest > latest:
            # No pointer yet (or an unreadable one), or a committed version the pointer never heard of:
            # roll forward.
            return {"active": newest, "latest": newest, "status": "active"}
        active = _as_int(recorded.get("active"))
        if active not in numbers:
            active = newest
        status = "retired" if recorded.get("status") == "retired" else "active"
        return {"active": active, "latest": newest, "status": status}

    def read(self, name: str, version: int | None = None) -> ToolManifest:
        """One version (the active one by default), with its status, usage and `current` flag."""
        state = self.state(name)
        number = state["active"] if version is None else version
        folder = self.version_path(name, number)
        if not folder.is_dir():
            known = ", ".join(str(n) for n in self.version_numbers(name))
            raise ToolNotFoundError(f"Tool {name!r} has no version {number}; its versions are {known}.")
        try:
            meta = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
            code = (folder / CODE_FILE).read_text(encoding="utf-8")
            tests = (folder / TESTS_FILE).read_text(encoding="utf-8")
        except (OSError, ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise CorruptToolError(f"Version {number} of tool {name!r} is unreadable: {reason}.") from exc
        if not isinstance(meta, dict):
            raise CorruptToolError(f"The manifest of version {number} of tool {name!r} is not a JSON object.")
        provenance = meta.get("provenance")
        if not isinstance(provenance, dict):
            raise CorruptToolError(f"The manifest of version {number} of tool {name!r} has no provenance object.")
        if meta.get("name") != name:
            raise CorruptToolError(f"The manifest of version {number} of tool {name!r} names another tool.")
        if provenance.get("code_sha256") != sha256_text(code) or provenance.get(
            "tests_sha256"
        ) != sha256_text(tests):
            raise CorruptToolError(
                f"Version {number} of tool {name!r} was changed on disk: its files no longer match "
                "the hashes in its manifest."
            )
        meta = {k: v for k, v in meta.items() if k != "format" and k not in _NOT_IN_MANIFEST}
        is_current = number == state["active"]
        usage = _usage_stats(self._usage_of(name).get(str(number)), name, number)
        try:
            return ToolManifest(
                **meta,
                code=code,
                tests=tests,
                status="active" if is_current and state["status"] == "active" else "retired",
                current=is_current,
                usage=usage,
            )
        except ValidationError as exc:
            raise CorruptToolError(f"The manifest of version {number} of tool {name!r} is invalid: {exc}") from exc

    def active_cards(self, include_retired: bool = False) -> list[VersionCard]:
        """The card of every tool's active version, without reading code or tests (cheap for many tools)."""
        cards = []
        for name in self.names():
            try:
                state = self.state(name)
            except ToolLibraryError as exc:  # e.g. its last version folder vanished since names()
                log.warning("Skipping tool %s: %s", name, exc)
                continue
            if state["status"] == "retired" and not include_retired:
                continue
            meta = self._meta(name, state["active"])
            if meta is None:
                log.warning("Skipping tool %s: the manifest of its version %s is damaged", name, state["active"])
                continue
            prov = meta["provenance"]
            try:
                cards.append(
                    VersionCard(
                        name=name,
                        version=state["active"],
                        signature=str(meta["signature"]),
                        description=str(meta["description"]),
                        code_sha256=str(prov["code_sha256"]),
                        tests_sha256=str(prov["tests_sha256"]),
                        status=state["status"],
                    )
                )
            except (KeyError, TypeError):
                log.warning("Skipping tool %s: the manifest of its version %s is incomplete", name, state["active"])
        return cards

    def find_by_content(self, name: str, code: str, tests: str) -> int | None:
        """The version of `name` holding exactly this code and these tests, if any."""
        wanted = (sha256_text(code), sha256_text(tests))
        for number in self.version_numbers(name):
            meta = self._meta(name, number)
            prov = meta["provenance"] if meta is not None else {}
            if (prov.get("code_sha256"), prov.get("tests_sha256")) == wanted:
                return number
        return None

    def _meta(self, name: str, number: int) -> dict[str, Any] | None:
        """A version's manifest.json if it is an object naming this tool with a provenance object, else None."""
        meta = _read_json(self.version_path(name, number) / MANIFEST_FILE)
        if meta is None or meta.get("name") != name or not isinstance(meta.get("provenance"), dict):
            return None
        return meta

    def _usage_of(self, name: str) -> dict[str, Any]:
        versions = (_read_json(self.tool_dir(name) / USAGE_FILE) or {}).get("versions")
        return versions if isinstance(versions, dict) else {}

    # ---- writing --------------------------------------------------------------------------------

    def add_version(self, draft: ToolDraft) -> tuple[ToolManifest, bool]:
        """Store `draft` as the tool's next version and make it active.

        Idempotent by content: the same code and tests for the same name return the stored version and
        `False` (nothing written). Returns the manifest and whether a new version was written.
        """
        name = validate_tool_name(draft.name)
        with self.locked():
            existing = self.find_by_content(name, draft.code, draft.tests)
            if existing is not None:
                return self.read(name, existing), False
            tool_dir = self.root / name
            tool_dir.mkdir(exist_ok=True)
            numbers = self._version_numbers(tool_dir)
            version = (numbers[-1] if numbers else 0) + 1
            provenance = draft.provenance.model_copy(
                update={"code_sha256": sha256_text(draft.code), "tests_sha256": sha256_text(draft.tests)}
            )
            manifest = ToolManifest(**{**draft.model_dump(), "provenance": provenance}, version=version)
            meta = {"format": MANIFEST_FORMAT, **manifest.model_dump(mode="json", exclude=_NOT_IN_MANIFEST)}

            tmp = tool_dir / f"{TMP_PREFIX}{version_dir_name(version)}-{uuid.uuid4().hex}"
            tmp.mkdir()
            _write_file_synced(tmp / CODE_FILE, draft.code)
            _write_file_synced(tmp / TESTS_FILE, draft.tests)
            _write_file_synced(tmp / MANIFEST_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")
            _fsync_dir(tmp)
            _fault("before_rename")
            os.rename(tmp, tool_dir / version_dir_name(version))
            _fsync_dir(tool_dir)
            _fsync_dir(self.root)
            _fault("after_rename")
            self._write_state(name, active=version, status="active")
            self._bump_generation()
            return self.read(name, version), True

    def set_active(self, name: str, version: int) -> ToolManifest:
        """Make a stored version the active one (a rollback or roll-forward); un-retires the tool."""
        with self.locked():
            numbers = self.version_numbers(name)
            if not numbers:
                raise ToolNotFoundError(f"There is no tool named {name!r} in the library.")
            if version not in numbers:
                known = ", ".join(str(n) for n in numbers)
                raise ToolNotFoundError(f"Tool {name!r} has no version {version}; its versions are {known}.")
            self._write_state(name, active=version, status="active")
            self._bump_generation()
            return self.read(name, version)

    def set_status(self, name: str, status: Literal["active", "retired"]) -> ToolManifest:
        """Retire a tool (it leaves search) or bring it back at its active version."""
        with self.locked():
            state = self.state(name)
            self._write_state(name, active=state["active"], status=status)
            self._bump_generation()
            return self.read(name, state["active"])

    def generation(self) -> int:
        """A counter every change of versions or status increments (usage does not): a cheap "has anything
        changed since?" for processes that keep an index in memory."""
        try:
            return int((self.root / GENERATION_FILE).read_text(encoding="utf-8").strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _bump_generation(self) -> None:
        atomic_write_text(self.root / GENERATION_FILE, f"{self.generation() + 1}\n")

    def _write_state(self, name: str, *, active: int, status: str) -> None:
        numbers = self.version_numbers(name)
        state = {"active": active, "latest": numbers[-1], "status": status, "updated_at": utc_now().isoformat()}
        atomic_write_text(self.tool_dir(name) / STATE_FILE, json.dumps(state, indent=2) + "\n")

    def record_usage(self, name: str, version: int, ok: bool) -> UsageStats:
        """Count one call of a version; kept in `usage.json`, never in the immutable version files."""
        with self.locked():
            if version not in self.version_numbers(name):
                raise ToolNotFoundError(f"Tool {name!r} has no version {version}.")
            path = self.tool_dir(name) / USAGE_FILE
            data = _read_json(path) or {}
            if not isinstance(data.get("versions"), dict):
                data["versions"] = {}  # damaged: start counting again rather than fail every call
            versions = data["versions"]
            stats = _usage_stats(versions.get(str(version)), name, version)
            stats = UsageStats(
                calls=stats.calls + 1, failures=stats.failures + (0 if ok else 1), last_used=utc_now()
            )
            versions[str(version)] = stats.model_dump(mode="json")
            atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
            return stats


def diff_versions(old: ToolManifest, new: ToolManifest) -> str:
    """A unified diff of two versions' signature, description, code and tests."""
    parts: list[str] = []
    for label, a, b in (
        ("signature", old.signature, new.signature),
        ("description", old.description, new.description),
        (CODE_FILE, old.code, new.code),
        (TESTS_FILE, old.tests, new.tests),
    ):
        parts.extend(
            difflib.unified_diff(
                _lines(a),
                _lines(b),
                fromfile=f"{old.name}/v{old.version}/{label}",
                tofile=f"{new.name}/v{new.version}/{label}",
            )
        )
    return "".join(parts)


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file; None (with a warning) if it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        log.warning("Ignoring unreadable %s: %s", path, reason)
        return None
    if not isinstance(data, dict):
        log.warning("Ignoring %s: it is not a JSON object", path)
        return None
    return data


def _as_int(value: Any) -> int | None:
    """An int recorded in a side file (not a bool, not a float), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage_stats(recorded: Any, name: str, version: int) -> UsageStats:
    """A version's usage statistics from usage.json; empty ones (with a warning) if that entry is damaged."""
    if recorded is None:
        return UsageStats()
    try:
        if isinstance(recorded, dict):
            return UsageStats(**recorded)
    except ValidationError:
        pass
    log.warning("Ignoring the damaged usage statistics of %s version %s", name, version)
    return UsageStats()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


__all__ = [
    "CODE_FILE",
    "MANIFEST_FILE",
    "TESTS_FILE",
    "CorruptToolError",
    "LibraryBusyError",
    "Provenance",
    "ToolLibraryError",
    "ToolNotFoundError",
    "ToolRetiredError",
    "ToolStore",
    "atomic_write_text",
    "content_hash",
    "diff_versions",
    "sha256_text",
]
