"""The warm pool's on-demand starts, against the real Docker engine.

A caller who finds the pool empty gets a plain container started for it and takes whichever container is ready
first; the other stays in the pool for the next caller. The containers are real; the only fakes are gates that
hold a start back (a slow or stuck Docker) or make it fail (Docker gone), to put the pool in the state a test
needs.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import docker
import pytest

from sandbox import Sandbox, SandboxError, SandboxUnavailableError
from sandbox import container as ctr
from sandbox.errors import daemon_unreachable
from sandbox.pool import WarmPool
from sea.settings import Settings

pytestmark = [pytest.mark.docker]

TRACE_TOOL = """\
import os


def trace(tag):
    seen = sorted(os.listdir("/sandbox")) + sorted(os.listdir("/tmp"))
    leftovers = [name for name in seen if name.startswith("mark-")]
    for folder in ("/sandbox", "/tmp"):
        with open(os.path.join(folder, "mark-" + tag), "w") as handle:
            handle.write(tag)
    with open("/proc/self/cgroup") as handle:
        container = handle.read().strip().splitlines()[-1].rsplit("/", 1)[-1]
    return {"tag": tag, "leftovers": leftovers, "container": container}
"""

ADD_TOOL = "def add(a, b):\n    return a + b\n"
ADD_TESTS = """\
from tool import add


def test_add():
    assert add(1, 2) == 3


def test_neg():
    assert add(-1, 1) == 0
"""


class Gate:
    """Fault injection around a real container start: holds each start until released (a slow or stuck
    Docker). Counts the starts it has let in; its `Starts` counts how many of all gates' starts ran at once."""

    def __init__(self, owner: Starts, held: bool = True) -> None:
        self._owner = owner
        self._open = threading.Event()
        if not held:
            self._open.set()
        self.entered = 0
        self.started: list[str] = []

    def release(self) -> None:
        self._open.set()

    def __call__(self) -> str:
        with self._owner.lock:
            self.entered += 1
            self._owner.running += 1
            self._owner.max_running = max(self._owner.max_running, self._owner.running)
        try:
            self._open.wait(60)
            container_id = ctr.start_container(self._owner.api, self._owner.spec)
            with self._owner.lock:
                self.started.append(container_id)
            return container_id
        finally:
            with self._owner.lock:
                self._owner.running -= 1


class Starts:
    """Real containers, labelled for one test, started through gates."""

    def __init__(self, api: docker.APIClient, image: str) -> None:
        self.api = api
        self.tag = uuid.uuid4().hex
        self.spec = ctr.ContainerSpec(image=image, labels={**ctr.owner_labels(), ctr.LABEL_INSTANCE: self.tag})
        self.gates: list[Gate] = []
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0

    def gate(self, held: bool = True) -> Gate:
        gate = Gate(self, held=held)
        self.gates.append(gate)
        return gate

    def remove(self, container_id: str) -> None:
        ctr.remove_container(self.api, container_id)

    def release_all(self) -> None:
        for gate in self.gates:
            gate.release()

    def alive(self) -> list[str]:
        found = self.api.containers(all=True, filters={"label": f"{ctr.LABEL_INSTANCE}={self.tag}"})
        return [str(info["Id"]) for info in found]

    def running_state(self, container_id: str) -> bool:
        return bool(self.api.inspect_container(container_id)["State"]["Running"])


@pytest.fixture()
def starts(sandbox: Sandbox, docker_api: docker.APIClient) -> Iterator[Starts]:
    made = Starts(docker_api, sandbox.image_id())
    yield made
    made.release_all()
    for container_id in made.alive():  # only if a test failed half-way
        ctr.remove_container(docker_api, container_id)


