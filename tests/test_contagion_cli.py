"""`chainrisk contagion simulate` on an indexed devnet: its liquidations are graph.cascade's, and every one
of them is an account below health factor 1 at the shocked oracle price. `contagion var` over many drawn
scenarios: reproducible from its seed, its tail measures ordered, no bad debt when prices barely move."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chainrisk.db import to_libpq_url
from tests.devnet_index import index_devnet_with_pools

pytestmark = pytest.mark.slow

CHAIN = 31337


@pytest.fixture(scope="module")
def indexed(templates: dict[str, str], node_home: Path) -> Iterator[tuple[str, int]]:
    """A database indexed with the devnet config from markets, Uniswap pools and a short scenario."""
    from devnet.anvil import Anvil
    from indexer.lending.health import indexed_head
    from tests.conftest import _fresh_database

    for db in _fresh_database(templates["embedded"]):
        with Anvil(node_home) as node:
            index_devnet_with_pools(db, node, node_home, days=1, wallets=20, seed=3)
        with psycopg.connect(to_libpq_url(db)) as conn:
            head = indexed_head(conn, CHAIN)
        assert head is not None
        yield db, head


def _run(db: str, tmp_path: Path, *args: str, command: str = "simulate") -> subprocess.CompletedProcess[str]:
    (tmp_path / "chainrisk.toml").write_text("")
    env = {
        **os.environ,
        "CHAINRISK_DATABASE_URL": db,
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(tmp_path / "chainrisk.toml"),
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "chainrisk", "contagion", command, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _expected_first_round(db: str, head: int, weth_factor: Fraction) -> tuple[list[tuple[str, ...]], Any]:
    """graph.cascade's first-round liquidations on inputs built here from the indexer and graph APIs."""
    from graph.cascade import OracleModel, market_from_state, run_cascade
    from graph.univ3_state import pool_state_at
    from indexer.lending.health import pools
    from indexer.lending.positions import market_state

    with psycopg.connect(to_libpq_url(db)) as conn:
        states = [market_state(conn, CHAIN, pool, head) for pool in pools(conn, CHAIN)]
        rows = conn.execute(
            "SELECT pool, token0, token1 FROM uniswap_v3_pool_created WHERE chain_id = %s", (CHAIN,)
        ).fetchall()
        dex = {(str(t0), str(t1)): pool_state_at(conn, CHAIN, str(p), head).pool for p, t0, t1 in rows}
        weth = conn.execute("SELECT token FROM tracked_tokens WHERE symbol = 'WETH'").fetchone()
        # Every configurator of the devnet sets each reserve's fee once.
        fee_sql = "SELECT asset, new_fee FROM aave_v3_liquidation_protocol_fee_changed"
        fees = {str(asset): int(fee) for asset, fee in conn.execute(fee_sql).fetchall()}
    assert weth is not None and set(fees.values()) == {1_000}
    markets = [market_from_state(s.pool, s, rules="3.0", protocol_fees=fees) for s in states]
    prices = {a: p for s in sorted(states, key=lambda s: s.pool, reverse=True) for a, p in s.prices.items()}
    # Oracles only move after a round, so fixed ones give the same first round as the command's feeds.
    oracles = {a: OracleModel(p) for a, p in prices.items()}
    result = run_cascade(markets, dex, oracles, {str(weth[0]): weth_factor})
    first = result.rounds[0].liquidations if result.rounds else ()
    return [(x.market, x.user, str(x.collateral_seized), str(x.protocol_fee)) for x in first], states


