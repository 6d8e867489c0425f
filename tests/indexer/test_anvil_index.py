"""End to end on a real node (anvil): a live contract, reorgs, SIGKILL crashes, a faulty provider."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest

from chainrisk.db import to_libpq_url
from devnet.anvil import Anvil
from devnet.deploy import BulkTokenHandle, bulk_token
from indexer.config import ChainConfig
from indexer.runner import adhoc_plan, run_plan
from indexer.store import Cursor
from indexer.sync import DeepReorgError
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.slow

COMPARED = ("logs", "erc20_transfers", "quarantine")


@pytest.fixture
def chain(anvil_factory) -> Iterator[tuple[Anvil, BulkTokenHandle]]:
    with anvil_factory() as node:
        token = bulk_token(node, node.home)
        yield node, token


def _config(url: str, depth: int = 64, max_range: int = 2000) -> ChainConfig:
    return ChainConfig(
        name="anvil",
        chain_id=31337,
        rpc_urls=[url],
        finality_depth=depth,
        max_block_range=max_range,
        poll_interval_s=0.05,
    )


def _index(
    url: str,
    db: str,
    token: str,
    start: int = 0,
    stop: int | None = None,
    depth: int = 64,
    max_range: int = 2000,
) -> Cursor:
    plan = adhoc_plan(
        _config(url, depth, max_range), [token], start, stop, follow=False, use_finalized_tag=False
    )
    return run_plan(plan, to_libpq_url(db))


def _dump(db: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(to_libpq_url(db)) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3").fetchall() for t in COMPARED}


def _count(db: str, query: str) -> int:
    with psycopg.connect(to_libpq_url(db)) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def _chain_transfer_count(node: Anvil, token: str) -> int:
    logs = node.rpc("eth_getLogs", [{"address": token, "fromBlock": "0x0", "toBlock": "latest"}])
    return sum(1 for x in logs if len(x["topics"]) == 3)


def test_indexes_a_live_contract_exactly(chain, db_url: str) -> None:
    node, token = chain
    token.spray(3_000, seed=1)
    token.spray_erc721_like(5)
    for i in range(5):
        token.transfer("0x" + f"{i + 1:040x}", 10**18 + i)
    cursor = _index(node.url, db_url, token.address)
    assert cursor.block_number == node.block_number()
    assert _count(db_url, "SELECT count(*) FROM erc20_transfers") == _chain_transfer_count(
        node, token.address
    )
    assert _count(db_url, "SELECT count(*) FROM quarantine WHERE reason = 'expected 3 topics, got 4'") == 5
    balance = token.balance_of("0x" + f"{3:040x}")
    received = _count(db_url, f"SELECT sum(value) FROM erc20_transfers WHERE to_address = '0x{3:040x}'")
    assert received == balance


def test_reorg_leaves_database_equal_to_fresh_index(chain, db_url: str, second_db_url: str) -> None:
    node, token = chain
    token.spray(500, seed=1)
    snapshot = node.snapshot()
    token.spray(400, seed=2)
    node.mine(3)
    _index(node.url, db_url, token.address)
    node.revert(snapshot)
    token.spray(300, seed=3)
    node.mine(5)
    cursor = _index(node.url, db_url, token.address)
    _index(node.url, second_db_url, token.address)
    assert cursor.block_number == node.block_number()
    assert _dump(db_url) == _dump(second_db_url)
    assert _count(db_url, "SELECT count(*) FROM reorgs") == 1
    assert _count(db_url, "SELECT max(depth) FROM reorgs") >= 1


def test_reorg_while_caught_up_on_a_shorter_branch(chain, db_url: str, second_db_url: str) -> None:
    node, token = chain
    snapshot = node.snapshot()
    token.spray(200, seed=4)
    node.mine(4)
    _index(node.url, db_url, token.address)
    node.revert(snapshot)
    token.spray(100, seed=5)
    _index(node.url, db_url, token.address)
    _index(node.url, second_db_url, token.address)
    assert _dump(db_url) == _dump(second_db_url)


def test_reorg_deeper_than_window_halts_without_writing(chain, db_url: str) -> None:
    node, token = chain
    snapshot = node.snapshot()
    token.spray(100, seed=6)
    node.mine(10)
    _index(node.url, db_url, token.address, depth=3)
    before = _dump(db_url)
    node.revert(snapshot)
    token.spray(50, seed=7)
    node.mine(12)
    with pytest.raises(DeepReorgError, match="deeper than the tracked window"):
        _index(node.url, db_url, token.address, depth=3)
    assert _dump(db_url) == before


def test_faulty_provider_yields_identical_data(chain, db_url: str, second_db_url: str) -> None:
    node, token = chain
    for seed in range(40):
        token.spray(50, seed=seed)
    rates = {
        "http_429": 0.05,
        "http_500": 0.05,
        "http_503": 0.05,
        "truncate": 0.05,
        "malformed": 0.05,
        "delay": 0.02,
    }
    with FaultProxy(node.url, seed=7, rates=rates, max_range=2, delay_s=1.5) as proxy:
        plan = adhoc_plan(_config(proxy.url), [token.address], 0, None, follow=False, use_finalized_tag=False)
        from indexer.chain import HttpChainClient

        client = HttpChainClient(
            [proxy.url], timeout_s=1.0, max_retries=40, backoff_base_s=0.01, backoff_max_s=0.05
        )
        try:
            run_plan(plan, to_libpq_url(db_url), client=client)
        finally:
            client.close()
        injected = dict(proxy.counts)
    _index(node.url, second_db_url, token.address)
    assert set(rates) <= set(injected), injected
    assert any(kind.startswith("range:") for kind in injected), injected
    assert _dump(db_url) == _dump(second_db_url)


def _cursor(db: str) -> int:
    with psycopg.connect(to_libpq_url(db)) as conn:
        row = conn.execute("SELECT block_number FROM cursors WHERE name = 'crashy'").fetchone()
    return -1 if row is None else int(row[0])


def _kill_after_progress(command: list[str], env: dict[str, str], db: str, blocks: int) -> bool:
    """Run the indexer and SIGKILL it once the cursor moved `blocks` further; False if it finished first."""
    start = _cursor(db)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if _cursor(db) >= start + blocks:
                proc.send_signal(signal.SIGKILL)
                return True
            time.sleep(0.01)
        return False
    finally:
        proc.wait()


def test_sigkill_at_random_points_leaves_no_gap_and_no_duplicate(
    chain, db_url: str, second_db_url: str
) -> None:
    node, token = chain
    for seed in range(120):
        token.spray(25, seed=seed)
    env = {**os.environ, "CHAINRISK_DATABASE_URL": db_url, "CHAINRISK_LOG_LEVEL": "WARNING"}
    command = [
        sys.executable,
        "-m",
        "chainrisk",
        "index",
        "--rpc",
        node.url,
        "--address",
        token.address,
        "--from",
        "0",
        "--to",
        str(node.block_number()),
        "--max-range",
        "1",
        "--no-progress",
        "--finality-depth",
        "64",
        "--name",
        "crashy",
    ]
    rng = random.Random(11)
    kills = sum(_kill_after_progress(command, env, db_url, rng.randint(1, 15)) for _ in range(6))
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert kills >= 4
    _index(node.url, second_db_url, token.address, stop=node.block_number())
    assert _dump(db_url) == _dump(second_db_url)
    assert _count(db_url, "SELECT count(*) FROM erc20_transfers") == 3_000 + 1  # plus the mint at deployment
