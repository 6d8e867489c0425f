"""Prometheus metrics of the service, on the registry it shares with the indexer's metrics."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    """Leadership, and per job: last success time, run durations, failures and skipped fires."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.leader = Gauge(
            "chainrisk_service_leader",
            "1 while this process leads its database's service, else 0",
            registry=r,
        )
        self.last_success = Gauge(
            "chainrisk_job_last_success_timestamp_seconds",
            "Unix time of the job's last successful run",
            ["job"],
            registry=r,
        )
        self.last_duration = Gauge(
            "chainrisk_job_last_duration_seconds", "Wall time of the job's last run", ["job"], registry=r
        )
        self.duration = Histogram(
            "chainrisk_job_duration_seconds",
            "Wall time of job runs",
            ["job"],
            buckets=(0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600),
            registry=r,
        )
        self.failures = Counter("chainrisk_job_failures", "Failed job runs", ["job"], registry=r)
        self.skipped = Counter(
            "chainrisk_job_skipped",
            "Scheduled fires dropped: later than the grace time, or two runs of the job already in hand",
            ["job", "reason"],
            registry=r,
        )

    def declare(self, jobs: list[str]) -> None:
        """Every job's series from the start, so a job that never ran shows 0 failures, not nothing."""
        for job in jobs:
            self.failures.labels(job)
            self.duration.labels(job)

    def succeeded(self, job: str, seconds: float) -> None:
        self._ran(job, seconds)
        self.last_success.labels(job).set(time.time())

    def failed(self, job: str, seconds: float) -> None:
        self._ran(job, seconds)
        self.failures.labels(job).inc()

    def skip(self, job: str, reason: str) -> None:
        self.skipped.labels(job, reason).inc()

    def _ran(self, job: str, seconds: float) -> None:
        self.duration.labels(job).observe(seconds)
        self.last_duration.labels(job).set(seconds)
