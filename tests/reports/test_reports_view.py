"""The reader view `reports_generated`: each stored report with its period, when it was written, its
files, and where its announcement went (delivered by the dispatcher to a local Discord receiver)."""

from __future__ import annotations

import hashlib
import time
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chainrisk.alerts.dispatch import dispatch_once
from chainrisk.db import to_libpq_url
from chainrisk.reports.build import write_report
from chainrisk.reports.config import ReportConfig
from chainrisk.reports.job import _announce, _insert
from chainrisk.reports.model import Report, Section
from chainrisk.reports.views import VIEWS
from tests.alerts.receivers import DiscordReceiver


def _report(period: str, start: str) -> Report:
    text = [f"Bad debt at VaR99: $1,234 over the {period} period from {start}."]
    section = Section(key="summary", title="Summary", text=text)
    return Report(
        title=f"Contagion risk report, chain 31337, {period} from {start}",
        chain_id=31337,
        block=4_242,
        period=period,  # type: ignore[arg-type]
        period_start=start,
        generated_at=f"{start}T06:00:00+00:00",
        sections=[section],
    )


def _store(conn: psycopg.Connection[Any], tmp: Path, report: Report, channels: list[str]) -> int:
    folder = tmp / f"contagion-{report.period}-{report.period_start}"
    files = write_report(report, folder)
    assert files == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    report_id = _insert(conn, report, date.fromisoformat(report.period_start), folder, files)
    assert report_id is not None
    config = ReportConfig(link="https://risk.example.org/reports")
    _announce(conn, report, report_id, folder, files, config, channels)
    return report_id


def test_reports_generated_shows_period_files_and_announcement(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chainrisk.settings import Settings

    conninfo = to_libpq_url(db_url)
    with DiscordReceiver() as discord:
        monkeypatch.setenv("REPORT_VIEW_DISCORD", discord.url)
        monkeypatch.setenv("CHAINRISK_CONFIG", str(tmp_path / "absent.toml"))
        channel = {"name": "risk-discord", "kind": "discord", "url_env": "REPORT_VIEW_DISCORD"}
        settings = Settings.model_validate({"channels": [channel]})
        with psycopg.connect(conninfo) as conn:
            weekly = _store(conn, tmp_path, _report("weekly", "2026-11-23"), ["risk-discord"])
            quiet = _store(conn, tmp_path, _report("daily", "2026-11-30"), [])
        for _ in range(50):
            if dispatch_once(conninfo, settings)["sent"]:
                break
            time.sleep(0.1)
        assert len(discord.accepted) == 1
    with psycopg.connect(conninfo) as conn:
        cursor = conn.execute("SELECT * FROM reports_generated ORDER BY report_id")
        rows = [dict(zip([c.name for c in cursor.description or ()], r, strict=True)) for r in cursor]
    assert [r["report_id"] for r in rows] == [weekly, quiet]
    announced, silent = rows
    assert (announced["period"], announced["period_start"], announced["period_end"]) == (
        "weekly",
        date(2026, 11, 23),
        date(2026, 11, 29),
    )
    assert announced["title"] == "Contagion risk report, chain 31337, weekly from 2026-11-23"
    assert announced["block"] == 4_242 and announced["created_at"] is not None
    folder = tmp_path / "contagion-weekly-2026-11-23"
    assert announced["directory"] == str(folder)
    assert announced["html_sha256"] == hashlib.sha256((folder / "report.html").read_bytes()).hexdigest()
    assert announced["link"] == f"https://risk.example.org/reports/{folder.name}/report.html"
    assert announced["announced_to"] == {"risk-discord": "sent"}
    assert (announced["channels_sent"], announced["channels"]) == (1, 1)
    assert announced["link"] in discord.accepted[0]["embeds"][0]["description"]
    assert (silent["period_end"], silent["alert_id"], silent["announced_to"]) == (
        date(2026, 11, 30),
        None,
        {},
    )
    assert set(VIEWS) == {"reports_generated"}
