"""The warm pool: hardened containers started ahead of need, each used for exactly one job and then destroyed.

Starter threads keep `size` idle containers ready (plus one per caller already waiting, so a burst does not
wait for a whole round of jobs); a remover thread force-removes used containers in the background. Every
method is thread-safe; asyncio callers reach it through `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from sandbox.errors import SandboxError, SandboxUnavailableError, pool_exhausted

MAX_BACKOFF_S = 5.0
Item = TypeVar("Item")


class WarmPool(Generic[Item]):
    """A thread-safe pool of ready, never-used containers (whatever `start` returns, e.g. an id)."""

    def __init__(
        self,
        start: Callable[[], Item],
        remove: Callable[[Item], object],
        size: int,
        acquire_timeout_s: float = 30.0,
        parallel_starts: int | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a warm pool needs size >= 1")
        self._start = start
        self._remove = remove
        self.size = size
        self.acquire_timeout_s = acquire_timeout_s
        self._ready: deque[Item] = deque()
        self._starting = 0
        self._waiting = 0
        self._closed = False
        self._failures = 0
        self._backoff_until = 0.0
        self._last_error: SandboxError | None = None
        self._cond = threading.Condition()
        self._removals: queue.Queue[Item | None] = queue.Queue()
        self.started_total = 0
        self.removed_total = 0
        self._starters = [
            threading.Thread(target=self._fill, name=f"sea-pool-start-{i}", daemon=True)
            for i in range(parallel_starts or min(4, size + 2))
        ]
        self._remover = threading.Thread(target=self._remove_loop, name="sea-pool-remove", daemon=True)
        for thread in [*self._starters, self._remover]:
            thread.start()

    # -- public -------------------------------------------------------------------------------------------
    def acquire(self, timeout_s: float | None = None) -> Item:
        """A fresh container for one job; waits at most `timeout_s`, then raises (pool exhausted)."""
        limit = self.acquire_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        with self._cond:
            self._waiting += 1
            self._cond.notify_all()
            try:
                while not self._ready:
                    if self._closed:
                        raise SandboxError("The sandbox has been closed.")
                    if isinstance(self._last_error, SandboxUnavailableError):
                        raise SandboxUnavailableError(str(self._last_error))
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        detail = str(self._last_error) if self._last_error else ""
                        raise pool_exhausted(limit, detail)
                    self._cond.wait(remaining)
                return self._ready.popleft()
            finally:
                self._waiting -= 1
                self._cond.notify_all()

    def discard(self, container_id: Item) -> None:
        """Hand a used container to the background remover; the pool refills on its own. After `close`, the
        container is removed right here (the remover has stopped)."""
        with self._cond:
            closed = self._closed
        if closed:
            with contextlib.suppress(Exception):
                self._remove(container_id)
            return
        self._removals.put(container_id)

    def ready_count(self) -> int:
        """How many idle containers are ready right now."""
        with self._cond:
            return len(self._ready)

    def wait_ready(self, count: int | None = None, timeout_s: float = 30.0) -> bool:
        """Block until `count` (default: size) containers are ready; True if they are."""
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
        """Stop refilling and remove every container the pool still holds; waits for the removals."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            leftovers = list(self._ready)
            self._ready.clear()
            self._cond.notify_all()
        for container_id in leftovers:
            self._removals.put(container_id)
        deadline = time.monotonic() + timeout_s
        for thread in self._starters:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._removals.put(None)
        self._remover.join(max(0.0, deadline - time.monotonic()))
        while True:  # anything discarded while we were closing
            try:
                late = self._removals.get_nowait()
            except queue.Empty:
                break
            if late is not None:
                with contextlib.suppress(Exception):
                    self._remove(late)

    # -- threads ------------------------------------------------------------------------------------------
    def _wanted(self) -> bool:
        return len(self._ready) + self._starting < self.size + self._waiting

    def _fill(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._wanted() or time.monotonic() < self._backoff_until):
                    pause = self._backoff_until - time.monotonic()
                    self._cond.wait(pause if pause > 0 else None)
                if self._closed:
                    return
                self._starting += 1
            try:
                container_id = self._start()
            except SandboxError as exc:
                with self._cond:
                    self._starting -= 1
                    self._failures += 1
                    self._last_error = exc
                    self._backoff_until = time.monotonic() + min(MAX_BACKOFF_S, 0.1 * 2**self._failures)
                    self._cond.notify_all()
                continue
            except Exception as exc:  # keep the thread alive whatever Docker throws
                with self._cond:
                    self._starting -= 1
                    self._failures += 1
                    self._last_error = SandboxError(f"Starting a sandbox container failed: {exc}")
                    self._backoff_until = time.monotonic() + min(MAX_BACKOFF_S, 0.1 * 2**self._failures)
                    self._cond.notify_all()
                continue
            with self._cond:
                self._starting -= 1
                self._failures = 0
                self._last_error = None
                self.started_total += 1
                if self._closed:
                    self._removals.put(container_id)
                else:
                    self._ready.append(container_id)
                self._cond.notify_all()

    def _remove_loop(self) -> None:
        while True:
            container_id = self._removals.get()
            if container_id is None:
                return
            with contextlib.suppress(Exception):
                self._remove(container_id)
            self.removed_total += 1
