"""Every rule kind on real indexed data: a devnet scenario (two Aave markets, Uniswap pools, borrowers,
whales moving coins to labelled exchanges, liquidation bots) indexed into PostgreSQL, a contagion VaR run
and a forecast on recorded ETH prices stored beside it, and the service's heartbeats recorded while the
node runs ahead of the index. Each kind fires where the views say it should — the expected sets are
read from the views independently of the rule's own query — and stays silent when the threshold is not
crossed. The job enqueues what fires in its run's transaction; a rule that fails takes none of the
others with it; the same alert is not enqueued twice within its cooldown."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from chainrisk.alerts.job import evaluate_rules, run_job
from chainrisk.alerts.model import Alert
from chainrisk.alerts.rules import Conn, register
from chainrisk.alerts.rules_config import AlertRuleConfig
from chainrisk.db import to_libpq_url
from tests.conftest import data_file
from tests.devnet_index import index_devnet_with_pools

pytestmark = pytest.mark.slow

CHAIN = 31337
WETH = "WETH"


@dataclass
class Devnet:
    db: str  # SQLAlchemy URL
    conninfo: str
    now: datetime  # one second after the last indexed block
    beats: list[datetime]  # the recorded heartbeats, oldest first
    lag: int  # how far the node ran ahead of the index


def _rows(devnet: Devnet, query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(devnet.conninfo) as conn:
        return [tuple(r) for r in conn.execute(query, params).fetchall()]


def _cli(*args: str, env: dict[str, str]) -> None:
    from chainrisk.cli import app

    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, (result.output, result.exception)


def _index(db: str, node: Any, home: Path) -> Any:
    """Deploy, run three days of the scenario, index it and build the positions; returns the config."""
    from indexer.lending.health import indexed_head, pools, refresh

    config = index_devnet_with_pools(db, node, home, days=3, wallets=30, seed=11)
    conninfo = to_libpq_url(db)
    with psycopg.connect(conninfo) as conn:
        head = indexed_head(conn, CHAIN)
        assert head is not None
        for pool in pools(conn, CHAIN):
            refresh(conn, CHAIN, pool, head)
    return config


def _heartbeats(db: str, node: Any, config: Any, lag: int) -> list[datetime]:
    """The service's heartbeat job, recorded as `chainrisk serve` records it, at three periods five
    minutes apart: caught up, then twice with the node `lag` blocks ahead (nothing indexes meanwhile)."""
    from chainrisk.serve import runs
    from chainrisk.serve.jobs import JobRun, ServiceContext, heartbeat
    from chainrisk.settings import Settings

    conninfo = to_libpq_url(db)
    with psycopg.connect(conninfo) as conn:
        cursor = str(conn.execute("SELECT name FROM cursors WHERE chain_id = %s", (CHAIN,)).fetchone()[0])  # type: ignore[index]
    settings = Settings.model_construct(chains=config.chains)
    service = ServiceContext(settings, db, conninfo, {config.chains[0].name: cursor}, threading.Event())
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    periods = [start + timedelta(minutes=5 * i) for i in range(3)]
    for i, period in enumerate(periods):
        if i == 1:
            node.mine(lag)
        with psycopg.connect(conninfo) as conn:
            claim = runs.claim(conn, "heartbeat", period, "test:1")
            assert claim is not None
            result = heartbeat(JobRun("heartbeat", period, conn, service, None, claim.claimed_at))
            runs.succeed(conn, claim, 0.1, result)
            conn.commit()
    return periods


def _analytics(db: str, tmp: Path) -> None:
    """A contagion VaR run on the indexed head and a forecast of recorded ETH prices (the last 400 days
    of the bundled Binance file), both stored by their commands."""
    prices = tmp / "eth-400d.csv"
    lines = data_file("prices/binance-ethusdt-daily.csv").read_text().splitlines()
    prices.write_text("\n".join([lines[0], *lines[-400:]]) + "\n")
    (tmp / "chainrisk.toml").write_text("")
    env = {
        "CHAINRISK_DATABASE_URL": db,
        "CHAINRISK_HOME": str(tmp / "home"),
        "CHAINRISK_CONFIG": str(tmp / "chainrisk.toml"),
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }
    _cli("forecast", "run", "--prices", str(prices), "--asset", "ETH", "--models", "ewma", env=env)
    _cli("contagion", "var", "--scenarios", "40", "--seed", "1", "--vol", "WETH=0.9", env=env)


@pytest.fixture(scope="module")
def devnet(
    templates: dict[str, str], node_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Devnet]:
    from devnet.anvil import Anvil
    from tests.conftest import _fresh_database

    levels = {name: logging.getLogger(name).level for name in ("", "alembic", "httpx", "httpcore")}
    lag = 20
    for db in _fresh_database(templates["embedded"]):
        with Anvil(node_home) as node:
            config = _index(db, node, node_home)
            beats = _heartbeats(db, node, config, lag)
        _analytics(db, tmp_path_factory.mktemp("rules-analytics"))
        for name, level in levels.items():  # the CLI configures logging for the process
            logging.getLogger(name).setLevel(level)
        conninfo = to_libpq_url(db)
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SELECT to_timestamp(max(block_timestamp)) FROM logs").fetchone()
        assert row is not None
        yield Devnet(db, conninfo, row[0] + timedelta(seconds=1), beats, lag)


def _fire(devnet: Devnet, rule: dict[str, Any], now: datetime | None = None) -> list[Alert]:
    """What the rule fires at `now` (default: just after the last block); nothing is written."""
    config = AlertRuleConfig.model_validate(rule)
    with psycopg.connect(devnet.conninfo) as conn:
        [outcome] = evaluate_rules(conn, [config], now or devnet.now, enqueue=False)
        conn.rollback()
    assert outcome.error is None, outcome.error
    return outcome.alerts


# ------------------------------------------------------------------------------------- health factor


def test_health_factor_fires_for_every_account_under_the_threshold(devnet: Devnet) -> None:
    at_risk = _rows(devnet, "SELECT pool, user_address FROM positions_at_risk WHERE chain_id = %s", CHAIN)
    alerts = _fire(devnet, {"name": "hf", "kind": "health_factor", "below": 1.1})
    assert len(at_risk) > 0
    assert sorted((a.facts["pool"], a.facts["wallet"]) for a in alerts) == sorted(at_risk)
    assert all(a.facts["health_factor"] < 1.1 and a.chain_id == CHAIN for a in alerts)
    lowest = min(a.facts["health_factor"] for a in alerts)
    assert _fire(devnet, {"name": "hf", "kind": "health_factor", "below": lowest}) == []
    # A watched wallet: only its own account; a size floor above its debt silences it.
    first = alerts[0].facts
    watched = {"name": "hf", "kind": "health_factor", "below": 1.1, "wallets": [first["wallet"]]}
    assert [a.subject for a in _fire(devnet, watched)] == [alerts[0].subject]
    assert _fire(devnet, {**watched, "min_debt_usd": first["debt_usd"] + 1}) == []
    assert "Liquidatable if its collateral assets fall" in alerts[0].body
    # At most `max_accounts`, the lowest health factors first.
    two = _fire(devnet, {"name": "hf", "kind": "health_factor", "below": 1.1, "max_accounts": 2})
    lowest_two = sorted(alerts, key=lambda a: a.facts["health_factor"])[:2]
    assert [a.subject for a in two] == [a.subject for a in lowest_two]


def test_the_distance_to_liquidation_is_where_the_engine_puts_the_health_factor_at_one(
    devnet: Devnet,
) -> None:
    from graph.at_risk import load_positions
    from graph.hf_engine import user_health

    alerts = _fire(devnet, {"name": "hf", "kind": "health_factor", "below": 1.1})
    with psycopg.connect(devnet.conninfo) as conn:
        positions, assets = load_positions(conn, CHAIN)
        accounts = sorted(
            {
                f"{p}:{u}"
                for p, u in conn.execute(
                    "SELECT pool, user_address FROM position_reserves WHERE chain_id = %s", (CHAIN,)
                ).fetchall()
            }
        )
    checked = 0
    for a in alerts:
        user = accounts.index(f"{a.facts['pool']}:{a.facts['wallet']}")
        falling = {e["asset"] for e in a.facts["drop_per_asset"]}
        drop = a.facts["drop_all_collateral"]
        assert drop is not None and 0 < drop < 1
        for x, side in ((drop, 0), (drop - 1e-6, 1), (drop + 1e-6, -1)):
            prices = np.array([1 - x if asset in falling else 1.0 for asset in assets])
            hf = float(user_health(positions, prices).health_factor[user])
            assert (hf == pytest.approx(1.0, abs=1e-9)) if side == 0 else (hf - 1) * side > 0
        for each in a.facts["drop_per_asset"]:
            if each["drop"] is not None:
                prices = np.array([1 - each["drop"] if asset == each["asset"] else 1.0 for asset in assets])
                assert float(user_health(positions, prices).health_factor[user]) == pytest.approx(
                    1.0, abs=1e-9
                )
                checked += 1
    assert checked >= len(alerts)


# ---------------------------------------------------------------------------- liquidations, bad debt


def test_liquidations_per_market_over_the_window(devnet: Devnet) -> None:
    counts = dict(
        _rows(devnet, "SELECT pool, count(*) FROM liquidations WHERE chain_id = %s GROUP BY 1", CHAIN)
    )
    alerts = _fire(devnet, {"name": "liq", "kind": "liquidations", "window": "7d"})
    assert counts and {a.facts["pool"]: a.facts["liquidations"] for a in alerts} == counts
    usd = _rows(devnet, "SELECT pool, sum(debt_repaid_usd)::float8 FROM liquidations GROUP BY 1")
    assert {a.facts["pool"]: pytest.approx(a.facts["debt_repaid_usd"]) for a in alerts} == dict(usd)
    most = max(counts.values())
    assert _fire(devnet, {"name": "liq", "kind": "liquidations", "window": "7d", "min_count": most + 1}) == []
    top_usd = max(v for _, v in usd)
    assert (
        _fire(devnet, {"name": "liq", "kind": "liquidations", "window": "7d", "min_usd": top_usd + 1}) == []
    )
    # Long before the first liquidation, a one-hour window holds none.
    first = _rows(devnet, "SELECT min(block_time) FROM liquidations")[0][0]
    assert (
        _fire(devnet, {"name": "liq", "kind": "liquidations", "window": "1h"}, now=first - timedelta(hours=1))
        == []
    )


def test_realised_bad_debt_fires_once_created_and_unrealised_only_when_carried(devnet: Devnet) -> None:
    # The devnet deploys Aave v3.0, which has no DeficitCreated; a decoded row stands in for one.
    rows = _rows(devnet, "SELECT DISTINCT pool FROM positions_current ORDER BY 1")
    pool = str(rows[0][0])
    usdc = _rows(devnet, "SELECT token FROM tracked_tokens WHERE symbol = 'USDC'")[0][0]
    head = int(_rows(devnet, "SELECT max(block_number) FROM logs")[0][0])
    rule = AlertRuleConfig.model_validate(
        {"name": "bd", "kind": "bad_debt", "window": "1d", "min_usd": 1_000}
    )
    with psycopg.connect(devnet.conninfo) as conn:
        assert evaluate_rules(conn, [rule], devnet.now, enqueue=False)[0].alerts == []
        conn.execute(
            "INSERT INTO aave_v3_deficit_created VALUES (%s, %s, 999999, '0x00', '0x00', %s, %s, %s, %s)",
            (CHAIN, head, pool, "0x" + "ab" * 20, usdc, 2_500 * 10**6),
        )
        [outcome] = evaluate_rules(conn, [rule], devnet.now, enqueue=False)
        value = conn.execute("SELECT usd FROM bad_debt WHERE kind = 'realised'").fetchone()
        higher = AlertRuleConfig.model_validate(
            {**rule.model_dump(), "params": {"window": "1d", "min_usd": 3_000}}
        )
        assert evaluate_rules(conn, [higher], devnet.now, enqueue=False)[0].alerts == []
        conn.rollback()
    assert value is not None and [a.facts["bad_debt"] for a in outcome.alerts] == ["realised"]
    assert (
        outcome.alerts[0].facts["usd"] == pytest.approx(float(value[0])) and 2_400 < float(value[0]) < 2_600
    )
    assert outcome.alerts[0].facts["largest_accounts"] == ["0x" + "ab" * 20]


# ------------------------------------------------------------------------ collateral at risk, VaR


def test_collateral_at_risk_under_a_weth_shock(devnet: Devnet) -> None:
    # The cookbook's query (docs/SQL.md) for the same shock: accounts healthy now, under 1 after.
    expected = _rows(
        devnet,
        """
        WITH shocked AS (
            SELECT chain_id, pool, user_address,
                   sum(CASE WHEN collateral_enabled THEN collateral_usd * liquidation_threshold_bps / 1e4
                            * CASE WHEN symbol = 'WETH' THEN 0.7 ELSE 1 END ELSE 0 END) AS weighted,
                   sum(debt_usd * CASE WHEN symbol = 'WETH' THEN 0.7 ELSE 1 END) AS debt
            FROM positions_by_asset GROUP BY 1, 2, 3)
        SELECT count(*) FROM shocked s JOIN positions_current p USING (chain_id, pool, user_address)
        WHERE s.debt > 0 AND s.weighted < s.debt
        """,
    )[0][0]
    rule = {"name": "car", "kind": "collateral_at_risk", "assets": [WETH], "move": -0.3, "min_usd": 1_000}
    [alert] = _fire(devnet, rule)
    assert expected > 0 and alert.facts["liquidatable_accounts"] == expected
    assert alert.facts["collateral_at_risk_usd"] > 1_000
    assert _fire(devnet, {**rule, "min_usd": alert.facts["collateral_at_risk_usd"] + 1}) == []
    assert _fire(devnet, {**rule, "move": -0.001}) == []


def test_contagion_var_of_the_latest_run(devnet: Devnet) -> None:
    [(run_id, var99)] = _rows(devnet, "SELECT run_id, var99_usd FROM contagion_run_results")
    assert var99 > 0
    [alert] = _fire(devnet, {"name": "cv", "kind": "contagion_var", "above_usd": var99 / 2})
    assert alert.facts["run_id"] == run_id and alert.facts["var99_usd"] == pytest.approx(var99)
    assert _fire(devnet, {"name": "cv", "kind": "contagion_var", "above_usd": var99}) == []


# --------------------------------------------------------------------------------- whales, net flow


def test_whale_transfers_to_exchanges(devnet: Devnet) -> None:
    flows = _rows(
        devnet, "SELECT tx_hash, log_index, to_label, usd FROM whale_flows WHERE direction = 'to_exchange'"
    )
    alerts = _fire(
        devnet, {"name": "wt", "kind": "whale_transfer", "direction": "to_exchange", "window": "7d"}
    )
    assert flows and sorted((a.facts["tx_hash"], a.facts["log_index"]) for a in alerts) == sorted(
        (t, i) for t, i, _, _ in flows
    )
    assert all(a.period == f"block:{a.facts['block']}" for a in alerts)
    label = str(flows[0][2]).split("-")[0]
    scoped = _fire(
        devnet,
        {
            "name": "wt",
            "kind": "whale_transfer",
            "direction": "to_exchange",
            "window": "7d",
            "exchanges": [label],
        },
    )
    assert scoped and len(scoped) == sum(str(f[2]).startswith(label) for f in flows)
    top = max(float(f[3]) for f in flows)
    assert (
        _fire(
            devnet,
            {
                "name": "wt",
                "kind": "whale_transfer",
                "direction": "to_exchange",
                "window": "7d",
                "min_usd": top + 1,
            },
        )
        == []
    )
    assert (
        _fire(
            devnet,
            {"name": "wt", "kind": "whale_transfer", "window": "1h"},
            now=devnet.now + timedelta(hours=2),
        )
        == []
    )


def test_exchange_net_inflow_per_hour(devnet: Devnet) -> None:
    hours = _rows(
        devnet, "SELECT token, hour, netflow_usd::float8 FROM exchange_netflows WHERE netflow_usd > 1e6"
    )
    alerts = _fire(devnet, {"name": "nf", "kind": "exchange_netflow", "above_usd": 1e6, "window": "7d"})
    assert hours and sorted((a.facts["token"], a.facts["hour"]) for a in alerts) == sorted(
        (t, h.isoformat()) for t, h, _ in hours
    )
    top = max(n for _, _, n in hours)
    assert _fire(devnet, {"name": "nf", "kind": "exchange_netflow", "above_usd": top, "window": "7d"}) == []


# ------------------------------------------------------------------------------- regime, volatility


def test_a_regime_probability_crossing(devnet: Devnet) -> None:
    rows = _rows(
        devnet,
        "SELECT day, regime, probability FROM regimes_latest WHERE asset = 'ETH'"
        " ORDER BY day DESC, regime LIMIT 4",
    )
    (day, _, _), (before, _, _) = rows[0], rows[2]
    latest = {r: p for d, r, p in rows if d == day}
    previous = {r: p for d, r, p in rows if d == before}
    rising = max(latest, key=lambda r: latest[r] - previous[r])
    assert latest[rising] > previous[rising]
    middle = (latest[rising] + previous[rising]) / 2
    [alert] = _fire(devnet, {"name": "rg", "kind": "regime", "regime": rising, "above": middle})
    assert alert.facts["probability"] == pytest.approx(latest[rising]) and alert.period == str(day)
    # Already above the day before: no crossing. Never reached: nothing.
    below_both = min(latest[rising], previous[rising]) * 0.99
    assert _fire(devnet, {"name": "rg", "kind": "regime", "regime": rising, "above": below_both}) == []
    assert (
        _fire(
            devnet,
            {"name": "rg", "kind": "regime", "regime": rising, "above": min(0.999, latest[rising] * 1.01)},
        )
        == []
    )


def test_a_volatility_forecast_above_the_threshold(devnet: Devnet) -> None:
    [(vol,)] = _rows(
        devnet, "SELECT volatility FROM forecasts_latest WHERE asset = 'ETH' AND horizon_days = 1"
    )
    annual = vol * 365**0.5
    rule = {"name": "vol", "kind": "volatility", "assets": ["ETH"], "horizon_days": 1}
    [alert] = _fire(devnet, {**rule, "above": annual * 0.9})
    assert alert.facts["annualised_volatility"] == pytest.approx(annual)
    assert _fire(devnet, {**rule, "above": annual * 1.1}) == []
    assert len(_fire(devnet, {**rule, "above": vol * 0.9, "annualised": False})) == 1


# ------------------------------------------------------------------------------------- operations


def test_lag_and_a_halted_indexer_from_the_heartbeats(devnet: Devnet) -> None:
    now = devnet.beats[-1] + timedelta(seconds=30)
    rule = {"name": "ops", "kind": "operations", "max_lag_blocks": devnet.lag - 1, "stalled_after": "5m"}
    alerts = {a.facts["check"]: a for a in _fire(devnet, rule, now=now)}
    assert set(alerts) == {"lag", "halted"}
    assert alerts["lag"].facts["lag"] == devnet.lag and alerts["halted"].facts["heartbeats"] == 2
    indexed = _rows(devnet, "SELECT block_number FROM cursors")[0][0]
    assert (
        alerts["halted"].facts["indexed"] == indexed
        and alerts["halted"].facts["head"] == indexed + devnet.lag
    )
    # Within the limit; not watched long enough to call it a halt (heartbeats only go back 10 minutes).
    quiet = {**rule, "max_lag_blocks": devnet.lag, "stalled_after": "15m"}
    assert _fire(devnet, quiet, now=now) == []
    # Before the node ran ahead: caught up, no lag.
    assert _fire(devnet, rule, now=devnet.beats[0] + timedelta(seconds=30)) == []


def test_a_job_failing_repeatedly(devnet: Devnet) -> None:
    from chainrisk.serve import runs

    rule = {"name": "ops", "kind": "operations", "failures": 3, "jobs": ["forecast:BTC"]}
    start = devnet.beats[0] - timedelta(days=3)
    with psycopg.connect(devnet.conninfo) as conn:
        for day in range(4):
            claim = runs.claim(conn, "forecast:BTC", start + timedelta(days=day), "test:1")
            assert claim is not None
            if day == 0:
                runs.succeed(conn, claim, 1.0, {"run_id": 1})
                conn.commit()
            else:
                runs.fail(conn, claim, 1.0, "ValueError: the price file has 20 days; the models need 60")
            if day == 2:
                assert _fire(devnet, rule, now=devnet.now) == []  # two failures so far
    [alert] = _fire(devnet, rule, now=devnet.now)
    assert alert.subject == "job:forecast:BTC" and "the models need 60" in alert.body
    assert len(alert.facts["periods"]) == 3


# ---------------------------------------------------------------------------- job, outbox, cooldown


class ExplodeParams(BaseModel):
    """A kind whose query fails in the database: what a broken rule does to the others."""


def _explode(conn: Conn, rule: AlertRuleConfig, params: ExplodeParams, now: datetime) -> list[Alert]:
    conn.execute("SELECT 1 / 0")
    return []


@pytest.fixture
def explode() -> Iterator[None]:
    """The `explode` kind, registered for one test."""
    from chainrisk.alerts.rules import KINDS, kinds

    kinds()
    register("explode", ExplodeParams, _explode)
    yield
    KINDS.pop("explode")


def _job(
    devnet: Devnet, rules: list[AlertRuleConfig], period: datetime, conn: Conn, settings: Any = None
) -> dict[str, Any]:
    from chainrisk.serve.jobs import JobRun, ServiceContext
    from chainrisk.settings import Settings

    settings = settings or Settings.model_construct(alerts=rules, chains=[])
    service = ServiceContext(settings, devnet.db, devnet.conninfo, {}, threading.Event())
    return run_job(JobRun("alerts", period, conn, service, None, period))


@pytest.mark.usefixtures("explode")
def test_the_job_enqueues_what_fires_and_reports_a_failing_rule(devnet: Devnet) -> None:
    rules = [
        AlertRuleConfig.model_validate(r)
        for r in (
            {"name": "job-liq", "kind": "liquidations", "window": "7d", "channels": ["a", "b"]},
            {"name": "job-broken", "kind": "explode"},
            {"name": "job-whales", "kind": "whale_transfer", "window": "7d", "channels": ["a"]},
        )
    ]
    with psycopg.connect(devnet.conninfo) as conn:
        result = _job(devnet, rules, devnet.now, conn)
        stored = conn.execute(
            "SELECT a.rule, count(DISTINCT a.id), count(d.id)"
            " FROM alerts a JOIN alert_deliveries d ON d.alert_id = a.id"
            " WHERE a.rule LIKE 'job-%%' GROUP BY 1"
        ).fetchall()
        again = _job(devnet, rules, devnet.now + timedelta(seconds=30), conn)
        conn.rollback()
    assert (
        result["failed_rules"] == ["job-broken"]
        and "DivisionByZero" in result["rules"]["job-broken"]["error"]
    )
    fired = {r: result["rules"][r]["fired"] for r in ("job-liq", "job-whales")}
    assert all(n > 0 for n in fired.values())
    assert {str(r): (int(n), int(d)) for r, n, d in stored} == {
        "job-liq": (fired["job-liq"], 2 * fired["job-liq"]),
        "job-whales": (fired["job-whales"], fired["job-whales"]),
    }
    # Thirty seconds later the same conditions hold: every alert is a duplicate, nothing is new.
    assert again["fired"] == result["fired"] and again["enqueued"] == 0


def test_a_persisting_condition_fires_once_per_cooldown(devnet: Devnet) -> None:
    rule = AlertRuleConfig.model_validate(
        {"name": "cool-hf", "kind": "health_factor", "below": 1.1, "cooldown": "1h", "channels": ["a"]}
    )
    hour = devnet.now.replace(minute=0, second=0, microsecond=0)
    with psycopg.connect(devnet.conninfo) as conn:
        first, same, later = (
            evaluate_rules(conn, [rule], at, enqueue=True)[0]
            for at in (hour + timedelta(minutes=1), hour + timedelta(minutes=59), hour + timedelta(hours=1))
        )
        conn.rollback()
    assert first.enqueued == len(first.alerts) > 0
    assert len(same.alerts) == len(first.alerts) and same.enqueued == 0
    assert later.enqueued == len(first.alerts)


def _every_kind(devnet: Devnet) -> list[tuple[dict[str, Any], datetime]]:
    """One rule of each built-in kind, with thresholds the devnet data crosses, and when to evaluate it."""
    rows = _rows(
        devnet,
        "SELECT day, regime, probability FROM regimes_latest WHERE asset = 'ETH'"
        " ORDER BY day DESC, regime LIMIT 4",
    )
    latest, previous = {r: p for _, r, p in rows[:2]}, {r: p for _, r, p in rows[2:]}
    rising = max(latest, key=lambda r: latest[r] - previous[r])
    beat = devnet.beats[-1] + timedelta(seconds=30)
    at = devnet.now
    rules: list[tuple[dict[str, Any], datetime]] = [
        ({"kind": "health_factor", "below": 1.1, "max_accounts": 2}, at),
        ({"kind": "liquidations", "window": "7d", "min_count": 5}, at),
        ({"kind": "bad_debt", "window": "1d", "min_usd": 1_000}, at),
        ({"kind": "collateral_at_risk", "assets": [WETH], "move": -0.3, "min_usd": 1_000}, at),
        ({"kind": "contagion_var", "above_usd": 1}, at),
        ({"kind": "whale_transfer", "direction": "to_exchange", "window": "7d", "exchanges": ["kraken"]}, at),
        ({"kind": "exchange_netflow", "above_usd": 1e7, "window": "7d"}, at),
        ({"kind": "regime", "regime": rising, "above": (latest[rising] + previous[rising]) / 2}, at),
        ({"kind": "volatility", "above": 0.1, "horizon_days": 1}, at),
        ({"kind": "operations", "max_lag_blocks": devnet.lag - 1, "stalled_after": "5m"}, beat),
    ]
    return [({"name": f"e2e-{r['kind']}", **r}, when) for r, when in rules]


def _dispatch_all(conninfo: str, settings: Any) -> None:
    from chainrisk.alerts.dispatch import dispatch_once

    for _ in range(100):
        dispatch_once(conninfo, settings)
        with psycopg.connect(conninfo) as conn:
            row = conn.execute(
                "SELECT count(*) FROM alert_deliveries WHERE state IN ('pending', 'failed', 'in_flight')"
            ).fetchone()
        if row == (0,):
            return
        time.sleep(0.2)
    raise AssertionError("deliveries still pending")


def test_every_kind_fires_on_the_devnet_and_reaches_every_channel(
    devnet: Devnet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One rule per kind fires on the indexed data and is enqueued by the job code in one transaction;
    the dispatcher delivers each alert to the local receiver of each channel: Discord, Slack, Telegram,
    the signed webhook (verified, no duplicate webhook-id) and SMTP."""
    from chainrisk.settings import Settings
    from tests.alerts.receivers import (
        DiscordReceiver,
        SlackReceiver,
        SmtpReceiver,
        TelegramReceiver,
        WebhookReceiver,
    )

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    fast = {"backoff_s": 0.2, "backoff_max_s": 1.0, "timeout_s": 2.0, "lease_s": 5.0}
    rules = _every_kind(devnet)
    with (
        DiscordReceiver() as discord,
        SlackReceiver() as slack,
        TelegramReceiver() as telegram,
        WebhookReceiver(secret) as hook,
        SmtpReceiver(password="smtp-pass") as smtp,
    ):
        for name, value in {
            "CHAINRISK_CONFIG": str(tmp_path / "absent.toml"),
            "T_DISCORD_URL": discord.url,
            "T_SLACK_URL": slack.url,
            "T_TELEGRAM_TOKEN": telegram.token,
            "T_HOOK_SECRET": secret,
            "T_SMTP_PASSWORD": "smtp-pass",
        }.items():
            monkeypatch.setenv(name, value)
        channels = [
            {"name": "discord", "kind": "discord", "url_env": "T_DISCORD_URL", **fast},
            {"name": "slack", "kind": "slack", "url_env": "T_SLACK_URL", **fast},
            {
                "name": "telegram",
                "kind": "telegram",
                "token_env": "T_TELEGRAM_TOKEN",
                "chat_id": telegram.chat_id,
                "api_url": telegram.base,
                **fast,
            },
            {"name": "hook", "kind": "webhook", "url": hook.url, "secret_env": "T_HOOK_SECRET", **fast},
            {
                "name": "email",
                "kind": "email",
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "none",
                "username": smtp.username,
                "password_env": "T_SMTP_PASSWORD",
                "from_addr": "alerts@example.org",
                "to": ["risk@example.org"],
                **fast,
            },
        ]
        names = [c["name"] for c in channels]
        settings = Settings.model_validate(
            {"channels": channels, "alerts": [{**r, "channels": names} for r, _ in rules]}
        )
        fired = _enqueue_every_kind(devnet, settings, [when for _, when in rules])
        _dispatch_all(devnet.conninfo, settings)
        keys = dict(_rows(devnet, "SELECT dedup_key, title FROM alerts WHERE rule LIKE 'e2e-%%'"))
        texts = {
            "discord": [str(m) for m in discord.accepted],
            "slack": [str(m) for m in slack.accepted],
            "telegram": [str(m) for m in telegram.accepted],
            "email": [_mail_text(m.content) for m in smtp.messages],
        }
    assert {r: n > 0 for r, n in fired.items()} == {r["name"]: True for r, _ in rules}
    assert len(keys) == sum(fired.values())
    assert sorted(d["data"]["dedup_key"] for d in hook.accepted) == sorted(keys)
    assert hook.duplicates == 0 and hook.rejected == 0
    for channel, messages in texts.items():
        assert len(messages) == len(keys), channel
        for title in keys.values():
            assert any(title.split(" (")[0] in m for m in messages), (channel, title)


