"""The warm pool: hardened containers started ahead of need, each used for exactly one job and then destroyed.

While nobody is short of a container ("calm"), refill threads keep `size` warm containers ready (`start`: the
runner with its zygote, pytest imported). A caller who finds the pool empty does not queue behind those
expensive warm starts: a plain container (`start_on_demand`, no zygote, about a third of the cost) is started
for it in a thread of its own, and it takes whichever container is ready first, its own or one of the pool's;
the other stays in the pool, never used, for the next caller. For `calm_after_s` after a caller found the pool
empty ("pressure") the refills start plain containers too, since jobs then come faster than warm containers can
be made; once calm again, warm ones replace the plain leftovers. At most `parallel_starts` containers start at
once. A remover thread force-removes used containers in the background. Every method is thread-safe; asyncio
callers reach it through `asyncio.to_thread`.

`JobSlots` bounds how many jobs run at once (SEA_SANDBOX_MAX_JOBS): a job takes a slot before it asks for a
container and gives it back once its container is discarded; the others wait their turn in arrival order.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, Literal, TypeVar

from sandbox.errors import SandboxError, SandboxUnavailableError, pool_exhausted

MAX_BACKOFF_S = 5.0
CALM_AFTER_S = 1.0
Item = TypeVar("Item")
Kind = Literal["warm", "plain"]


class JobSlots:
    """At most `limit` jobs at once; the others queue and are let in strictly in arrival order (no caller is
    passed over). Thread-safe. `peak` is the most jobs that have held a slot at the same time."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the job limit must be >= 1")
        self.limit = limit
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()  # one ticket per waiting caller, first come first served
        self._running = 0
        self.peak = 0

    def running(self) -> int:
        """Jobs holding a slot now."""
        with self._cond:
            return self._running

    def waiting(self) -> int:
        """Jobs queued for a slot now."""
        with self._cond:
            return len(self._queue)

    def acquire(self, timeout_s: float) -> None:
        """Take a slot, waiting at most `timeout_s` behind the callers who came first; raises
        `SandboxUnavailableError` (busy, "exhausted", which the graph retries) when the wait runs out."""
        deadline = time.monotonic() + timeout_s
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self._running >= self.limit:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise SandboxUnavailableError(
                            f"The sandbox is busy (job slots exhausted): {self._running} jobs are running, the "
                            f"most allowed at once (SEA_SANDBOX_MAX_JOBS={self.limit}), and this one waited "
                            f"{timeout_s:g} s in a queue of {len(self._queue)}; raise SEA_SANDBOX_MAX_JOBS or "
                            "SEA_SANDBOX_ACQUIRE_TIMEOUT_S, or retry."
                        )
                    self._cond.wait(remaining)
                self._running += 1
                self.peak = max(self.peak, self._running)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()

    def release(self) -> None:
        """Give a slot back; the first caller in the queue takes it."""
        with self._cond:
            self._running = max(0, self._running - 1)
            self._cond.notify_all()

    @contextlib.contextmanager
    def slot(self, timeout_s: float) -> Iterator[None]:
        """Hold a slot for the duration of the block."""
        self.acquire(timeout_s)
        try:
            yield
        finally:
            self.release()


def default_parallel_starts() -> int:
    """How many containers may start at once: two per CPU core, at least 4."""
    return max(4, 2 * (os.cpu_count() or 2))


