"""The `report` job of `chainrisk serve`: the contagion report of the period, written once and announced.

One report per period (``[report] period``: daily, or weekly with the ISO week's Monday as its first
day). The service claims each (job, schedule period) once and runs the job in a transaction that commits
with the run's record; on top of that the `reports` row is unique per (kind, period, first day), so a
weekly report on a daily schedule, a rerun after a crash or a second leader never makes a second one.

The files go to ``<directory>/contagion-<period>-<first day>/`` (default directory: ``<home>/reports``),
each written whole then renamed into place; a run that died before its commit left at most files that
the rerun overwrites. The row keeps the folder and every file's SHA-256. The announcement is an alert in
the outbox, written in the same transaction as the row, to the ``[report] channels`` (default: every
channel), linking ``<link>/<folder>/report.html`` or naming the file's path.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from chainrisk.alerts.model import Alert
from chainrisk.reports.build import HTML_NAME, write_report
from chainrisk.reports.config import ReportConfig, announce_to
from chainrisk.reports.gather import gather, period_start
from chainrisk.reports.model import Report

if TYPE_CHECKING:
    from chainrisk.serve.jobs import Conn, JobRun

KIND = "contagion"
RULE = "report:contagion"  # the announcement's rule name in the outbox (its dedup key's first part)


def run_job(run: JobRun) -> dict[str, Any]:
    """Write, store and announce the period's report, unless the period has one already."""
    config = run.service.settings.report
    start = period_start(config.period, run.period)
    stored = stored_report(run.conn, config.period, start)
    if stored is not None:
        return {
            "report_id": stored,
            "period": config.period,
            "period_start": start.isoformat(),
            "existing": True,
        }
    report = gather(
        run.conn, config.period, None, datetime.now(UTC), period_at=run.period, chain_id=config.chain_id
    )
    folder = report_folder(run.service.home, config, start)
    files = write_report(report, folder)
    report_id = _insert(run.conn, report, start, folder, files)
    if report_id is None:  # another leader stored this period's report meanwhile: its files are the same
        return {"period": config.period, "period_start": start.isoformat(), "existing": True}
    channels = announce_to(config, run.service.settings.channels)
    announced = _announce(run.conn, report, report_id, folder, files, config, channels)
    return {
        "report_id": report_id,
        "period": config.period,
        "period_start": start.isoformat(),
        "block": report.block,
        "directory": str(folder),
        "announced": channels if announced else [],
    }


def report_folder(home: Path, config: ReportConfig, start: date) -> Path:
    return (config.directory or home / "reports") / f"{KIND}-{config.period}-{start.isoformat()}"


def stored_report(conn: Conn, period: str, start: date) -> int | None:
    row = conn.execute(
        "SELECT id FROM reports WHERE kind = %s AND period = %s AND period_start = %s", (KIND, period, start)
    ).fetchone()
    return None if row is None else int(row[0])


def _insert(conn: Conn, report: Report, start: date, folder: Path, files: dict[str, str]) -> int | None:
    summary = {"title": report.title, "lines": report.sections[0].text}
    row = conn.execute(
        "INSERT INTO reports (kind, period, period_start, chain_id, block, directory, files, summary)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (kind, period, period_start) DO NOTHING RETURNING id",
        (
            KIND,
            report.period,
            start,
            report.chain_id,
            report.block,
            str(folder),
            Jsonb(files),
            Jsonb(summary),
        ),
    ).fetchone()
    return None if row is None else int(row[0])


def _announce(
    conn: Conn,
    report: Report,
    report_id: int,
    folder: Path,
    files: dict[str, str],
    config: ReportConfig,
    channels: list[str],
) -> bool:
    from chainrisk.alerts.outbox import enqueue

    if not channels:
        return False
    where = f"{config.link.rstrip('/')}/{folder.name}/{HTML_NAME}" if config.link else str(folder / HTML_NAME)
    alert = Alert(
        rule=RULE,
        kind="report",
        severity="info",
        subject=f"{KIND}-{report.period}",
        period=report.period_start,
        title=report.title,
        body="\n".join([*report.sections[0].text, f"Report: {where}"]),
        facts={"report_id": report_id, "link": where, "block": report.block, "sha256": files[HTML_NAME]},
        chain_id=report.chain_id,
        observed_at=datetime.now(UTC),
    )
    return enqueue(conn, alert, channels)
