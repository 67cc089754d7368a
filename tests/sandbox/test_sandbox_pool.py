"""Containers, their hardening, the warm pool and the janitor, against the real Docker engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import docker
import docker.errors
import pytest

from sandbox import Sandbox, SandboxUnavailableError
from sandbox import container as ctr
from sandbox.errors import daemon_unreachable
from sandbox.pool import WarmPool
from sea.settings import Settings

pytestmark = [pytest.mark.docker]

REPO_ROOT = Path(__file__).resolve().parents[2]


def exists(api: docker.APIClient, container_id: str) -> bool:
    try:
        api.inspect_container(container_id)
    except docker.errors.NotFound:
        return False
    return True


def wait_gone(api: docker.APIClient, ids: list[str], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(exists(api, cid) for cid in ids):
            return True
        time.sleep(0.2)
    return False


# --- hardening -------------------------------------------------------------------------------------------


def test_every_container_is_created_hardened(
    sandbox: Sandbox, sandbox_settings: Settings, docker_api: docker.APIClient
) -> None:
    spec = ctr.ContainerSpec.from_settings(sandbox_settings, image=sandbox.image_id())
    container_id = ctr.start_container(docker_api, spec)
    try:
        info = docker_api.inspect_container(container_id)
    finally:
        ctr.remove_container(docker_api, container_id)
    host = info["HostConfig"]
    config = info["Config"]
    assert host["NetworkMode"] == "none" and config.get("NetworkDisabled") is True
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["SecurityOpt"] == ["no-new-privileges:true"]  # and no seccomp=unconfined
    assert host["Privileged"] is False
    assert host["PidsLimit"] == sandbox_settings.sandbox_pids
    memory = sandbox_settings.sandbox_memory_mb * 1024 * 1024
    assert host["Memory"] == memory and host["MemorySwap"] == memory
    assert host["NanoCpus"] == int(sandbox_settings.sandbox_cpus * 1e9)
    assert host["Init"] is True
    assert host["ShmSize"] == ctr.SHM_BYTES
    assert not host.get("Binds") and not info.get("Mounts")
    ulimits = {u["Name"]: (u["Soft"], u["Hard"]) for u in host["Ulimits"]}
    assert ulimits["core"] == (0, 0)
    assert ulimits["nofile"] == (sandbox_settings.sandbox_nofile,) * 2
    assert ulimits["fsize"] == (sandbox_settings.sandbox_scratch_mb * 1024 * 1024,) * 2
    assert ulimits["nproc"] == (sandbox_settings.sandbox_pids,) * 2  # the container's uid is its own
    for path in ("/sandbox", "/tmp"):
        options = host["Tmpfs"][path].split(",")
        assert {"nosuid", "nodev", "noexec", f"size={sandbox_settings.sandbox_scratch_mb}m"} <= set(options)
    uid, gid = (int(part) for part in config["User"].split(":"))
    assert uid == gid and ctr.JOB_UID_FIRST <= uid < ctr.JOB_UID_FIRST + ctr.JOB_UID_COUNT
    assert f"uid={uid}" in host["Tmpfs"]["/sandbox"].split(",")
    assert info["Name"].startswith("/sea-sbx-")
    labels = config["Labels"]
    assert labels["sea.sandbox"] == "1" and labels["sea.owner_pid"] == str(os.getpid())
    assert labels["sea.owner_host"] and labels["sea.created"] and labels["sea.owner_start"]


INSIDE_TOOL = """\
import os
import resource


