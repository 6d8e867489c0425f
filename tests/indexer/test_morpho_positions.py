"""Morpho Blue rebuilt from indexed events equals Morpho's own views to the wei, at past blocks too.

Aave v3 and Morpho Blue are deployed on anvil (keeping every block's state) and the seeded scenario runs
with Morpho lenders, borrowers, loopers and liquidation bots. The chain is indexed through the devnet's
generated config (``[[morpho_oracles]]`` included) with the position keeper at every moving block; then
at sampled blocks every market's ``market(id)``, every wallet's ``position(id, user)``, the oracle's
``price()`` and whether the position is liquidatable are compared with the rebuild, and the kept history
with a fresh snapshot. `chainrisk reconcile` then compares the same positions through its own eth_calls,
and a reorg that moved Morpho's positions is rolled back to what a fresh index of the final chain gives.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from chainrisk.db import to_libpq_url
from devnet.aave import deploy_markets
from devnet.anvil import Anvil, RpcError
from devnet.morpho import Morpho, deploy_morpho, manifest_with_morpho
from devnet.scenario import simulate
from devnet.serve import indexer_toml
from indexer.catalog import sync_config
from indexer.config import IndexConfig
from indexer.lending.keeper import PositionKeeper
from indexer.lending.morpho import MorphoMarketState, MorphoReplay, snapshot_rows, sync_oracles
from indexer.protocols import morpho_blue as mb
from indexer.runner import config_plan, run_plan

pytestmark = pytest.mark.slow

GENESIS = 1_700_000_000
LEGS = ((2, 40, 31), (1, 30, 32))
MIN_SAMPLES = 500
SAMPLED_BLOCKS = 60
HEALTHY = "position is healthy"
LIQUIDATE_ARGS = ["(address,address,address,address,uint256)", "address", "uint256", "uint256", "bytes"]
LIQUIDATE_SELECTOR = keccak(text=f"liquidate({','.join(LIQUIDATE_ARGS)})")[:4]


@dataclass(frozen=True)
class Devnet:
    node: Anvil
    morpho: Morpho
    conninfo: str
    chain_id: int
    head: int
    env: dict[str, str]


@pytest.fixture(scope="module")
def devnet(
    templates: dict[str, str], node_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Devnet]:
    """Aave and Morpho with the scenario's legs on an anvil that keeps history, indexed with the keeper."""
    from tests.conftest import _fresh_database

    tmp = tmp_path_factory.mktemp("morpho")
    for db in _fresh_database(templates["embedded"]):
        with Anvil(node_home, prune_history=False, extra_args=["--timestamp", str(GENESIS)]) as node:
            morpho, manifest = _deploy(node, node_home, LEGS)
            conninfo = to_libpq_url(db)
            config = _index(manifest, conninfo)
            (tmp / "chainrisk.toml").write_text(indexer_toml(manifest))
            env = {
                **os.environ,
                "CHAINRISK_DATABASE_URL": db,
                "CHAINRISK_HOME": str(tmp / "home"),
                "CHAINRISK_CONFIG": str(tmp / "chainrisk.toml"),
                "CHAINRISK_LOG_LEVEL": "WARNING",
            }
            yield Devnet(node, morpho, conninfo, config.chains[0].chain_id, node.block_number(), env)


def _deploy(node: Anvil, home: Path, legs: tuple[tuple[int, int, int], ...]) -> tuple[Morpho, dict[str, Any]]:
    node.rpc("anvil_setBlockTimestampInterval", [12])
    deployment = deploy_markets(node, home)
    morpho = deploy_morpho(deployment, home)
    for days, wallets, seed in legs:
        simulate(deployment, days, wallets, seed, morpho=morpho)
    manifest = manifest_with_morpho(deployment.to_manifest(), morpho)
    return morpho, {**manifest, "rpc_url": node.url}


def _index(manifest: dict[str, Any], conninfo: str) -> IndexConfig:
    config = IndexConfig(**tomllib.loads(indexer_toml(manifest)))
    with psycopg.connect(conninfo) as conn:
        sync_config(conn, config.chains, config.tokens, config.labels)
        sync_oracles(conn, config.chains, config.morpho_oracles)
    chain = config.chains[0]
    with PositionKeeper(conninfo, chain.chain_id, period_s=0) as keeper:
        run_plan(config_plan(chain, config.contracts, None, False), conninfo, listener=keeper)
        assert keeper.refreshes > 0
    return config


