"""The sandbox image's pinned contents, listed in one place.

The Dockerfiles take their versions from here (as build arguments), the image carries a hash of this
manifest as a label, the tests check the built image against it, and the graph tells the model which
modules tool code may import (`describe_for_prompt`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

IMAGE_DIR = Path(__file__).resolve().parent

DEBIAN_SUITE = "bookworm"
PYTHON_VERSION = "3.11"  # major.minor; both builds ship CPython 3.11 (Debian's 3.11.2, the slim image's pin)
PYTHON_IMAGE = "python:3.11.9-slim-bookworm"  # base of the online build (hosts that can pull)
PYTEST_VERSION = "7.2.1"  # Debian bookworm's python3-pytest; the online build pins the same
HYPOTHESIS_VERSION = "6.67.1"  # Debian bookworm's python3-hypothesis
DEBIAN_PACKAGES = ("python3", "python3-pytest", "python3-hypothesis", "tzdata")

SANDBOX_USER = "sandbox"
SANDBOX_UID = 10001
SANDBOX_GID = 10001
WORKDIR = "/sandbox"
PYTHON_BIN = "/usr/bin/python3"  # the same path in both images, so the exec command is the same

BASE_IMAGE_OFFLINE = f"sea-sandbox-base:{DEBIAN_SUITE}"
LABEL_MANIFEST = "sea.sandbox.manifest"  # value: manifest_hash()
LABEL_BUILD = "sea.sandbox.build"  # value: "online" or "offline"

# Standard-library modules tool code may import: pure computation, no I/O on the host, no processes,
# no introspection hooks. Submodules of a listed package are allowed only if listed themselves.
ALLOWED_MODULES: frozenset[str] = frozenset(
    {
        # numbers and maths
        "math", "cmath", "decimal", "fractions", "statistics", "random", "numbers",
        # text
        "re", "string", "textwrap", "unicodedata", "difflib", "html", "html.parser", "html.entities",
        # dates and times
        "datetime", "calendar", "zoneinfo", "time",
        # data structures and functional tools
        "itertools", "functools", "operator", "collections", "collections.abc", "heapq", "bisect", "array",
        "copy", "dataclasses", "enum", "typing", "abc", "contextlib", "graphlib",
        # encodings and formats (in-memory)
        "json", "base64", "binascii", "hashlib", "hmac", "uuid", "csv", "io", "struct",
        "quopri", "zlib", "secrets",
        # networks as values, URLs as strings
        "ipaddress", "urllib.parse",
        # misc pure helpers
        "pprint", "reprlib", "colorsys", "locale",
    }
)  # fmt: skip

# Third-party modules in the image that *tool* code may import. hypothesis and pytest are there for tests.
THIRD_PARTY_TOOL_MODULES: frozenset[str] = frozenset()
TEST_MODULES: frozenset[str] = frozenset({"pytest", "hypothesis"})


def allowed_modules() -> frozenset[str]:
    """Every module name tool code may import (stdlib allow-list plus third-party tool modules)."""
    return ALLOWED_MODULES | THIRD_PARTY_TOOL_MODULES


def describe_for_prompt() -> str:
    """A short paragraph telling a model what the sandbox offers, for the code-writing prompts."""
    modules = ", ".join(sorted(allowed_modules()))
    return (
        f"Code runs in an isolated sandbox with CPython {PYTHON_VERSION} (Debian {DEBIAN_SUITE}), "
        "no network, no file system beyond a small scratch directory, and a short time limit. "
        f"The tool may import only these standard-library modules: {modules}. "
        "No third-party packages are available to the tool. "
        f"Tests use pytest {PYTEST_VERSION} and may also use hypothesis {HYPOTHESIS_VERSION}. "
        "The tests call the tool in a separate process: arguments and results cross as values (JSON-like "
        "types, tuples, sets, bytes, numbers, dates), exceptions keep their type and message, and patching the "
        "tool module from a test has no effect."
    )


def manifest_data() -> dict[str, object]:
    """The manifest as plain data, including the text of both Dockerfiles (they shape the image too)."""
    return {
        "debian_suite": DEBIAN_SUITE,
        "python_version": PYTHON_VERSION,
        "python_image": PYTHON_IMAGE,
        "pytest_version": PYTEST_VERSION,
        "hypothesis_version": HYPOTHESIS_VERSION,
        "debian_packages": list(DEBIAN_PACKAGES),
        "user": [SANDBOX_USER, SANDBOX_UID, SANDBOX_GID],
        "workdir": WORKDIR,
        "python_bin": PYTHON_BIN,
        "allowed_modules": sorted(allowed_modules()),
        "dockerfile": (IMAGE_DIR / "Dockerfile").read_text(encoding="utf-8"),
        "dockerfile_offline": (IMAGE_DIR / "Dockerfile.offline").read_text(encoding="utf-8"),
    }


def manifest_hash() -> str:
    """A short stable hash of the manifest; the image is labelled with it and rebuilt when it changes."""
    blob = json.dumps(manifest_data(), sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]
