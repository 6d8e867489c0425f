"""Restarts across reorgs, lagging nodes and concurrent writers, on a real node (anvil).

The property: whatever happens to the chain and to the indexer in between (reorgs of any depth inside the
window, several before a catch-up, stops, SIGKILLs, the chain moving past the window while the indexer is
down), the database ends equal to a from-scratch index of the final chain.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psycopg
import pytest

from chainrisk.db import to_libpq_url
from devnet.anvil import Anvil
from devnet.deploy import BulkTokenHandle, bulk_token
from indexer.chain import HttpChainClient
from indexer.config import ChainConfig
from indexer.metrics import IndexerMetrics
from indexer.runner import adhoc_plan, run_plan
from indexer.store import Cursor
from indexer.sync import SourceBusyError, StartBeyondHeadError, Syncer
from tests.indexer.test_anvil_index import _count, _dump, _kill_after_progress
from tests.lagproxy import LaggingProxy

pytestmark = pytest.mark.slow

WINDOW = 6
SOURCE = "restarts"


@pytest.fixture
def chain(anvil_factory) -> Iterator[tuple[Anvil, BulkTokenHandle]]:
    with anvil_factory() as node:
        yield node, bulk_token(node, node.home)


@pytest.fixture
def fast_final_chain(anvil_factory) -> Iterator[tuple[Anvil, BulkTokenHandle]]:
    """A node whose finalized block trails the head by a couple of blocks."""
    with anvil_factory(extra_args=["--slots-in-an-epoch", "1"]) as node:
        yield node, bulk_token(node, node.home)


def _plan(url: str, token: str, *, depth: int = WINDOW, follow: bool = False, stop: int | None = None,
          finalized: bool = False, max_range: int = 2000, name: str = SOURCE):  # fmt: skip
    chain = ChainConfig(
        name="anvil",
        chain_id=31337,
        rpc_urls=[url],
        finality_depth=depth,
        max_block_range=max_range,
        poll_interval_s=0.02,
    )
    return adhoc_plan(chain, [token], 0, stop, follow, name=name, use_finalized_tag=finalized)


def _index(url: str, db: str, token: str, **options) -> Cursor:
    return run_plan(_plan(url, token, **options), to_libpq_url(db))


def _cli_command(url: str, token: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "chainrisk", "index", "--rpc", url, "--address", token, "--from", "0",
        "--finality-depth", str(WINDOW), "--no-progress", "--name", SOURCE, *extra,
    ]  # fmt: skip


def _env(db: str) -> dict[str, str]:
    return {**os.environ, "CHAINRISK_DATABASE_URL": db, "CHAINRISK_LOG_LEVEL": "WARNING"}


def _assert_equal_to_fresh(node: Anvil, token: str, db: str, fresh: str) -> None:
    cursor = _index(node.url, db, token)
    assert cursor.block_number == node.block_number()
    _index(node.url, fresh, token, name="fresh")
    assert _dump(db) == _dump(fresh)


# --- the case from the field: a reorg while the indexer is down, then the chain moves on ---------------


def test_reorg_while_down_then_the_chain_moves_past_the_window(
    chain, db_url: str, second_db_url: str
) -> None:
    node, token = chain
    token.spray(60, seed=1)
    fork_base = node.snapshot()
    token.spray(30, seed=2)
    node.mine(2)
    _index(node.url, db_url, token.address)
    node.revert(fork_base)
    token.spray(20, seed=3)
    node.mine(WINDOW * 3)  # the orphaned blocks now sit far below head − depth
    _assert_equal_to_fresh(node, token.address, db_url, second_db_url)
    assert _count(db_url, "SELECT count(*) FROM reorgs") == 1


def test_restart_past_the_finalized_block_through_the_cli(
    fast_final_chain, db_url: str, second_db_url: str
) -> None:
    node, token = fast_final_chain
    token.spray(40, seed=4)
    fork_base = node.snapshot()
    token.spray(10, seed=5)
    command = _cli_command(node.url, token.address)
    first = subprocess.run(command, env=_env(db_url), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    indexed_head = node.block_number()
    node.revert(fork_base)
    token.spray(15, seed=6)
    node.mine(WINDOW * 2)
    finalized = node.rpc("eth_getBlockByNumber", ["finalized", False])
    assert int(finalized["number"], 16) > indexed_head  # the orphaned blocks are final on the node now
    second = subprocess.run(command, env=_env(db_url), capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert _count(db_url, "SELECT count(*) FROM reorgs") == 1
    _index(node.url, second_db_url, token.address, name="fresh")
    assert _dump(db_url) == _dump(second_db_url)


def test_a_fork_below_the_window_halts_naming_a_compared_block(chain, db_url: str) -> None:
    node, token = chain
    fork_base = node.snapshot()
    token.spray(10, seed=7)
    node.mine(WINDOW + 4)
    cursor = _index(node.url, db_url, token.address)
    before = _dump(db_url)
    node.revert(fork_base)
    token.spray(5, seed=8)
    node.mine(WINDOW * 3)
    command = _cli_command(node.url, token.address)
    result = subprocess.run(command, env=_env(db_url), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert "deeper than the tracked window" in line and "--rewind-to" in line
    named = int(line.split("block ")[1].split()[0])
    assert cursor.block_number - WINDOW <= named <= cursor.block_number  # a block whose hash was compared
    assert _dump(db_url) == before


# --- the property ------------------------------------------------------------------------------------


@dataclass
class _World:
    """The chain, the indexer's database and what the test knows about the indexer's window."""

    node: Anvil
    token: BulkTokenHandle
    db: str
    rng: random.Random
    snapshots: dict[int, str] = field(default_factory=dict)
    floor: int = 0  # reorgs fork above this block, so the fork stays inside the stored window
    log: list[str] = field(default_factory=list)

    def extend(self) -> None:
        head = self.node.block_number()
        if head not in self.snapshots:
            self.snapshots[head] = self.node.snapshot()
        self.token.spray(self.rng.randint(1, 30), seed=self.rng.randrange(1 << 30), recipients=16)
        self.node.mine(self.rng.randint(0, 2))
        self.log.append(f"extend->{self.node.block_number()}")

    def reorg(self) -> None:
        head = self.node.block_number()
        low = max(self.floor, head - WINDOW)
        candidates = sorted(b for b in self.snapshots if low <= b < head)
        if not candidates:
            self.extend()
            return
        target = self.rng.choice(candidates)
        self.node.revert(self.snapshots[target])
        self.snapshots = {b: s for b, s in self.snapshots.items() if b < target}
        self.log.append(f"reorg@{target + 1}(depth {head - target})")
        for _ in range(self.rng.randint(1, 3)):
            self.extend()

    def move_past_window(self) -> None:
        start = self.node.block_number()
        while self.node.block_number() <= start + WINDOW:
            self.extend()
        self.log.append("moved past the window")

    def index(self) -> None:
        self._seen_head()
        _index(self.node.url, self.db, self.token.address)
        self.log.append("index")

    def stop_early(self) -> None:
        """A graceful stop (as on SIGTERM) after a random number of batches."""
        self._seen_head()
        batches = self.rng.randint(1, 4)
        running: list[Syncer] = []

        def progress(_: object) -> None:
            nonlocal batches
            batches -= 1
            if batches <= 0:
                running[0].stop_requested = True

        plan = _plan(self.node.url, self.token.address, max_range=2)
        run_plan(plan, to_libpq_url(self.db), on_progress=progress, on_start=running.append)
        self.log.append("stopped")

    def kill(self) -> None:
        self._seen_head()
        command = _cli_command(self.node.url, self.token.address, "--max-range", "1")
        killed = _kill_after_progress(command, _env(self.db), self.db, self.rng.randint(1, 5))
        self.log.append("killed" if killed else "finished before the kill")

    def _seen_head(self) -> None:
        self.floor = max(self.floor, self.node.block_number() - WINDOW)


_ACTIONS = ("extend", "extend", "reorg", "reorg", "index", "stop_early", "kill", "move_past_window")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_reorgs_and_restarts_end_equal_to_a_fresh_index(
    chain, db_url: str, second_db_url: str, seed: int
) -> None:
    node, token = chain
    world = _World(node, token, db_url, random.Random(seed))
    token.spray(20, seed=seed)
    world.index()
    for _ in range(14):
        getattr(world, world.rng.choice(_ACTIONS))()
    _assert_equal_to_fresh(node, token.address, db_url, second_db_url)
    assert "reorg" in " ".join(world.log), world.log


# --- lagging nodes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("lag", [5, 40, 200])
def test_a_lagging_node_behind_a_balancer_is_waited_for(
    chain, db_url: str, second_db_url: str, lag: int
) -> None:
    node, token = chain
    token.spray(200, seed=9, recipients=8)
    node.mine(10)
    metrics = IndexerMetrics()
    with LaggingProxy(node.url, lag=lag, every=3) as proxy:
        for _ in range(3):
            head = node.block_number()
            plan = _plan(proxy.url, token.address, depth=64, follow=True, stop=head, max_range=7)
            cursor = run_plan(plan, to_libpq_url(db_url), metrics=metrics)
            assert cursor.block_number == head
            token.spray(30, seed=head, recipients=8)
            node.mine(lag + 3)
    assert proxy.lagged > 0
    assert metrics.lagging.labels("anvil")._value.get() > 0
    assert _count(db_url, "SELECT count(*) FROM reorgs") == 0
    _index(node.url, second_db_url, token.address, name="fresh", stop=cursor.block_number)
    assert _dump(db_url) == _dump(second_db_url)


def test_follow_mode_waits_out_an_outage_and_checks_the_cursor_again(
    chain, db_url: str, second_db_url: str
) -> None:
    node, token = chain
    token.spray(30, seed=11)
    fork_base = node.snapshot()
    token.spray(10, seed=12)
    running: list[Syncer] = []
    with LaggingProxy(node.url, lag=0, every=1_000_000) as proxy:
        client = HttpChainClient([proxy.url], max_retries=1, backoff_base_s=0.01, backoff_max_s=0.02)
        plan = _plan(proxy.url, token.address, follow=True)
        thread = threading.Thread(
            target=run_plan,
            args=(plan, to_libpq_url(db_url)),
            kwargs={"on_start": running.append, "client": client},
        )
        thread.start()
        try:
            _wait_for(lambda: _cursor_block(db_url) == node.block_number())
            proxy.down = True
            node.revert(fork_base)
            token.spray(12, seed=13)
            node.mine(3)
            _wait_for(lambda: proxy.refused >= 6)  # the syncer ran out of retries at least three times
            proxy.down = False
            _wait_for(lambda: _cursor_block(db_url) == node.block_number())
        finally:
            if running:
                running[0].stop_requested = True
            thread.join(timeout=60)
            client.close()
    assert not thread.is_alive()
    assert _count(db_url, "SELECT count(*) FROM reorgs") == 1
    _index(node.url, second_db_url, token.address, name="fresh")
    assert _dump(db_url) == _dump(second_db_url)


def _cursor_block(db: str) -> int:
    return _count(db, f"SELECT coalesce(max(block_number), -1) FROM cursors WHERE name = '{SOURCE}'")


def _wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- where to start, who writes ----------------------------------------------------------------------


def test_from_beyond_the_head_is_refused_and_writes_nothing(chain, db_url: str) -> None:
    node, token = chain
    head = node.block_number()
    plan = adhoc_plan(
        ChainConfig(name="anvil", chain_id=31337, rpc_urls=[node.url]), [token.address], head + 5, None, False
    )
    with pytest.raises(StartBeyondHeadError, match=rf"--from {head + 5}: .* head is block {head}"):
        run_plan(plan, to_libpq_url(db_url))
    assert _count(db_url, "SELECT count(*) FROM cursors") == 0
    command = [*_cli_command(node.url, token.address)]
    command[command.index("--from") + 1] = str(head + 1)
    result = subprocess.run(command, env=_env(db_url), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "indexed through" not in result.stdout
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: --from")


def test_a_second_writer_on_the_same_source_is_turned_away(chain, db_url: str) -> None:
    node, token = chain
    token.spray(10, seed=10)
    with psycopg.connect(to_libpq_url(db_url)) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (f"source:{SOURCE}",))
        with pytest.raises(SourceBusyError, match="another process"):
            _index(node.url, db_url, token.address)
        result = subprocess.run(
            _cli_command(node.url, token.address),
            env=_env(db_url),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1 and "another process" in result.stderr
    assert _count(db_url, "SELECT count(*) FROM logs") == 0
    assert _index(node.url, db_url, token.address).block_number == node.block_number()


def test_overlapping_sources_at_once_leave_no_duplicates(chain, db_url: str, second_db_url: str) -> None:
    node, token = chain
    for seed in range(12):
        token.spray(40, seed=seed)
    errors: list[BaseException] = []

    def run(name: str, addresses: list[str]) -> None:
        chain_config = ChainConfig(name="anvil", chain_id=31337, rpc_urls=[node.url], max_block_range=2)
        plan = adhoc_plan(chain_config, addresses, 0, None, False, name=name, use_finalized_tag=False)
        try:
            run_plan(plan, to_libpq_url(db_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=("token-only", [token.address])),
        threading.Thread(target=run, args=("everything", [])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    duplicates = (
        "SELECT count(*) FROM (SELECT 1 FROM logs GROUP BY block_number, log_index HAVING count(*) > 1) d"
    )
    assert _count(db_url, duplicates) == 0
    _index(node.url, second_db_url, token.address, name="fresh")
    assert _count(db_url, "SELECT count(*) FROM erc20_transfers") == _count(
        second_db_url, "SELECT count(*) FROM erc20_transfers"
    )
