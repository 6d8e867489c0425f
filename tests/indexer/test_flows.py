"""Whale flows, exchange net flows and USD liquidations on an indexed devnet, against an independent count.

The expected values are rebuilt in Python from the raw `logs` rows (decoded here, not by the indexer)
and the manifest's asset → price feed map, so the views' SQL (oracle sources, lateral price lookups,
labels) is checked against a second path to the same numbers.
"""

from __future__ import annotations

import bisect
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eth_utils.crypto import keccak

from chainrisk.db import to_libpq_url
from indexer.catalog import CatalogError, Label, list_labels, read_labels_csv, seed_labels, upsert_labels
from indexer.config import IndexConfig

TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
ANSWER = "0x" + keccak(text="AnswerUpdated(int256,uint256,uint256)").hex()
CHAIN = 31337


@dataclass
class Indexed:
    db: str
    manifest: dict[str, Any]
    config: IndexConfig
    result: Any


@pytest.fixture(scope="module")
def indexed(templates: dict[str, str], node_home: Path) -> Iterator[Indexed]:
    from devnet.aave import deploy_markets
    from devnet.anvil import Anvil
    from devnet.scenario import simulate
    from devnet.serve import indexer_toml
    from indexer.catalog import sync_config
    from indexer.lending.health import indexed_head, pools, refresh
    from indexer.runner import config_plan, run_plan
    from tests.conftest import _fresh_database

    for db in _fresh_database(templates["embedded"]):
        with Anvil(node_home) as node:
            deployment = deploy_markets(node, node_home)
            result = simulate(deployment, 3, 30, 11)
            manifest = {**deployment.to_manifest(), "rpc_url": node.url}
            config = IndexConfig(**tomllib.loads(indexer_toml(manifest)))
            with psycopg.connect(to_libpq_url(db)) as conn:
                sync_config(conn, config.chains, config.tokens, config.labels)
            run_plan(config_plan(config.chains[0], config.contracts, None, False), to_libpq_url(db))
            with psycopg.connect(to_libpq_url(db)) as conn:
                head = indexed_head(conn, CHAIN)
                assert head is not None
                for pool in pools(conn, CHAIN):
                    refresh(conn, CHAIN, pool, head)
        yield Indexed(db, manifest, config, result)


