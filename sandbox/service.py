"""The `Sandbox`: run a tool's tests, or call one of its functions, in a hardened throw-away container.

Each job gets a container of its own (from the warm pool, or started for it when the pool size is 0), is
sent to the in-container runner on the exec's stdin with a fresh nonce, and is answered by the runner's
nonce-tagged envelope. The container is destroyed after the job, whatever happened.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
from pydantic import ValidationError

from sandbox import container as ctr
from sandbox.errors import SandboxError
from sandbox.models import MAX_JSON_DEPTH, CallError, CallResult, TestReport, json_depth
from sandbox.pool import JobSlots, WarmPool
from sandbox.runner import MAX_JOB_BYTES
from sea.settings import Settings, get_settings

RUNNER_SOURCE = (Path(__file__).resolve().parent / "runner.py").read_text(encoding="utf-8")
# Every container's main process is the runner; the host talks to it over the attached stdin and stdout.
RUNNER_COMMAND = [ctr.PYTHON, "-I", "-B", "-c", RUNNER_SOURCE, "serve"]
READY_LINE = b"sea-runner-ready"
READY_TIMEOUT_S = 300.0
# Beyond the job's own timeout, the host allows this long for the runner to start and answer.
HOST_GRACE_S = 5.0
MESSAGE_CHARS = 2000
# The largest tool or test source accepted (a generated tool is a few kB); the whole job, arguments included,
# must also fit the runner's MAX_JOB_BYTES.
MAX_SOURCE_BYTES = 1024 * 1024
# The envelope nests a call's result two levels down ({"kind": ..., "result": {"ok": ..., "result": ...}}).
ENVELOPE_DEPTH = 2

_janitor_lock = threading.Lock()
_janitor_done = False


class Sandbox:
    """Runs untrusted tool code in hardened Docker containers. Thread-safe; one instance per process is
    enough (see `get_sandbox`). Docker is contacted, and the pool started, at the first job."""

    def __init__(self, settings: Settings | None = None, pool_size: int | None = None) -> None:
        self.settings = settings or get_settings()
        self.pool_size = self.settings.sandbox_pool_size if pool_size is None else pool_size
        if self.pool_size < 0:
            raise ValueError("pool_size must be >= 0")
        self._lock = threading.Lock()
        self._api: docker.APIClient | None = None
        self._image_id = ""
        self._spec: ctr.ContainerSpec | None = None
        self._pool: WarmPool | None = None
        self._closed = False
        self.instance_id = uuid.uuid4().hex  # labels this object's containers (sea.instance)
        # At most sandbox_max_jobs jobs hold a container at once; the rest queue in arrival order.
        self.job_slots = JobSlots(self.settings.sandbox_max_jobs)
        # Pool containers' runners fork a zygote, so a job's child starts with pytest already imported; a
        # container started for one job (pool size 0, or on demand when the pool is empty) has no zygote and
        # the runner spawns a fresh interpreter that imports only what the job needs. Both run inside the same
        # hardened container.
        self.use_zygote = self.pool_size > 0
        atexit.register(self.close)

    # -- public API -----------------------------------------------------------------------------------------
    def image_id(self) -> str:
        """The id of the image jobs run in (connects to Docker if needed)."""
        self._ensure_started()
        return self._image_id

    def run_tests(self, tool_code: str, test_code: str, *, timeout_s: float | None = None) -> TestReport:
        """Run `test_code` (as test_tool.py) against `tool_code` (as tool.py) with pytest in the sandbox."""
        _require_text(tool_code, "tool_code")
        _require_text(test_code, "test_code")
        timeout = self._timeout(timeout_s)
        started = time.monotonic()
        body = self._run_job({"mode": "tests", "tool_code": tool_code, "test_code": test_code}, timeout)
        duration_ms = round((time.monotonic() - started) * 1000.0, 1)
        if body.get("kind") == "tests" and isinstance(body.get("report"), dict):
            try:
                return TestReport.model_validate(
                    {**body["report"], "duration_ms": duration_ms, "image_id": self._image_id}
                )
            except ValidationError:
                body = {"kind": "host_error", "message": "The sandbox runner returned a malformed test report."}
        return TestReport(
            verdict=str(body.get("verdict", "error")),  # type: ignore[arg-type]
            message=str(body.get("message", "The sandbox returned no report.")),
            stderr=str(body.get("stderr", "")),
            duration_ms=duration_ms,
            image_id=self._image_id,
        )

    def call(
        self, tool_code: str, function_name: str, kwargs: dict[str, Any] | None = None, *,
        timeout_s: float | None = None,
    ) -> CallResult:
        """Call `function_name(**kwargs)` from `tool_code` (as tool.py) in the sandbox; JSON in, JSON out."""
        _require_text(tool_code, "tool_code")
        if not isinstance(function_name, str) or not function_name.isidentifier():
            raise ValueError(f"function_name must be a Python identifier, not {function_name!r}")
        kwargs = {} if kwargs is None else kwargs
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise ValueError("kwargs must be a JSON object (a dict with string keys)")
        if json_depth(kwargs) > MAX_JSON_DEPTH:
            raise ValueError(
                f"kwargs nest more than {MAX_JSON_DEPTH} levels of lists and objects, the most the sandbox "
                "accepts (or they contain themselves)"
            )
        try:
            kwargs = json.loads(json.dumps(kwargs, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"kwargs must be JSON-serialisable: {exc}") from None
        timeout = self._timeout(timeout_s)
        started = time.monotonic()
        job = {"mode": "call", "tool_code": tool_code, "function": function_name, "kwargs": kwargs}
        body = self._run_job(job, timeout)
        duration_ms = round((time.monotonic() - started) * 1000.0, 1)
        if body.get("kind") == "call" and isinstance(body.get("result"), dict):
            try:
                return CallResult.model_validate(
                    {**body["result"], "duration_ms": duration_ms, "image_id": self._image_id}
                )
            except ValidationError:
                body = {"kind": "host_error", "message": "The sandbox runner returned a malformed call result."}
        error_type = str(body.get("error_type") or "") or {"timeout": "Timeout", "oom": "OutOfMemory"}.get(
            str(body.get("verdict")), "SandboxError"
        )
        return CallResult(
            ok=False,
            error=CallError(type=error_type, message=str(body.get("message", "The sandbox returned nothing."))),
            stderr=str(body.get("stderr", "")),
            duration_ms=duration_ms,
            image_id=self._image_id,
        )

    async def arun_tests(self, tool_code: str, test_code: str, *, timeout_s: float | None = None) -> TestReport:
        """`run_tests` for asyncio callers (runs in a worker thread)."""
        return await asyncio.to_thread(self.run_tests, tool_code, test_code, timeout_s=timeout_s)

    async def acall(
        self, tool_code: str, function_name: str, kwargs: dict[str, Any] | None = None, *,
        timeout_s: float | None = None,
    ) -> CallResult:
        """`call` for asyncio callers (runs in a worker thread)."""
        return await asyncio.to_thread(self.call, tool_code, function_name, kwargs, timeout_s=timeout_s)

    def warm_up(self, timeout_s: float = 60.0) -> bool:
        """Start Docker and the pool now and wait until the pool is full; True if it is."""
        self._ensure_started()
        return self._pool.wait_ready(timeout_s=timeout_s) if self._pool else True

    def close(self) -> None:
        """Stop the pool and remove its containers. Safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------------------
    def _timeout(self, timeout_s: float | None) -> float:
        timeout = self.settings.sandbox_timeout_s if timeout_s is None else float(timeout_s)
        if not 0 < timeout <= 3600:
            raise ValueError(f"timeout_s must be between 0 and 3600 seconds, not {timeout_s!r}")
        return timeout

    def _ensure_started(self) -> tuple[docker.APIClient, ctr.ContainerSpec]:
        global _janitor_done
        with self._lock:
            if self._closed:
                raise SandboxError("The sandbox has been closed.")
            if self._api is None or self._spec is None:
                api = ctr.connect()
                image_id = ctr.resolve_image(api, self.settings.sandbox_image)
                with _janitor_lock:
                    if not _janitor_done:
                        ctr.janitor(api)
                        _janitor_done = True
                # Containers are created from the image id, so a rebuild mid-run cannot mix images in a pool.
                self._spec = ctr.ContainerSpec.from_settings(
                    self.settings, image=image_id, instance_id=self.instance_id
                )
                self._image_id = image_id
                self._api = api
                if self.pool_size > 0:
                    spec = self._spec
                    self._pool = WarmPool(
                        start=lambda: self._start(api, spec),
                        remove=lambda attached: self._destroy(api, attached),
                        size=self.pool_size,
                        acquire_timeout_s=self.settings.sandbox_acquire_timeout_s,
                        start_on_demand=lambda: self._start(api, spec, zygote=False),
                    )
            return self._api, self._spec

    @contextlib.contextmanager
    def _container(self) -> Iterator[ctr.AttachedContainer]:
        """One never-used, ready container for one job, destroyed afterwards whatever happens."""
        api, spec = self._ensure_started()
        pool = self._pool
        attached = pool.acquire() if pool is not None else self._start(api, spec)
        try:
            yield attached
        finally:
            if pool is not None:
                pool.discard(attached)
            else:
                self._destroy(api, attached)

    def _start(
        self, api: docker.APIClient, spec: ctr.ContainerSpec, zygote: bool | None = None
    ) -> ctr.AttachedContainer:
        """A container whose runner has said it is ready: with its zygote's imports done for the pool's
        refills, without a zygote for one job (pool size 0, or started on demand for a caller who found the
        pool empty: cheaper to start, and a job that needs pytest imports it itself)."""
        command = RUNNER_COMMAND + (["--preload"] if (self.use_zygote if zygote is None else zygote) else [])
        return ctr.start_attached(api, spec, command, READY_LINE, READY_TIMEOUT_S)

    @staticmethod
    def _destroy(api: docker.APIClient, attached: ctr.AttachedContainer) -> None:
        attached.close()
        ctr.remove_container(api, attached.id)

    def _run_job(self, job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one job to the runner of a fresh container; the envelope's body, or a host-made verdict."""
        nonce = secrets.token_hex(16)
        payload = {
            **job,
            "nonce": nonce,
            "job": f"job-{uuid.uuid4().hex[:12]}",
            "timeout_s": timeout_s,
            "output_bytes": self.settings.sandbox_output_bytes,
            "result_bytes": self.settings.sandbox_result_bytes,
            "memory_mb": self.settings.sandbox_memory_mb,
        }
        data = json.dumps(payload).encode("utf-8")
        if len(data) > MAX_JOB_BYTES:  # the runner would refuse it, after a container had been spent on it
            raise ValueError(
                f"The job is {len(data) / 2**20:.1f} MiB as JSON (code, tests and arguments together), over the "
                f"sandbox's limit of {MAX_JOB_BYTES // 2**20} MiB per job."
            )
        framed = str(len(data)).encode("ascii") + b"\n" + data
        self._ensure_started()
        # A job waits for a slot (at most SEA_SANDBOX_ACQUIRE_TIMEOUT_S), then for a container; only the jobs
        # holding a slot ask the pool for containers. Its own timeout starts once it has its container.
        with self.job_slots.slot(self.settings.sandbox_acquire_timeout_s):
            return self._run_in_container(framed, nonce, timeout_s)

    def _run_in_container(self, framed: bytes, nonce: str, timeout_s: float) -> dict[str, Any]:
        """Send the framed job to a fresh container's runner (a second one if the first died while idle)."""
        for attempt in range(2):
            api, _ = self._ensure_started()
            with self._container() as attached:
                deadline = time.monotonic() + timeout_s + HOST_GRACE_S
                try:
                    attached.send(framed, deadline)
                except OSError:
                    if attempt == 0:  # a warm container that died while idle: once more with another
                        continue
                    raise SandboxError("The sandbox container stopped before it could take the job.") from None
                body, noise = read_envelope(attached, nonce, deadline)
                if body is None and not attached.eof:
                    ctr.kill_container(api, attached.id)
                    return {
                        "kind": "host_error", "verdict": "timeout",
                        "message": f"The job did not finish within {timeout_s:g} s and its container was killed.",
                    }
                if body is None:
                    return self._explain_missing_envelope(api, attached, noise)
                if body.get("kind") == "host_error":
                    return body
                if body.get("kind") == "runner_error":
                    message = "The sandbox runner failed: " + str(body.get("message", ""))[:MESSAGE_CHARS]
                    return {"kind": "host_error", "verdict": "error", "message": message}
                return body
        raise SandboxError("The sandbox could not get a working container for the job.")

    def _explain_missing_envelope(
        self, api: docker.APIClient, attached: ctr.AttachedContainer, noise: int
    ) -> dict[str, Any]:
        stderr = attached.stderr_text()[-MESSAGE_CHARS:]
        state = ctr.container_state(api, attached.id)
        if state.get("OOMKilled"):
            message = f"The job ran out of memory ({self.settings.sandbox_memory_mb} MB) and was killed."
            return {"kind": "host_error", "verdict": "oom", "stderr": stderr, "message": message}
        message = "The sandbox container stopped during the job without a valid result envelope"
        if noise:
            message += f" ({noise} other lines on its output were ignored)"
        return {"kind": "host_error", "verdict": "error", "message": message + ".", "stderr": stderr}


def read_envelope(
    attached: ctr.AttachedContainer, nonce: str, deadline: float
) -> tuple[dict[str, Any] | None, int]:
    """The first stdout line carrying our nonce, parsed, and how many other lines were skipped.

    Only the runner knows the nonce, so a line that starts with it is the runner's. Untrusted code can still
    reach the container's stdout through the init's file descriptors; its lines cannot carry the nonce and
    are skipped. A nonce line that does not parse (someone wrote into the middle of it) ends the job as an
    error rather than a guess."""
    prefix = (nonce + " ").encode("ascii")
    noise = 0
    while True:
        line = attached.read_line(deadline)
        if line is None:
            return None, noise
        if line.startswith(prefix):
            body = parse_envelope(line + b"\n", nonce)
            if body is None:
                message = "The sandbox's result envelope was damaged, so the result was rejected."
                return {"kind": "host_error", "verdict": "error", "message": message}, noise
            return body, noise
        noise += 1


def clean_text(value: Any) -> Any:
    """Replace lone surrogates (from invalid UTF-8 or escapes) in every string, so reports always serialise."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        return value
    if isinstance(value, list):
        return [clean_text(item) for item in value]
    if isinstance(value, dict):
        return {clean_text(key): clean_text(item) for key, item in value.items()}
    return value


def parse_envelope(stdout: bytes, nonce: str) -> dict[str, Any] | None:
    """The runner's answer if stdout is exactly one well-formed envelope with our nonce, else None."""
    prefix = (nonce + " ").encode("ascii")
    if not stdout.startswith(prefix) or not stdout.endswith(b"\n") or stdout.count(b"\n") != 1:
        return None
    try:
        body = json.loads(stdout[len(prefix) :])
    except ValueError:
        return None
    except RecursionError:  # only a call's result can nest like this
        return _too_deep()
    if not isinstance(body, dict) or body.get("kind") not in ("tests", "call", "runner_error"):
        return None
    if json_depth(body, MAX_JSON_DEPTH + ENVELOPE_DEPTH) > MAX_JSON_DEPTH + ENVELOPE_DEPTH:
        return _too_deep()
    return clean_text(body)


def _too_deep() -> dict[str, Any]:
    """The host's answer for a result nested deeper than MAX_JSON_DEPTH (it is not read any further)."""
    return {
        "kind": "host_error", "verdict": "error", "error_type": "ResultNotJSON",
        "message": f"The result nests more than {MAX_JSON_DEPTH} levels of lists and objects, the most the "
        "sandbox accepts.",
    }


def _require_text(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string of Python source, not {type(value).__name__}")
    if "\x00" in value:
        raise ValueError(f"{name} contains NUL bytes, which Python source cannot contain")
    size = len(value) if len(value) * 4 <= MAX_SOURCE_BYTES else len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_SOURCE_BYTES:
        raise ValueError(
            f"{name} is {size / 2**20:.1f} MiB, over the sandbox's limit of {MAX_SOURCE_BYTES // 2**20} MiB "
            "per source file"
        )


_default_lock = threading.Lock()
_default: Sandbox | None = None


def get_sandbox() -> Sandbox:
    """The process-wide sandbox, configured from Settings; its pool starts at the first job."""
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            _default = Sandbox(get_settings())
        return _default
