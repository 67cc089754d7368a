"""Build the sandbox image once and reuse it: online (python slim) where a registry answers, else offline.

The offline build makes a Debian base with debootstrap, imports it with `docker import`, then builds
`Dockerfile.offline` on top. Both builds label the image with the manifest's hash; an image whose label
differs from the current manifest is rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import docker
import docker.errors

from sandbox import image_manifest as manifest
from sandbox.errors import SandboxError
from sea.settings import Settings, get_settings

Progress = Callable[[str], None]

LABEL_BASE = "sea.sandbox.base"  # on the imported base: hash of the suite and the package list
REGISTRY_PROBE_TIMEOUT_S = 3.0
BUILD_COMMAND = "python -m sandbox build-image"

_cache: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


class ImageBuildError(SandboxError):
    """The image could not be found or built; the message is one sentence saying what to do."""


def find_image(settings: Settings | None = None) -> str | None:
    """The id of the current image (tag present and built from this manifest), or None; never builds."""
    settings = settings or get_settings()
    client = _client()
    return _current_image_id(client, settings.sandbox_image, manifest.manifest_hash())


def ensure_image(settings: Settings | None = None, force: bool = False, progress: Progress = print) -> str:
    """Return the sandbox image's id, building it first if it is missing or out of date.

    Tries the online Dockerfile when a registry answers (per `SEA_SANDBOX_BUILD`), else the offline build.
    Raises ImageBuildError with one clear sentence on failure.
    """
    settings = settings or get_settings()
    tag = settings.sandbox_image
    want = manifest.manifest_hash()
    key = (tag, want)
    if not force and key in _cache:
        return _cache[key]
    with _lock, _build_lock(settings):
        client = _client()
        image_id = None if force else _current_image_id(client, tag, want)
        if image_id is None:
            started = time.monotonic()
            image_id = _build(client, settings, tag, want, progress)
            progress(f"Sandbox image {tag} ready ({image_id[:19]}) in {time.monotonic() - started:.0f} s.")
        _cache[key] = image_id
        return image_id


# --- helpers -------------------------------------------------------------------------------------------


def _client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=900)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ImageBuildError(
            "The Docker daemon is not reachable: start Docker (or set DOCKER_HOST) and run "
            f"`{BUILD_COMMAND}` again."
        ) from exc
    return client


@contextmanager
def _build_lock(settings: Settings) -> Iterator[None]:
    """Serialise builds across processes (two test runs starting at once build the image once)."""
    settings.build_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.build_dir / "image.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _labels_of(client: docker.DockerClient, name: str) -> tuple[str, dict[str, str]] | None:
    try:
        image = client.images.get(name)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        raise ImageBuildError(f"Docker could not inspect the image {name}: {_short(exc)}.") from exc
    return image.id, dict(image.labels or {})


def _current_image_id(client: docker.DockerClient, tag: str, want: str) -> str | None:
    found = _labels_of(client, tag)
    if found is None:
        return None
    image_id, labels = found
    return image_id if labels.get(manifest.LABEL_MANIFEST) == want else None


def _build(client: docker.DockerClient, settings: Settings, tag: str, want: str, progress: Progress) -> str:
    mode = settings.sandbox_build
    existing = _labels_of(client, tag)
    if existing is not None:
        progress(f"Sandbox image {tag} was built from another manifest; rebuilding it.")
    if mode in ("auto", "online"):
        if _labels_of(client, manifest.PYTHON_IMAGE) is not None or _registry_reachable(client):
            try:
                return _build_online(client, tag, want, progress)
            except ImageBuildError as exc:
                if mode == "online":
                    raise
                progress(f"Online build failed ({exc}); building offline instead.")
        elif mode == "online":
            raise ImageBuildError(
                f"No container registry answers, so {manifest.PYTHON_IMAGE} cannot be pulled: "
                "set SEA_SANDBOX_BUILD=offline (or auto) to build from Debian packages instead."
            )
        else:
            progress("No container registry answers; building the image offline from Debian packages.")
    return _build_offline(client, settings, tag, want, progress)


def _registry_reachable(client: docker.DockerClient) -> bool:
    """Fail fast: can a TCP connection reach Docker Hub or one of the daemon's registry mirrors?"""
    targets: list[tuple[str, int]] = []
    try:
        mirrors = (client.info().get("RegistryConfig") or {}).get("Mirrors") or []
    except docker.errors.APIError:
        mirrors = []
    for mirror in mirrors:
        parsed = urlparse(mirror if "://" in mirror else f"https://{mirror}")
        if parsed.hostname:
            targets.append((parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)))
    targets.append(("registry-1.docker.io", 443))
    for host, port in targets:
        try:
            with socket.create_connection((host, port), timeout=REGISTRY_PROBE_TIMEOUT_S):
                return True
        except OSError:
            continue
    return False


