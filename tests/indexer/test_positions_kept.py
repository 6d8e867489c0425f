"""Indexing keeps positions and their history current: exact at every recorded block, equal to a fresh
rebuild after a reorg, and equal to the node's own getUserAccountData at past blocks."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chainrisk.db import to_libpq_url
from devnet.aave import deploy_markets
from devnet.anvil import Anvil
from devnet.scenario import simulate
from devnet.serve import indexer_toml
from indexer.chain import HttpChainClient
from indexer.config import IndexConfig
from indexer.lending.keeper import PositionKeeper
from indexer.lending.reconcile import Wallet, chain_account_data
from indexer.runner import config_plan, run_plan
from indexer.store import Cursor
from tests.indexer.test_restarts import _wait_for

pytestmark = pytest.mark.slow

CHAIN = 31337
HISTORY = ("account_health_history", "position_reserves_history")


def _index_keeping(
    url: str, db: str, manifest: dict[str, Any], max_range: int | None = None, period_s: int = 0
) -> Cursor:
    config = IndexConfig(**tomllib.loads(indexer_toml({**manifest, "rpc_url": url})))
    chain = config.chains[0]
    if max_range is not None:
        chain = chain.model_copy(update={"max_block_range": max_range})
    conninfo = to_libpq_url(db)
    with PositionKeeper(conninfo, CHAIN, period_s=period_s) as keeper:
        return run_plan(config_plan(chain, config.contracts, None, False), conninfo, listener=keeper)


def _tables(db: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(to_libpq_url(db)) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3, 4, 5").fetchall() for t in HISTORY}


@pytest.mark.parametrize("period_s", [0, 4 * 3600])
def test_kept_history_after_a_reorg_equals_a_fresh_rebuild(
    node_home: Path, db_url: str, second_db_url: str, period_s: int
) -> None:
    with Anvil(node_home) as node:
        deployment = deploy_markets(node, node_home)
        simulate(deployment, 1, 20, 7)
        manifest = deployment.to_manifest()
        eth = deployment.price("WETH", "aave")
        fork_base = node.snapshot()
        deployment.set_price("WETH", eth * 70 // 100)
        node.mine(2)
        # small batches: many listener calls, and periods split across them
        _index_keeping(node.url, db_url, manifest, max_range=7, period_s=period_s)
        crashed = _tables(db_url)
        node.revert(fork_base)
        deployment.set_price("WETH", eth * 105 // 100)
        node.mine(3)
        _index_keeping(node.url, db_url, manifest, max_range=7, period_s=period_s)
        _index_keeping(node.url, second_db_url, manifest, period_s=period_s)  # one big batch
    kept = _tables(db_url)
    assert kept == _tables(second_db_url)
    assert kept != crashed
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        assert conn.execute("SELECT count(*) FROM reorgs").fetchone() == (1,)
        users, rows = conn.execute(
            "SELECT count(DISTINCT user_address), count(*) FROM account_health_history"
        ).fetchone() or (0, 0)
    assert 0 < int(str(users)) < int(str(rows))  # a history, not one snapshot
    if period_s:
        assert _one_snapshot_per_period(db_url, period_s)


def _one_snapshot_per_period(db: str, period_s: int) -> bool:
    with psycopg.connect(to_libpq_url(db)) as conn:
        rows = conn.execute(
            "SELECT pool, extract(epoch FROM block_time)::bigint / %s, count(DISTINCT block_number)"
            " FROM account_health_history GROUP BY 1, 2",
            (period_s,),
        ).fetchall()
    return len(rows) > 1 and all(int(str(r[2])) == 1 for r in rows)


def test_history_at_past_blocks_equals_the_node(node_home: Path, db_url: str) -> None:
    with Anvil(node_home, prune_history=False) as node:
        deployment = deploy_markets(node, node_home)
        simulate(deployment, 2, 20, 11)
        _index_keeping(node.url, db_url, deployment.to_manifest())
        with psycopg.connect(to_libpq_url(db_url)) as conn:
            pool, blocks = _busiest_pool(conn)
            chosen = [blocks[len(blocks) // 3], blocks[2 * len(blocks) // 3], blocks[-1]]
            expected = {block: _history_at(conn, pool, block) for block in chosen}
        with HttpChainClient([node.url]) as client:
            for block, rows in expected.items():
                wallets = [Wallet(pool, user) for pool, user in rows]
                on_chain = chain_account_data(client, wallets, block)
                assert [tuple(a) for a in on_chain] == list(rows.values()), block
    assert all(len(rows) > 5 for rows in expected.values())


def _busiest_pool(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[str, list[int]]:
    """The pool with the most recorded blocks, and those blocks: the ones its events moved."""
    rows = conn.execute(
        "SELECT pool, array_agg(DISTINCT block_number ORDER BY block_number) FROM account_health_history"
        " GROUP BY pool ORDER BY count(DISTINCT block_number) DESC LIMIT 1"
    ).fetchall()
    pool, blocks = rows[0]
    return str(pool), [int(str(b)) for b in blocks]  # type: ignore[attr-defined]


def _history_at(
    conn: psycopg.Connection[tuple[object, ...]], pool: str, block: int
) -> dict[tuple[str, str], tuple[int, ...]]:
    """Each account's getUserAccountData fields as the history holds them at `block`: exact there,
    because `block` is one the pool's events moved."""
    rows = conn.execute(
        "SELECT pool, user_address, total_collateral_base, total_debt_base, available_borrows_base,"
        " liquidation_threshold_bps, ltv_bps, health_factor FROM account_health_history"
        " WHERE chain_id = %s AND pool = %s AND block_number <= %s AND (valid_to IS NULL OR valid_to > %s)"
        " ORDER BY pool, user_address",
        (CHAIN, pool, block, block),
    ).fetchall()
    return {(str(r[0]), str(r[1])): tuple(int(str(v)) for v in r[2:]) for r in rows}