def _sample_blocks(conn: psycopg.Connection[Any], chain_id: int, head: int) -> list[int]:
    """Blocks with Morpho events (liquidations first), then others, SAMPLED_BLOCKS in all, ascending."""
    rows = conn.execute(
        "SELECT DISTINCT block_number, 0 FROM morpho_blue_liquidate WHERE chain_id = %(c)s"
        " UNION SELECT DISTINCT block_number, 1 FROM morpho_blue_borrow WHERE chain_id = %(c)s",
        {"c": chain_id},
    ).fetchall()
    rng = random.Random(5)
    eventful = [int(b) for b, _ in sorted(rows, key=lambda r: (r[1], rng.random()))]
    first = min(eventful)
    chosen = set(eventful[: SAMPLED_BLOCKS // 2]) | {head}
    while len(chosen) < SAMPLED_BLOCKS:
        chosen.add(rng.randint(first, head))
    return sorted(chosen)


def _liquidation_allowed(morpho: Morpho, market: MorphoMarketState, user: str, block: int) -> bool:
    """eth_call of liquidate(params, user, 1, 0, ""): only "position is healthy" means not allowed."""
    params = (
        market.params.loan_token,
        market.params.collateral_token,
        market.params.oracle,
        market.params.irm,
        market.params.lltv,
    )
    data = "0x" + (LIQUIDATE_SELECTOR + abi_encode(LIQUIDATE_ARGS, [params, user, 1, 0, b""])).hex()
    try:
        morpho.rpc.rpc("eth_call", [{"to": morpho.address, "data": data, "from": morpho.owner}, hex(block)])
    except RpcError as exc:
        return HEALTHY not in f"{exc.message} {exc.data}"
    return True


def _compare_market(
    morpho: Morpho, market: MorphoMarketState, users: list[str], stamp: int, counts: dict[str, int]
) -> list[str]:
    """market(id), price() and every seen user's position(id, user) and liquidatability at the block."""
    block, name = market.block, next(n for n, m in morpho.markets.items() if m.id == market.id)
    chain_market, price = morpho.market_state(name, block), morpho.price(name, block)
    t = market.totals
    ours = (
        t.total_supply_assets, t.total_supply_shares, t.total_borrow_assets, t.total_borrow_shares,
        t.last_update, t.fee,
    )  # fmt: skip
    out = (
        [] if ours == tuple(chain_market.__dict__.values()) else [f"{name}@{block} {ours} != {chain_market}"]
    )
    if market.oracle_price != price:
        out.append(f"{name}@{block} price {market.oracle_price} != {price}")
    chain_totals = mb.MarketTotals(*chain_market.__dict__.values())
    for user in users:
        position, mine = morpho.position(name, user, block), market.position(user)
        if (mine.supply_shares, mine.borrow_shares, mine.collateral) != tuple(position.__dict__.values()):
            out.append(f"{name}@{block} {user} {mine} != {position}")
        if mine.empty:
            continue
        counts["samples"] += 1
        truth = not mb.is_healthy(
            mb.Position(*position.__dict__.values()), chain_totals, price, market.params.lltv
        )
        flag = market.liquidatable(user)
        counts["liquidatable"] += flag
        if flag != truth or flag != (market.health_factor(user) < mb.WAD):
            out.append(f"{name}@{block} {user} liquidatable {flag} != {truth}")
        # With nothing to accrue, liquidate's own health check sees the stored state.
        if mine.borrow_shares and t.last_update == stamp:
            counts["calls"] += 1
            if _liquidation_allowed(morpho, market, user, block) != flag:
                out.append(f"{name}@{block} {user} liquidate() disagrees ({flag})")
    return out


def _history_at(conn: psycopg.Connection[Any], chain_id: int, block: int) -> set[tuple[object, ...]]:
    rows = conn.execute(
        "SELECT pool, user_address, total_collateral_base, total_debt_base, available_borrows_base,"
        " liquidation_threshold_bps, ltv_bps, health_factor, emode_category FROM account_health_history"
        " WHERE chain_id = %s AND protocol = 'morpho_blue' AND block_number <= %s"
        " AND (valid_to IS NULL OR valid_to > %s)",
        (chain_id, block, block),
    ).fetchall()
    return {tuple(int(v) if not isinstance(v, str) else v for v in r) for r in rows}


def _snapshot_at(conn: psycopg.Connection[Any], markets: list[MorphoMarketState]) -> set[tuple[object, ...]]:
    rows: set[tuple[object, ...]] = set()
    for market in markets:
        health, _ = snapshot_rows(conn, market)
        rows |= {(r[1], r[2], *(int(str(v)) for v in r[4:])) for r in health}
    return rows


def test_morpho_positions_from_events_equal_the_contract(devnet: Devnet) -> None:
    mismatches: list[str] = []
    counts = {"samples": 0, "liquidatable": 0, "calls": 0, "blocks": 0}
    replay = MorphoReplay(devnet.chain_id, devnet.morpho.address)
    seen: dict[str, set[str]] = {}
    with psycopg.connect(devnet.conninfo) as conn:
        for block in _sample_blocks(conn, devnet.chain_id, devnet.head):
            replay.advance(conn, block)
            markets = replay.markets(conn)
            stamp = int(devnet.node.rpc("eth_getBlockByNumber", [hex(block), False])["timestamp"], 16)
            for market in markets:
                users = seen.setdefault(market.id, set())
                users |= set(market.positions)
                mismatches += _compare_market(devnet.morpho, market, sorted(users), stamp, counts)
            if _history_at(conn, devnet.chain_id, block) != _snapshot_at(conn, markets):
                mismatches.append(f"kept history at {block} differs from a fresh snapshot")
            counts["blocks"] += 1
    samples, liquidatable, calls, blocks_checked, head = (
        counts["samples"], counts["liquidatable"], counts["calls"], counts["blocks"], devnet.head,
    )  # fmt: skip
    print(
        f"\nMorpho parity: {samples} wallet-market-block samples over {blocks_checked} blocks"
        f" (head {head}), {liquidatable} liquidatable, {calls} liquidate() eth_calls,"
        f" {len(mismatches)} mismatches"
    )
    assert mismatches == [], mismatches[:10]
    assert samples >= MIN_SAMPLES
    assert liquidatable > 0 and calls > 0


def _reconcile(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chainrisk", "reconcile", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_reconcile_covers_morpho_with_zero_drift(devnet: Devnet) -> None:
    for block in (devnet.head, devnet.head - 40):
        result = _reconcile(devnet.env, "--sample", "1000", "--block", str(block), "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        by_protocol: dict[str, int] = {}
        for wallet in report["wallets"]:
            by_protocol[wallet["protocol"]] = by_protocol.get(wallet["protocol"], 0) + 1
        assert set(by_protocol) == {"aave_v3", "morpho_blue"} and by_protocol["morpho_blue"] >= 5
        assert report["summary"]["wallets_drifting"] == 0
        drifts = report["summary"]["max_drift_by_protocol"]
        assert {v for p in drifts.values() for v in p.values()} == {"0"}
        morpho_ids = {w["pool"] for w in report["wallets"] if w["protocol"] == "morpho_blue"}
        assert morpho_ids <= {m.id for m in devnet.morpho.markets.values()}
    table = _reconcile(devnet.env, "--sample", "40", "--seed", "2", "--no-progress")
    assert table.returncode == 0, table.stderr
    assert "morpho_blue" in table.stdout and "Morpho Blue max drift: supply shares 0" in table.stdout


def _morpho_rows(conninfo: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(conninfo) as conn:
        return {
            table: conn.execute(
                f"SELECT * FROM {table} WHERE protocol = 'morpho_blue' ORDER BY 1, 2, 3, 4"
            ).fetchall()
            for table in ("account_health", "position_reserves")
        }


def test_morpho_positions_after_a_reorg_equal_a_fresh_rebuild(
    node_home: Path, db_url: str, second_db_url: str
) -> None:
    first, second = to_libpq_url(db_url), to_libpq_url(second_db_url)
    with Anvil(node_home, extra_args=["--timestamp", str(GENESIS)]) as node:
        morpho, manifest = _deploy(node, node_home, ((1, 20, 41),))
        deployment = morpho.deployment
        weth = deployment.price("WETH", "aave")
        _index(manifest, first)
        snapshot, fork = node.snapshot(), node.block_number()
        deployment.set_price("WETH", weth * 70 // 100)  # this branch crashes ETH by 30%
        morpho.contract().transact(deployment.deployer, "accrueInterest", morpho.market("WETH/USDC").params)
        node.mine(2)
        _index(manifest, first)
        crashed = _morpho_rows(first)
        assert _accruals_after(first, fork) == 1
        node.revert(snapshot)
        deployment.set_price("WETH", weth * 105 // 100)  # the canonical branch lifts it by 5%
        node.mine(3)
        _index(manifest, first)
        _index(manifest, second)
    after = _morpho_rows(first)
    assert after == _morpho_rows(second)
    assert after != crashed and after["account_health"]
    assert _accruals_after(first, fork) == 0
    with psycopg.connect(first) as conn:
        assert conn.execute("SELECT count(*) FROM reorgs").fetchone() == (1,)


def _accruals_after(conninfo: str, block: int) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FROM morpho_blue_accrue_interest WHERE block_number > %s", (block,)
        ).fetchone()
    return 0 if row is None else int(row[0])


def test_morpho_liquidations_in_the_lending_views(devnet: Devnet) -> None:
    """Each Liquidate is a `liquidations` row valued at the feeds just before it; positions carry protocol."""
    with psycopg.connect(devnet.conninfo) as conn:
        events = conn.execute(
            "SELECT id, borrower, repaid_assets, seized_assets, block_number, log_index"
            " FROM morpho_blue_liquidate ORDER BY block_number, log_index"
        ).fetchall()
        rows = conn.execute(
            "SELECT pool, borrower, debt_to_cover, liquidated_collateral_amount, block_number, log_index,"
            " debt_repaid_usd, collateral_seized_usd, collateral_symbol, debt_symbol FROM liquidations"
            " WHERE protocol = 'morpho_blue' ORDER BY block_number, log_index"
        ).fetchall()
        protocols = conn.execute("SELECT DISTINCT protocol FROM positions_current ORDER BY 1").fetchall()
    assert [tuple(r[:6]) for r in rows] == [tuple(e) for e in events] and events
    symbols = {m.id: (m.collateral_token, m.loan_token) for m in devnet.morpho.markets.values()}
    for row in rows:
        assert row[6] > 0 and row[7] > row[6]  # the incentive: more collateral value seized than repaid
        assert row[8] and row[9] and symbols[row[0]]
    assert protocols == [("aave_v3",), ("morpho_blue",)]
