"""The sandbox image: built from the manifest, and holding exactly what the manifest says."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import docker
import docker.errors
import pytest

from sandbox import image_manifest as manifest
from sandbox.image import ImageBuildError, ensure_image, find_image
from sea.settings import Settings, get_settings


@pytest.fixture()
def image_settings(tmp_path, monkeypatch) -> Iterator[Settings]:
    """Settings with a temporary SEA_HOME (the image tag itself is the project's)."""
    monkeypatch.setenv("SEA_HOME", str(tmp_path / "sea"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture()
def built_image(image_settings: Settings) -> str:
    return ensure_image(image_settings, progress=lambda _line: None)


def _run_in_image(image: str, command: list[str]) -> tuple[int, str]:
    client = docker.from_env()
    container = client.containers.run(image, command, detach=True, network_disabled=True)
    try:
        code = container.wait(timeout=60)["StatusCode"]
        logs = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
    finally:
        container.remove(force=True)
    return code, logs


def _dockerfile_arg_defaults(name: str) -> dict[str, str]:
    text = (manifest.IMAGE_DIR / name).read_text(encoding="utf-8")
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.MULTILINE))


def test_dockerfile_defaults_match_the_manifest() -> None:
    defaults = _dockerfile_arg_defaults("Dockerfile")
    assert defaults == {
        "PYTHON_IMAGE": manifest.PYTHON_IMAGE,
        "PYTEST_VERSION": manifest.PYTEST_VERSION,
        "HYPOTHESIS_VERSION": manifest.HYPOTHESIS_VERSION,
    }
    assert manifest.PYTHON_IMAGE.startswith(f"python:{manifest.PYTHON_VERSION}.")
    assert manifest.DEBIAN_SUITE in manifest.PYTHON_IMAGE
    assert _dockerfile_arg_defaults("Dockerfile.offline") == {"BASE_IMAGE": manifest.BASE_IMAGE_OFFLINE}


def test_allowed_modules_are_pure_computation() -> None:
    allowed = manifest.allowed_modules()
    for module in ("math", "re", "json", "datetime", "zoneinfo", "collections", "decimal", "urllib.parse"):
        assert module in allowed
    forbidden = {"os", "sys", "subprocess", "socket", "ctypes", "shutil", "pathlib", "importlib", "builtins",
                 "threading", "multiprocessing", "signal", "pickle", "marshal", "urllib.request", "http",
                 "asyncio", "pty", "fcntl", "resource", "gc", "inspect"}  # fmt: skip
    assert not (allowed & forbidden)


def test_prompt_description_lists_every_module_and_version() -> None:
    text = manifest.describe_for_prompt()
    for module in manifest.allowed_modules():
        assert re.search(rf"(?<![\w.]){re.escape(module)}(?![\w])", text), module
    assert manifest.PYTHON_VERSION in text and manifest.PYTEST_VERSION in text
    listed = text.split("modules:")[1].split(". No third-party")[0]
    assert not re.search(r"(?<![\w.])(os|sys|subprocess|socket|ctypes)(?![\w.])", listed)


def test_manifest_hash_is_stable_and_covers_the_dockerfiles() -> None:
    assert manifest.manifest_hash() == manifest.manifest_hash()
    data = manifest.manifest_data()
    assert "FROM ${BASE_IMAGE}" in str(data["dockerfile_offline"])
    assert re.fullmatch(r"[0-9a-f]{16}", manifest.manifest_hash())


@pytest.mark.docker
@pytest.mark.slow
def test_built_image_matches_the_manifest(built_image: str, image_settings: Settings) -> None:
    client = docker.from_env()
    image = client.images.get(image_settings.sandbox_image)
    assert image.id == built_image
    assert image.labels[manifest.LABEL_MANIFEST] == manifest.manifest_hash()
    assert image.labels[manifest.LABEL_BUILD] in ("online", "offline")
    assert image.attrs["Config"]["WorkingDir"] == manifest.WORKDIR
    assert image.attrs["Config"]["User"].split(":")[0] in (str(manifest.SANDBOX_UID), manifest.SANDBOX_USER)

    probe = (
        "import json, os, sys, pytest, hypothesis;"
        "print(json.dumps({'python': sys.version.split()[0], 'pytest': pytest.__version__,"
        " 'hypothesis': hypothesis.__version__, 'uid': os.getuid(), 'gid': os.getgid(), 'cwd': os.getcwd(),"
        " 'executable': sys.executable}))"
    )
    code, out = _run_in_image(built_image, [manifest.PYTHON_BIN, "-c", probe])
    assert code == 0, out
    facts = json.loads(out.strip().splitlines()[-1])
    assert facts["python"].startswith(manifest.PYTHON_VERSION + ".")
    assert facts["pytest"] == manifest.PYTEST_VERSION
    assert facts["hypothesis"] == manifest.HYPOTHESIS_VERSION
    assert (facts["uid"], facts["gid"]) == (manifest.SANDBOX_UID, manifest.SANDBOX_GID)
    assert facts["cwd"] == manifest.WORKDIR


@pytest.mark.docker
@pytest.mark.slow
def test_image_has_no_package_installer(built_image: str) -> None:
    script = (
        "import importlib.util, shutil, sys;"
        "found = [m for m in ('pip', 'ensurepip', 'setuptools') if importlib.util.find_spec(m)];"
        "found += [b for b in ('pip', 'pip3', 'easy_install') if shutil.which(b)];"
        "print('FOUND', found); sys.exit(1 if found else 0)"
    )
    code, out = _run_in_image(built_image, [manifest.PYTHON_BIN, "-c", script])
    assert code == 0, out
    code, out = _run_in_image(built_image, [manifest.PYTHON_BIN, "-m", "pip", "--version"])
    assert code != 0 and "No module named pip" in out


@pytest.mark.docker
@pytest.mark.slow
def test_image_has_no_setuid_or_setgid_files(built_image: str) -> None:
    script = (
        "import os, stat\n"
        "found = []\n"
        "for root, dirs, files in os.walk('/'):\n"
        "    if root.startswith(('/proc', '/sys', '/dev')):\n"
        "        dirs[:] = []\n"
        "        continue\n"
        "    for name in files:\n"
        "        path = os.path.join(root, name)\n"
        "        mode = os.lstat(path).st_mode\n"
        "        if stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):\n"
        "            found.append(path)\n"
        "print(found)\n"
        "raise SystemExit(1 if found else 0)\n"
    )
    code, out = _run_in_image(built_image, [manifest.PYTHON_BIN, "-c", script])
    assert code == 0, out


@pytest.mark.docker
@pytest.mark.slow
def test_every_allowed_module_imports_in_the_image(built_image: str) -> None:
    modules = sorted(manifest.allowed_modules() | manifest.TEST_MODULES)
    script = (
        "import importlib, json, sys, zoneinfo\n"
        f"bad = []\nfor name in {modules!r}:\n"
        "    try:\n        importlib.import_module(name)\n"
        "    except Exception as exc:\n        bad.append(f'{name}: {exc}')\n"
        "zoneinfo.ZoneInfo('Europe/Paris')\n"
        "print(json.dumps(bad)); sys.exit(1 if bad else 0)\n"
    )
    code, out = _run_in_image(built_image, [manifest.PYTHON_BIN, "-c", script])
    assert code == 0, out


@pytest.mark.docker
def test_ensure_image_is_idempotent(built_image: str, image_settings: Settings) -> None:
    from sandbox import image as image_module

    lines: list[str] = []
    assert ensure_image(image_settings, progress=lines.append) == built_image
    image_module._cache.clear()  # the second path: no cache, the tag is found and its label checked
    assert ensure_image(image_settings, progress=lines.append) == built_image
    assert lines == []  # nothing was built
    assert find_image(image_settings) == built_image


@pytest.mark.docker
def test_find_image_ignores_a_tag_built_from_another_manifest(built_image: str, monkeypatch) -> None:
    client = docker.from_env()
    stale_tag = "sea-sandbox-test:stale-manifest"
    client.images.get(built_image).tag(stale_tag)  # same labels, so it *is* current...
    try:
        monkeypatch.setenv("SEA_SANDBOX_IMAGE", stale_tag)
        get_settings.cache_clear()
        assert find_image() == built_image
        monkeypatch.setattr(manifest, "PYTEST_VERSION", "0.0.0")  # ...until the manifest changes
        assert find_image() is None
    finally:
        client.images.remove(stale_tag, noprune=True)
        get_settings.cache_clear()


def test_unreachable_daemon_gives_one_clear_sentence(image_settings: Settings, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    with pytest.raises(ImageBuildError) as caught:
        ensure_image(image_settings, force=True, progress=lambda _line: None)
    message = str(caught.value)
    assert "Docker daemon is not reachable" in message and "build-image" in message
    assert "\n" not in message and "Traceback" not in message


@pytest.mark.docker
def test_online_only_build_without_registry_fails_fast_and_clearly(tmp_path, monkeypatch) -> None:
    from sandbox import image as image_module

    client = docker.from_env()
    try:
        client.images.get(manifest.PYTHON_IMAGE)
        pytest.skip(f"{manifest.PYTHON_IMAGE} is present locally, so an online build would succeed")
    except docker.errors.ImageNotFound:
        pass
    if image_module._registry_reachable(client):
        pytest.skip("a container registry answers here, so an online build would be attempted")
    monkeypatch.setenv("SEA_HOME", str(tmp_path / "sea"))
    monkeypatch.setenv("SEA_SANDBOX_BUILD", "online")
    monkeypatch.setenv("SEA_SANDBOX_IMAGE", "sea-sandbox-test:never-built")
    get_settings.cache_clear()
    try:
        with pytest.raises(ImageBuildError) as caught:
            ensure_image(progress=lambda _line: None)
    finally:
        get_settings.cache_clear()
    assert "SEA_SANDBOX_BUILD=offline" in str(caught.value)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("sea-sandbox-test:never-built")
