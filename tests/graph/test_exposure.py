"""The exposure graph of a real devnet (two Aave v3 markets, simulated users) indexed into PostgreSQL."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner, Result

from chainrisk.commands.graph import ShockError, parse_shocks
from chainrisk.db import to_libpq_url
from graph.debtrank import debtrank
from graph.exposure import Position, exposure_graph, market_exposure, read_positions
from tests.indexer.test_flows import CHAIN, Indexed, indexed

__all__ = ["indexed"]  # the module-scoped devnet fixture, reused here


def _sums(db: str) -> dict[tuple[str, ...], tuple[int, int]]:
    """Collateral and debt in base units straight from SQL, per pool, per (pool, asset), per (user, pool)."""
    totals: dict[tuple[str, ...], tuple[int, int]] = {}
    with psycopg.connect(to_libpq_url(db)) as conn:
        for keys in ("'market', pool", "pool, asset", "user_address, pool"):
            rows = conn.execute(
                f"SELECT {keys}, sum(collateral_base), sum(debt_base) FROM position_reserves"
                " WHERE chain_id = %s GROUP BY 1, 2",
                (CHAIN,),
            ).fetchall()
            totals |= {(str(a), str(b)): (int(c), int(d)) for a, b, c, d in rows}
    return totals


@pytest.fixture(scope="module")
def positions(indexed: Indexed) -> list[Position]:
    with psycopg.connect(to_libpq_url(indexed.db)) as conn:
        return read_positions(conn, CHAIN)


def test_graph_totals_equal_position_reserves(indexed: Indexed, positions: list[Position]) -> None:
    graph = exposure_graph(positions)
    expected = _sums(indexed.db)
    markets = [n for n, kind in graph.nodes(data="kind") if kind == "market"]
    assert len(markets) == 2, "the devnet has two markets, aave and spark"
    got: dict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (kind, source), (_, target), data in graph.edges(data=True):
        got[(source, target)] = [data["collateral_usd"], data["debt_usd"]]
        if kind == "wallet":
            got[("market", target)][0] += data["collateral_usd"]
            got[("market", target)][1] += data["debt_usd"]
    nonzero = {k: v for k, v in expected.items() if v != (0, 0)}
    assert set(got) == set(nonzero)
    for key, (collateral, debt) in nonzero.items():
        assert got[key] == pytest.approx([collateral / 1e8, debt / 1e8], rel=1e-12), key


def test_cross_market_wallets_connect_the_markets(positions: list[Position]) -> None:
    graph = exposure_graph(positions)
    wallets = [n for n, kind in graph.nodes(data="kind") if kind == "wallet"]
    assert any(graph.out_degree(w) == 2 for w in wallets)
    exposure = market_exposure(graph)
    assert exposure.exposures.sum() > 0 and (np.diag(exposure.exposures) == 0).all()
    # Each market's exposures are parts of its loans: never more than its total debt.
    assert (exposure.exposures.sum(axis=1) <= exposure.debt * (1 + 1e-12)).all()


@pytest.mark.parametrize("variant", ["original", "differential"])
def test_debtrank_on_market_matrix_in_unit_interval(positions: list[Position], variant: str) -> None:
    exposure = market_exposure(exposure_graph(positions))
    for shocked in range(len(exposure.markets)):
        shock = np.zeros(len(exposure.markets))
        shock[shocked] = 0.5
        result = debtrank(exposure.exposures, exposure.buffers, exposure.weights, shock, variant)  # type: ignore[arg-type]
        assert ((result.final >= 0) & (result.final <= 1)).all()
        assert 0 <= result.additional_stress <= 1
        assert (result.final >= shock).all()


def _cli(indexed: Indexed, tmp_path: Path, *args: str) -> Result:
    return _graph(indexed, tmp_path, "debtrank", "--chain-id", str(CHAIN), *args)


def _graph(indexed: Indexed, tmp_path: Path, *args: str) -> Result:
    from chainrisk.cli import app

    (tmp_path / "chainrisk.toml").write_text("")  # CHAINRISK_CONFIG must name a file that exists
    env = {
        "CHAINRISK_DATABASE_URL": indexed.db,
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(tmp_path / "chainrisk.toml"),
    }
    # The CLI configures logging for the process; keep that from leaking into later tests.
    quiet = {name: logging.getLogger(name).level for name in ("alembic", "httpx", "httpcore")}
    try:
        return CliRunner().invoke(app, ["graph", *args], env=env)
    finally:
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)


def test_cli_json_matches_a_direct_run(indexed: Indexed, positions: list[Position], tmp_path: Path) -> None:
    # The devnet's pools carry no label until someone names them, as a user would with `chainrisk labels`.
    pools = {name: body["pool"] for name, body in indexed.manifest["markets"].items()}
    with psycopg.connect(to_libpq_url(indexed.db)) as conn:
        for name, pool in pools.items():
            conn.execute(
                "INSERT INTO address_labels (chain_id, address, label, category, source)"
                " VALUES (%s, %s, %s, 'protocol', 'user') ON CONFLICT DO NOTHING",
                (CHAIN, pool, f"{name}-pool"),
            )
    exposure = market_exposure(exposure_graph(positions))
    assert sorted(exposure.markets) == sorted(pools.values())
    result = _cli(indexed, tmp_path, "--shock", "aave=1", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    shock = [1.0 if market == pools["aave"] else 0.0 for market in exposure.markets]
    direct = debtrank(exposure.exposures, exposure.buffers, exposure.weights, shock)
    assert [row["market"] for row in report["markets"]] == exposure.markets
    assert [row["label"] for row in report["markets"]] == [
        {pool: f"{name}-pool" for name, pool in pools.items()}[m] for m in exposure.markets
    ]
    assert [row["final_stress"] for row in report["markets"]] == pytest.approx(direct.final.tolist())
    assert [row["initial_stress"] for row in report["markets"]] == shock
    assert report["additional_stress"] == pytest.approx(direct.additional_stress)


def test_cli_table_and_bad_shock(indexed: Indexed, tmp_path: Path) -> None:
    table = _cli(indexed, tmp_path, "--shock", f"{_market(indexed)}=0.2")
    assert table.exit_code == 0 and "weighted additional stress" in table.output
    bad = _cli(indexed, tmp_path, "--shock", "nowhere=0.2")
    assert bad.exit_code == 2 and "unknown market 'nowhere'" in bad.output


def _market(indexed: Indexed) -> str:
    with psycopg.connect(to_libpq_url(indexed.db)) as conn:
        return read_positions(conn, CHAIN)[0].pool


def test_market_exposure_by_hand() -> None:
    # w1 holds 100 in each market and borrows 50 in m1: half of that loan rests on m2's collateral.
    # w2 only uses m2: it connects nothing. Buffers: m1 100 − 50, m2 (100 + 80) − 30.
    positions = [
        Position("m1", "w1", "weth", 100.0, 50.0),
        Position("m2", "w1", "weth", 100.0, 0.0),
        Position("m2", "w2", "usdc", 80.0, 30.0),
    ]
    exposure = market_exposure(exposure_graph(positions))
    assert exposure.markets == ["m1", "m2"]
    np.testing.assert_allclose(exposure.exposures, [[0, 25], [0, 0]])
    np.testing.assert_allclose(exposure.buffers, [50, 150])
    np.testing.assert_allclose(exposure.weights, [50, 30])


@pytest.mark.parametrize(
    ("shock", "message"),
    [
        ("aave", "expected MARKET=FRACTION"),
        ("aave=x", r"FRACTION must be a number in \[0, 1\]"),
        ("aave=1.5", r"FRACTION must lie in \[0, 1\]"),
        ("maker=0.1", "unknown market 'maker'; markets on this chain: aave, aave-pool"),
    ],
)
def test_parse_shocks_names_the_problem(shock: str, message: str) -> None:
    with pytest.raises(ShockError, match=message):
        parse_shocks([shock], ["0xaa"], {"0xaa": "aave-pool"})


def test_parse_shocks_accepts_address_label_and_market_name() -> None:
    labels = {"0xaa": "aave-pool", "0xbb": "spark-pool"}
    got = parse_shocks(["0xAA=0.5", "spark=1"], ["0xaa", "0xbb"], labels)
    assert got == {"0xaa": 0.5, "0xbb": 1.0}
    assert parse_shocks(["aave-pool=0.1"], ["0xaa", "0xbb"], labels) == {"0xaa": 0.1}


def _clearing_book() -> list[Position]:
    """Wallet a borrows 80 USDC in m1 against ETH worth 100; b supplies 100 USDC to m1 and borrows 90 in
    m2 against nothing but that claim; c supplies 100 USDC to m2."""
    return [
        Position("m1", "a", "eth", 100.0, 0.0),
        Position("m1", "a", "usdc", 0.0, 80.0),
        Position("m1", "b", "usdc", 100.0, 0.0),
        Position("m2", "b", "usdc", 0.0, 90.0),
        Position("m2", "c", "usdc", 100.0, 0.0),
    ]


def test_clearing_network_by_hand() -> None:
    """ETH halves: a is 30 short on its own; m1 (holding 70) pays a and b pro rata, a pays back 35, so
    m1 pays 105 of 150, b receives 70 and pays m2 70 of 90, m2 pays c 80 of 100. Solved by hand."""
    from graph.clearing import clear
    from graph.exposure import clearing_network

    network = clearing_network(_clearing_book(), {"eth": 0.5})
    assert network.nodes == [("market", "m1"), ("market", "m2"), ("wallet", "a"), ("wallet", "b"),
                             ("wallet", "c")]  # fmt: skip
    np.testing.assert_allclose(network.external_assets, [70, 10, 0, 0, 0])
    np.testing.assert_allclose(network.first_order_shortfall, [0, 0, 30, 0, 0], atol=1e-9)
    result = clear(network.liabilities, network.external_assets, np.zeros(5))
    np.testing.assert_allclose(result.payments, [105, 80, 35, 70, 0], atol=1e-9)
    assert result.defaulted.tolist() == [True, True, True, True, False]
    unshocked = clear(*_clearing_inputs(clearing_network(_clearing_book())))
    assert not unshocked.defaulted.any()


def _clearing_inputs(network: Any) -> tuple[Any, Any, Any]:
    return network.liabilities, network.external_assets, np.zeros(len(network.nodes))


def test_clearing_cli_on_the_devnet(indexed: Indexed, tmp_path: Path) -> None:
    """Deeper falls never lower the shortfall; what passes through the markets is never negative; the
    markets' payments equal what the JSON reports; a bad symbol is one error line with exit 2."""
    shortfalls = []
    for move in ("0%", "-40%", "-80%"):
        result = _graph(indexed, tmp_path, "clearing", "--chain-id", str(CHAIN), "--shock", f"ETH={move}",
                        "--json")  # fmt: skip
        assert result.exit_code == 0, result.output
        document = json.loads(result.output)
        assert document["contagion_shortfall_usd"] >= 0
        assert document["wallet_shortfall_usd"] >= document["first_order_shortfall_usd"] - 1e-6
        for market in document["markets"]:
            owed, paid = market["owed_to_suppliers_usd"], market["paid_usd"]
            assert 0 <= paid <= owed + 1e-6
            assert market["shortfall_usd"] == pytest.approx(owed - paid)
        shortfalls.append(document["wallet_shortfall_usd"])
    assert shortfalls == sorted(shortfalls) and shortfalls[-1] > shortfalls[0]
    table = _graph(indexed, tmp_path, "clearing", "--chain-id", str(CHAIN), "--shock", "ETH=-50%")
    assert table.exit_code == 0 and "first order" in table.output
    bad = _graph(indexed, tmp_path, "clearing", "--chain-id", str(CHAIN), "--shock", "DOGE=-50%")
    assert bad.exit_code == 2 and "unknown symbol 'DOGE'" in bad.output