def _mail_text(raw: bytes) -> str:
    """Subject and plain-text body of a received message, decoded."""
    from email import message_from_bytes, policy
    from email.message import EmailMessage

    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain",))
    return f"{message['subject']}\n{body.get_content() if body is not None else ''}"


def _enqueue_every_kind(devnet: Devnet, settings: Any, times: list[datetime]) -> dict[str, int]:
    """Each rule evaluated at its time and enqueued, committed together; the stand-in DeficitCreated
    row the bad-debt rule reads is removed in the same transaction, so the data stay as indexed."""
    pool = _rows(devnet, "SELECT min(pool) FROM positions_current")[0][0]
    usdc = _rows(devnet, "SELECT token FROM tracked_tokens WHERE symbol = 'USDC'")[0][0]
    head = int(_rows(devnet, "SELECT max(block_number) FROM logs")[0][0])
    fired: dict[str, int] = {}
    with psycopg.connect(devnet.conninfo) as conn:
        conn.execute(
            "INSERT INTO aave_v3_deficit_created VALUES (%s, %s, 999999, '0x00', '0x00', %s, %s, %s, %s)",
            (CHAIN, head, pool, "0x" + "cd" * 20, usdc, 2_500 * 10**6),
        )
        for rule, when in zip(settings.alerts, times, strict=True):
            [outcome] = evaluate_rules(conn, [rule], when, enqueue=True)
            assert outcome.error is None, outcome.error
            fired[rule.name] = outcome.enqueued
        conn.execute("DELETE FROM aave_v3_deficit_created WHERE log_index = 999999")
        conn.commit()
    return fired


