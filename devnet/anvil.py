"""A local anvil node on a free 127.0.0.1 port, started from the pinned binary and never left running.

    with Anvil(home) as anvil:
        anvil.rpc("eth_blockNumber")

The process is stopped by ``stop()``, by leaving the ``with`` block, when the object is garbage collected,
and at interpreter exit; on Linux it also receives SIGTERM if the (main) thread that started it dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from devnet.errors import DevnetError
from devnet.npm import anvil_binary

DEFAULT_GAS_LIMIT = 1_000_000_000
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
_PORT_ATTEMPTS = 3


class AnvilError(DevnetError, RuntimeError):
    """Anvil could not start, or stopped while in use."""


class RpcError(DevnetError, RuntimeError):
    """A JSON-RPC error answer; ``code``, ``message`` and ``data`` as the node sent them."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method, self.code, self.message, self.data = method, code, message, data


class Anvil:
    """One anvil process, by default with ``--prune-history`` (in-memory state only); see the module
    docstring. ``prune_history=False`` keeps every block's state, for calls at past blocks and reorgs."""

    def __init__(
        self,
        home: Path,
        *,
        chain_id: int = 31337,
        block_time: float | None = None,
        gas_limit: int = DEFAULT_GAS_LIMIT,
        accounts: int = 10,
        balance_eth: int = 10_000,
        hardfork: str | None = None,
        quiet: bool = True,
        extra_args: Sequence[str] = (),
        start_timeout: float = START_TIMEOUT_S,
        prune_history: bool = True,
    ) -> None:
        self.home = home
        self.options: list[str] = [
            *(["--prune-history"] if prune_history else []),
            "--chain-id", str(chain_id),
            "--gas-limit", str(gas_limit),
            "--accounts", str(accounts),
            "--balance", str(balance_eth),
            "--no-request-size-limit",
            *(["--block-time", _seconds(block_time)] if block_time is not None else []),
            *(["--hardfork", hardfork] if hardfork else []),
            *(["--quiet"] if quiet else []),
            *extra_args,
        ]  # fmt: skip
        self.start_timeout = start_timeout
        self.port = 0
        self.log_path = home / "anvil" / "anvil.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None
        self._ids = itertools.count(1)
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def url(self) -> str:
        """HTTP JSON-RPC endpoint of the running node."""
        if self._process is None:
            raise AnvilError("anvil is not running: call start() or use it as a context manager")
        return f"http://127.0.0.1:{self.port}"

    @property
    def args(self) -> list[str]:
        """The full command line of the running process."""
        if self._process is None:
            raise AnvilError("anvil is not running")
        return [str(a) for a in self._process.args]  # type: ignore[union-attr]

    @property
    def pid(self) -> int | None:
        """Process id while running, else None."""
        return None if self._process is None else self._process.pid

    def start(self) -> Anvil:
        """Start anvil on a free port and wait until it answers ``eth_chainId``; returns self."""
        if self._process is not None:
            return self
        binary = anvil_binary(self.home)
        (self.home / "anvil").mkdir(parents=True, exist_ok=True)
        for attempt in range(_PORT_ATTEMPTS):
            self.port = _free_port()
            self.log_path = self.home / "anvil" / f"anvil-{self.port}.log"
            self._spawn([str(binary), "--host", "127.0.0.1", "--port", str(self.port), *self.options])
            try:
                self._wait_ready()
                return self
            except AnvilError as exc:
                self.stop()
                # Another process may have taken the port between probing and binding: try a new one.
                if "in use" not in str(exc).lower() or attempt == _PORT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL), wait for it, close connections; idempotent."""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._process = None
        self._client = None

    close = stop

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One JSON-RPC call; returns ``result`` or raises :class:`RpcError`."""
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        url = self.url
        assert self._client is not None
        answer = self._client.post(url, json=request)
        answer.raise_for_status()
        body = answer.json()
        if "error" in body:
            error = body["error"]
            raise RpcError(method, int(error.get("code", 0)), str(error.get("message")), error.get("data"))
        return body["result"]

    def accounts(self) -> list[str]:
        """The unlocked dev accounts, lowercase."""
        return [str(a).lower() for a in self.rpc("eth_accounts")]

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` empty blocks now."""
        self.rpc("anvil_mine", [hex(blocks)])

    def snapshot(self) -> str:
        """``evm_snapshot``: an id to rewind to with :meth:`revert`."""
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        """``evm_revert``: drop every block and state change after the snapshot."""
        if not self.rpc("evm_revert", [snapshot_id]):
            raise AnvilError(f"evm_revert({snapshot_id}) refused: unknown or already used snapshot")

    def _spawn(self, command: list[str]) -> None:
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_parent_death_signal(),
            )
        self._process = process
        self._client = httpx.Client(timeout=httpx.Timeout(300.0, connect=5.0))
        self._finalizer = weakref.finalize(self, _shutdown, process, self._client, self.log_path)

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AnvilError(f"anvil exited with {self._process.returncode}: {self._log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                self.rpc("eth_chainId")
                return
            time.sleep(0.05)
        raise AnvilError(f"anvil did not answer within {self.start_timeout} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-1500:].strip() or "(empty log)"
        except OSError:
            return "(no log)"


def _shutdown(process: subprocess.Popen[bytes], client: httpx.Client, log_path: Path) -> None:
    client.close()
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(OSError):
        if log_path.stat().st_size == 0:  # --quiet leaves most logs empty: keep only the useful ones
            log_path.unlink()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, from the main thread: have the kernel SIGTERM anvil if this process dies uncleanly.

    The kernel ties this to the starting *thread*, so it is skipped off the main thread, where a
    finished worker thread would otherwise take a still-used node down with it.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def set_signal() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_signal
