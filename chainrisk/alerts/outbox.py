"""The transactional outbox: alerts written with what caused them, and the claims the dispatcher makes.

`enqueue` runs in the caller's transaction, so an alert commits with the data change (or job run) that
produced it, or not at all; its dedup key (rule:subject:period) is unique, so the same alert is never
stored twice. The dispatcher (:mod:`chainrisk.alerts.dispatch`) then works each delivery through three
short transactions of its own:

1. `claim_next` takes the due delivery of a channel with the smallest alert id (``FOR UPDATE SKIP
   LOCKED``, so dispatchers side by side never take the same row), marks it in flight under a lease,
   writes the attempt, and commits — before any request leaves;
2. the channel sends, outside any transaction;
3. `record` writes the attempt's outcome and the delivery's next state.

A dispatcher that dies between 1 and 3 leaves the delivery in flight; once its lease runs out the next
claim takes it again and marks the open attempt ``interrupted``. That is the one window in which a
message can reach a receiver twice, and the record says so. Every time is the database's clock.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from chainrisk.alerts.model import Alert

Conn = psycopg.Connection[Any]

RETRYABLE_STATES = ("failed", "unknown", "dead")


def worker_name() -> str:
    """host:pid, recorded on each attempt so an interrupted one can be traced to its process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _dumps(value: Any) -> str:
    # Rules hand in Decimals and datetimes now and then: store their exact text rather than fail.
    return json.dumps(value, default=str, sort_keys=True)


def enqueue(conn: Conn, alert: Alert, channels: Sequence[str]) -> bool:
    """Store `alert` and one pending delivery per channel (by name), in the caller's transaction.

    Returns True when the alert was written; False when nothing was written, because an alert with the
    same dedup key already exists or because the rule is silenced (`alert_silences.until` is still in the
    future, see `silence`). Channels are named, never resolved here: their secrets stay out of the
    database. Duplicate channel names are delivered once.
    """
    if silenced_until(conn, alert.rule) is not None:
        return False
    row = conn.execute(
        "INSERT INTO alerts (dedup_key, rule, kind, severity, subject, period, title, body, facts,"
        " chain_id, observed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
        (
            alert.dedup_key,
            alert.rule,
            alert.kind,
            alert.severity,
            alert.subject,
            alert.period,
            alert.title,
            alert.body,
            Jsonb(alert.facts, dumps=_dumps),
            alert.chain_id,
            alert.observed_at,
        ),
    ).fetchone()
    if row is None:
        return False
    for channel in dict.fromkeys(channels):
        conn.execute("INSERT INTO alert_deliveries (alert_id, channel) VALUES (%s, %s)", (row[0], channel))
    return True


def silenced_until(conn: Conn, rule: str) -> datetime | None:
    """When the rule's silence ends, if it is silenced now."""
    row = conn.execute(
        "SELECT until FROM alert_silences WHERE rule = %s AND until > now()", (rule,)
    ).fetchone()
    return None if row is None else row[0]


