"""Runs scheduled jobs: one period at a time per job, claimed in `service_runs` before any work.

`JobRunner.fire(job)` is what APScheduler calls. It first settles the job's periods that a previous leader
claimed and never finished, then runs the period the current time falls in unless it was claimed before.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from chainrisk.serve import runs
from chainrisk.serve.jobs import JobRun, ScheduledJob, ServiceContext
from chainrisk.serve.metrics import ServiceMetrics

log = logging.getLogger(__name__)

_DB_URL = re.compile(r"postgres(?:ql)?(?:\+\w+)?://\S+", re.IGNORECASE)
ABANDONED = "its leader stopped before finishing it, and it is older than the previous period: not run again"


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one period of one job."""

    job: str
    period: datetime
    status: str  # succeeded, failed, abandoned, recovered, claimed-before, lost
    duration_s: float = 0.0
    detail: str = ""

    def line(self) -> str:
        took = f" in {self.duration_s:.1f}s" if self.duration_s else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.job} {self.period.isoformat()}: {self.status}{took}{detail}"


class JobRunner:
    """Claims and runs periods for one leadership `term`."""

    def __init__(self, service: ServiceContext, term: str, metrics: ServiceMetrics) -> None:
        self.service, self.term, self.metrics = service, term, metrics
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def fire(self, job: ScheduledJob) -> list[RunOutcome]:
        """Settle the job's orphaned periods, then run the period this fire is for; one call per job at a
        time. The period is taken when the fire comes, before waiting for the job's previous run: a run
        that overruns its period delays the next period's run instead of skipping it."""
        current = job.schedule.period(datetime.now(UTC))
        with self._lock(job.name):
            if self.service.stopping.is_set():
                return []
            outcomes = self._settle_orphans(job, current)
            if self.service.stopping.is_set():
                return outcomes
            with self._connect() as conn:
                held = runs.claim(conn, job.name, current, self.term)
            if held is None:
                outcomes.append(RunOutcome(job.name, current, "claimed-before"))
            else:
                outcomes.append(self._execute(job, held))
            return outcomes

    def _settle_orphans(self, job: ScheduledJob, current: datetime) -> list[RunOutcome]:
        """Periods claimed by a leader that died: the current and the previous one run again (their work
        never committed), or are recorded as done when it did; older ones are abandoned."""
        outcomes = []
        with self._connect() as conn:
            found = runs.orphans(conn, job.name, self.term)
        oldest_rerun = job.schedule.previous(current)
        for orphan in found:
            if self.service.stopping.is_set():
                break
            with self._connect() as conn:
                if orphan.period < oldest_rerun:
                    runs.close_orphan(conn, job.name, orphan, "abandoned", error=ABANDONED)
                    outcomes.append(RunOutcome(job.name, orphan.period, "abandoned", detail=ABANDONED))
                    continue
                done = self._committed(job, orphan, conn)
                if done is not None:
                    if runs.close_orphan(conn, job.name, orphan, "succeeded", result=done):
                        outcomes.append(RunOutcome(job.name, orphan.period, "recovered", detail=str(done)))
                    continue
                held = runs.take_over(conn, job.name, orphan, self.term)
            if held is not None:
                log.info("%s %s: running again what %s left unfinished", job.name, held.period, orphan.leader)
                outcomes.append(self._execute(job, held))
        return outcomes

    def _committed(self, job: ScheduledJob, orphan: runs.Orphan, conn: runs.Conn) -> dict[str, Any] | None:
        if job.kind.committed is None:
            return None
        probe = JobRun(job.name, orphan.period, conn, self.service, job.asset, orphan.claimed_at)
        return job.kind.committed(probe)

    def _execute(self, job: ScheduledJob, held: runs.Claim) -> RunOutcome:
        """Run the job in one transaction with its success record; a failure is recorded apart."""
        started = time.monotonic()
        try:
            with self._connect() as conn:
                run = JobRun(job.name, held.period, conn, self.service, job.asset, held.claimed_at)
                result = job.kind.run(run)
                runs.succeed(conn, held, time.monotonic() - started, result)
        except runs.ClaimLost as exc:
            log.warning("%s", exc)
            return RunOutcome(job.name, held.period, "lost", time.monotonic() - started, str(exc))
        except Exception as exc:
            return self._failed(job, held, started, exc)
        took = time.monotonic() - started
        self.metrics.succeeded(job.name, took)
        log.info("%s %s: succeeded in %.1fs", job.name, held.period.isoformat(), took)
        return RunOutcome(job.name, held.period, "succeeded", took)

    def _failed(self, job: ScheduledJob, held: runs.Claim, started: float, exc: Exception) -> RunOutcome:
        from chainrisk.db import redact_url
        from chainrisk.exits import error_roots, one_line

        took = time.monotonic() - started
        # Our own errors carry a message meant for users; anything else is named by its type too.
        text = str(exc) if isinstance(exc, error_roots()) else f"{type(exc).__name__}: {exc}"
        # one_line hides RPC keys; a database URL in a driver's message loses its password here.
        error = _DB_URL.sub(lambda url: redact_url(url.group()), one_line(text))
        log.error("%s %s: failed: %s", job.name, held.period.isoformat(), error)
        log.debug("%s failed", job.name, exc_info=exc)
        with self._connect() as conn:
            runs.fail(conn, held, took, error)
        self.metrics.failed(job.name, took)
        return RunOutcome(job.name, held.period, "failed", took, error)

    def _connect(self) -> runs.Conn:
        return psycopg.connect(self.service.conninfo)

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())