def _build_online(client: docker.DockerClient, tag: str, want: str, progress: Progress) -> str:
    repository, _, base_tag = manifest.PYTHON_IMAGE.partition(":")
    if _labels_of(client, manifest.PYTHON_IMAGE) is None:
        progress(f"Pulling {manifest.PYTHON_IMAGE} ...")
        try:
            for event in client.api.pull(repository, tag=base_tag or "latest", stream=True, decode=True):
                if "error" in event:
                    raise ImageBuildError(f"pulling {manifest.PYTHON_IMAGE} failed: {event['error']}")
        except docker.errors.DockerException as exc:
            raise ImageBuildError(f"pulling {manifest.PYTHON_IMAGE} failed: {_short(exc)}") from exc
    progress("Building the sandbox image from sandbox/Dockerfile ...")
    return _docker_build(
        client,
        dockerfile="Dockerfile",
        tag=tag,
        buildargs={
            "PYTHON_IMAGE": manifest.PYTHON_IMAGE,
            "PYTEST_VERSION": manifest.PYTEST_VERSION,
            "HYPOTHESIS_VERSION": manifest.HYPOTHESIS_VERSION,
        },
        labels={manifest.LABEL_MANIFEST: want, manifest.LABEL_BUILD: "online"},
        progress=progress,
    )


def _build_offline(client: docker.DockerClient, settings: Settings, tag: str, want: str, progress: Progress) -> str:
    base_key = hashlib.sha256(
        f"{manifest.DEBIAN_SUITE}|{','.join(manifest.DEBIAN_PACKAGES)}".encode()
    ).hexdigest()[:16]
    base = _labels_of(client, manifest.BASE_IMAGE_OFFLINE)
    if base is None or base[1].get(LABEL_BASE) != base_key:
        _make_offline_base(client, settings, base_key, progress)
    progress("Building the sandbox image from sandbox/Dockerfile.offline ...")
    return _docker_build(
        client,
        dockerfile="Dockerfile.offline",
        tag=tag,
        buildargs={"BASE_IMAGE": manifest.BASE_IMAGE_OFFLINE},
        labels={manifest.LABEL_MANIFEST: want, manifest.LABEL_BUILD: "offline"},
        progress=progress,
    )


def _debootstrap_path() -> str | None:
    # root's PATH has /usr/sbin, a user's often has not
    candidates = ("/usr/sbin/debootstrap", "/sbin/debootstrap")
    return shutil.which("debootstrap") or next((p for p in candidates if os.access(p, os.X_OK)), None)


def _find_debootstrap(progress: Progress) -> str:
    found = _debootstrap_path()
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        progress("Installing debootstrap with apt-get ...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", "debootstrap"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
        found = _debootstrap_path()
        if found:
            return found
        raise ImageBuildError(
            "Installing debootstrap with apt-get failed: install it by hand "
            f"(`apt-get install debootstrap`) and run `{BUILD_COMMAND}` again."
        )
    raise ImageBuildError(
        "No registry answers, so the sandbox image is built from Debian packages, which needs debootstrap: "
        f"install it (e.g. `sudo apt-get install debootstrap`) and run `{BUILD_COMMAND}` again."
    )


def _unmount_under(root: Path) -> None:
    """Unmount anything an interrupted debootstrap left mounted inside `root` (proc, sys), deepest first."""
    prefix = str(root.resolve()) + "/"
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[1] for line in lines if len(line.split()) > 1]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _remove_tree(root: Path) -> None:
    if root.exists():
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


# Trimmed from the tree before import: nothing in the sandbox reads them.
_PRUNE = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info")