class WarmPool(Generic[Item]):
    """A thread-safe pool of ready, never-used containers (whatever `start` returns, e.g. an id).

    `start` makes a warm container; `start_on_demand`, if given, a cheaper plain one for callers who find the
    pool empty and for refills under pressure. Without it every container is warm and a caller who finds the
    pool empty waits for the refills (which then count it)."""

    def __init__(
        self,
        start: Callable[[], Item],
        remove: Callable[[Item], object],
        size: int,
        acquire_timeout_s: float = 30.0,
        parallel_starts: int | None = None,
        start_on_demand: Callable[[], Item] | None = None,
        warm_refills: int = 1,
        calm_after_s: float = CALM_AFTER_S,
    ) -> None:
        if size < 1:
            raise ValueError("a warm pool needs size >= 1")
        if parallel_starts is not None and parallel_starts < 1:
            raise ValueError("parallel_starts must be >= 1")
        if warm_refills < 1:
            raise ValueError("warm_refills must be >= 1")
        self._start = start
        self._start_plain = start_on_demand
        self._remove = remove
        self.size = size
        self.acquire_timeout_s = acquire_timeout_s
        self.parallel_starts = parallel_starts or default_parallel_starts()
        # Warm starts at once while calm (without plain starts, warm refills also serve waiting callers).
        self.warm_refills = min(warm_refills if start_on_demand else self.parallel_starts, self.parallel_starts)
        self.calm_after_s = calm_after_s
        self._ready: deque[Item] = deque()  # warm containers
        self._spare: deque[Item] = deque()  # plain containers nobody has taken yet
        self._warm_starting = 0
        self._plain_starting = 0
        self._waiting = 0
        self._queue: deque[object] = deque()  # one ticket per caller in acquire, first come first served
        self._busy = 0  # handed out, not yet discarded: jobs running
        self._pressure_until = 0.0
        self._closed = False
        self._failures = 0
        self._backoff_until = 0.0
        self._last_error: SandboxError | None = None
        self._cond = threading.Condition()
        self._removals: queue.Queue[Item | None] = queue.Queue()
        self._on_demand_threads: set[threading.Thread] = set()
        self.warm_total = 0  # containers started, by kind
        self.plain_total = 0
        self.on_demand_total = 0  # plain starts made for a caller who found the pool empty
        self.removed_total = 0
        self._starters = [
            threading.Thread(target=self._fill, name=f"sea-pool-start-{i}", daemon=True)
            for i in range(self.parallel_starts if start_on_demand else self.warm_refills)
        ]
        self._remover = threading.Thread(target=self._remove_loop, name="sea-pool-remove", daemon=True)
        for thread in [*self._starters, self._remover]:
            thread.start()

    @property
    def started_total(self) -> int:
        """Containers started so far, warm and plain."""
        return self.warm_total + self.plain_total

    # -- public -------------------------------------------------------------------------------------------
    def acquire(self, timeout_s: float | None = None) -> Item:
        """A never-used container for one job: a ready one (warm first), else whichever is ready first of a
        plain one started for this caller and the pool's own starts; callers are served in arrival order.
        Waits at most `timeout_s`, then raises (pool exhausted); raises at once when containers cannot be
        started (Docker or the image gone)."""
        limit = self.acquire_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        ticket = object()
        with self._cond:
            self._waiting += 1
            self._queue.append(ticket)
            self._cond.notify_all()
            try:
                while True:
                    if self._closed:
                        raise SandboxError("The sandbox has been closed.")
                    available = len(self._ready) + len(self._spare)
                    if available and self._queue.index(ticket) < available:  # earlier callers first
                        self._busy += 1
                        return (self._ready or self._spare).popleft()
                    if isinstance(self._last_error, SandboxUnavailableError):
                        raise SandboxUnavailableError(str(self._last_error))
                    now = time.monotonic()
                    remaining = deadline - now
                    if remaining <= 0:
                        detail = str(self._last_error) if self._last_error else ""
                        raise pool_exhausted(limit, detail)
                    self._pressure_until = now + self.calm_after_s
                    self._maybe_start_on_demand(now)
                    pause = self._backoff_until - now
                    self._cond.wait(min(remaining, pause) if pause > 0 else remaining)
            finally:
                self._waiting -= 1
                self._queue.remove(ticket)
                self._cond.notify_all()

    def discard(self, container_id: Item) -> None:
        """Hand a used container to the background remover; the pool refills on its own. After `close`, the
        container is removed right here (the remover has stopped)."""
        with self._cond:
            closed = self._closed
            self._busy = max(0, self._busy - 1)
            self._cond.notify_all()
        if closed:
            self._remove_now(container_id)
            return
        self._removals.put(container_id)

    def ready_count(self) -> int:
        """How many idle, never-used containers are ready right now, warm or plain."""
        with self._cond:
            return len(self._ready) + len(self._spare)

    def starts_in_flight(self) -> int:
        """How many containers are being started right now."""
        with self._cond:
            return self._warm_starting + self._plain_starting

    def wait_ready(self, count: int | None = None, timeout_s: float = 30.0) -> bool:
        """Block until `count` (default: size) warm containers are ready; True if they are."""
        want = self.size if count is None else count
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self._ready) < want and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return len(self._ready) >= want

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop starting containers and remove every one the pool still holds, and those still starting (as
        they arrive); waits for the removals."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            leftovers = [*self._ready, *self._spare]
            self._ready.clear()
            self._spare.clear()
            on_demand = list(self._on_demand_threads)
            self._cond.notify_all()
        for container_id in leftovers:
            self._removals.put(container_id)
        deadline = time.monotonic() + timeout_s
        for thread in [*self._starters, *on_demand]:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._removals.put(None)
        self._remover.join(max(0.0, deadline - time.monotonic()))
        while True:  # anything discarded while we were closing
            try:
                late = self._removals.get_nowait()
            except queue.Empty:
                break
            if late is not None:
                self._remove_now(late)

    # -- internals (the _cond lock is held where noted) ---------------------------------------------------
    def _in_flight(self) -> int:
        return self._warm_starting + self._plain_starting

    def _maybe_start_on_demand(self, now: float) -> None:
        """(lock held) Start a plain container for a waiting caller unless a plain one is already coming for
        each waiting caller, every start slot is taken, or starts are backing off after a failure."""
        if (
            self._start_plain is None
            or self._plain_starting >= self._waiting
            or self._in_flight() >= self.parallel_starts
            or now < self._backoff_until
        ):
            return
        self._plain_starting += 1
        thread = threading.Thread(target=self._start_for_caller, name="sea-pool-on-demand", daemon=True)
        self._on_demand_threads.add(thread)
        try:
            thread.start()
        except RuntimeError as exc:  # no thread to be had: count it as a failed start
            self._plain_starting -= 1
            self._on_demand_threads.discard(thread)
            self._failed(exc)

    def _refill_kind(self, now: float) -> Kind | None:
        """(lock held) What a refill thread should start now, if anything."""
        if self._closed or now < self._backoff_until or self._in_flight() >= self.parallel_starts:
            return None
        if self._start_plain is None:
            wanted = len(self._ready) + self._warm_starting < self.size + self._waiting
            return "warm" if wanted else None
        if now < self._pressure_until:  # jobs come faster than warm containers can be made: plain ones
            coming = len(self._ready) + len(self._spare) + self._in_flight()
            if coming < self._waiting:
                return "plain"  # owed to callers already waiting
            # Ahead of demand only while the CPU is not already full of jobs and starts (then it would only
            # slow the jobs down: with 4 callers on 2 cores every start is paid for by a running job).
            ahead = coming < self.size + self._waiting and self._busy + self._in_flight() < self.parallel_starts
            return "plain" if ahead else None
        wanted = self._warm_starting < self.warm_refills and len(self._ready) + self._warm_starting < self.size
        return "warm" if wanted else None

    def _next_wakeup(self, now: float) -> float | None:
        """(lock held) How long a refill thread may sleep before the backoff or the pressure ends."""
        ends = [t - now for t in (self._backoff_until, self._pressure_until) if t > now]
        return min(ends) if ends else None

    def _failed(self, exc: BaseException) -> None:
        """(lock held) Remember why a start failed and back off before the next one."""
        self._failures += 1
        self._last_error = exc if isinstance(exc, SandboxError) else SandboxError(
            f"Starting a sandbox container failed: {exc}"
        )
        self._backoff_until = time.monotonic() + min(MAX_BACKOFF_S, 0.1 * 2**self._failures)
        self._cond.notify_all()

    def _arrived(self, container_id: Item, kind: Kind) -> list[Item]:
        """(lock held) File a newly started container; returns the containers to remove now (this one if the
        pool is closed; plain leftovers once the pool is calm and full of warm ones)."""
        if kind == "warm":
            self._warm_starting -= 1
            self.warm_total += 1
        else:
            self._plain_starting -= 1
            self.plain_total += 1
        self._failures = 0
        self._last_error = None
        self._cond.notify_all()
        if self._closed:
            return [container_id]
        (self._ready if kind == "warm" else self._spare).append(container_id)
        if self._spare and len(self._ready) >= self.size and time.monotonic() >= self._pressure_until:
            extra = list(self._spare)
            self._spare.clear()
            return extra
        return []

    def _fill(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    kind = self._refill_kind(now)
                    if kind is not None:
                        break
                    self._cond.wait(self._next_wakeup(now))
                if kind == "warm":
                    self._warm_starting += 1
                else:
                    self._plain_starting += 1
            self._start_one(kind)

    def _start_for_caller(self) -> None:
        try:
            with self._cond:
                self.on_demand_total += 1
            self._start_one("plain")
        finally:
            with self._cond:
                self._on_demand_threads.discard(threading.current_thread())

    def _start_one(self, kind: Kind) -> None:
        """Start one container of `kind` (its start counter already raised) and file it."""
        start = self._start if kind == "warm" else self._start_plain
        try:
            container_id = start()  # type: ignore[misc]
        except Exception as exc:  # keep the thread alive whatever Docker throws
            with self._cond:
                if kind == "warm":
                    self._warm_starting -= 1
                else:
                    self._plain_starting -= 1
                self._failed(exc)
            return
        with self._cond:
            doomed = self._arrived(container_id, kind)
            closed = self._closed
        for item in doomed:
            if closed:
                self._remove_now(item)
            else:
                self._removals.put(item)

    def _remove_now(self, container_id: Item) -> None:
        with contextlib.suppress(Exception):
            self._remove(container_id)
        with self._cond:
            self.removed_total += 1

    def _remove_loop(self) -> None:
        while True:
            container_id = self._removals.get()
            if container_id is None:
                return
            self._remove_now(container_id)
