"""`operations`: the service itself — indexer halted, indexing lag above a limit, a job failing repeatedly.

    [[alerts]]
    name = "ops"
    kind = "operations"
    severity = "high"
    max_lag_blocks = 50         # the latest heartbeat's lag (node head − indexed block) above this
    stalled_after = "10m"       # the indexed block has not moved for this long while the node moved on
    failures = 3                # a job's last 3 finished runs all failed
    jobs = ["forecast:ETH"]     # optional: the jobs `failures` watches (default: every job)
    chain = "mainnet"           # optional: the chain lag and halts are checked for

Everything is read from `service_runs`, what `chainrisk serve` records: the heartbeat job stores each
chain's indexed block and node head every minute, every job's run is recorded with its status and error.
Needs `[serve.jobs.heartbeat]` on for lag and halts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chainrisk.alerts.rules import Conn, alert, check_window, register, window_s

if TYPE_CHECKING:
    from chainrisk.alerts.model import Alert
    from chainrisk.alerts.rules_config import AlertRuleConfig


class OperationsParams(BaseModel):
    """Fires on lag above `max_lag_blocks`, no indexing progress for `stalled_after`, or `failures`
    failed runs in a row; at least one of them must be set."""

    model_config = ConfigDict(extra="forbid")

    max_lag_blocks: int | None = Field(default=None, ge=0)
    stalled_after: str | None = None
    failures: int | None = Field(default=None, ge=1)
    jobs: list[str] = Field(default_factory=list)

    @field_validator("stalled_after")
    @classmethod
    def _stalled(cls, value: str | None) -> str | None:
        return None if value is None else check_window(value)

    @model_validator(mode="after")
    def _something(self) -> OperationsParams:
        if self.max_lag_blocks is None and self.stalled_after is None and self.failures is None:
            raise ValueError("set at least one of max_lag_blocks, stalled_after, failures")
        return self


HEARTBEATS = """
SELECT period, result FROM service_runs
WHERE job = 'heartbeat' AND status = 'succeeded' AND period >= %s AND period <= %s
ORDER BY period
"""

FINISHED = """
SELECT job, period, status, error,
       row_number() OVER (PARTITION BY job ORDER BY period DESC) AS back
FROM service_runs
WHERE status IN ('succeeded', 'failed', 'abandoned')
  AND (cardinality(%s::text[]) = 0 OR job = ANY(%s))
"""


def evaluate(conn: Conn, rule: AlertRuleConfig, params: OperationsParams, now: datetime) -> list[Alert]:
    """Alerts for lag, halts and failing jobs."""
    alerts = []
    if params.max_lag_blocks is not None or params.stalled_after is not None:
        alerts += _indexing(conn, rule, params, now)
    if params.failures is not None:
        alerts += _failing(conn, rule, params.failures, params.jobs, now)
        alerts += _failing_rules(conn, rule, params.failures, now)
    return alerts


def _heartbeats(conn: Conn, since: datetime, now: datetime) -> list[tuple[datetime, dict[str, Any]]]:
    rows = conn.execute(HEARTBEATS, (since, now)).fetchall()
    return [(period, result.get("chains", {})) for period, result in rows if isinstance(result, dict)]


def _indexing(conn: Conn, rule: AlertRuleConfig, params: OperationsParams, now: datetime) -> list[Alert]:
    span = max(window_s(params.stalled_after) if params.stalled_after else 0, 3_600)
    beats = _heartbeats(conn, now - timedelta(seconds=span), now)
    if not beats:
        return []
    latest_at, latest = beats[-1]
    alerts = []
    for chain, state in latest.items():
        if rule.chain is not None and chain != rule.chain and str(rule.chain_id) != chain:
            continue
        lag = state.get("lag")
        if params.max_lag_blocks is not None and lag is not None and lag > params.max_lag_blocks:
            alerts.append(_lag_alert(rule, now, chain, state, latest_at, params.max_lag_blocks))
        if params.stalled_after is not None:
            halted = _halted(beats, chain, now - timedelta(seconds=window_s(params.stalled_after)))
            if halted is not None:
                alerts.append(_halt_alert(rule, now, chain, halted, params.stalled_after))
    return alerts


def _halted(
    beats: list[tuple[datetime, dict[str, Any]]], chain: str, since: datetime
) -> dict[str, Any] | None:
    """The figures of a halt: the heartbeats since `since` (the first no later than it) all show the same
    indexed block while the node's head moved past it; None otherwise."""
    before = [b for b in beats if b[0] <= since]
    if not before:
        return None  # not watched for the whole span yet
    span = [before[-1], *[b for b in beats if b[0] > since]]
    states = [b[1].get(chain) or {} for b in span]
    indexed = {s.get("indexed") for s in states}
    head = states[-1].get("head")
    block = states[-1].get("indexed")
    if len(indexed) != 1 or block is None or head is None or head <= block:
        return None
    return {"indexed": block, "head": head, "since": span[0][0].isoformat(), "heartbeats": len(span)}