def silence(conn: Conn, rule: str, seconds: float, reason: str | None) -> datetime:
    """Silence `rule` for `seconds` from now (replacing any silence it has); returns the end."""
    row = conn.execute(
        "INSERT INTO alert_silences (rule, until, reason) VALUES (%s, now() + make_interval(secs => %s), %s)"
        " ON CONFLICT (rule) DO UPDATE SET until = excluded.until, reason = excluded.reason,"
        " created_at = now() RETURNING until",
        (rule, seconds, reason),
    ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def clear_silence(conn: Conn, rule: str) -> bool:
    """End the rule's silence; False when it had none."""
    return conn.execute("DELETE FROM alert_silences WHERE rule = %s", (rule,)).rowcount > 0


# ------------------------------------------------------------------------------------ the dispatcher


@dataclass(frozen=True)
class Claim:
    """A delivery leased to this dispatcher: what to send, where, and which attempt this is."""

    delivery_id: int
    attempt_id: int
    attempt: int
    channel: str
    alert_id: int
    alert: Alert
    created_at: datetime

    @property
    def message_id(self) -> str:
        """Stable per (alert, channel): the same on every retry, so receivers can dedup on it."""
        return f"msg_chainrisk_{self.delivery_id}"


_DUE = """
SELECT d.id, d.attempts FROM alert_deliveries d
WHERE d.channel = %(channel)s
  AND ((d.state IN ('pending', 'failed') AND d.next_attempt_at <= now())
       OR (d.state = 'in_flight' AND d.lease_until < now()))
ORDER BY d.alert_id, d.id
LIMIT 1
FOR UPDATE SKIP LOCKED
"""

_ALERT = """
SELECT a.id, a.rule, a.kind, a.severity, a.subject, a.period, a.title, a.body, a.facts, a.chain_id,
       a.observed_at, a.created_at
FROM alerts a JOIN alert_deliveries d ON d.alert_id = a.id WHERE d.id = %s
"""


def claim_next(conn: Conn, channel: str, lease_s: float, worker: str) -> Claim | None:
    """Lease the channel's next due delivery and write its attempt; commits. None when nothing is due.

    `conn` must be outside a transaction: the claim commits on its own so that the lease and the attempt
    are on record before the request is sent.
    """
    with conn.transaction():
        due = conn.execute(_DUE, {"channel": channel}).fetchone()
        if due is None:
            return None
        delivery_id, attempts = int(due[0]), int(due[1])
        # An attempt still open belongs to a dispatcher whose lease ran out: it may or may not have sent.
        conn.execute(
            "UPDATE alert_attempts SET outcome = 'interrupted', finished_at = now(),"
            " error = 'the dispatcher stopped before recording an answer (lease expired)'"
            " WHERE delivery_id = %s AND outcome IS NULL",
            (delivery_id,),
        )
        conn.execute(
            "UPDATE alert_deliveries SET state = 'in_flight', attempts = attempts + 1,"
            " lease_until = now() + make_interval(secs => %s), updated_at = now() WHERE id = %s",
            (lease_s, delivery_id),
        )
        attempt_row = conn.execute(
            "INSERT INTO alert_attempts (delivery_id, attempt, worker) VALUES (%s, %s, %s) RETURNING id",
            (delivery_id, attempts + 1, worker),
        ).fetchone()
        alert_row = conn.execute(_ALERT, (delivery_id,)).fetchone()
    assert attempt_row is not None and alert_row is not None
    return Claim(
        delivery_id=delivery_id,
        attempt_id=int(attempt_row[0]),
        attempt=attempts + 1,
        channel=channel,
        alert_id=int(alert_row[0]),
        alert=_alert(alert_row),
        created_at=alert_row[11],
    )


def _alert(row: tuple[Any, ...]) -> Alert:
    return Alert(
        rule=row[1],
        kind=row[2],
        severity=row[3],
        subject=row[4],
        period=row[5],
        title=row[6],
        body=row[7],
        facts=dict(row[8] or {}),
        chain_id=row[9],
        observed_at=row[10],
    )


@dataclass(frozen=True)
class Outcome:
    """What became of one attempt, and what the delivery does next.

    `outcome` is the attempt's (sent, retry, dead, unknown); `state` the delivery's next state (sent,
    failed, unknown, dead); `delay_s` how long from now a failed delivery waits before its next attempt.
    """

    outcome: str
    state: str
    delay_s: float = 0.0
    status: int | None = None
    retry_after_s: float | None = None
    provider_id: str | None = None
    error: str | None = None


def record(conn: Conn, claim: Claim, outcome: Outcome) -> bool:
    """Write the attempt's outcome and the delivery's next state; commits.

    False when the lease was lost meanwhile (another dispatcher took the delivery after the lease ran
    out and marked this attempt interrupted): the attempt keeps what the other dispatcher wrote, except
    that a send now known to have arrived is recorded as sent.
    """
    with conn.transaction():
        finished = conn.execute(
            "UPDATE alert_attempts SET outcome = %s, finished_at = now(), http_status = %s,"
            " retry_after_s = %s, error = %s WHERE id = %s AND outcome IS NULL",
            (outcome.outcome, outcome.status, outcome.retry_after_s, outcome.error, claim.attempt_id),
        ).rowcount
        if finished == 0:
            _late_answer(conn, claim, outcome)
            return False
        conn.execute(
            "UPDATE alert_deliveries SET state = %s, lease_until = NULL, updated_at = now(),"
            " next_attempt_at = now() + make_interval(secs => %s),"
            " provider_id = coalesce(%s, provider_id), last_error = %s"
            " WHERE id = %s AND state = 'in_flight' AND attempts = %s",
            (
                outcome.state,
                outcome.delay_s,
                outcome.provider_id,
                outcome.error,
                claim.delivery_id,
                claim.attempt,
            ),
        )
    return True


def _late_answer(conn: Conn, claim: Claim, outcome: Outcome) -> None:
    if outcome.outcome != "sent":
        return
    conn.execute(
        "UPDATE alert_attempts SET outcome = 'sent', http_status = %s,"
        " error = 'answered after the lease ran out' WHERE id = %s",
        (outcome.status, claim.attempt_id),
    )


def hold_channel(conn: Conn, channel: str, seconds: float) -> int:
    """Delay every due delivery of `channel` by at least `seconds` (a 429 limits the whole channel);
    commits. Returns how many were held back."""
    with conn.transaction():
        return conn.execute(
            "UPDATE alert_deliveries SET next_attempt_at = greatest(next_attempt_at,"
            " now() + make_interval(secs => %s)) WHERE channel = %s AND state IN ('pending', 'failed')",
            (seconds, channel),
        ).rowcount


def retry(conn: Conn, alert_id: int | None, channel: str | None = None) -> int:
    """Put failed, unknown and dead deliveries back to pending, due now: those of one alert (and one
    channel, if given), or every one (`alert_id` None). Other states are left alone. Returns how many
    were put back; commits with `conn`."""
    query = (
        "UPDATE alert_deliveries SET state = 'pending', next_attempt_at = now(), updated_at = now()"
        " WHERE state = ANY(%s)"
    )
    params: tuple[Any, ...] = (list(RETRYABLE_STATES),)
    if alert_id is not None:
        query += " AND alert_id = %s"
        params += (alert_id,)
    if channel is not None:
        query += " AND channel = %s"
        params += (channel,)
    return conn.execute(query, params).rowcount


def alert_exists(conn: Conn, alert_id: int) -> bool:
    return conn.execute("SELECT 1 FROM alerts WHERE id = %s", (alert_id,)).fetchone() is not None


_LIST = """
SELECT a.id, a.created_at, a.severity, a.rule, a.subject, a.title, d.id, d.channel, d.state, d.attempts,
       d.next_attempt_at, d.provider_id, d.last_error
FROM alerts a LEFT JOIN alert_deliveries d ON d.alert_id = a.id
WHERE %(state)s::text IS NULL OR d.state = %(state)s
ORDER BY a.id DESC, d.channel
LIMIT %(limit)s
"""
LIST_COLUMNS = (
    "alert_id",
    "created_at",
    "severity",
    "rule",
    "subject",
    "title",
    "delivery_id",
    "channel",
    "state",
    "attempts",
    "next_attempt_at",
    "provider_id",
    "last_error",
)


def list_deliveries(conn: Conn, state: str | None, limit: int) -> list[dict[str, Any]]:
    """The latest alerts, one row per (alert, channel), newest first; only deliveries in `state` if given."""
    rows = conn.execute(_LIST, {"state": state, "limit": limit}).fetchall()
    return [dict(zip(LIST_COLUMNS, row, strict=True)) for row in rows]


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SILENCE_S = 366 * 86400


def parse_duration(text: str) -> float:
    """Seconds in `text`: 90s, 30m, 2h, 1d, or a sum such as 1h30m. ValueError if malformed."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r}: expected a duration such as 30m, 2h, 1d or 1h30m")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not 0 < seconds <= MAX_SILENCE_S:
        raise ValueError(f"{text!r}: expected more than 0 and at most 366 days")
    return seconds
