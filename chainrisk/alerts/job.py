"""Evaluating the `[[alerts]]` rules: the `alerts` job of `chainrisk serve` and `chainrisk alerts check`.

Each rule runs inside a savepoint of the caller's transaction: a rule whose query fails (or whose code
raises) rolls back only its own work, is reported with its error, and the other rules still run and
enqueue. What fires goes to the outbox (`chainrisk.alerts.outbox.enqueue`) in that same transaction, so
the job run's record and its alerts commit together; the dedup key (rule:subject:period) makes a rerun of
the same period, or a condition that persists within a rule's cooldown, write nothing new.

The run's result says, per rule, how many alerts fired, how many were new in the outbox, and any error;
the `operations` kind reads those results back (`failures`) to report a rule failing run after run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chainrisk.alerts.model import Alert

if TYPE_CHECKING:
    from chainrisk.alerts.rules import Conn
    from chainrisk.alerts.rules_config import AlertRuleConfig
    from chainrisk.serve.jobs import JobRun

log = logging.getLogger(__name__)


@dataclass
class RuleOutcome:
    """What one rule did in one evaluation."""

    rule: str
    kind: str
    alerts: list[Alert] = field(default_factory=list)
    enqueued: int = 0
    error: str | None = None
    silenced_until: datetime | None = None

    def summary(self) -> dict[str, Any]:
        """The JSON the job run records for this rule."""
        if self.error is not None:
            return {"kind": self.kind, "error": self.error}
        if self.silenced_until is not None:
            return {"kind": self.kind, "silenced_until": self.silenced_until.isoformat()}
        return {"kind": self.kind, "fired": len(self.alerts), "enqueued": self.enqueued}


def evaluate_rules(
    conn: Conn, rules: list[AlertRuleConfig], now: datetime, *, enqueue: bool, only: str | None = None
) -> list[RuleOutcome]:
    """Evaluate every enabled rule (or only the one named) at `now`; with `enqueue`, put what fires in
    the outbox for the rule's channels."""
    outcomes = []
    for rule in rules:
        if only is not None and rule.name != only:
            continue
        if rule.enabled or only is not None:
            outcomes.append(_evaluate(conn, rule, now, enqueue=enqueue))
    return outcomes


def _evaluate(conn: Conn, rule: AlertRuleConfig, now: datetime, *, enqueue: bool) -> RuleOutcome:
    from chainrisk.alerts import outbox
    from chainrisk.alerts.rules import kinds
    from chainrisk.exits import one_line

    outcome = RuleOutcome(rule.name, rule.kind)
    if enqueue:
        outcome.silenced_until = outbox.silenced_until(conn, rule.name)
        if outcome.silenced_until is not None:
            return outcome
    try:
        with conn.transaction():  # a savepoint: a failing rule takes only its own work with it
            outcome.alerts = kinds()[rule.kind].evaluate(conn, rule, rule.typed_params, now)
            if enqueue:
                outcome.enqueued = sum(outbox.enqueue(conn, a, rule.channels) for a in outcome.alerts)
    except Exception as exc:  # one rule's failure is reported; the others still run
        outcome.alerts, outcome.enqueued = [], 0
        outcome.error = one_line(f"{type(exc).__name__}: {exc}")
        log.error("alert rule %r (%s) failed: %s", rule.name, rule.kind, outcome.error)
    return outcome


def run_job(run: JobRun) -> dict[str, Any]:
    """Evaluate every enabled rule for the run's period and enqueue what fires (in the run's
    transaction). Returns per rule what fired, and the rules that failed."""
    outcomes = evaluate_rules(run.conn, run.service.settings.alerts, run.period, enqueue=True)
    return {
        "rules": {o.rule: o.summary() for o in outcomes},
        "fired": sum(len(o.alerts) for o in outcomes),
        "enqueued": sum(o.enqueued for o in outcomes),
        "failed_rules": sorted(o.rule for o in outcomes if o.error is not None),
    }


def check_document(outcomes: list[RuleOutcome], now: datetime, enqueued: bool) -> dict[str, Any]:
    """`alerts check --json`: every rule's outcome with the alerts it would send (or sent)."""
    return {
        "at": now.isoformat(),
        "enqueued": enqueued,
        "rules": [
            {
                "rule": o.rule,
                **o.summary(),
                "alerts": [
                    {
                        "dedup_key": a.dedup_key,
                        "severity": a.severity,
                        "subject": a.subject,
                        "period": a.period,
                        "title": a.title,
                        "body": a.body,
                        "facts": a.facts,
                        "chain_id": a.chain_id,
                    }
                    for a in o.alerts
                ],
            }
            for o in outcomes
        ],
    }


def check_lines(outcomes: list[RuleOutcome], enqueued: bool) -> list[str]:
    """`alerts check` for people: each rule, then each alert's title and body."""
    lines = []
    for o in outcomes:
        if o.error is not None:
            lines.append(f"{o.rule} ({o.kind}): FAILED: {o.error}")
            continue
        if o.silenced_until is not None:
            lines.append(f"{o.rule} ({o.kind}): silenced until {o.silenced_until:%Y-%m-%d %H:%M} UTC")
            continue
        new = f", {o.enqueued} new in the outbox" if enqueued else ""
        lines.append(f"{o.rule} ({o.kind}): {len(o.alerts)} alert(s){new}")
        for a in o.alerts:
            lines.append(f"  [{a.severity}] {a.title}  ({a.dedup_key})")
            lines += [f"    {line}" for line in a.body.splitlines()]
    return lines or ["no rules configured: add [[alerts]] entries to chainrisk.toml (see docs/ALERTS.md)"]


def parse_at(text: str | None) -> datetime:
    """`--at`: an ISO time (UTC when no offset is given); None: now."""
    from datetime import UTC

    if text is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--at {text!r}: expected an ISO time such as 2026-11-30T14:00:00Z") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def check(
    conninfo: str, rules: list[AlertRuleConfig], at: datetime, *, enqueue: bool, only: str | None
) -> list[RuleOutcome]:
    """`chainrisk alerts check`: evaluate once; with `enqueue` commit what fires to the outbox, else
    write nothing."""
    import psycopg

    with psycopg.connect(conninfo) as conn:
        outcomes = evaluate_rules(conn, rules, at, enqueue=enqueue, only=only)
        if enqueue:
            conn.commit()
        else:
            conn.rollback()
    return outcomes


def check_rule_name(rules: list[AlertRuleConfig], only: str | None) -> None:
    """`--rule`: a configured rule's name."""
    if only is not None and only not in {r.name for r in rules}:
        known = ", ".join(r.name for r in rules) or "none"
        raise ValueError(f"--rule {only!r}: no such rule; configured rules: {known}")
