"""Morpho Blue rebuilt from indexed events equals Morpho's own views to the wei, at past blocks too.

Aave v3 and Morpho Blue are deployed on anvil (keeping every block's state) and the seeded scenario runs
with Morpho lenders, borrowers, loopers and liquidation bots. The chain is indexed through the devnet's
generated config (``[[morpho_oracles]]`` included) with the position keeper at every moving block; then
at sampled blocks every market's ``market(id)``, every wallet's ``position(id, user)``, the oracle's
``price()`` and whether the position is liquidatable are compared with the rebuild, and the kept history
with a fresh snapshot.
"""

from __future__ import annotations

import random
import tomllib
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


def _deploy(node: Anvil, home: Path) -> tuple[Morpho, dict[str, Any]]:
    node.rpc("anvil_setBlockTimestampInterval", [12])
    deployment = deploy_markets(node, home)
    morpho = deploy_morpho(deployment, home)
    for days, wallets, seed in LEGS:
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


def test_morpho_positions_from_events_equal_the_contract(node_home: Path, db_url: str) -> None:
    conninfo = to_libpq_url(db_url)
    mismatches: list[str] = []
    samples = liquidatable = calls = blocks_checked = 0
    with Anvil(node_home, prune_history=False, extra_args=["--timestamp", str(GENESIS)]) as node:
        morpho, manifest = _deploy(node, node_home)
        config = _index(manifest, conninfo)
        chain_id, head = config.chains[0].chain_id, node.block_number()
        names = {m.id: name for name, m in morpho.markets.items()}
        replay = MorphoReplay(chain_id, morpho.address)
        seen: dict[str, set[str]] = {}
        with psycopg.connect(conninfo) as conn:
            for block in _sample_blocks(conn, chain_id, head):
                replay.advance(conn, block)
                markets = replay.markets(conn)
                stamp = int(node.rpc("eth_getBlockByNumber", [hex(block), False])["timestamp"], 16)
                for market in markets:
                    name = names[market.id]
                    chain_market = morpho.market_state(name, block)
                    totals = market.totals
                    ours = (
                        totals.total_supply_assets, totals.total_supply_shares, totals.total_borrow_assets,
                        totals.total_borrow_shares, totals.last_update, totals.fee,
                    )  # fmt: skip
                    if ours != tuple(chain_market.__dict__.values()):
                        mismatches.append(f"{name}@{block} market {ours} != {chain_market}")
                    price = morpho.price(name, block)
                    if market.oracle_price != price:
                        mismatches.append(f"{name}@{block} price {market.oracle_price} != {price}")
                    users = seen.setdefault(market.id, set())
                    users |= set(market.positions)
                    chain_totals = mb.MarketTotals(*chain_market.__dict__.values())
                    for user in sorted(users):
                        position = morpho.position(name, user, block)
                        mine = market.position(user)
                        if (mine.supply_shares, mine.borrow_shares, mine.collateral) != (
                            position.supply_shares, position.borrow_shares, position.collateral,
                        ):  # fmt: skip
                            mismatches.append(f"{name}@{block} {user} {mine} != {position}")
                        if mine.empty:
                            continue
                        samples += 1
                        chain_position = mb.Position(*position.__dict__.values())
                        truth = not mb.is_healthy(chain_position, chain_totals, price, market.params.lltv)
                        flag = market.liquidatable(user)
                        liquidatable += flag
                        if flag != truth or (flag != (market.health_factor(user) < mb.WAD)):
                            mismatches.append(f"{name}@{block} {user} liquidatable {flag} != {truth}")
                        # With nothing to accrue, liquidate's own health check sees the stored state.
                        if mine.borrow_shares and totals.last_update == stamp:
                            calls += 1
                            if _liquidation_allowed(morpho, market, user, block) != flag:
                                mismatches.append(f"{name}@{block} {user} liquidate() disagrees ({flag})")
                if _history_at(conn, chain_id, block) != _snapshot_at(conn, markets):
                    mismatches.append(f"kept history at {block} differs from a fresh snapshot")
                blocks_checked += 1
    print(
        f"\nMorpho parity: {samples} wallet-market-block samples over {blocks_checked} blocks"
        f" (head {head}), {liquidatable} liquidatable, {calls} liquidate() eth_calls,"
        f" {len(mismatches)} mismatches"
    )
    assert mismatches == [], mismatches[:10]
    assert samples >= MIN_SAMPLES
    assert liquidatable > 0 and calls > 0