def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def in_thread(target: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["value"] = target()
        except BaseException as exc:  # handed to the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


# --- the pool logic with real containers --------------------------------------------------------------------


def test_a_caller_who_finds_the_pool_empty_gets_a_container_started_on_demand(starts: Starts) -> None:
    warm = starts.gate(held=True)  # the warm refill is stuck
    plain = starts.gate(held=False)
    pool = WarmPool(start=warm, remove=starts.remove, size=1, acquire_timeout_s=60, start_on_demand=plain)
    try:
        assert wait_until(lambda: warm.entered == 1)
        container_id = pool.acquire()
        assert plain.started == [container_id] and starts.running_state(container_id)
        assert pool.on_demand_total == 1 and warm.entered == 1
        pool.discard(container_id)
        assert wait_until(lambda: container_id not in starts.alive())  # used once, then removed
    finally:
        starts.release_all()
        pool.close()
    assert starts.alive() == []
    assert pool.started_total == pool.removed_total == 2


def test_whichever_container_is_ready_first_serves_the_caller_and_the_other_the_next(starts: Starts) -> None:
    warm = starts.gate(held=True)
    plain = starts.gate(held=True)
    pool = WarmPool(
        start=warm, remove=starts.remove, size=1, acquire_timeout_s=60, start_on_demand=plain,
        calm_after_s=3600,  # once a caller found the pool empty, it stays under pressure for this test
    )
    try:
        assert wait_until(lambda: warm.entered == 1)
        caller, got = in_thread(pool.acquire)
        assert wait_until(lambda: plain.entered == 1)  # the waiting caller had a container started for it
        warm.release()  # ...but the warm one is ready first
        caller.join(60)
        first = got["value"]
        assert warm.started == [first]
        plain.release()
        assert wait_until(lambda: pool.ready_count() == 1)  # the caller's own container waits in the pool
        second = pool.acquire(timeout_s=0.5)
        assert plain.started == [second] and second != first
        assert wait_until(lambda: pool.ready_count() == 1)  # under pressure the refill is a plain container
        assert (warm.entered, plain.entered) == (1, 2)
        for container_id in (first, second):
            pool.discard(container_id)
    finally:
        starts.release_all()
        pool.close()
    assert starts.alive() == []
    assert pool.started_total == pool.removed_total == 3


def test_once_calm_the_pool_replaces_plain_leftovers_with_warm_containers(starts: Starts) -> None:
    warm = starts.gate(held=True)
    plain = starts.gate(held=True)
    pool = WarmPool(
        start=warm, remove=starts.remove, size=1, acquire_timeout_s=60, start_on_demand=plain, calm_after_s=0.2
    )
    try:
        assert wait_until(lambda: warm.entered == 1)
        caller, got = in_thread(pool.acquire)
        assert wait_until(lambda: plain.entered == 1)
        warm.release()
        caller.join(60)
        first = got["value"]
        assert warm.started == [first]
        pool.discard(first)  # type: ignore[arg-type]
        plain.release()  # the caller's plain container arrives when nobody needs it
        assert pool.wait_ready(1, timeout_s=60)  # a warm container...
        assert wait_until(lambda: len(plain.started) == 1 and plain.started[0] not in starts.alive())
        assert pool.ready_count() == 1 and warm.entered == 2  # ...instead of the plain one, now removed
    finally:
        starts.release_all()
        pool.close()
    assert starts.alive() == []
    assert pool.started_total == pool.removed_total == 3


def test_starts_never_exceed_the_cap_and_every_caller_gets_its_own_container(starts: Starts) -> None:
    warm = starts.gate(held=True)
    plain = starts.gate(held=True)
    pool = WarmPool(
        start=warm, remove=starts.remove, size=1, acquire_timeout_s=120, parallel_starts=2, start_on_demand=plain
    )
    callers = []
    try:
        assert wait_until(lambda: warm.entered == 1)
        callers = [in_thread(pool.acquire) for _ in range(4)]
        assert wait_until(lambda: plain.entered == 1)
        time.sleep(0.3)
        assert (warm.entered, plain.entered) == (1, 1)  # one slot taken by the refill, one by a caller
        assert pool.starts_in_flight() == 2
        starts.release_all()
        for thread, _ in callers:
            thread.join(120)
        got = [out.get("value") for _, out in callers]
        assert all(isinstance(container_id, str) for container_id in got), [out for _, out in callers]
        assert len(set(got)) == 4  # never the same container twice
        assert starts.max_running <= 2  # refills and on-demand starts together
        for container_id in got:
            pool.discard(container_id)  # type: ignore[arg-type]
    finally:
        starts.release_all()
        pool.close()
    assert starts.alive() == []
    assert pool.started_total == pool.removed_total


def test_waiting_callers_are_served_in_arrival_order(starts: Starts) -> None:
    warm = starts.gate(held=True)
    plain = starts.gate(held=True)
    pool = WarmPool(start=warm, remove=starts.remove, size=1, acquire_timeout_s=60, start_on_demand=plain)
    callers = []
    try:
        assert wait_until(lambda: warm.entered == 1)
        for count in (1, 2, 3):
            callers.append(in_thread(pool.acquire))
            assert wait_until(lambda count=count: len(pool._queue) == count)
        warm.release()  # one container for three waiting callers: the first one gets it
        callers[0][0].join(60)
        assert callers[0][1].get("value") == warm.started[0]
        assert all(thread.is_alive() for thread, _ in callers[1:])
        plain.release()
        for thread, _ in callers[1:]:
            thread.join(60)
        got = [out.get("value") for _, out in callers]
        assert len(set(got)) == 3 and set(got[1:]) <= set(plain.started)
        for container_id in got:
            pool.discard(container_id)  # type: ignore[arg-type]
    finally:
        starts.release_all()
        pool.close()
    assert starts.alive() == []
    assert pool.started_total == pool.removed_total


def test_close_removes_containers_that_were_still_starting(starts: Starts) -> None:
    warm = starts.gate(held=True)
    plain = starts.gate(held=True)
    pool = WarmPool(start=warm, remove=starts.remove, size=1, acquire_timeout_s=60, start_on_demand=plain)
    caller, got = in_thread(pool.acquire)
    assert wait_until(lambda: plain.entered == 1 and warm.entered == 1)
    threading.Timer(0.5, starts.release_all).start()  # the starts finish while close is waiting for them
    pool.close()
    caller.join(10)
    assert isinstance(got.get("error"), SandboxError) and "closed" in str(got["error"])
    assert len(warm.started) == 1 and len(plain.started) == 1
    assert starts.alive() == []
    assert pool.started_total == pool.removed_total == 2


def test_an_on_demand_start_failure_is_reported_at_once() -> None:
    stuck = threading.Event()

    def stuck_start() -> str:  # the warm refill never finishes
        stuck.wait(30)
        raise daemon_unreachable("test")

    def failing_start() -> str:  # fault injection: the daemon went away
        raise daemon_unreachable("test")

    pool = WarmPool(
        start=stuck_start, remove=lambda cid: None, size=1, acquire_timeout_s=30, start_on_demand=failing_start
    )
    started = time.monotonic()
    try:
        with pytest.raises(SandboxUnavailableError, match="Docker daemon is unreachable"):
            pool.acquire()
        assert time.monotonic() - started < 5
    finally:
        stuck.set()
        pool.close()


# --- the Sandbox on top of it -------------------------------------------------------------------------------


def test_jobs_run_in_on_demand_containers_when_the_pool_cannot_keep_up(
    sandbox_settings: Settings, docker_api: docker.APIClient
) -> None:
    sb = Sandbox(sandbox_settings, pool_size=1)
    hold = threading.Event()
    original = sb._start

    def slow_warm_start(api, spec, zygote=None):  # type: ignore[no-untyped-def]
        if zygote is None:  # fault injection: the warm refills are stuck
            hold.wait(60)
        return original(api, spec, zygote)

    sb._start = slow_warm_start  # type: ignore[method-assign]
    try:
        result = sb.call(TRACE_TOOL, "trace", {"tag": "first"})
        assert result.ok and result.result["leftovers"] == [], result.error
        report = sb.run_tests(ADD_TOOL, ADD_TESTS)  # pytest imported by the job itself (no zygote)
        assert report.verdict == "passed" and report.passed == 2, report.message
        quits = sb.run_tests(ADD_TOOL, "import os\n\n\ndef test_quits():\n    os._exit(0)\n")
        assert quits.verdict == "error"
        assert sb._pool is not None and sb._pool.on_demand_total >= 3
    finally:
        hold.set()
        sb.close()
    label = f"{ctr.LABEL_INSTANCE}={sb.instance_id}"
    assert docker_api.containers(all=True, filters={"label": label}) == []


def test_threads_and_asyncio_callers_on_a_small_pool_each_get_their_own_container(
    sandbox_settings: Settings, docker_api: docker.APIClient
) -> None:
    sb = Sandbox(sandbox_settings, pool_size=1)
    results: dict[str, object] = {}

    def work(tag: str) -> None:
        results[tag] = sb.call(TRACE_TOOL, "trace", {"tag": tag})

    async def several() -> list[object]:
        calls = [sb.acall(TRACE_TOOL, "trace", {"tag": f"async{i}"}) for i in range(3)]
        return await asyncio.gather(*calls, sb.arun_tests(ADD_TOOL, ADD_TESTS))

    try:
        assert sb.warm_up(timeout_s=120)
        threads = [threading.Thread(target=work, args=(f"thread{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        *async_calls, report = asyncio.run(several())
        for thread in threads:
            thread.join(180)
        assert report.verdict == "passed", report.message  # type: ignore[attr-defined]
        answers = [*results.values(), *async_calls]
        assert len(answers) == 7
        for answer in answers:
            assert answer.ok and answer.result["leftovers"] == [], answer.error  # type: ignore[attr-defined]
        assert sorted(a.result["tag"] for a in answers) == sorted(  # type: ignore[attr-defined]
            [f"thread{i}" for i in range(4)] + [f"async{i}" for i in range(3)]
        )
        containers = [a.result["container"] for a in answers]  # type: ignore[attr-defined]
        assert len(set(containers)) == 7  # one container per job
        pool = sb._pool
        assert pool is not None and pool.on_demand_total >= 1  # 8 jobs at once on a pool of 1
    finally:
        sb.close()
    label = f"{ctr.LABEL_INSTANCE}={sb.instance_id}"
    assert docker_api.containers(all=True, filters={"label": label}) == []
    assert pool.started_total == pool.removed_total
