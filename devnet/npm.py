"""Pinned npm tools (anvil, solc-js) and published artifacts, installed under CHAINRISK_HOME.

``devnet/package.json`` and its lockfile pin every package. ``ensure_node_modules`` runs ``npm ci`` once per
lockfile into ``HOME/npm`` and then works offline: later calls only compare a marker with the lockfile hash.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devnet.errors import DevnetError

PACKAGE_DIR = Path(__file__).resolve().parent
MANIFESTS = ("package.json", "package-lock.json")
MARKER = ".chainrisk-installed"
INSTALL_TIMEOUT_S = 900
NPM_CI_FLAGS = ("--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error")

_ANVIL_PLATFORMS = {
    ("Linux", "x86_64"): "linux-amd64",
    ("Linux", "aarch64"): "linux-arm64",
    ("Darwin", "x86_64"): "darwin-amd64",
    ("Darwin", "arm64"): "darwin-arm64",
}


class NodeToolsError(DevnetError, RuntimeError):
    """Node or npm is missing, or installing the pinned packages failed."""


def lockfile_hash() -> str:
    """SHA-256 over package.json and package-lock.json: what an installed tree must match."""
    digest = hashlib.sha256()
    for name in MANIFESTS:
        digest.update((PACKAGE_DIR / name).read_bytes())
    return digest.hexdigest()


def ensure_node_modules(home: Path) -> Path:
    """Install the pinned npm packages under ``home/npm`` (once per lockfile) and return node_modules."""
    target = home / "npm"
    modules = target / "node_modules"
    wanted = lockfile_hash()
    if _installed(modules, wanted):
        return modules
    target.mkdir(parents=True, exist_ok=True)
    with _file_lock(target / ".install.lock"):
        if not _installed(modules, wanted):  # another process may have finished while we waited
            _npm_ci(target)
            (modules / MARKER).write_text(wanted + "\n")
    return modules


def anvil_binary(home: Path) -> Path:
    """Path to the pinned anvil executable (installs the npm packages first if needed)."""
    key = (platform.system(), platform.machine())
    if key not in _ANVIL_PLATFORMS:
        raise NodeToolsError(f"no anvil build for {key[0]} {key[1]}; install foundry's anvil by hand")
    package = f"anvil-{_ANVIL_PLATFORMS[key]}"
    binary = ensure_node_modules(home) / "@foundry-rs" / package / "bin" / "anvil"
    if not binary.is_file():
        raise NodeToolsError(
            f"anvil binary missing at {binary}: devnet/package.json pins only @foundry-rs/anvil-linux-amd64; "
            f"add @foundry-rs/{package} there (same version) for this platform"
        )
    return binary


def solcjs_path(home: Path, package: str = "solc") -> Path:
    """Directory of a pinned solc-js package (``require()``-able from node): ``solc`` is the project's
    compiler; others are aliases such as ``solc-0.8.19`` for sources pinned to an older exact version."""
    path = ensure_node_modules(home) / package
    if not (path / "soljson.js").is_file():
        raise NodeToolsError(f"solc-js missing at {path}")
    return path


def node_executable() -> str:
    """The ``node`` on PATH, or a clear error naming what to install."""
    return _which("node")


def _installed(modules: Path, wanted: str) -> bool:
    marker = modules / MARKER
    return marker.is_file() and marker.read_text().strip() == wanted


def _which(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise NodeToolsError(
            f"`{tool}` not found on PATH: the devnet needs Node.js 18+ with npm "
            "(e.g. `apt-get install nodejs npm` or https://nodejs.org)"
        )
    return found


def _npm_ci(target: Path) -> None:
    node, npm = _which("node"), _which("npm")
    for name in MANIFESTS:
        shutil.copyfile(PACKAGE_DIR / name, target / name)
    # No package here needs an install script; keeping them off guarantees nothing is fetched behind npm.
    command = [npm, "ci", *NPM_CI_FLAGS]
    env = {**os.environ, "npm_config_update_notifier": "false", "PATH": _path_with(node)}
    try:
        done = subprocess.run(
            command, cwd=target, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        raise NodeToolsError(f"`npm ci` in {target} took longer than {INSTALL_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        head = "\n".join((done.stderr or done.stdout).strip().splitlines()[:20])
        raise NodeToolsError(f"`npm ci` in {target} failed (exit {done.returncode}):\n{head}")


def _path_with(node: str) -> str:
    """PATH with node's directory first, so npm's scripts find the same node."""
    return os.pathsep.join([str(Path(node).parent), os.environ.get("PATH", "")])


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
