"""Hardened sandbox containers: their spec, start and forced removal, jobs exec'd in with a wall clock, and
the janitor that sweeps up after dead owners.

Every container gets the same hardening (see docs/sandbox.md, "Hardening"); code enters through an exec's
stdin, never through a bind mount.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
import uuid
from collections import deque
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
LABEL_INSTANCE = "sea.instance"  # one Sandbox object: tells its containers from other pools of the same process
NAME_PREFIX = "sea-sbx-"
# Every container runs as a uid of its own, drawn from this range (no account on the host has one), so what
# the kernel counts per user (processes, inotify instances and watches, message queues, keys) is counted per
# job: one job that exhausts such a limit cannot starve the next one.
JOB_UID_FIRST = 200_000
JOB_UID_COUNT = 1 << 24
SANDBOX_WORKDIR = "/sandbox"
PYTHON = "/usr/bin/python3"
IDLE_ENTRYPOINT = ["sleep"]
IDLE_COMMAND = ["infinity"]
SHM_BYTES = 8 * 1024 * 1024
# The runner's own answer can exceed the output caps (JSON escaping, messages); this only guards host memory.
HOST_READ_CAP = 64 * 1024 * 1024
STDERR_CAP = 64 * 1024

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
    def from_settings(
        cls, settings: Settings, image: str | None = None, instance_id: str = ""
    ) -> ContainerSpec:
        """The spec for `image` (default: the settings' image) with the settings' limits."""
        return cls(
            labels={**owner_labels(), LABEL_INSTANCE: instance_id},
            image=image or settings.sandbox_image,
            memory_mb=settings.sandbox_memory_mb,
            cpus=settings.sandbox_cpus,
            pids=settings.sandbox_pids,
            scratch_mb=settings.sandbox_scratch_mb,
            nofile=settings.sandbox_nofile,
        )

    def host_config(self, api: docker.APIClient, uid: int) -> dict[str, Any]:
        """Docker's HostConfig for a container running as `uid`: no network, read-only root, capped tmpfs
        owned by `uid`, no capabilities, limits, init."""
        scratch = f"rw,nosuid,nodev,noexec,size={self.scratch_mb}m"
        memory = f"{self.memory_mb}m"
        file_bytes = self.scratch_mb * 1024 * 1024
        return api.create_host_config(
            network_mode="none",
            read_only=True,
            tmpfs={
                SANDBOX_WORKDIR: f"{scratch},uid={uid},gid={uid},mode=0700",
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
                Ulimit(name="nproc", soft=self.pids, hard=self.pids),  # the uid is the job's own
            ],
            init=True,
            shm_size=SHM_BYTES,
            log_config=LogConfig(type="none"),
            privileged=False,
        )


def start_container(
    api: docker.APIClient, spec: ContainerSpec, main_command: list[str] | None = None
) -> str:
    """Create and start one hardened container running `main_command` (default: `sleep infinity`) under the
    init; returns its id. Removes the container again if the start fails."""
    container_id = _create(api, spec, main_command or [*IDLE_ENTRYPOINT, *IDLE_COMMAND], stdin_open=False)
    try:
        api.start(container_id)
    except BaseException as exc:
        remove_container(api, container_id)
        raise _start_error(exc) from None
    return container_id


def start_attached(
    api: docker.APIClient, spec: ContainerSpec, main_command: list[str], ready_line: bytes, ready_timeout_s: float
) -> AttachedContainer:
    """Start a hardened container whose main process (the runner) talks to us over its attached stdin and
    stdout, and wait until it prints `ready_line`. Attaching happens before the start, so no output is
    lost; afterwards a job needs no Docker API call at all. Removes the container if anything fails."""
    container_id = _create(api, spec, main_command, stdin_open=True)
    attached: AttachedContainer | None = None
    try:
        handle = api.attach_socket(container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        attached = AttachedContainer(container_id, handle)
        api.start(container_id)
        line = attached.read_line(time.monotonic() + ready_timeout_s)
        if line is None:
            raise SandboxError(
                f"A sandbox container did not become ready within {ready_timeout_s:g} s"
                + (f": {attached.stderr_text()[-300:]}" if attached.stderr else ".")
            )
        if line != ready_line:
            raise SandboxError(f"A sandbox container started with unexpected output: {line[:200]!r}.")
    except BaseException as exc:
        if attached is not None:
            attached.close()
        remove_container(api, container_id)
        raise _start_error(exc) from None
    return attached


def job_uid() -> int:
    """A fresh uid for one container, from the job range (collisions are 1 in 16 million per pair)."""
    return JOB_UID_FIRST + secrets.randbelow(JOB_UID_COUNT)


def _create(api: docker.APIClient, spec: ContainerSpec, command: list[str], *, stdin_open: bool) -> str:
    name = f"{NAME_PREFIX}{uuid.uuid4().hex}"
    uid = job_uid()
    try:
        created = api.create_container(
            image=spec.image,
            entrypoint=command[:1],
            command=command[1:],
            name=name,
            user=f"{uid}:{uid}",
            working_dir=SANDBOX_WORKDIR,
            hostname="sandbox",
            labels=spec.labels,
            environment={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"},
            network_disabled=True,
            stdin_open=stdin_open,
            tty=False,
            host_config=spec.host_config(api, uid),
            detach=True,
        )
    except docker.errors.ImageNotFound:
        raise image_missing(spec.image) from None
    except docker.errors.APIError as exc:
        raise SandboxError(f"Docker could not create a sandbox container: {exc.explanation}") from None
    except DOCKER_ERRORS as exc:
        raise daemon_unreachable(type(exc).__name__) from None
    return str(created["Id"])


def _start_error(exc: BaseException) -> BaseException:
    if isinstance(exc, SandboxError):
        return exc
    if isinstance(exc, docker.errors.APIError):
        return SandboxError(f"Docker could not start a sandbox container: {exc.explanation}")
    if isinstance(exc, DOCKER_ERRORS):
        return daemon_unreachable(type(exc).__name__)
    return exc


class AttachedContainer:
    """A started container and the hijacked connection to its main process's stdin, stdout and stderr.

    Docker multiplexes stdout and stderr on the connection (an 8-byte header per frame: stream id, three
    zero bytes, big-endian size). stdout is kept for whole lines; stderr only up to a cap, for diagnostics.
    """

    def __init__(self, container_id: str, handle: Any) -> None:
        self.id = container_id
        self._handle = handle
        self._sock: socket.socket = getattr(handle, "_sock", handle)
        self._pending = bytearray()
        self._partial = bytearray()  # the stdout line being received
        self._lines: deque[bytes] = deque()
        self.stderr = bytearray()
        self.truncated = False
        self.eof = False

    def send(self, data: bytes, deadline: float) -> None:
        """Write to the main process's stdin; OSError if the connection broke."""
        self._sock.settimeout(max(0.001, deadline - time.monotonic()))
        self._sock.sendall(data)

    def read_line(self, deadline: float) -> bytes | None:
        """The next whole stdout line (without its newline); None at EOF or when the deadline passes."""
        while not self._lines:
            if self.eof or not self._pump(deadline):
                return None
        return self._lines.popleft()

    def _pump(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(262144)
        except TimeoutError:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self._pending += chunk
        while len(self._pending) >= 8:
            size = int.from_bytes(self._pending[4:8], "big")
            if len(self._pending) < 8 + size:
                break
            stream_id = self._pending[0]
            data = bytes(self._pending[8 : 8 + size])
            del self._pending[: 8 + size]
            if stream_id == 1:
                self._take_stdout(data)
            elif stream_id == 2:
                room = STDERR_CAP - len(self.stderr)
                self.truncated |= room < len(data)
                self.stderr += data[: max(0, room)]
        return True

    def _take_stdout(self, data: bytes) -> None:
        *complete, rest = data.split(b"\n")
        for piece in complete:
            self._partial += piece
            self._lines.append(bytes(self._partial))
            self._partial.clear()
        self._partial += rest
        if len(self._partial) > HOST_READ_CAP:  # a line this long is nobody's envelope: drop it
            self._partial.clear()
            self.truncated = True

    def stderr_text(self) -> str:
        """What the main process wrote to stderr, as text."""
        return bytes(self.stderr).decode("utf-8", errors="replace")

    def close(self) -> None:
        """Drop the connection (the container itself is removed separately)."""
        with contextlib.suppress(OSError):
            self._handle.close()
        with contextlib.suppress(OSError):
            self._sock.close()


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
