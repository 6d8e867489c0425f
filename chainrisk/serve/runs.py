"""The `service_runs` table: a period is claimed before its job runs and marked when it ends.

The claim is an INSERT … ON CONFLICT DO NOTHING committed on its own, so two processes can never both
own a period. Every later change names the leadership term that holds the claim (`leader = term`): a
leader that lost the lead can no longer mark, or commit the work of, a period another leader took over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[tuple[Any, ...]]


class ClaimLost(Exception):
    """The period's claim belongs to another term now: this run's work must not commit."""


@dataclass(frozen=True)
class Claim:
    job: str
    period: datetime
    term: str
    claimed_at: datetime
    attempt: int


@dataclass(frozen=True)
class Orphan:
    """A period claimed by a term that is gone (it never finished)."""

    period: datetime
    claimed_at: datetime
    leader: str


def claim(conn: Conn, job: str, period: datetime, term: str) -> Claim | None:
    """Claim a period for `term`; None when it was claimed before (by anyone, in any state)."""
    row = conn.execute(
        "INSERT INTO service_runs (job, period, status, leader) VALUES (%s, %s, 'running', %s)"
        " ON CONFLICT (job, period) DO NOTHING RETURNING claimed_at, attempts",
        (job, period, term),
    ).fetchone()
    conn.commit()
    return None if row is None else Claim(job, period, term, row[0], int(row[1]))


def orphans(conn: Conn, job: str, term: str) -> list[Orphan]:
    """Periods of `job` still marked running by another term; the caller holds the lead, so that term
    is gone (or lost the lead and is fenced off by `leader = term` in every later statement)."""
    rows = conn.execute(
        "SELECT period, claimed_at, leader FROM service_runs"
        " WHERE job = %s AND status = 'running' AND leader <> %s ORDER BY period",
        (job, term),
    ).fetchall()
    conn.commit()
    return [Orphan(r[0], r[1], str(r[2])) for r in rows]


def take_over(conn: Conn, job: str, orphan: Orphan, term: str) -> Claim | None:
    """Move an orphaned period's claim to `term`; None when it finished or moved meanwhile."""
    row = conn.execute(
        "UPDATE service_runs SET leader = %s, attempts = attempts + 1, claimed_at = now()"
        " WHERE job = %s AND period = %s AND status = 'running' AND leader = %s"
        " RETURNING claimed_at, attempts",
        (term, job, orphan.period, orphan.leader),
    ).fetchone()
    conn.commit()
    return None if row is None else Claim(job, orphan.period, term, row[0], int(row[1]))


def close_orphan(conn: Conn, job: str, orphan: Orphan, status: str, **fields: Any) -> bool:
    """Mark an orphaned period done without running it: `succeeded` (its work had committed, `result`
    says what) or `abandoned` (too old to run now, `error` says why)."""
    row = conn.execute(
        "UPDATE service_runs SET status = %s, finished_at = now(), result = %s, error = %s"
        " WHERE job = %s AND period = %s AND status = 'running' AND leader = %s RETURNING 1",
        (status, _json(fields.get("result")), fields.get("error"), job, orphan.period, orphan.leader),
    ).fetchone()
    conn.commit()
    return row is not None


def succeed(conn: Conn, held: Claim, duration_s: float, result: dict[str, Any]) -> None:
    """Mark the run succeeded inside the caller's transaction (the job's writes commit with it)."""
    _mark(conn, held, "succeeded", duration_s, result, None)


def fail(conn: Conn, held: Claim, duration_s: float, error: str) -> bool:
    """Mark the run failed and commit; False when the claim had moved to another term."""
    try:
        _mark(conn, held, "failed", duration_s, None, error)
    except ClaimLost:
        conn.rollback()
        return False
    conn.commit()
    return True


def _mark(
    conn: Conn, held: Claim, status: str, duration_s: float, result: dict[str, Any] | None, error: str | None
) -> None:
    row = conn.execute(
        "UPDATE service_runs SET status = %s, finished_at = now(), duration_s = %s, result = %s, error = %s"
        " WHERE job = %s AND period = %s AND leader = %s AND status = 'running' RETURNING 1",
        (status, duration_s, _json(result), error, held.job, held.period, held.term),
    ).fetchone()
    if row is None:
        raise ClaimLost(f"{held.job} {held.period.isoformat()}: claimed by another leader")


def latest(conn: Conn) -> dict[str, dict[str, Any]]:
    """Each job's most recent run, for /healthz."""
    rows = conn.execute(
        "SELECT DISTINCT ON (job) job, period, status, attempts, finished_at, duration_s, error"
        " FROM service_runs ORDER BY job, period DESC"
    ).fetchall()
    return {
        str(r[0]): {
            "period": r[1].isoformat(),
            "status": r[2],
            "attempts": r[3],
            "finished_at": r[4].isoformat() if r[4] else None,
            "duration_s": r[5],
            "error": r[6],
        }
        for r in rows
    }


def _json(value: dict[str, Any] | None) -> Jsonb | None:
    return None if value is None else Jsonb(value)