def _rows(db: str, query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(to_libpq_url(db)) as conn:
        return [tuple(r) for r in conn.execute(query, params).fetchall()]


def _word(hex_text: str) -> int:
    return int(hex_text, 16)


def _signed(value: int) -> int:
    return value - 2**256 if value >= 2**255 else value


class Truth:
    """Transfers and prices decoded straight from the raw logs."""

    def __init__(self, indexed: Indexed) -> None:
        assets = indexed.manifest["assets"]
        self.tokens = {a["token"]: (s, int(a["decimals"])) for s, a in assets.items()}
        feeds = {a["price_feed"]: a["token"] for a in assets.values()}
        raw = _rows(
            indexed.db,
            "SELECT block_number, log_index, address, topic0, topic1, topic2, data, block_timestamp"
            " FROM logs WHERE chain_id = %s ORDER BY block_number, log_index",
            CHAIN,
        )
        self.prices: dict[str, list[tuple[tuple[int, int], int]]] = defaultdict(list)
        self.transfers: list[dict[str, Any]] = []
        for block, index, address, topic0, topic1, topic2, data, ts in raw:
            if topic0 == ANSWER and address in feeds:
                self.prices[feeds[address]].append(((block, index), _signed(_word(topic1))))
            elif topic0 == TRANSFER and address in self.tokens and topic2 is not None:
                self.transfers.append(
                    {
                        "at": (block, index),
                        "token": address,
                        "from": "0x" + topic1[-40:],
                        "to": "0x" + topic2[-40:],
                        "value": _word(data),
                        "time": int(ts),
                    }
                )
        exchanges = {str(lb.address) for lb in indexed.config.labels if lb.category == "exchange"}
        self.exchanges = exchanges

    def price_before(self, token: str, at: tuple[int, int]) -> int:
        series = self.prices[token]
        i = bisect.bisect_left([p[0] for p in series], at)
        assert i > 0, f"no price for {token} before {at}"
        return series[i - 1][1]

    def usd(self, transfer: dict[str, Any]) -> Decimal:
        _, decimals = self.tokens[transfer["token"]]
        price = self.price_before(transfer["token"], transfer["at"])
        value: Decimal = Decimal(transfer["value"]) / 10**decimals * Decimal(price) / 10**8
        return value


def _close(a: Decimal, b: Decimal) -> bool:
    return abs(a - b) <= Decimal("1e-9") * max(abs(a), abs(b), Decimal(1))


def test_whale_flows_equal_an_independent_recount(indexed: Indexed) -> None:
    truth = Truth(indexed)
    expected = {t["at"]: truth.usd(t) for t in truth.transfers if truth.usd(t) >= 1_000_000}
    rows = _rows(
        indexed.db,
        "SELECT block_number, log_index, usd, direction, to_label FROM whale_flows WHERE chain_id = %s",
        CHAIN,
    )
    got = {(int(b), int(i)): Decimal(u) for b, i, u, _, _ in rows}
    assert len(expected) > 0 and set(got) == set(expected)
    assert all(_close(got[k], expected[k]) for k in expected)
    to_exchange = [r for r in rows if r[3] == "to_exchange"]
    assert to_exchange and all(
        str(r[4]).startswith(("binance", "coinbase", "kraken", "okx")) for r in to_exchange
    )


def test_exchange_netflows_per_hour_equal_an_independent_recount(indexed: Indexed) -> None:
    truth = Truth(indexed)
    net: dict[tuple[str, datetime], Decimal] = defaultdict(Decimal)
    for t in truth.transfers:
        inbound, outbound = t["to"] in truth.exchanges, t["from"] in truth.exchanges
        if inbound == outbound:
            continue
        hour = datetime.fromtimestamp(t["time"] - t["time"] % 3600, UTC)
        net[(t["token"], hour)] += truth.usd(t) if inbound else -truth.usd(t)
    rows = _rows(
        indexed.db, "SELECT token, hour, netflow_usd, inflow_usd, outflow_usd FROM exchange_netflows"
    )
    got = {(str(token), hour): Decimal(n) for token, hour, n, _, _ in rows}
    assert len(net) > 0 and set(got) == set(net)
    assert all(_close(got[k], net[k]) for k in net)
    assert all(_close(Decimal(i) - Decimal(o), Decimal(n)) for _, _, n, i, o in rows)


def test_liquidations_carry_usd_values_at_the_prices_before_them(indexed: Indexed) -> None:
    truth = Truth(indexed)
    rows = _rows(
        indexed.db,
        "SELECT block_number, log_index, debt_asset, debt_to_cover, collateral_asset,"
        " liquidated_collateral_amount, debt_repaid_usd, collateral_seized_usd, debt_symbol, block_time"
        " FROM liquidations",
    )
    assert len(rows) == len(indexed.result.liquidations) > 0
    for block, index, debt, repaid, coll, seized, debt_usd, coll_usd, symbol, time in rows:
        at = (int(block), int(index))
        for token, amount, usd in ((debt, repaid, debt_usd), (coll, seized, coll_usd)):
            _, decimals = truth.tokens[token]
            price = truth.price_before(token, at)
            assert _close(Decimal(usd), Decimal(int(amount)) / 10**decimals * Decimal(price) / 10**8)
        # The liquidator's bonus: seized collateral is worth more than the debt it repaid.
        assert Decimal(coll_usd) > Decimal(debt_usd)
        assert symbol == truth.tokens[debt][0] and time is not None


def test_realised_bad_debt_is_valued_at_the_debt_assets_price(indexed: Indexed) -> None:
    # The devnet deploys Aave v3.0, which has no DeficitCreated; a decoded row stands in for one.
    usdc = indexed.manifest["assets"]["USDC"]["token"]
    pool = indexed.manifest["markets"]["aave"]["pool"]
    head = int(_rows(indexed.db, "SELECT max(block_number) FROM logs")[0][0])
    with psycopg.connect(to_libpq_url(indexed.db)) as conn:
        conn.execute(
            "INSERT INTO aave_v3_deficit_created VALUES (%s, %s, 999999, '0x00', '0x00', %s, %s, %s, %s)",
            (CHAIN, head, pool, "0x" + "ab" * 20, usdc, 2_500 * 10**6),
        )
        try:
            row = conn.execute(
                "SELECT usd FROM bad_debt WHERE kind = 'realised' AND user_address = %s", ("0x" + "ab" * 20,)
            ).fetchone()
        finally:
            conn.rollback()
    price = Truth(indexed).price_before(usdc, (head, 999_999))
    assert row is not None and _close(Decimal(row[0]), Decimal(2_500) * Decimal(price) / 10**8)


def test_a_configured_price_feed_replaces_the_oracle_source(indexed: Indexed) -> None:
    from indexer.lending.positions import asset_prices

    assets = indexed.manifest["assets"]
    weth, wbtc = assets["WETH"]["token"], assets["WBTC"]["token"]
    truth = Truth(indexed)
    head = int(_rows(indexed.db, "SELECT max(block_number) FROM logs")[0][0])
    with psycopg.connect(to_libpq_url(indexed.db)) as conn:
        before = asset_prices(conn, CHAIN, [weth, wbtc], head)
        conn.execute(
            "UPDATE tracked_tokens SET price_feed = %s WHERE chain_id = %s AND token = %s",
            (assets["WBTC"]["price_feed"], CHAIN, weth),
        )
        try:
            after = asset_prices(conn, CHAIN, [weth, wbtc], head)
        finally:
            conn.rollback()
    assert before[weth] == truth.price_before(weth, (head + 1, 0)) != before[wbtc]
    assert after[weth] == after[wbtc] == before[wbtc]


def test_labels_precedence_seed_then_config_then_user(indexed: Indexed) -> None:
    exchange = next(lb for lb in indexed.config.labels if lb.category == "exchange")
    with psycopg.connect(to_libpq_url(indexed.db), autocommit=True) as conn:
        seeded = {str(r[1]) for r in list_labels(conn, 1) if r[4] == "seed"}
        assert "0x28c6c06298d514db089934071355e5743bf21d60" in seeded
        # A seed reload cannot overwrite the config's label, a user's edit can; and survives a reload.
        upsert_labels(conn, [Label(CHAIN, exchange.address, "seed-name", "other")], "seed")
        assert _label(conn, exchange.address) == (exchange.label, "exchange", "config")
        upsert_labels(conn, [Label(CHAIN, exchange.address, "my desk", "fund")], "user")
        seed_labels(conn)
        assert _label(conn, exchange.address) == ("my desk", "fund", "user")
        moved = _rows(indexed.db, "SELECT count(*) FROM whale_flows WHERE to_label = 'my desk'")[0][0]
        upsert_labels(conn, [Label(CHAIN, exchange.address, exchange.label, "exchange")], "user")
    assert int(moved) > 0


def _label(conn: psycopg.Connection[tuple[object, ...]], address: str) -> tuple[object, ...]:
    row = conn.execute(
        "SELECT label, category, source FROM address_labels WHERE chain_id = %s AND address = %s",
        (CHAIN, address),
    ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1,0x12,Bad,exchange", "line 2: address: expected a 20-byte hex address"),
        ("1,0x28c6c06298d514db089934071355e5743bf21d60,Binance 14,casino", "line 2: category 'casino'"),
        ("x,0x28c6c06298d514db089934071355e5743bf21d60,Binance 14,exchange", "line 2: chain_id must be"),
    ],
)
def test_a_bad_labels_file_is_refused_naming_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("chain_id,address,label,category\n" + line + "\n")
    with pytest.raises(CatalogError, match=message):
        read_labels_csv(path)


def test_the_seed_file_is_valid_and_has_no_duplicates() -> None:
    from indexer.catalog import SEED_FILE

    labels = read_labels_csv(SEED_FILE)
    assert len({(lb.chain_id, lb.address) for lb in labels}) == len(labels) >= 10
    assert all(lb.reference for lb in labels)


def test_tokens_naming_an_unknown_chain_are_refused() -> None:
    with pytest.raises(ValueError, match=r"tokens\.0\.chain = 'base': no \[\[chains\]\] entry"):
        IndexConfig.model_validate(
            {
                "chains": [{"name": "mainnet", "rpc_urls": ["http://127.0.0.1:1"]}],
                "tokens": [{"chain": "base", "address": "0x" + "11" * 20, "symbol": "USDC", "decimals": 6}],
            }
        )