def _make_offline_base(client: docker.DockerClient, settings: Settings, base_key: str, progress: Progress) -> None:
    if os.geteuid() != 0:
        raise ImageBuildError(
            "No registry answers, so the sandbox image is built with debootstrap, which needs root: run "
            f"`sudo {BUILD_COMMAND}` once (or let Docker pull {manifest.PYTHON_IMAGE})."
        )
    debootstrap = _find_debootstrap(progress)
    settings.build_dir.mkdir(parents=True, exist_ok=True)
    root = settings.build_dir / f"rootfs-{manifest.DEBIAN_SUITE}"
    log_path = settings.build_dir / "debootstrap.log"
    _remove_tree(root)
    command = [
        debootstrap,
        "--variant=minbase",
        f"--include={','.join(manifest.DEBIAN_PACKAGES)}",
        manifest.DEBIAN_SUITE,
        str(root),
        settings.sandbox_debian_mirror,
    ]
    progress(
        f"Running debootstrap for Debian {manifest.DEBIAN_SUITE} into {root} "
        "(about a minute; log in debootstrap.log) ..."
    )
    try:
        _run_debootstrap(command, log_path, progress)
        for relative in _PRUNE:
            target = root / relative
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        progress(f"Importing the tree as {manifest.BASE_IMAGE_OFFLINE} ...")
        _import_tree(client, root, base_key)
    finally:
        _remove_tree(root)


def _run_debootstrap(command: list[str], log_path: Path, progress: Progress) -> None:
    phases = ("Retrieving Release", "Resolving dependencies", "Unpacking the base system", "Configuring the base")
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        last = ""
        for line in process.stdout:
            log.write(line)
            stripped = line.strip()
            if stripped.startswith(("E:", "W: Failure")) or any(phase in stripped for phase in phases):
                if stripped.startswith("E:"):
                    last = stripped
                progress(f"  debootstrap: {stripped}")
        code = process.wait()
    if code != 0:
        detail = f" ({last[2:].strip()})" if last else ""
        raise ImageBuildError(
            f"debootstrap failed with exit code {code}{detail}: see {log_path}, check that the Debian mirror "
            "(SEA_SANDBOX_DEBIAN_MIRROR) is reachable, and run the build again."
        )


def _import_tree(client: docker.DockerClient, root: Path, base_key: str) -> None:
    tar = subprocess.Popen(
        ["tar", "-C", str(root), "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*",
         "--exclude=./sys/*", "-c", "."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert tar.stdout is not None
    repository, _, tag = manifest.BASE_IMAGE_OFFLINE.partition(":")
    try:
        client.api.import_image_from_stream(
            tar.stdout, repository=repository, tag=tag, changes=[f"LABEL {LABEL_BASE}={base_key}"]
        )
    except docker.errors.DockerException as exc:
        tar.kill()
        raise ImageBuildError(f"docker import of the Debian tree failed: {_short(exc)}.") from exc
    finally:
        tar.stdout.close()
        stderr = tar.stderr.read().decode(errors="replace") if tar.stderr else ""
        code = tar.wait()
    if code != 0:
        raise ImageBuildError(f"tar of the Debian tree failed: {stderr.strip()[:200]}.")


def _docker_build(
    client: docker.DockerClient,
    *,
    dockerfile: str,
    tag: str,
    buildargs: dict[str, str],
    labels: dict[str, str],
    progress: Progress,
) -> str:
    # The Dockerfiles copy nothing, so the context holds only the Dockerfile itself.
    with tempfile.TemporaryDirectory(prefix="sea-image-") as context:
        shutil.copyfile(manifest.IMAGE_DIR / dockerfile, Path(context) / "Dockerfile")
        image_id = ""
        try:
            events: Any = client.api.build(
                path=context, tag=tag, buildargs=buildargs, labels=labels, rm=True, forcerm=True,
                pull=False, decode=True,
            )  # fmt: skip
            for event in events:
                if "error" in event:
                    raise ImageBuildError(f"docker build of {dockerfile} failed: {str(event['error']).strip()}")
                text = str(event.get("stream", "")).strip()
                if text.startswith("Step "):
                    progress(f"  {text}")
                aux = event.get("aux") or {}
                if isinstance(aux, dict) and aux.get("ID"):
                    image_id = str(aux["ID"])
        except docker.errors.DockerException as exc:
            raise ImageBuildError(f"docker build of {dockerfile} failed: {_short(exc)}") from exc
    if not image_id:
        image_id = client.images.get(tag).id
    return image_id


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
