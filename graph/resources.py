"""The tool library and the sandbox, opened lazily once per data directory (never at import time).

Nodes call `get_library()` / `get_sandbox_client()`; tests point SEA_HOME at a temporary folder, clear the
settings cache and call `reset()`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sea.settings import get_settings

if TYPE_CHECKING:
    from sandbox import Sandbox
    from tools_library import ToolLibrary

log = logging.getLogger(__name__)
_lock = threading.Lock()
_libraries: dict[Path, ToolLibrary] = {}


_sandbox_override: Sandbox | None = None


def get_sandbox_client() -> Sandbox:
    """The process-wide sandbox (its warm pool starts lazily), or the one set with `use_sandbox`."""
    if _sandbox_override is not None:
        return _sandbox_override
    from sandbox import get_sandbox

    return get_sandbox()


def use_sandbox(sandbox: Sandbox | None) -> None:
    """Run the graph's sandbox jobs on `sandbox` (None: back to the process-wide one)."""
    global _sandbox_override
    _sandbox_override = sandbox


def get_library() -> ToolLibrary:
    """The tool library of the current SEA_HOME, seeded with the starter tools when it is empty."""
    settings = get_settings()
    with _lock:
        library = _libraries.get(settings.home)
        if library is None:
            from tools_library import ToolLibrary

            library = ToolLibrary.open(settings=settings, sandbox=get_sandbox_client())
            if not library.list_tools():
                for result in library.seed().results:
                    if result.outcome == "refused":
                        log.warning("Starter tool %s not installed: %s", result.name, result.reason)
            _libraries[settings.home] = library
        return library


def reset() -> None:
    """Close and forget opened libraries (tests switch SEA_HOME between cases)."""
    with _lock:
        for library in _libraries.values():
            library.close()
        _libraries.clear()
