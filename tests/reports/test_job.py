"""The `report` job of `chainrisk serve --once` on the devnet: one report per period, after a leader died
in the middle of it and when run again; stored with its period, files and hashes; announced once per
channel through the outbox. A weekly report on a daily schedule is written on the week's first run only."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

from chainrisk.cli import app
from chainrisk.db import to_libpq_url
from chainrisk.serve.schedule import Schedule
from tests.reports.conftest import Written

pytestmark = pytest.mark.slow

DAY = Schedule(interval_s=86_400)
GONE = "gone-host:1:deadbeef"  # a leadership term whose process is no more
CONFIG = """
[serve.jobs.heartbeat]
enabled = false

[serve.jobs.report]
interval = "1d"

[report]
period = "daily"
channels = ["risk-discord", "risk-slack"]
link = "https://risk.example.org/reports"

[[channels]]
name = "risk-discord"
kind = "discord"
url_env = "REPORT_TEST_DISCORD_URL"

[[channels]]
name = "risk-slack"
kind = "slack"
url_env = "REPORT_TEST_SLACK_URL"

[[channels]]
name = "not-told"
kind = "slack"
url_env = "REPORT_TEST_OTHER_URL"
"""


def _once(home: Path, db: str, config: str = CONFIG) -> Result:
    path = home / "chainrisk.toml"
    path.write_text(config)
    env = {
        "CHAINRISK_HOME": str(home / "home"),
        "CHAINRISK_CONFIG": str(path),
        "CHAINRISK_DATABASE_URL": db,
        "CHAINRISK_LOG_LEVEL": "WARNING",
    }
    return CliRunner().invoke(app, ["serve", "--once"], env=env)


def _sql(db: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(to_libpq_url(db)) as conn:
        cursor = conn.execute(query.encode(), params)
        return cursor.fetchall() if cursor.description else []


def test_one_report_per_period_after_a_crash_and_a_second_run(written: Written, tmp_path: Path) -> None:
    db = written.db
    current = DAY.period(datetime.now(UTC))
    # A leader claimed this period, began writing the report and died before its transaction committed.
    _sql(db, "INSERT INTO service_runs (job, period, status, leader) VALUES ('report', %s, 'running', %s)",
         (current, GONE))  # fmt: skip
    folder = tmp_path / "home" / "reports" / f"contagion-daily-{current.date().isoformat()}"
    folder.mkdir(parents=True)
    (folder / "report.html").write_text("half a report")
    (folder / "post-7.md").write_text("a part the finished report does not have")

    first = _once(tmp_path, db)
    assert first.exit_code == 0, first.output
    assert "report" in first.stdout and ": succeeded" in first.stdout
    second = _once(tmp_path, db)
    assert second.exit_code == 0, second.output
    assert ": claimed-before" in second.stdout

    [(status, attempts, leader)] = _sql(
        db, "SELECT status, attempts, leader FROM service_runs WHERE job = 'report'"
    )
    assert (status, attempts) == ("succeeded", 2) and leader != GONE
    [(report_id, period, start, block, directory, files)] = _sql(
        db, "SELECT id, period, period_start, block, directory, files FROM reports"
    )
    assert (period, start, block, Path(directory)) == ("daily", current.date(), written.head, folder)
    on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}
    assert files == on_disk and "post-7.md" not in on_disk and "report.html" in on_disk

    alerts = _sql(db, "SELECT id, dedup_key, title, body, facts FROM alerts WHERE kind = 'report'")
    [(alert_id, key, title, body, facts)] = alerts
    assert key == f"report:contagion:contagion-daily:{current.date().isoformat()}"
    link = f"https://risk.example.org/reports/{folder.name}/report.html"
    assert facts["link"] == link and link in body and facts["report_id"] == report_id
    assert title.startswith("Contagion risk report, chain 31337, daily")
    channels = _sql(
        db, "SELECT channel FROM alert_deliveries WHERE alert_id = %s ORDER BY channel", (alert_id,)
    )
    assert channels == [("risk-discord",), ("risk-slack",)]


def test_a_weekly_report_is_written_once_a_week(written: Written, tmp_path: Path) -> None:
    from chainrisk.reports.job import run_job
    from chainrisk.serve.jobs import JobRun, ServiceContext
    from chainrisk.settings import load_settings

    config = tmp_path / "chainrisk.toml"
    config.write_text('[report]\nperiod = "weekly"\n')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHAINRISK_CONFIG", str(config))
        settings = load_settings(home=tmp_path / "home")
    service = ServiceContext(settings, written.db, to_libpq_url(written.db), {}, threading.Event())
    monday = date(2026, 11, 23)
    results = []
    for day in (monday + timedelta(days=2), monday + timedelta(days=5), monday + timedelta(days=7)):
        period = datetime(day.year, day.month, day.day, tzinfo=UTC)
        with psycopg.connect(service.conninfo) as conn:
            results.append(run_job(JobRun("report", period, conn, service, None, period)))
    first, again, next_week = results
    assert again == {"report_id": first["report_id"], "period": "weekly", "period_start": "2026-11-23",
                     "existing": True}  # fmt: skip
    assert next_week["period_start"] == "2026-11-30" and next_week["report_id"] != first["report_id"]
    assert first["announced"] == [] == next_week["announced"]  # no [[channels]]: nobody to tell
    rows = _sql(written.db, "SELECT period_start FROM reports WHERE period = 'weekly' ORDER BY 1")
    assert rows == [(monday,), (monday + timedelta(days=7),)]


def test_report_channels_must_be_configured(tmp_path: Path, written: Written) -> None:
    result = _once(tmp_path, written.db, '[report]\nchannels = ["nowhere"]\n')
    assert result.exit_code == 2, result.output
    assert "[report] channels: unknown channel 'nowhere'" in result.output


def test_two_leaders_running_one_period_store_and_announce_it_once(written: Written, tmp_path: Path) -> None:
    """Should two processes ever run the same period (the service's claim and leader lock prevent it), the
    unique report row lets the first commit and the second return without a second announcement."""
    from chainrisk.reports.job import run_job
    from chainrisk.serve.jobs import JobRun, ServiceContext
    from chainrisk.settings import load_settings

    config = tmp_path / "chainrisk.toml"
    config.write_text(CONFIG.replace('period = "daily"', 'period = "weekly"'))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHAINRISK_CONFIG", str(config))
        settings = load_settings(home=tmp_path / "home")
    service = ServiceContext(settings, written.db, to_libpq_url(written.db), {}, threading.Event())
    period = datetime(2026, 6, 3, tzinfo=UTC)  # a Wednesday: the week of Monday 2026-06-01
    results: list[dict[str, Any]] = []
    with psycopg.connect(service.conninfo) as first, psycopg.connect(service.conninfo) as second:
        results.append(run_job(JobRun("report", period, first, service, None, period)))
        pid = second.info.backend_pid
        worker = threading.Thread(
            target=lambda: results.append(run_job(JobRun("report", period, second, service, None, period)))
        )
        worker.start()
        with psycopg.connect(service.conninfo, autocommit=True) as watch:
            # The second run waits on the first one's uncommitted row before it may insert its own.
            while worker.is_alive() and watch.execute(
                "SELECT wait_event_type IS DISTINCT FROM 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone() != (False,):
                threading.Event().wait(0.1)
        first.commit()
        worker.join()
        second.commit()
    one, other = results
    assert other == {"period": "weekly", "period_start": "2026-06-01", "existing": True}
    assert one["announced"] == ["risk-discord", "risk-slack"]
    assert _sql(written.db, "SELECT count(*) FROM reports WHERE period_start = '2026-06-01'") == [(1,)]
    keys = _sql(written.db, "SELECT dedup_key FROM alerts WHERE dedup_key LIKE %s", ("%2026-06-01",))
    assert keys == [("report:contagion:contagion-weekly:2026-06-01",)]
