"""Errors of the sandbox. Each carries one clear sentence meant for a user, never a traceback."""

from __future__ import annotations


class SandboxError(Exception):
    """Any failure of the sandbox itself (not of the code it runs)."""


class SandboxUnavailableError(SandboxError):
    """The sandbox cannot run code: Docker unreachable, image missing, or the warm pool exhausted."""


BUILD_COMMAND = "python -m sandbox build-image"


def daemon_unreachable(detail: str = "") -> SandboxUnavailableError:
    """The error for a Docker daemon that does not answer."""
    where = f" ({detail})" if detail else ""
    return SandboxUnavailableError(
        f"The Docker daemon is unreachable{where}: start Docker or point DOCKER_HOST at it; "
        "generated code is never run outside the sandbox."
    )


def image_missing(image: str) -> SandboxUnavailableError:
    """The error for a sandbox image that has not been built."""
    return SandboxUnavailableError(
        f"The sandbox image {image} is missing: build it with `{BUILD_COMMAND}`."
    )


def pool_exhausted(waited_s: float, detail: str = "") -> SandboxUnavailableError:
    """The error for a job that waited too long for a warm container."""
    why = f" (last start failure: {detail})" if detail else ""
    return SandboxUnavailableError(
        f"The sandbox pool is exhausted: no warm container became free within {waited_s:g} s{why}; "
        "raise SEA_SANDBOX_POOL_SIZE or SEA_SANDBOX_ACQUIRE_TIMEOUT_S, or retry."
    )
