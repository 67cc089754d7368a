"""The hardened Docker sandbox: run a tool's tests or call it, in a throw-away container from a warm pool."""

from sandbox.errors import SandboxError, SandboxUnavailableError
from sandbox.service import Sandbox, get_sandbox

__all__ = ["Sandbox", "SandboxError", "SandboxUnavailableError", "get_sandbox"]
