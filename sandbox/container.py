"""Hardened sandbox containers: their spec, start and forced removal, jobs exec'd in with a wall clock, and
the janitor that sweeps up after dead owners.

Every container gets the same hardening (see docs/sandbox.md, "Hardening"); code enters through an exec's
stdin, never through a bind mount.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import LogConfig, Ulimit

from sandbox.errors import SandboxError, daemon_unreachable, image_missing
from sea.settings import Settings

LABEL = "sea.sandbox"
LABEL_PID = "sea.owner_pid"
LABEL_HOST = "sea.owner_host"
LABEL_START = "sea.owner_start"
LABEL_CREATED = "sea.created"
NAME_PREFIX = "sea-sbx-"
SANDBOX_UID = 10001
SANDBOX_USER = f"{SANDBOX_UID}:{SANDBOX_UID}"
SANDBOX_WORKDIR = "/sandbox"
PYTHON = "/usr/bin/python3"
IDLE_ENTRYPOINT = ["sleep"]
IDLE_COMMAND = ["infinity"]
SHM_BYTES = 8 * 1024 * 1024
# The runner's own answer can exceed the output caps (JSON escaping, messages); this only guards host memory.
HOST_READ_CAP = 64 * 1024 * 1024

DOCKER_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


def connect(timeout_s: float = 60.0) -> docker.APIClient:
    """A low-level Docker client that has answered a ping; SandboxUnavailableError otherwise."""
    host = os.environ.get("DOCKER_HOST", "the default socket")
    try:
        client = docker.from_env(timeout=int(timeout_s), max_pool_size=32)
        client.api.ping()
    except DOCKER_ERRORS as exc:
        raise daemon_unreachable(f"{host}: {type(exc).__name__}") from None
    return client.api


def resolve_image(api: docker.APIClient, image: str) -> str:
    """The image's id; a SandboxUnavailableError naming the build command if it is missing."""
    try:
        return str(api.inspect_image(image)["Id"])
    except docker.errors.ImageNotFound:
        raise image_missing(image) from None
    except docker.errors.APIError as exc:
        if exc.status_code == 404:
            raise image_missing(image) from None
        raise SandboxError(f"Docker could not inspect the image {image}: {exc.explanation}") from None
    except DOCKER_ERRORS as exc:
        raise daemon_unreachable(type(exc).__name__) from None