def test_alerts_check_prints_what_would_fire_and_enqueues_on_request(devnet: Devnet, tmp_path: Path) -> None:
    from chainrisk.cli import app

    config = tmp_path / "chainrisk.toml"
    config.write_text(
        '[[channels]]\nname = "risk"\nkind = "discord"\nurl_env = "T_UNUSED_URL"\n\n'
        '[[alerts]]\nname = "check-liq"\nkind = "liquidations"\nwindow = "7d"\nchannels = ["risk"]\n'
    )
    env = {
        "CHAINRISK_DATABASE_URL": devnet.db,
        "CHAINRISK_CONFIG": str(config),
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }
    at = devnet.now.isoformat()
    printed = CliRunner().invoke(app, ["alerts", "check", "--at", at], env=env)
    assert printed.exit_code == 0, printed.output
    assert "check-liq (liquidations): 2 alert(s)" in printed.stdout and "liquidations of" in printed.stdout
    document = CliRunner().invoke(app, ["alerts", "check", "--json", "--enqueue", "--at", at], env=env)
    assert document.exit_code == 0, document.output
    [rule] = json.loads(document.stdout)["rules"]
    assert rule["fired"] == rule["enqueued"] == len(rule["alerts"]) == 2
    stored = _rows(devnet, "SELECT dedup_key FROM alerts WHERE rule = 'check-liq'")
    assert sorted(k for (k,) in stored) == sorted(a["dedup_key"] for a in rule["alerts"])
    again = CliRunner().invoke(app, ["alerts", "check", "--json", "--enqueue", "--at", at], env=env)
    assert json.loads(again.stdout)["rules"][0]["enqueued"] == 0
    refused = CliRunner().invoke(app, ["alerts", "check", "--rule", "nope"], env=env)
    assert refused.exit_code == 2 and "configured rules: check-liq" in refused.stderr