def inside():
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    mounts = {}
    for line in open("/proc/mounts"):
        device, point, kind, options = line.split()[:4]
        mounts[point] = (kind, options.split(","))
    interfaces = [line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]]
    return {
        "uid": os.getuid(), "gid": os.getgid(),
        "seccomp": status["Seccomp"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
        "cap_eff": status["CapEff"].strip(), "cap_bnd": status["CapBnd"].strip(),
        "root": mounts["/"], "sandbox": mounts["/sandbox"], "tmp": mounts["/tmp"],
        "interfaces": interfaces,
        "core": resource.getrlimit(resource.RLIMIT_CORE),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
        "fsize": resource.getrlimit(resource.RLIMIT_FSIZE),
        "pid1": open("/proc/1/cmdline", "rb").read().split(b"\\0")[0].decode(),
        "docker_socket": os.path.exists("/var/run/docker.sock"),
        "environ": sorted(os.environ),
    }
"""


def test_what_the_code_sees_inside(sandbox: Sandbox, sandbox_settings: Settings) -> None:
    result = sandbox.call(INSIDE_TOOL, "inside", {})
    assert result.ok, result.error
    seen = result.result
    assert seen["uid"] == seen["gid"] and ctr.JOB_UID_FIRST <= seen["uid"] < ctr.JOB_UID_FIRST + ctr.JOB_UID_COUNT
    assert seen["seccomp"] == "2"  # filter mode: Docker's default profile
    assert seen["no_new_privs"] == "1"
    assert int(seen["cap_eff"], 16) == 0 and int(seen["cap_bnd"], 16) == 0
    assert "ro" in seen["root"][1]
    for mount in ("sandbox", "tmp"):
        kind, options = seen[mount]
        assert kind == "tmpfs" and {"nosuid", "nodev", "noexec"} <= set(options)
    assert seen["interfaces"] == ["lo"]
    assert seen["core"] == [0, 0]
    assert seen["nofile"] == [sandbox_settings.sandbox_nofile] * 2
    assert seen["fsize"] == [sandbox_settings.sandbox_scratch_mb * 1024 * 1024] * 2
    assert seen["pid1"].endswith("docker-init")
    assert seen["docker_socket"] is False
    assert not [name for name in seen["environ"] if name.startswith("SEA_")]  # no nonce, no channel fd


# --- the warm pool ---------------------------------------------------------------------------------------


def test_a_real_pool_hands_out_each_container_once_and_removes_it(
    sandbox: Sandbox, sandbox_settings: Settings, docker_api: docker.APIClient
) -> None:
    spec = ctr.ContainerSpec.from_settings(sandbox_settings, image=sandbox.image_id())
    pool = WarmPool(
        start=lambda: ctr.start_container(docker_api, spec),
        remove=lambda cid: ctr.remove_container(docker_api, cid),
        size=2,
        acquire_timeout_s=60,
    )
    handed_out: list[str] = []
    try:
        assert pool.wait_ready(timeout_s=60)
        for _ in range(4):
            container_id = pool.acquire()
            assert docker_api.inspect_container(container_id)["State"]["Running"]
            handed_out.append(container_id)
            pool.discard(container_id)
        assert len(set(handed_out)) == 4  # never the same container twice
        assert wait_gone(docker_api, handed_out)  # used containers are destroyed in the background
        assert pool.wait_ready(timeout_s=60)  # and the pool refills
        ready = list(pool._ready)
    finally:
        pool.close()
    assert wait_gone(docker_api, ready, timeout_s=5)  # close removed the idle ones


@pytest.mark.parametrize("on_demand", [False, True], ids=["warm-only", "with-on-demand-starts"])
def test_an_exhausted_pool_says_so_after_a_bounded_wait(on_demand: bool) -> None:
    release = threading.Event()

    def stuck_start() -> str:  # fault injection: Docker never finishes starting a container
        release.wait(10)
        raise daemon_unreachable("test")

    pool = WarmPool(
        start=stuck_start, remove=lambda cid: None, size=1, acquire_timeout_s=0.5,
        start_on_demand=stuck_start if on_demand else None,
    )
    started = time.monotonic()
    try:
        with pytest.raises(SandboxUnavailableError, match="pool is exhausted"):
            pool.acquire()
        assert time.monotonic() - started < 5
    finally:
        release.set()
        pool.close()


def test_a_pool_that_cannot_start_containers_reports_why_at_once() -> None:
    def failing_start() -> str:  # fault injection: the daemon went away
        raise daemon_unreachable("test")

    pool = WarmPool(start=failing_start, remove=lambda cid: None, size=1, acquire_timeout_s=30)
    time.sleep(0.3)
    started = time.monotonic()
    try:
        with pytest.raises(SandboxUnavailableError, match="Docker daemon is unreachable"):
            pool.acquire()
        assert time.monotonic() - started < 5
    finally:
        pool.close()


def test_close_removes_the_pool_containers(
    sandbox_settings: Settings, docker_api: docker.APIClient, own_containers
) -> None:
    sb = Sandbox(sandbox_settings, pool_size=2)
    assert sb.warm_up(timeout_s=60)
    assert sb._pool is not None
    pooled = [attached.id for attached in sb._pool._ready]
    assert len(pooled) == 2 and set(pooled) <= set(own_containers())
    sb.close()
    assert not any(exists(docker_api, cid) for cid in pooled)


# --- the janitor -----------------------------------------------------------------------------------------


def test_the_janitor_removes_only_containers_of_dead_owners(
    sandbox: Sandbox, sandbox_settings: Settings, docker_api: docker.APIClient
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    labels = ctr.owner_labels()
    dead_labels = dict(labels, **{ctr.LABEL_PID: str(dead.pid), ctr.LABEL_START: "1"})
    image = sandbox.image_id()
    orphan = ctr.start_container(docker_api, ctr.ContainerSpec(image=image, labels=dead_labels))
    mine = ctr.start_container(docker_api, ctr.ContainerSpec(image=image, labels=labels))
    try:
        removed = ctr.janitor(docker_api)
        assert removed >= 1
        assert not exists(docker_api, orphan)
        assert exists(docker_api, mine)
    finally:
        ctr.remove_container(docker_api, orphan)
        ctr.remove_container(docker_api, mine)


KILLED_OWNER = """\
import sys, time
from sandbox import Sandbox
from sea.settings import Settings

sb = Sandbox(Settings(), pool_size=1)
sb.warm_up(timeout_s=60)
print("ready", flush=True)
sb.call("import time\\n\\ndef wait():\\n    time.sleep(120)\\n", "wait", {}, timeout_s=120)
"""


def test_containers_of_a_killed_host_process_are_swept_by_the_janitor(
    sandbox: Sandbox, docker_api: docker.APIClient, tmp_path: Path
) -> None:
    env = dict(os.environ, SEA_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO_ROOT))
    owner = subprocess.Popen(
        [sys.executable, "-c", KILLED_OWNER], env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # the job is running in one container, the refill in another
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    label = [f"{ctr.LABEL}=1", f"{ctr.LABEL_PID}={owner.pid}"]
    left = [c["Id"] for c in docker_api.containers(all=True, filters={"label": label})]
    assert left, "a SIGKILLed owner leaves its containers behind (no finally ran)"
    assert ctr.janitor(docker_api) >= len(left)
    assert not docker_api.containers(all=True, filters={"label": label})


def test_labels_name_this_process() -> None:
    labels = ctr.owner_labels()
    assert labels[ctr.LABEL_PID] == str(os.getpid())
    assert ctr.owner_alive(labels)
    assert not ctr.owner_alive(dict(labels, **{ctr.LABEL_START: "0"}))  # a reused pid is not the owner
    json.dumps(labels)