def process_start_time(pid: int) -> str:
    """The kernel's start time of a process (clock ticks since boot), to tell a live owner from pid reuse."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def owner_labels() -> dict[str, str]:
    """Labels naming this process as the container's owner, for the janitor."""
    pid = os.getpid()
    return {
        LABEL: "1",
        LABEL_PID: str(pid),
        LABEL_HOST: socket.gethostname(),
        LABEL_START: process_start_time(pid),
        LABEL_CREATED: datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclass(frozen=True)
class ContainerSpec:
    """Everything a sandbox container is created with; limits come from Settings."""

    image: str
    memory_mb: int = 256
    cpus: float = 1.0
    pids: int = 64
    scratch_mb: int = 64
    nofile: int = 256
    labels: dict[str, str] = field(default_factory=owner_labels)

    @classmethod
    def from_settings(cls, settings: Settings, image: str | None = None) -> ContainerSpec:
        """The spec for `image` (default: the settings' image) with the settings' limits."""
        return cls(
            image=image or settings.sandbox_image,
            memory_mb=settings.sandbox_memory_mb,
            cpus=settings.sandbox_cpus,
            pids=settings.sandbox_pids,
            scratch_mb=settings.sandbox_scratch_mb,
            nofile=settings.sandbox_nofile,
        )

    def host_config(self, api: docker.APIClient) -> dict[str, Any]:
        """Docker's HostConfig: no network, read-only root, capped tmpfs, no capabilities, limits, init."""
        scratch = f"rw,nosuid,nodev,noexec,size={self.scratch_mb}m"
        memory = f"{self.memory_mb}m"
        file_bytes = self.scratch_mb * 1024 * 1024
        return api.create_host_config(
            network_mode="none",
            read_only=True,
            tmpfs={
                SANDBOX_WORKDIR: f"{scratch},uid={SANDBOX_UID},gid={SANDBOX_UID},mode=0700",
                "/tmp": f"{scratch},mode=1777",
            },
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"],  # Docker's default seccomp profile stays on
            pids_limit=self.pids,
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(self.cpus * 1_000_000_000),
            ulimits=[
                Ulimit(name="nofile", soft=self.nofile, hard=self.nofile),
                Ulimit(name="fsize", soft=file_bytes, hard=file_bytes),
                Ulimit(name="core", soft=0, hard=0),
            ],
            init=True,
            shm_size=SHM_BYTES,
            log_config=LogConfig(type="none"),
            privileged=False,
        )


def start_container(
    api: docker.APIClient,
    spec: ContainerSpec,
    main_command: list[str] | None = None,
    ready_marker: bytes | None = None,
    ready_timeout_s: float = 60.0,
) -> str:
    """Create and start one hardened container running `main_command` (default: `sleep infinity`) as its
    idle process under the init; returns its id. With `ready_marker`, also wait until the main process
    prints it on stdout (the zygote does once its imports are done). Removes the container if anything fails."""
    name = f"{NAME_PREFIX}{uuid.uuid4().hex}"
    entrypoint, command = (main_command, []) if main_command else (IDLE_ENTRYPOINT, IDLE_COMMAND)
    try:
        created = api.create_container(
            image=spec.image,
            entrypoint=entrypoint,
            command=command,
            name=name,
            user=SANDBOX_USER,
            working_dir=SANDBOX_WORKDIR,
            hostname="sandbox",
            labels=spec.labels,
            environment={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"},
            network_disabled=True,
            host_config=spec.host_config(api),
            detach=True,
        )
    except docker.errors.ImageNotFound:
        raise image_missing(spec.image) from None
    except docker.errors.APIError as exc:
        raise SandboxError(f"Docker could not create a sandbox container: {exc.explanation}") from None
    except DOCKER_ERRORS as exc:
        raise daemon_unreachable(type(exc).__name__) from None
    container_id = str(created["Id"])
    try:
        stdout = None
        if ready_marker:
            stdout = api.attach_socket(container_id, params={"stdout": 1, "stream": 1})
        api.start(container_id)
        if stdout is not None:
            _wait_for_marker(stdout, ready_marker or b"", ready_timeout_s)
    except BaseException as exc:
        remove_container(api, container_id)
        if isinstance(exc, docker.errors.APIError):
            raise SandboxError(f"Docker could not start a sandbox container: {exc.explanation}") from None
        if isinstance(exc, DOCKER_ERRORS):
            raise daemon_unreachable(type(exc).__name__) from None
        raise
    return container_id


def _wait_for_marker(handle: Any, marker: bytes, timeout_s: float) -> None:
    """Read a container's attached stdout until `marker` appears; SandboxError on EOF or timeout."""
    sock: socket.socket = getattr(handle, "_sock", handle)
    deadline = time.monotonic() + timeout_s
    seen = b""
    try:
        while marker not in seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxError(f"A sandbox container was not ready within {timeout_s:g} s.")
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                raise SandboxError(f"A sandbox container was not ready within {timeout_s:g} s.") from None
            if not chunk:
                raise SandboxError("A sandbox container's main process exited while starting.")
            seen = (seen + chunk)[-4096:]  # stream headers and all: the marker is plain ASCII inside
    finally:
        with contextlib.suppress(OSError):
            handle.close()
        with contextlib.suppress(OSError):
            sock.close()


def remove_container(api: docker.APIClient, container_id: str) -> bool:
    """Force-remove a container (kills it first); True if it was removed or already gone."""
    try:
        api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        return True
    except docker.errors.APIError as exc:
        # "removal already in progress" means someone else is finishing the job
        return exc.status_code == 409
    except DOCKER_ERRORS:
        return False
    return True


def kill_container(api: docker.APIClient, container_id: str) -> None:
    """SIGKILL everything in a container at once (its removal follows)."""
    with contextlib.suppress(*DOCKER_ERRORS):
        api.kill(container_id)


def container_state(api: docker.APIClient, container_id: str) -> dict[str, Any]:
    """The container's State (Running, OOMKilled, ExitCode...), or {} if it cannot be read."""
    try:
        return dict(api.inspect_container(container_id).get("State") or {})
    except DOCKER_ERRORS:
        return {}


def owner_alive(labels: dict[str, str]) -> bool:
    """Whether the process that owns a labelled container still runs on this host."""
    if labels.get(LABEL_HOST) != socket.gethostname():
        return True  # another host's container: not ours to judge
    try:
        pid = int(labels.get(LABEL_PID, ""))
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = labels.get(LABEL_START, "")
    return not started or process_start_time(pid) == started


def janitor(api: docker.APIClient, *, include_live: bool = False) -> int:
    """Remove labelled sandbox containers whose owner process is dead (or all of them); returns how many."""
    try:
        found = api.containers(all=True, filters={"label": f"{LABEL}=1"})
    except DOCKER_ERRORS as exc:
        raise daemon_unreachable(type(exc).__name__) from None
    removed = 0
    for info in found:
        labels = info.get("Labels") or {}
        if (include_live or not owner_alive(labels)) and remove_container(api, info["Id"]):
            removed += 1
    return removed


@dataclass
class ExecOutcome:
    """What came back from one exec: its (capped) stdout and stderr, and whether the wall clock ran out."""

    exec_id: str
    stdout: bytes = b""
    stderr: bytes = b""
    timed_out: bool = False
    truncated: bool = False
    elapsed_s: float = 0.0


def exec_with_stdin(
    api: docker.APIClient,
    container_id: str,
    command: list[str],
    payload: bytes,
    timeout_s: float,
    environment: dict[str, str] | None = None,
) -> ExecOutcome:
    """Run `command` in the container with `payload` on its stdin, reading its output until it ends or the
    wall clock runs out (docker-py's exec has no timeout of its own; the caller kills the container then)."""
    started = time.monotonic()
    deadline = started + timeout_s
    exec_id = str(
        api.exec_create(
            container_id, command, stdin=True, stdout=True, stderr=True, tty=False,
            user=SANDBOX_USER, workdir=SANDBOX_WORKDIR, environment=environment or {},
        )["Id"]
    )
    outcome = ExecOutcome(exec_id=exec_id)
    handle = api.exec_start(exec_id, socket=True)
    sock: socket.socket = getattr(handle, "_sock", handle)
    streams = {1: bytearray(), 2: bytearray()}
    pending = bytearray()
    try:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)  # EOF on the runner's stdin
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome.timed_out = True
                break
            sock.settimeout(remaining)
            chunk = sock.recv(262144)
            if not chunk:
                break
            pending += chunk
            # Docker's multiplexed stream: 8-byte header (stream id, 3 zero bytes, big-endian size), then data
            while len(pending) >= 8:
                size = int.from_bytes(pending[4:8], "big")
                if len(pending) < 8 + size:
                    break
                stream_id = pending[0]
                data = pending[8 : 8 + size]
                del pending[: 8 + size]
                target = streams.get(stream_id)
                if target is None:
                    continue
                room = HOST_READ_CAP - len(target)
                if room < len(data):
                    outcome.truncated = True
                target += data[: max(0, room)]
    except TimeoutError:
        outcome.timed_out = True
    except OSError as exc:
        raise SandboxError(f"The connection to the sandbox broke during the job: {exc}") from None
    finally:
        with contextlib.suppress(OSError):
            handle.close()
        with contextlib.suppress(OSError):
            sock.close()
    outcome.stdout = bytes(streams[1])
    outcome.stderr = bytes(streams[2])
    outcome.elapsed_s = time.monotonic() - started
    return outcome