def test_following_across_a_reorg_keeps_history_equal_to_a_fresh_rebuild(
    node_home: Path, db_url: str, second_db_url: str
) -> None:
    import threading

    from indexer.sync import Syncer

    with Anvil(node_home) as node:
        deployment = deploy_markets(node, node_home)
        simulate(deployment, 1, 20, 5)
        manifest = deployment.to_manifest()
        config = IndexConfig(**tomllib.loads(indexer_toml({**manifest, "rpc_url": node.url})))
        chain = config.chains[0].model_copy(update={"poll_interval_s": 0.05, "finality_depth": 16})
        plan = config_plan(chain, config.contracts, None, True)
        conninfo = to_libpq_url(db_url)
        running: list[Syncer] = []
        with PositionKeeper(conninfo, CHAIN) as keeper:
            follow = threading.Thread(
                target=run_plan,
                args=(plan, conninfo),
                kwargs={"on_start": running.append, "listener": keeper},
            )
            follow.start()
            try:
                _wait_for(lambda: _cursor(db_url) == node.block_number())
                eth = deployment.price("WETH", "aave")
                fork_base = node.snapshot()
                deployment.set_price("WETH", eth * 70 // 100)
                node.mine(2)
                _wait_for(lambda: _cursor(db_url) == node.block_number())
                node.revert(fork_base)
                deployment.set_price("WETH", eth * 110 // 100)
                node.mine(4)
                _wait_for(lambda: _cursor(db_url) == node.block_number() and _reorgs(db_url) == 1)
            finally:
                if running:
                    running[0].stop_requested = True
                follow.join(timeout=60)
        _index_keeping(node.url, second_db_url, manifest)
    # Joined: the keeper heard every committed batch (it runs in the loop, after each commit).
    assert not follow.is_alive()
    assert _tables(db_url) == _tables(second_db_url)


def _cursor(db: str) -> int:
    with psycopg.connect(to_libpq_url(db)) as conn:
        row = conn.execute("SELECT coalesce(max(block_number), -1) FROM cursors").fetchone()
    return int(str(row[0])) if row else -1


def _reorgs(db: str) -> int:
    with psycopg.connect(to_libpq_url(db)) as conn:
        row = conn.execute("SELECT count(*) FROM reorgs").fetchone()
    return int(str(row[0])) if row else 0