def test_simulate_liquidates_what_the_cascade_does_below_hf_1(
    indexed: tuple[str, int], tmp_path: Path
) -> None:
    from indexer.protocols.aave_math import HEALTH_FACTOR_LIQUIDATION_THRESHOLD, user_account_data

    db, head = indexed
    result = _run(db, tmp_path, "--shock", "WETH=-40%", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["block"] == head and document["depth"] >= 1
    first = document["rounds"][0]["liquidations"]
    got = [(x["market"], x["wallet"], x["collateral_seized"], x["protocol_fee"]) for x in first]
    expected, states = _expected_first_round(db, head, Fraction(3, 5))
    assert got == expected and got and all(int(x["protocol_fee"]) > 0 for x in first)
    weth = next(a for a, v in document["shock"].items() if v["symbol"] == "WETH")
    by_pool = {s.pool: s for s in states}
    for market, user, _, _ in got:
        state = by_pool[market]
        shocked = [
            replace(r, price=r.price * 3 // 5) if r.asset == weth else r for r in state.user_reserves(user)
        ]
        health = user_account_data(shocked, "3.0", state.emode(user)).health_factor
        assert health < HEALTH_FACTOR_LIQUIDATION_THRESHOLD


def test_a_small_shock_liquidates_nobody(indexed: tuple[str, int], tmp_path: Path) -> None:
    db, _ = indexed
    result = _run(db, tmp_path, "--shock", "WETH=-1%", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["depth"] == 0
    table = _run(db, tmp_path, "--shock", "ETH=-1%")
    assert table.returncode == 0, table.stderr
    assert "depth 0" in table.stdout


def test_the_tables_name_every_wallet_whole(indexed: tuple[str, int], tmp_path: Path) -> None:
    db, _ = indexed
    document = json.loads(_run(db, tmp_path, "--shock", "WETH=-40%", "--json").stdout)
    table = _run(db, tmp_path, "--shock", "WETH=-40%")
    assert table.returncode == 0, table.stderr
    for liquidation in document["rounds"][0]["liquidations"]:
        assert liquidation["wallet"] in table.stdout
    assert f"depth {document['depth']} round(s)" in table.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--shock", "DOGE=-30%"], "--shock 'DOGE=-30%': unknown symbol 'DOGE'; expected one of"),
        (["--shock", "WETH=-100%"], "(-100%, +inf)"),
        (["--shock", "WETH=-30"], "expected SYMBOL=PERCENT"),
        (["--shock", "WETH=-30%", "--block", "999999999"], "--block 999999999: above the indexed head"),
        (["--shock", "WETH=-30%", "--block", "1"], "--block 1: no Aave v3 pool indexed on chain 31337 yet"),
        (["--shock", "WETH=inf%"], "is not a percentage"),
        (["--shock", "WETH=-30%", "--shock", "weth=-20%"], "WETH is shocked twice"),
        (["--shock", "WETH=-30%", "--oracle", "pyth"], "--oracle 'pyth': expected feed or fixed"),
        (["--shock", "WETH=-30%", "--chain-id", "5"], "--chain-id 5: no Aave v3 pool indexed"),
        (["--shock", "WETH=-30%", "--rules", "3.1"], "--rules '3.1': expected 3.0 or 3.3"),
    ],
)
def test_bad_input_is_one_error_line(
    indexed: tuple[str, int], tmp_path: Path, args: list[str], needle: str
) -> None:
    db, _ = indexed
    result = _run(db, tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    if "unknown symbol" in needle:
        assert "WETH" in lines[0]


def test_no_indexed_pools_is_an_error(db_url: str, tmp_path: Path) -> None:
    result = _run(db_url, tmp_path, "--shock", "ETH=-30%")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --chain-id: expected one of the chains with indexed Aave v3 pools:"
        " none (index an Aave v3 Pool first)"
    ]


# ------------------------------------------------------------------------------------------- var


def _var(db: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    result = _run(db, tmp_path, "--scenarios", "40", "--json", *args, command="var")
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_var_reproduces_from_its_seed_and_orders_its_tails(indexed: tuple[str, int], tmp_path: Path) -> None:
    db, head = indexed
    first = _var(db, tmp_path, "--seed", "11", "--vol", "WETH=0.2")
    again = _var(db, tmp_path, "--seed", "11", "--vol", "WETH=0.2")
    assert again.pop("run_id") > first.pop("run_id")  # each run is stored, under its own id
    assert first == again
    assert first["block"] == head and first["inputs"]["seed"] == 11 and first["inputs"]["scenarios"] == 40
    tails = first["bad_debt_usd"]
    assert first["scenarios_with_bad_debt"] > 0  # so the orderings below compare real tails
    assert tails["VaR99"]["point"] >= tails["VaR95"]["point"] >= 0
    assert tails["ES97.5"]["point"] >= tails["VaR95"]["point"]
    assert tails["ES99"]["point"] >= tails["VaR99"]["point"]
    assert all(t["low"] <= t["point"] <= t["high"] for t in tails.values())
    assert sum(first["depth_histogram"]) == 40
    vols = {v["symbol"]: v["daily"] for v in first["inputs"]["vol"].values()}
    assert vols["WETH"] == 0.2 and "USDC" not in vols  # a stablecoin is the numeraire, never drawn

    # Prices that barely move liquidate nobody and leave no bad debt.
    tiny = [arg for symbol in vols for arg in ("--vol", f"{symbol}=0.000001")]
    calm = _var(db, tmp_path, "--seed", "11", *tiny)
    assert calm["max_bad_debt_usd"] == 0 and calm["scenarios_with_bad_debt"] == 0
    assert all(t["point"] == t["high"] == 0 for t in calm["bad_debt_usd"].values())
    assert calm["depth_histogram"] == [40]


def test_var_stores_what_it_reports(indexed: tuple[str, int], tmp_path: Path) -> None:
    """The stored run's tail measures are the document's; every scenario and liquidation is a row."""
    db, _ = indexed
    document = _var(db, tmp_path, "--seed", "5", "--vol", "WETH=0.2")
    with psycopg.connect(to_libpq_url(db)) as conn:
        row = conn.execute(
            "SELECT scenarios, seed, var99_usd, es99_usd FROM contagion_run_results WHERE run_id = %s",
            (document["run_id"],),
        ).fetchone()
        liquidations = conn.execute(
            "SELECT count(*) FROM contagion_scenario_liquidations WHERE run_id = %s", (document["run_id"],)
        ).fetchone()
    assert row is not None and liquidations is not None
    tails = document["bad_debt_usd"]
    assert (row[0], row[1]) == (40, 5)
    assert row[2] == pytest.approx(tails["VaR99"]["point"]) and row[3] == pytest.approx(
        tails["ES99"]["point"]
    )
    assert liquidations[0] > 0
    unstored = _var(db, tmp_path, "--seed", "5", "--vol", "WETH=0.2", "--no-store")
    assert "run_id" not in unstored


def test_var_fast_engine_replays_the_worst_exactly(indexed: tuple[str, int], tmp_path: Path) -> None:
    """The fast engine's tail comes from exact cascades: with every scenario replayed it equals the exact
    engine; with the default share its VaR99 and ES99 still do, and it states its error."""
    db, _ = indexed
    args = ("--seed", "9", "--vol", "WETH=0.2", "--no-store")
    exact = _var(db, tmp_path, *args)
    everything = _var(db, tmp_path, *args, "--engine", "fast", "--exact-worst", "40")
    assert everything["bad_debt_usd"] == exact["bad_debt_usd"]
    assert everything["fast_path"]["exact_scenarios"] == 40
    default = _var(db, tmp_path, *args, "--engine", "fast")
    assert default["fast_path"]["exact_scenarios"] == 20  # at least 20, else 6 % of the scenarios
    for measure in ("VaR99", "ES99", "ES97.5"):
        assert default["bad_debt_usd"][measure]["point"] == exact["bad_debt_usd"][measure]["point"]
    assert default["fast_path"]["bad_debt_max_abs_error_usd"] >= 0


def test_var_fast_engine_stores_every_scenarios_bad_debt_per_wallet(
    indexed: tuple[str, int], tmp_path: Path
) -> None:
    """A stored fast run keeps each wallet's bad debt in every scenario, not only in those replayed
    exactly (none here): per scenario the wallets' rows add up to the scenario's bad debt."""
    db, _ = indexed
    document = _var(
        db, tmp_path, "--seed", "9", "--vol", "WETH=0.2", "--engine", "fast", "--exact-worst", "5"
    )
    with psycopg.connect(to_libpq_url(db)) as conn:
        rows = conn.execute(
            "SELECT s.scenario, s.bad_debt_usd, coalesce(sum(w.usd), 0), count(w.usd)"
            " FROM contagion_scenarios s LEFT JOIN contagion_wallet_bad_debt w"
            " ON w.run_id = s.run_id AND w.scenario = s.scenario"
            " WHERE s.run_id = %s GROUP BY s.scenario, s.bad_debt_usd ORDER BY s.scenario",
            (document["run_id"],),
        ).fetchall()
    assert len(rows) == 40
    owing = [r for r in rows if r[1] > 0]
    assert len(owing) >= 2
    for scenario, total, by_wallet, count in owing:
        assert count > 0 and abs(by_wallet - total) <= 1e-6 * total, scenario
    assert all(r[3] == 0 for r in rows if r[1] == 0)


def test_var_prints_a_table(indexed: tuple[str, int], tmp_path: Path) -> None:
    db, _ = indexed
    result = _run(db, tmp_path, "--scenarios", "5", "--seed", "3", command="var")
    assert result.returncode == 0, result.stderr
    assert "VaR99" in result.stdout and "ES97.5" in result.stdout and "seed 3" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--scenarios", "0"], "--scenarios 0: expected 1 to 1,000,000"),
        (["--scenarios", "1000001"], "--scenarios 1000001: expected 1 to 1,000,000"),
        (["--vol", "WETH=0"], "--vol 'WETH=0': expected SYMBOL=VOL"),
        (["--vol", "WETH=1.5"], "--vol 'WETH=1.5': expected SYMBOL=VOL"),
        (["--vol", "WETH=-0.05"], "--vol 'WETH=-0.05': expected SYMBOL=VOL"),
        (["--vol", "WETH"], "--vol 'WETH': expected SYMBOL=VOL"),
        (["--df", "2"], "--df 2.0: expected degrees of freedom above 2"),
        (["--vol", "DOGE=0.05"], "--vol 'DOGE=0.05': unknown or stable asset 'DOGE'; expected one of"),
        (["--engine", "quick"], "--engine 'quick': expected exact, fast or surrogate"),
        (["--exact-worst", "2"], "--exact-worst: only with --engine fast"),
        (["--engine", "fast", "--exact-worst", "9"], "--exact-worst 9: expected 0 to --scenarios (3)"),
        (["--dask", "10.0.0.5"], "--dask '10.0.0.5': expected a Dask scheduler address"),
    ],
)
def test_var_bad_input_is_one_error_line(
    indexed: tuple[str, int], tmp_path: Path, args: list[str], needle: str
) -> None:
    db, _ = indexed
    result = _run(db, tmp_path, "--scenarios", "3", *args, command="var")
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr


def test_curve_agrees_with_simulate_and_the_indexed_health(indexed: tuple[str, int], tmp_path: Path) -> None:
    """Each cascade point is `simulate` at that drop; at 0 % the first round is the accounts the indexer
    itself has below health factor 1; the PNG is a real image."""
    db = indexed[0]
    png = tmp_path / "curve.png"
    result = _run(db, tmp_path, "--asset", "ETH", "--max-drop", "40", "--step", "20", "--json", "--png",
                  str(png), command="curve")  # fmt: skip
    assert result.returncode == 0, result.stderr
    points = json.loads(result.stdout)["points"]
    assert {(p["symbol"], p["drop_percent"]) for p in points} == {
        ("WETH", 0.0),
        ("WETH", 20.0),
        ("WETH", 40.0),
    }
    for drop in (20, 40):
        simulated = json.loads(_run(db, tmp_path, "--shock", f"ETH=-{drop}%", "--json").stdout)
        done = [x for r in simulated["rounds"] for x in r["liquidations"]]
        for point in (p for p in points if p["drop_percent"] == drop):
            mine = [x for x in done if x["market"] == point["market"]]
            assert point["cascade"]["liquidations"] == len(mine)
            assert point["cascade"]["debt_repaid_usd"] == pytest.approx(
                sum(x["debt_repaid_usd"] for x in mine)
            )
    with psycopg.connect(to_libpq_url(db)) as conn:
        rows = conn.execute(
            "SELECT pool, count(*) FROM account_health WHERE chain_id = %s AND total_debt_base > 0"
            " AND health_factor < 10^18 GROUP BY pool",
            (CHAIN,),
        ).fetchall()
        below = {str(pool): int(count) for pool, count in rows}
    for point in (p for p in points if p["drop_percent"] == 0):
        assert point["first_round"]["accounts"] == below.get(point["market"], 0)
    deeper = [
        sum(p["first_round"]["debt_usd"] for p in points if p["drop_percent"] == d) for d in (0, 20, 40)
    ]
    assert deeper[2] > deeper[0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--step", "0"], "--step 0.0: expected a step"),
        (["--max-drop", "100"], "--max-drop 100.0: expected a drop"),
        (["--asset", "DOGE"], "--asset 'DOGE': not a priced asset"),
        (["--png", "/no/such/folder/curve.png"], "folder /no/such/folder does not exist"),
    ],
)
def test_curve_bad_input_is_one_error_line(
    indexed: tuple[str, int], tmp_path: Path, args: list[str], message: str
) -> None:
    result = _run(indexed[0], tmp_path, *args, command="curve")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_var_on_a_dask_cluster_equals_the_local_run(indexed: tuple[str, int], tmp_path: Path) -> None:
    """A real LocalCluster of two worker processes: the same seeded run gives the same document."""
    import distributed

    dask: Any = distributed  # untyped
    db, _ = indexed
    args = ("--seed", "11", "--vol", "WETH=0.2", "--no-store")
    local = _var(db, tmp_path, *args)
    with dask.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        remote = _var(db, tmp_path, *args, "--dask", cluster.scheduler_address)
    assert remote == local and local["scenarios_with_bad_debt"] > 0


