"""Shared fixtures for the sandbox tests: a real Docker engine and the real sandbox image, never mocks.

If Docker or the image is missing, every test that needs them fails (never skips) with one sentence saying
what to do, e.g. build the image with `python -m sandbox build-image`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from sandbox import Sandbox, SandboxUnavailableError
from sandbox.container import LABEL, LABEL_PID, connect
from sea.settings import Settings, get_settings

POOL_SIZE = 2


def make_settings(home: Path, **overrides: object) -> Settings:
    """Settings for tests: a temporary SEA_HOME, the environment's image and limits unless overridden."""
    # Generous waits: on a busy 2-core machine a burst of jobs can wait long for containers to start.
    values: dict[str, object] = {
        "home": home, "sandbox_pool_size": POOL_SIZE, "sandbox_timeout_s": 30.0,
        "sandbox_acquire_timeout_s": 180.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test runs with its own SEA_HOME and a fresh settings cache."""
    monkeypatch.setenv("SEA_HOME", str(tmp_path / "sea-home"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def sandbox_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The settings the session's sandbox runs with."""
    return make_settings(tmp_path_factory.mktemp("sea-home"))


@pytest.fixture(scope="session")
def sandbox(sandbox_settings: Settings) -> Iterator[Sandbox]:
    """One `Sandbox` with a small warm pool for the whole session (real engine, real image)."""
    sb = Sandbox(sandbox_settings, pool_size=POOL_SIZE)
    try:
        sb.warm_up(timeout_s=120)
    except SandboxUnavailableError as exc:
        sb.close()
        pytest.fail(f"The sandbox tests need Docker and the sandbox image: {exc}", pytrace=False)
    yield sb
    sb.close()


@pytest.fixture(scope="session")
def docker_api(sandbox: Sandbox) -> docker.APIClient:
    """A low-level Docker client for looking at containers from the outside."""
    return connect()


@pytest.fixture(scope="session")
def own_containers(docker_api: docker.APIClient) -> Callable[[], list[str]]:
    """A function listing the ids of the labelled sandbox containers this test process owns."""

    def listing() -> list[str]:
        found = docker_api.containers(all=True, filters={"label": [f"{LABEL}=1", f"{LABEL_PID}={os.getpid()}"]})
        return [str(info["Id"]) for info in found]

    return listing
