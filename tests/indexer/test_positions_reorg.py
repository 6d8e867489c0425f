"""After a reorg, the rebuilt positions and health factors equal a from-scratch index of the final chain."""

from __future__ import annotations

import tomllib
from pathlib import Path

import psycopg
import pytest

from chainrisk.db import to_libpq_url
from devnet.aave import deploy_markets
from devnet.anvil import Anvil
from devnet.scenario import simulate
from devnet.serve import indexer_toml
from indexer.config import IndexConfig
from indexer.lending.health import indexed_head, pools, refresh
from indexer.runner import config_plan, run_plan

pytestmark = pytest.mark.slow


def _index_and_refresh(url: str, db: str, manifest: dict[str, object]) -> int:
    config = IndexConfig(**tomllib.loads(indexer_toml({**manifest, "rpc_url": url})))
    run_plan(config_plan(config.chains[0], config.contracts, None, False), to_libpq_url(db))
    with psycopg.connect(to_libpq_url(db)) as conn:
        head = indexed_head(conn, 31337)
        assert head is not None
        for pool in pools(conn, 31337):
            refresh(conn, 31337, pool, head)
    return head


def _snapshot(db: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(to_libpq_url(db)) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4").fetchall()
            for table in ("account_health", "position_reserves")
        }


def test_positions_after_a_reorg_equal_a_fresh_rebuild(
    node_home: Path, db_url: str, second_db_url: str
) -> None:
    with Anvil(node_home) as node:
        deployment = deploy_markets(node, node_home)
        simulate(deployment, 1, 20, 7)
        manifest = deployment.to_manifest()
        eth = deployment.price("WETH", "aave")
        snapshot = node.snapshot()
        deployment.set_price("WETH", eth * 70 // 100)  # this branch crashes ETH by 30%
        node.mine(2)
        _index_and_refresh(node.url, db_url, manifest)
        crashed = _snapshot(db_url)
        node.revert(snapshot)
        deployment.set_price("WETH", eth * 105 // 100)  # the canonical branch lifts it by 5%
        node.mine(3)
        head = _index_and_refresh(node.url, db_url, manifest)
        _index_and_refresh(node.url, second_db_url, manifest)
    after = _snapshot(db_url)
    assert after == _snapshot(second_db_url)
    assert after != crashed
    assert all(row[3] == head for row in after["account_health"])
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        assert conn.execute("SELECT count(*) FROM reorgs").fetchone() == (1,)
