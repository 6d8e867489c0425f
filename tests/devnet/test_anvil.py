"""Real anvil from the pinned npm package: process hygiene, BulkToken logs, rewinds."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from devnet.anvil import Anvil, AnvilError
from devnet.deploy import (
    TRANSFER_TOPIC,
    BulkTokenHandle,
    bulk_token,
    nft_like_recipient,
    spray_transfer,
)
from devnet.npm import NodeToolsError, ensure_node_modules
from devnet.solc import compile_project
from tests.devnet.fixtures import ROOT, anvil, devnet_home  # noqa: F401

SEED = 2**255 + 12_345  # large on purpose: the contract adds indexes to it modulo 2**256


def _topic(address: str) -> str:
    return "0x" + address.removeprefix("0x").rjust(64, "0")


def _logs(node: Anvil, address: str, first: int, last: int, step: int = 1) -> list[dict[str, Any]]:
    logs: list[dict[str, Any]] = []
    for start in range(first, last + 1, step):
        end = min(start + step - 1, last)
        query = {"fromBlock": hex(start), "toBlock": hex(end), "address": address}
        logs.extend(node.rpc("eth_getLogs", [query]))
    return logs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module")
def token(anvil: Anvil, devnet_home: Path) -> BulkTokenHandle:  # noqa: F811
    return bulk_token(anvil, devnet_home)


def test_anvil_runs_pruned_on_a_free_local_port(anvil: Anvil) -> None:  # noqa: F811
    assert "--prune-history" in anvil.args
    assert anvil.pid is not None
    cmdline = Path(f"/proc/{anvil.pid}/cmdline").read_bytes().split(b"\0")
    assert b"--prune-history" in cmdline
    assert anvil.url == f"http://127.0.0.1:{anvil.port}"
    assert anvil.rpc("eth_chainId") == hex(31337)
    assert len(anvil.accounts()) == 10


def test_spray_leaves_exactly_the_transfer_logs_it_describes(anvil: Anvil, token: BulkTokenHandle) -> None:  # noqa: F811
    before = token.balance_of(token.sender)
    blocks = token.spray(50_000, seed=SEED)
    logs = _logs(anvil, token.address, blocks.first, blocks.last)
    assert len(logs) == 50_000
    expected = [spray_transfer(SEED, i) for i in range(50_000)]
    assert [log["topics"] for log in logs] == [
        [TRANSFER_TOPIC, _topic(token.sender), _topic(to)] for to, _ in expected
    ]
    assert [int(log["data"], 16) for log in logs] == [amount for _, amount in expected]
    assert token.balance_of(token.sender) == before - sum(amount for _, amount in expected)
    assert token.balance_of(expected[-1][0]) == expected[-1][1]


def test_spray_splits_into_transactions_that_fit_a_block(anvil: Anvil, token: BulkTokenHandle) -> None:  # noqa: F811
    blocks = token.spray(2_500, seed=7, chunk=1_000)
    assert blocks.last - blocks.first == 2  # automine: one transaction per block
    logs = _logs(anvil, token.address, blocks.first, blocks.last, step=3)
    assert [int(log["topics"][2], 16) for log in logs] == [
        int(spray_transfer(7, i)[0], 16) for i in range(2_500)
    ]


def test_spray_can_cycle_through_fewer_recipients(anvil: Anvil, token: BulkTokenHandle) -> None:  # noqa: F811
    blocks = token.spray(2_500, seed=11, recipients=1_000, chunk=600)
    assert blocks.last - blocks.first == 4  # pieces 600, 400 | 600, 400 | 500: none crosses a cycle
    logs = _logs(anvil, token.address, blocks.first, blocks.last, step=6)
    expected = [spray_transfer(11, i % 1_000) for i in range(2_500)]
    assert [(log["topics"][2], int(log["data"], 16)) for log in logs] == [(_topic(t), a) for t, a in expected]


def test_erc721_like_events_have_four_topics(anvil: Anvil, token: BulkTokenHandle) -> None:  # noqa: F811
    blocks = token.spray_erc721_like(300)
    logs = _logs(anvil, token.address, blocks.first, blocks.last)
    assert len(logs) == 300
    assert all(len(log["topics"]) == 4 and log["data"] == "0x" for log in logs)
    assert {log["topics"][0] for log in logs} == {TRANSFER_TOPIC}
    first_id = int(logs[0]["topics"][3], 16)
    assert [int(log["topics"][3], 16) for log in logs] == list(range(first_id, first_id + 300))
    assert logs[5]["topics"][2] == _topic(nft_like_recipient(first_id + 5))


def test_finalized_trails_latest_by_two_epochs(devnet_home: Path) -> None:  # noqa: F811
    with Anvil(devnet_home) as node:  # a fresh node: blocks get slower as the state grows
        node.mine(20)
        assert node.rpc("eth_getBlockByNumber", ["finalized", False])["number"] == "0x0"
        node.mine(80)
        numbers = {
            tag: int(node.rpc("eth_getBlockByNumber", [tag, False])["number"], 16)
            for tag in ("latest", "safe", "finalized")
        }
    assert numbers == {"latest": 100, "safe": 100 - 32, "finalized": 100 - 64}


def test_snapshot_and_revert_rewrite_the_same_heights(devnet_home: Path) -> None:  # noqa: F811
    with Anvil(devnet_home) as node:
        token = bulk_token(node, devnet_home)
        start = node.block_number()
        snapshot = node.snapshot()
        node.mine(3)
        old = [node.rpc("eth_getBlockByNumber", [hex(start + i), False])["hash"] for i in (1, 2, 3)]
        node.revert(snapshot)
        assert node.block_number() == start
        token.transfer("0x" + "11" * 20, 5)
        node.mine(2)
        new = [node.rpc("eth_getBlockByNumber", [hex(start + i), False])["hash"] for i in (1, 2, 3)]
        assert all(a != b for a, b in zip(old, new, strict=True))
        with pytest.raises(AnvilError, match="refused"):
            node.revert(snapshot)  # a snapshot is consumed by its revert


def test_parallel_instances_get_their_own_ports(devnet_home: Path) -> None:  # noqa: F811
    with Anvil(devnet_home) as one, Anvil(devnet_home, chain_id=1337) as two:
        assert one.port != two.port
        assert one.rpc("eth_chainId") == hex(31337)
        assert two.rpc("eth_chainId") == hex(1337)


def test_stop_and_garbage_collection_leave_no_process(devnet_home: Path) -> None:  # noqa: F811
    node = Anvil(devnet_home).start()
    pid = node.pid
    assert pid is not None and _alive(pid)
    node.stop()
    node.stop()
    assert not _alive(pid)  # stop() waited for it, so there is no zombie either
    forgotten = Anvil(devnet_home).start()
    pid = forgotten.pid
    assert pid is not None
    del forgotten
    gc.collect()
    assert _wait_gone(pid)


def test_a_killed_parent_takes_anvil_with_it(devnet_home: Path) -> None:  # noqa: F811
    script = (
        "import sys, time; from pathlib import Path; from devnet.anvil import Anvil;"
        "a = Anvil(Path(sys.argv[1])).start(); print(a.pid, a.log_path, flush=True); time.sleep(60)"
    )
    command = [sys.executable, "-c", script, str(devnet_home)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as parent:
        assert parent.stdout is not None
        pid, log = parent.stdout.readline().split()
        parent.send_signal(signal.SIGKILL)
    assert _wait_gone(int(pid))
    Path(log).unlink()


def test_a_bad_option_is_a_clear_error_quoting_anvil(devnet_home: Path) -> None:  # noqa: F811
    node = Anvil(devnet_home, extra_args=["--no-such-option"], start_timeout=10)
    with pytest.raises(AnvilError, match=r"anvil exited (?s:.*)unexpected argument '--no-such-option'"):
        node.start()
    node.log_path.unlink()


def test_compiled_output_is_cached_under_home(devnet_home: Path) -> None:  # noqa: F811
    first = compile_project(devnet_home)
    assert first == compile_project(devnet_home)
    assert any((devnet_home / "solc" / "cache").glob("*.json"))
    assert first["BulkToken"].bytecode.startswith("0x60")


def test_missing_node_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NodeToolsError, match=r"Node\.js"):
        ensure_node_modules(tmp_path)