def test_serve_runs_the_alerts_job_and_records_what_fired(devnet: Devnet, tmp_path: Path) -> None:
    """`chainrisk serve --once` with [serve.jobs.alerts]: the run's result counts each rule's alerts,
    which are in the outbox; the same period again adds nothing."""
    from chainrisk.cli import app

    config = tmp_path / "chainrisk.toml"
    config.write_text(
        '[serve.jobs.alerts]\ninterval = "1d"\n\n[serve.jobs.heartbeat]\nenabled = false\n\n'
        '[[alerts]]\nname = "serve-hf"\nkind = "health_factor"\nbelow = 1.1\n'
    )
    env = {
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(config),
        "CHAINRISK_DATABASE_URL": devnet.db,
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }
    first = CliRunner().invoke(app, ["serve", "--once"], env=env)
    assert first.exit_code == 0, first.output
    expected = _rows(devnet, "SELECT count(*) FROM positions_at_risk")[0][0]
    [(status, result)] = _rows(devnet, "SELECT status, result FROM service_runs WHERE job = 'alerts'")
    assert status == "succeeded" and result["rules"]["serve-hf"] == {
        "kind": "health_factor",
        "fired": expected,
        "enqueued": expected,
    }
    assert result["failed_rules"] == []
    assert _rows(devnet, "SELECT count(*) FROM alerts WHERE rule = 'serve-hf'")[0][0] == expected
    again = CliRunner().invoke(app, ["serve", "--once"], env=env)
    assert again.exit_code == 0 and ": claimed-before" in again.stdout