def _lag_alert(
    rule: AlertRuleConfig, now: datetime, chain: str, state: dict[str, Any], at: datetime, limit: int
) -> Alert:
    facts = {"check": "lag", "chain": chain, **state, "max_lag_blocks": limit, "heartbeat": at.isoformat()}
    body = (
        f"Indexing of {chain} is {state['lag']} blocks behind the node (indexed {state['indexed']}, head"
        f" {state['head']}; limit {limit}) at the heartbeat of {at:%Y-%m-%d %H:%M} UTC.\nAlerts and"
        " reports read stale positions until it catches up: check `chainrisk serve`'s /healthz and log,"
        " and the node's RPC."
    )
    return alert(
        rule,
        now,
        subject=f"lag:{chain}",
        title=f"{chain} indexing {state['lag']} blocks behind",
        body=body,
        facts=facts,
    )


def _halt_alert(
    rule: AlertRuleConfig, now: datetime, chain: str, halted: dict[str, Any], after: str
) -> Alert:
    facts = {"check": "halted", "chain": chain, **halted, "stalled_after": after}
    body = (
        f"Indexing of {chain} has not moved from block {halted['indexed']} since {halted['since']}"
        f" ({halted['heartbeats']} heartbeats) while the node is at {halted['head']}.\nThe indexer has"
        " halted (a deep reorg halts it, or an error repeats): read /healthz `error` and the service log;"
        " `chainrisk index` reports the cause."
    )
    return alert(
        rule,
        now,
        subject=f"halted:{chain}",
        title=f"{chain} indexing halted at {halted['indexed']}",
        body=body,
        facts=facts,
    )


def _failing(conn: Conn, rule: AlertRuleConfig, failures: int, jobs: list[str], now: datetime) -> list[Alert]:
    rows = conn.execute(
        f"SELECT job, period, status, error FROM ({FINISHED}) f WHERE back <= %s ORDER BY job, period DESC",
        (jobs, jobs, failures),
    ).fetchall()
    by_job: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_job.setdefault(str(row[0]), []).append(tuple(row))
    alerts = []
    for job, runs in by_job.items():
        if len(runs) < failures or any(r[2] != "failed" for r in runs):
            continue
        facts = {
            "check": "failing",
            "job": job,
            "failures": failures,
            "periods": [r[1].isoformat() for r in runs],
            "last_error": runs[0][3],
        }
        body = (
            f"Job {job} failed its last {failures} runs (latest period {runs[0][1]:%Y-%m-%d %H:%M} UTC):"
            f" {runs[0][3]}\nSee `service_runs` (job = '{job}') for each run's error; fix the cause and the"
            " next period runs again."
        )
        alerts.append(
            alert(
                rule,
                now,
                subject=f"job:{job}",
                title=f"job {job} failed {failures} times in a row",
                body=body,
                facts=facts,
            )
        )
    return alerts


ALERT_RUNS = """
SELECT period, result FROM service_runs
WHERE job = 'alerts' AND status = 'succeeded' AND result IS NOT NULL
ORDER BY period DESC LIMIT %s
"""


def _failing_rules(conn: Conn, rule: AlertRuleConfig, failures: int, now: datetime) -> list[Alert]:
    """Rules the `alerts` job reported as failed in each of its last `failures` runs (the job itself
    succeeds, so that the other rules' alerts commit)."""
    runs = conn.execute(ALERT_RUNS, (failures,)).fetchall()
    if len(runs) < failures:
        return []
    failing = set.intersection(*(set(result.get("failed_rules") or []) for _, result in runs))
    alerts = []
    for name in sorted(failing):
        error = ((runs[0][1].get("rules") or {}).get(name) or {}).get("error")
        facts = {"check": "rule_failing", "rule": name, "failures": failures, "last_error": error}
        body = (
            f"Alert rule {name} failed in the last {failures} runs of the alerts job (latest period"
            f" {runs[0][0]:%Y-%m-%d %H:%M} UTC): {error}\nIt sends nothing until fixed: see the run results"
            " in `service_runs` (job = 'alerts') and `chainrisk alerts check`."
        )
        alerts.append(
            alert(
                rule, now, subject=f"rule:{name}", title=f"alert rule {name} failing", body=body, facts=facts
            )
        )
    return alerts


register("operations", OperationsParams, evaluate)
