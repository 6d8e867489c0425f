"""`chainrisk serve`: follow every configured chain and run the scheduled jobs, one leader per database.

`run_service` checks the input, migrates, and then stands by until it holds the database's leader lock
(`chainrisk.serve.leader`). The leader indexes every chain through `ChainIndexer` (positions kept by its
keeper) and runs the jobs of `chainrisk.serve.jobs` on APScheduler (memory job store, UTC), each period
claimed in `service_runs` first. Every process answers /healthz and /metrics. SIGTERM lets the indexer
finish its batch and the running jobs finish, then returns; the policy is in docs/SERVICE.md.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from prometheus_client import CollectorRegistry

from chainrisk.errors import ChainriskError
from chainrisk.serve import runs
from chainrisk.serve.jobs import ScheduledJob, ServiceContext, scheduled_jobs
from chainrisk.serve.leader import LeaderLock, new_term
from chainrisk.serve.metrics import ServiceMetrics
from chainrisk.serve.runner import JobRunner, RunOutcome

if TYPE_CHECKING:
    from apscheduler.events import JobExecutionEvent
    from apscheduler.schedulers.background import BackgroundScheduler

    from chainrisk.indexing import ChainIndexer
    from chainrisk.settings import Settings
    from indexer.runner import Plan

log = logging.getLogger(__name__)

CHECK_S = 1.0  # how often the leader checks its lock and its indexer
HEALTH_CONNECT_TIMEOUT_S = 3


class ServiceError(ChainriskError):
    """The service cannot go on (lost its lead, jobs failed under --once); exit 1."""

    exit_code = 1


def run_service(
    settings: Settings, database_url: Callable[[], str], *, once: bool, echo: Callable[[str], None]
) -> None:
    """Check the input, migrate, then serve until SIGTERM or SIGINT (with `once`: run what is due).

    `database_url` resolves the database (and may start the embedded server): it is called only after
    every input check passed, so a refused configuration touches nothing.
    """
    from chainrisk.db import to_libpq_url
    from chainrisk.migrate import upgrade
    from chainrisk.serve.checks import check_service

    jobs = scheduled_jobs(settings)
    plans = check_service(settings, jobs, follow=not once, status_port=not once)
    url = database_url()
    upgrade(url)
    service = Service(settings, url, to_libpq_url(url), jobs, plans, echo)
    with _stop_on_signals(service.stop):
        if once:
            service.once()
        else:
            service.run()


@contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in handlers:
        signal.signal(sig, lambda signum, frame: stop())
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


class Service:
    """One `chainrisk serve` process: standby until it leads, then indexer and scheduler."""

    def __init__(
        self,
        settings: Settings,
        url: str,
        conninfo: str,
        jobs: list[ScheduledJob],
        plans: list[Plan],
        echo: Callable[[str], None],
    ) -> None:
        from indexer.metrics import IndexerMetrics

        self.settings, self.conninfo, self.jobs, self.plans, self.echo = settings, conninfo, jobs, plans, echo
        self.registry = CollectorRegistry()
        self.indexer_metrics = IndexerMetrics(self.registry)
        self.metrics = ServiceMetrics(self.registry)
        self.metrics.declare([job.name for job in jobs])
        self.stopping = threading.Event()
        self.term = new_term()
        self.lock = LeaderLock(conninfo)
        self.context = ServiceContext(
            settings, url, conninfo, {p.job.chain.name: p.job.name for p in plans}, self.stopping
        )
        self.role, self.since = "starting", datetime.now(UTC)
        self.indexer: ChainIndexer | None = None
        self.index_error: BaseException | None = None
        self.scheduler: BackgroundScheduler | None = None

    # -- lifecycle

    def stop(self) -> None:
        """Finish the batch and the jobs in hand, start nothing new (safe from a signal handler)."""
        self.stopping.set()
        if self.indexer is not None:
            self.indexer.stop()

    def run(self) -> None:
        """Stand by until this process leads, then lead until stopped."""
        from chainrisk.serve.http import StatusServer

        logging.getLogger("apscheduler").setLevel(logging.WARNING)  # it narrates every run at INFO
        server = None
        if self.settings.serve_port:
            server = StatusServer(
                self.settings.serve_addr, self.settings.serve_port, self.registry, self.health
            )
            server.start()
            log.info("status on http://%s:%d/healthz and /metrics", self.settings.serve_addr, server.port)
        try:
            if self._stand_by():
                self._lead()
        finally:
            self._set_role("stopped")
            self.lock.release()
            if server is not None:
                server.stop()

    def once(self) -> None:
        """Index every chain to its head, run each job's due period, print what happened."""
        if not self.lock.try_acquire(self.term):
            self.lock.release()
            self.echo("another chainrisk serve leads this database; its jobs run there, nothing was run here")
            return
        try:
            self._set_role("leader")
            self._sync_catalog()
            if self.plans:
                self._new_indexer().run(on_outcome=lambda outcome: self.echo(outcome.line()))
            runner = JobRunner(self.context, self.term, self.metrics)
            outcomes: list[RunOutcome] = []
            for job in self.jobs:
                outcomes += runner.fire(job)
            self._dispatch_once()
        finally:
            self._set_role("stopped")
            self.lock.release()
        for outcome in outcomes:
            self.echo(outcome.line())
        failed = [o for o in outcomes if o.status == "failed"]
        if failed:
            raise ServiceError(f"{len(failed)} of {len(outcomes)} job runs failed; first: {failed[0].line()}")

    def _stand_by(self) -> bool:
        """Ask for the lead every standby_poll_s; False when told to stop first."""
        poll = self.settings.serve.standby_poll_s
        while not self.stopping.is_set():
            try:
                if self.lock.try_acquire(self.term):
                    return True
            except psycopg.Error as exc:
                log.warning("cannot ask the database for the lead (%s); asking again", type(exc).__name__)
                self.lock.release()
            if self.role != "standby":
                self._set_role("standby")
                log.info("standby: another chainrisk serve leads this database; asking every %.1fs", poll)
            self.stopping.wait(poll)
        return False

    def _lead(self) -> None:
        self._set_role("leader")
        log.info(
            "leading as %s: %d chain(s), jobs: %s",
            self.term,
            len(self.plans),
            "; ".join(f"{j.name} {j.schedule.describe()}" for j in self.jobs) or "none",
        )
        self._sync_catalog()
        dispatcher = self._start_dispatcher()
        thread = self._start_indexer()
        try:
            self.scheduler = self._start_scheduler(JobRunner(self.context, self.term, self.metrics))
            while not self.stopping.wait(CHECK_S):
                self._check()
            log.info("stopping: the indexer finishes its batch and running jobs finish")
        finally:
            self._set_role("stopping")
            self.stop()
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=True)  # the jobs in hand finish and record their runs
            if thread is not None:
                thread.join()
            if dispatcher is not None:
                dispatcher.join()  # a send in hand finishes (within its timeout) and is recorded
        if self.index_error is not None:
            raise self.index_error

    def _check(self) -> None:
        """Stop when the lead may be gone or the indexer died: the supervisor restarts us."""
        if self.index_error is not None:
            raise self.index_error
        if not self.lock.alive():
            raise ServiceError(
                "lost the database session that holds the leader lock; stopping so that another"
                " chainrisk serve can lead"
            )

    def _set_role(self, role: str) -> None:
        self.role, self.since = role, datetime.now(UTC)
        self.metrics.leader.set(1 if role == "leader" else 0)

    # -- indexing

    def _new_indexer(self) -> ChainIndexer:
        from chainrisk.indexing import ChainIndexer

        self.indexer = ChainIndexer(self.plans, self.conninfo, self.indexer_metrics, progress=False)
        if self.stopping.is_set():
            self.indexer.stop()
        return self.indexer

    def _start_indexer(self) -> threading.Thread | None:
        if not self.plans:
            return None
        indexer = self._new_indexer()

        def follow() -> None:
            try:
                indexer.run()
            except BaseException as exc:  # handed to the main thread, which stops the service with it
                self.index_error = exc

        thread = threading.Thread(target=follow, name="indexer", daemon=True)
        thread.start()
        return thread

    def _dispatch_once(self) -> None:
        """--once: deliver what the jobs (and earlier runs) left in the alert outbox."""
        if not self.settings.channels:
            return
        from chainrisk.alerts.dispatch import dispatch_once

        counts = dispatch_once(self.conninfo, self.settings)
        self.echo("alerts: " + ", ".join(f"{name} {count}" for name, count in counts.items()))

    def _start_dispatcher(self) -> threading.Thread | None:
        """Deliver the alert outbox while leading, when [[channels]] are configured (docs/ALERTS.md)."""
        if not self.settings.channels:
            return None
        from chainrisk.alerts.dispatch import channels_by_name, run_dispatcher

        channels_by_name(self.settings)  # two channels with one name: refused here, not in the thread
        thread = threading.Thread(
            target=run_dispatcher,
            args=(self.conninfo, self.settings, self.stopping),
            name="alerts-dispatcher",
            daemon=True,
        )
        thread.start()
        return thread

    def _sync_catalog(self) -> None:
        """Tracked tokens and config labels follow chainrisk.toml, as for `chainrisk index`."""
        from indexer.catalog import sync_config
        from indexer.lending.morpho import sync_oracles

        with psycopg.connect(self.conninfo) as conn:
            s = self.settings
            sync_config(conn, s.chains, s.tokens, s.labels)
            sync_oracles(conn, s.chains, s.morpho_oracles)

    # -- scheduling

    def _start_scheduler(self, runner: JobRunner) -> BackgroundScheduler:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},  # schedules live in the config, never in a store
            executors={"default": ThreadPoolExecutor(max_workers=3 * len(self.jobs) + 1)},
            job_defaults={"coalesce": True},
            timezone=UTC,
        )
        now = datetime.now(UTC)
        for job in self.jobs:
            # A fire later than half a period is dropped: the next one is closer than it. Two instances: a
            # fire that comes while the previous run goes on waits for it (JobRunner.fire); a third is
            # dropped, so a job slower than its schedule cannot pile up runs.
            grace = max(1, int(job.schedule.length_s(now) / 2))
            scheduler.add_job(
                runner.fire,
                job.schedule.trigger(),
                args=[job],
                id=job.name,
                misfire_grace_time=grace,
                max_instances=2,
            )
            # The period in progress, right away: a period missed while no leader ran runs once now.
            scheduler.add_job(
                runner.fire, "date", run_date=now, args=[job], id=f"{job.name}@start", misfire_grace_time=None
            )
        scheduler.add_listener(self._skipped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        scheduler.start()
        return scheduler

    def _skipped(self, event: JobExecutionEvent) -> None:
        from apscheduler.events import EVENT_JOB_MISSED

        job = str(event.job_id).removesuffix("@start")
        reason = "late" if event.code == EVENT_JOB_MISSED else "still-running"
        log.warning("%s: a scheduled run was skipped (%s)", job, reason)
        self.metrics.skip(job, reason)

    # -- /healthz

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Role, lag per chain, each job's schedule, next fire and last run; 503 when failing."""
        from chainrisk.exits import one_line

        healthy = self.role in ("starting", "standby", "leader") and self.index_error is None
        body: dict[str, Any] = {
            "role": self.role,
            "since": self.since.isoformat(),
            "term": self.term,
            "pid": os.getpid(),
        }
        last: dict[str, dict[str, Any]] = {}
        indexed: dict[str, int] = {}
        try:
            with psycopg.connect(self.conninfo, connect_timeout=HEALTH_CONNECT_TIMEOUT_S) as conn:
                last = runs.latest(conn)
                indexed = self._indexed(conn)
            body["database"] = "ok"
        except psycopg.Error as exc:
            body["database"] = f"unreachable ({type(exc).__name__})"
            healthy = False
        body["chains"] = {p.job.chain.name: self._chain(p, indexed) for p in self.plans}
        body["jobs"] = {job.name: self._job(job, last.get(job.name)) for job in self.jobs}
        if self.index_error is not None:
            body["error"] = one_line(str(self.index_error))
        body["status"] = "ok" if healthy else "failing"
        return healthy, body

    def _indexed(self, conn: runs.Conn) -> dict[str, int]:
        names = [p.job.name for p in self.plans]
        rows = conn.execute(
            "SELECT name, block_number FROM cursors WHERE name = ANY(%s)", (names,)
        ).fetchall()
        return {str(name): int(block) for name, block in rows}

    def _chain(self, plan: Plan, indexed: dict[str, int]) -> dict[str, int | None]:
        """The leader reports its last finished batch (positions kept through it, the node's head then);
        a standby, the cursor in the database."""
        labels = {"chain": plan.job.chain.name}
        local = self.registry.get_sample_value("chainrisk_local_head", labels)
        head = self.registry.get_sample_value("chainrisk_remote_head", labels)
        lag = self.registry.get_sample_value("chainrisk_lag_blocks", labels)
        return {
            "indexed": int(local) if local is not None else indexed.get(plan.job.name),
            "head": int(head) if head is not None else None,
            "lag": int(lag) if lag is not None else None,
        }

    def _job(self, job: ScheduledJob, last: dict[str, Any] | None) -> dict[str, Any]:
        scheduled = self.scheduler.get_job(job.name) if self.scheduler is not None else None
        next_run = getattr(scheduled, "next_run_time", None)
        return {
            "schedule": job.schedule.describe(),
            "next_run": next_run.isoformat() if next_run is not None and self.role == "leader" else None,
            "last": last,
        }
