"""`chainrisk serve --once` on a real database: each period once, periods a dead leader left unfinished
run again or closed as the policy says, a forecast that committed before its leader died is recorded as
done, and nothing runs while another process leads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

from chainrisk.cli import app
from chainrisk.db import to_libpq_url
from chainrisk.serve.leader import LEADER_LOCK
from chainrisk.serve.schedule import Schedule
from tests.conftest import data_file

pytestmark = pytest.mark.slow  # each case starts the CLI on a database; the forecasts import analytics

DAY = Schedule(interval_s=86_400)
GONE = "gone-host:1:deadbeef"  # a leadership term whose process is no more
ETH = data_file("prices/binance-ethusdt-daily.csv")


def once(tmp_path: Path, db_url: str, config: str) -> Result:
    path = tmp_path / "chainrisk.toml"
    path.write_text(config)
    env = {
        "CHAINRISK_HOME": str(tmp_path / "home"),
        "CHAINRISK_CONFIG": str(path),
        "CHAINRISK_DATABASE_URL": db_url,
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }
    return CliRunner().invoke(app, ["serve", "--once"], env=env)


def _sql(db_url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


HEARTBEAT_DAILY = '[serve.jobs.heartbeat]\ninterval = "1d"\n'


def test_each_period_runs_once(tmp_path: Path, db_url: str) -> None:
    first = once(tmp_path, db_url, HEARTBEAT_DAILY)
    assert first.exit_code == 0, first.output
    assert "heartbeat" in first.stdout and ": succeeded" in first.stdout
    second = once(tmp_path, db_url, HEARTBEAT_DAILY)
    assert second.exit_code == 0, second.output
    assert ": claimed-before" in second.stdout
    [(status, attempts, result)] = _sql(db_url, "SELECT status, attempts, result FROM service_runs")
    assert (status, attempts, result) == ("succeeded", 1, {"chains": {}})


def test_nothing_runs_while_another_process_leads(tmp_path: Path, db_url: str) -> None:
    with psycopg.connect(to_libpq_url(db_url), autocommit=True) as leader:
        leader.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (LEADER_LOCK,))
        result = once(tmp_path, db_url, HEARTBEAT_DAILY)
    assert result.exit_code == 0, result.output
    assert "another chainrisk serve leads this database" in result.stdout
    assert _sql(db_url, "SELECT count(*) FROM service_runs") == [(0,)]


def test_unfinished_periods_of_a_dead_leader(tmp_path: Path, db_url: str) -> None:
    current = DAY.period(datetime.now(UTC))
    old = current - timedelta(days=3)
    for period in (current, old):
        _sql(
            db_url,
            "INSERT INTO service_runs (job, period, status, leader) VALUES ('heartbeat', %s, 'running', %s)",
            (period, GONE),
        )
    result = once(tmp_path, db_url, HEARTBEAT_DAILY)
    assert result.exit_code == 0, result.output
    rows = _sql(db_url, "SELECT period, status, attempts, leader, error FROM service_runs ORDER BY period")
    (_, old_status, _, old_leader, why), (_, status, attempts, leader, error) = rows
    # Too old to matter now: closed, not run. The period in progress: its work never committed, run again.
    assert (old_status, old_leader) == ("abandoned", GONE) and "older than the previous period" in why
    assert (status, attempts, error) == ("succeeded", 2, None) and leader != GONE


def test_a_forecast_that_committed_before_its_leader_died_is_not_run_again(
    tmp_path: Path, db_url: str
) -> None:
    config = f'[serve.jobs.forecast]\ninterval = "1d"\n\n[[serve.assets]]\nasset = "ETH"\nprices = "{ETH}"\n'
    current = DAY.period(datetime.now(UTC))
    _sql(
        db_url,
        "INSERT INTO service_runs (job, period, status, leader, claimed_at)"
        " VALUES ('forecast:ETH', %s, 'running', %s, now() - interval '1 second')",
        (current, GONE),
    )
    [(run_id,)] = _sql(  # what write_latest committed just before the leader died
        db_url,
        "INSERT INTO forecast_runs (asset, target, source, input_start, input_end, code_version)"
        " VALUES ('ETH', 'parkinson', %s, '2018-01-01', '2025-05-01', 'analytics-1') RETURNING id",
        (str(ETH),),
    )
    result = once(tmp_path, db_url, config + "[serve.jobs.heartbeat]\nenabled = false\n")
    assert result.exit_code == 0, result.output
    assert "forecast:ETH" in result.stdout and ": recovered" in result.stdout
    [(status, attempts, outcome)] = _sql(db_url, "SELECT status, attempts, result FROM service_runs")
    assert (status, attempts) == ("succeeded", 1)
    assert outcome == {"run_id": run_id, "input_end": "2025-05-01", "recovered": True}
    assert _sql(db_url, "SELECT count(*) FROM forecast_runs") == [(1,)]


def test_a_failed_job_is_recorded_and_exits_1(tmp_path: Path, db_url: str) -> None:
    short = tmp_path / "short.csv"
    short.write_text("\n".join(ETH.read_text().splitlines()[:40]) + "\n")  # too few days for the models
    config = f'[[serve.assets]]\nasset = "ETH"\nprices = "{short}"\n'
    result = once(tmp_path, db_url, config)
    assert result.exit_code == 1, result.output
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    assert "1 of 2 job runs failed" in line and "forecast:ETH" in line and "needs" in line
    rows = _sql(db_url, "SELECT job, status, error FROM service_runs ORDER BY job")
    assert [(job, status) for job, status, _ in rows] == [
        ("forecast:ETH", "failed"),
        ("heartbeat", "succeeded"),
    ]
    assert "needs" in rows[0][2] and "days" in rows[0][2]