def test_the_service_runs_var_once_per_period_and_stores_it(indexed: tuple[str, int], tmp_path: Path) -> None:
    """`serve --once` with the contagion job: one stored run per period, seeded by the period; a second
    start in the same period runs nothing."""
    db, head = indexed
    config = (
        '[serve.jobs.contagion]\ninterval = "1d"\n\n[serve.jobs.heartbeat]\nenabled = false\n\n'
        "[contagion]\nscenarios = 30\nstress_days = false\n"
    )
    (tmp_path / "chainrisk.toml").write_text(config)
    env = {
        **os.environ,
        "CHAINRISK_DATABASE_URL": db,
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(tmp_path / "chainrisk.toml"),
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "chainrisk", "serve", "--once"], env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    with psycopg.connect(to_libpq_url(db)) as conn:
        runs = conn.execute(
            "SELECT s.result, extract(epoch FROM s.period)::bigint FROM service_runs s"
            " WHERE s.job = 'contagion' AND s.status = 'succeeded'"
        ).fetchall()
        assert len(runs) == 1
        result, period = runs[0]
        stored = conn.execute(
            "SELECT seed, scenarios, block, var99_usd FROM contagion_run_results WHERE run_id = %s",
            (result["run_id"],),
        ).fetchone()
    assert stored == (period, 30, head, pytest.approx(result["var99_usd"]))
