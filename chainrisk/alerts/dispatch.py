"""The dispatcher: delivers what the outbox holds, one channel per thread, and records every attempt.

Per delivery (see :mod:`chainrisk.alerts.outbox`): claim under a lease and commit, send with no
transaction open, record the outcome in a new transaction. Per channel, deliveries go out in alert order
(smallest alert id first); a delivery waiting for its retry lets later ones pass. What an outcome leads to:

- sent: done;
- retry (429, 5xx, not sent): ``failed``, due again after max(Retry-After, backoff) where backoff is
  ``backoff_s * 2**(attempt - 1)`` capped at ``backoff_max_s`` and drawn in its upper half (jitter), so
  dispatchers that failed together do not retry together; after ``max_attempts``, ``dead``;
- dead (other 4xx, a missing secret): ``dead`` until `chainrisk alerts retry`;
- unknown (no answer to a written request): sent again like a retry where the channel resends unknowns
  (webhooks, with the same webhook-id), else ``unknown`` until `chainrisk alerts retry`.

A 429 (or an answer saying the rate-limit bucket is empty) holds the whole channel back for the wait it
asks: the limit is the channel's, not the message's.

A dispatcher killed between claim and record leaves the delivery in flight; when its lease runs out
(``lease_s``, by default 4 × timeout_s + 30 s) the next claim sends it again and marks the open attempt
``interrupted``. That window is the only one in which a chat channel may show a message twice.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg

from chainrisk.alerts import outbox
from chainrisk.alerts.channels import Message, Result, http_client, sender
from chainrisk.alerts.channels_config import ChannelConfig
from chainrisk.alerts.model import Alert
from chainrisk.errors import ChainriskError

if TYPE_CHECKING:
    import httpx

    from chainrisk.alerts.channels.base import Sender
    from chainrisk.settings import Settings

log = logging.getLogger(__name__)

POLL_S = 2.0  # how often the loop looks for due deliveries when the last round had nothing to do
ROUND_LIMIT = 200  # deliveries one channel sends per round before the loop looks at stopping again
OUTCOMES = ("sent", "retry", "dead", "unknown")


class DispatchError(ChainriskError):
    """The channels cannot be dispatched as configured (a bad name, two channels with one name)."""


def channels_by_name(settings: Settings) -> dict[str, ChannelConfig]:
    """The configured channels by name; two with one name are refused (deliveries name their channel)."""
    found: dict[str, ChannelConfig] = {}
    for channel in settings.channels:
        if channel.name in found:
            raise DispatchError(
                f"[[channels]]: two channels are named {channel.name!r}; names must be unique"
            )
        found[channel.name] = channel
    return found


def require_outbox(conninfo: str) -> None:
    """Refuse a database whose schema has no outbox yet (the dispatcher does not migrate)."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT to_regclass('alert_deliveries') IS NOT NULL").fetchone()
    if not (row and row[0]):
        raise DispatchError("the database has no alert outbox yet: run `chainrisk migrate` first")


def decide(channel: ChannelConfig, attempt: int, result: Result) -> outbox.Outcome:
    """The delivery's next state after attempt number `attempt` ended with `result`."""
    common: dict[str, Any] = {
        "status": result.status,
        "retry_after_s": result.retry_after_s,
        "provider_id": result.provider_id,
        "error": result.error,
    }
    if result.kind in ("sent", "dead"):
        return outbox.Outcome(result.kind, result.kind, **common)
    if result.kind == "unknown" and not channel.resends_unknown:
        return outbox.Outcome("unknown", "unknown", **common)
    if attempt >= channel.max_attempts:
        common["error"] = f"{result.error or result.kind}; gave up after {attempt} attempts"
        return outbox.Outcome(result.kind, "dead", **common)
    delay = max(result.retry_after_s or 0.0, backoff(channel, attempt))
    return outbox.Outcome(result.kind, "failed", delay_s=delay, **common)


def backoff(channel: ChannelConfig, attempt: int) -> float:
    """Exponential, capped, in the upper half of its step (at least half the step, so never a storm)."""
    step = min(channel.backoff_max_s, channel.backoff_s * 2.0 ** min(attempt - 1, 30))
    return step * random.uniform(0.5, 1.0)


class ChannelWorker:
    """Sends one channel's due deliveries over one database connection and one HTTP client."""

    def __init__(self, conninfo: str, channel: ChannelConfig, worker: str) -> None:
        self.conninfo, self.channel, self.worker = conninfo, channel, worker
        self.conn: psycopg.Connection[Any] | None = None
        self.client: httpx.Client | None = None
        self.sender: Sender | None = None

    def drain(self, stopping: threading.Event | None = None, limit: int = ROUND_LIMIT) -> Counter[str]:
        """Send what is due now, up to `limit`; returns how many attempts ended how."""
        counts: Counter[str] = Counter()
        conn, send = self._open()
        while sum(counts.values()) < limit and not (stopping is not None and stopping.is_set()):
            claim = outbox.claim_next(conn, self.channel.name, self.channel.lease_seconds, self.worker)
            if claim is None:
                break
            message = Message(claim.alert, claim.message_id, claim.alert_id, claim.created_at)
            result = _send(send, message)
            outcome = decide(self.channel, claim.attempt, result)
            outbox.record(conn, claim, outcome)
            counts[outcome.outcome] += 1
            _log_attempt(claim, outcome)
            if result.hold_s:
                outbox.hold_channel(conn, self.channel.name, result.hold_s)
        return counts

    def _open(self) -> tuple[psycopg.Connection[Any], Sender]:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.conninfo, autocommit=True)
        if self.sender is None:
            self.client = http_client(self.channel.timeout_s)
            self.sender = sender(self.channel, self.client)
        return self.conn, self.sender

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.client is not None:
            self.client.close()
        self.conn, self.client, self.sender = None, None, None


def _send(send: Sender, message: Message) -> Result:
    """A sender that fails in an unforeseen way is a retry on record, not a dispatcher thread lost with
    the delivery in flight; `max_attempts` bounds it."""
    try:
        return send.send(message)
    except Exception as exc:
        # Its type only: an unforeseen error's text may quote a URL, and URLs carry tokens.
        log.error("alerts: sending alert %s failed unexpectedly: %s", message.alert_id, type(exc).__name__)
        return Result("retry", error=f"internal error: {type(exc).__name__}")


def _log_attempt(claim: outbox.Claim, outcome: outbox.Outcome) -> None:
    level = logging.INFO if outcome.outcome == "sent" else logging.WARNING
    log.log(
        level,
        "alert %d to %s (attempt %d): %s%s%s",
        claim.alert_id,
        claim.channel,
        claim.attempt,
        outcome.outcome,
        f", now {outcome.state}" if outcome.state != outcome.outcome else "",
        f" ({outcome.error})" if outcome.error else "",
    )


def _round(workers: Sequence[ChannelWorker], stopping: threading.Event | None) -> Counter[str]:
    """Drain every channel at once, one thread each: a slow channel does not hold up the others."""
    totals: Counter[str] = Counter()
    lock = threading.Lock()

    def drain(worker: ChannelWorker) -> None:
        try:
            counts = worker.drain(stopping)
        except psycopg.Error as exc:
            log.warning("alerts to %s: database error (%s); retrying next round", worker.channel.name, exc)
            worker.close()
            counts = Counter({"errors": 1})
        with lock:
            totals.update(counts)

    threads = [threading.Thread(target=drain, args=(w,), name=f"alerts-{w.channel.name}") for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return totals


def dispatch_once(
    conninfo: str, settings: Settings, *, channels: Sequence[str] | None = None
) -> dict[str, int]:
    """Send every delivery due now on the configured channels (or those named), then return how many
    attempts ended sent, retry, dead or unknown, and how many deliveries wait on a channel that is not
    configured (they stay pending until it is)."""
    by_name = channels_by_name(settings)
    names = list(channels) if channels is not None else list(by_name)
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise DispatchError(f"unknown channel {unknown[0]!r}; configured channels: {', '.join(by_name)}")
    with psycopg.connect(conninfo) as conn:
        due, waiting = _due_channels(conn, names), _unconfigured(conn, list(by_name))
    worker = outbox.worker_name()
    workers = [ChannelWorker(conninfo, by_name[name], worker) for name in names if name in due]
    try:
        totals = _round(workers, None)
    finally:
        for w in workers:
            w.close()
    counts = {name: totals.get(name, 0) for name in OUTCOMES}
    if totals.get("errors"):
        counts["errors"] = totals["errors"]
    counts["unconfigured"] = waiting
    return counts


def _due_channels(conn: psycopg.Connection[Any], names: list[str]) -> set[str]:
    rows = conn.execute(
        "SELECT DISTINCT channel FROM alert_deliveries WHERE channel = ANY(%s) AND ("
        " (state IN ('pending', 'failed') AND next_attempt_at <= now())"
        " OR (state = 'in_flight' AND lease_until < now()))",
        (names,),
    ).fetchall()
    return {str(row[0]) for row in rows}


def _unconfigured(conn: psycopg.Connection[Any], names: list[str]) -> int:
    """Deliveries waiting on a channel the configuration does not have."""
    row = conn.execute(
        "SELECT count(*) FROM alert_deliveries WHERE state IN ('pending', 'failed', 'in_flight')"
        " AND NOT channel = ANY(%s)",
        (names,),
    ).fetchone()
    return int(row[0]) if row else 0


def run_dispatcher(
    conninfo: str, settings: Settings, stopping: threading.Event, *, poll_s: float = POLL_S
) -> None:
    """Deliver until `stopping` is set: a round of every channel, then a wait of `poll_s` when the round
    had nothing to do. A send in progress finishes (within its timeout) before the loop returns. Errors
    are logged and the loop goes on: the outbox keeps what was not delivered."""
    by_name = channels_by_name(settings)
    worker = outbox.worker_name()
    workers = [ChannelWorker(conninfo, channel, worker) for channel in by_name.values()]
    log.info("alerts: delivering to %s", ", ".join(by_name) or "no channel")
    try:
        while not stopping.is_set():
            try:
                busy = sum(_round(workers, stopping).values())
            except Exception:
                log.exception("alerts: the dispatcher's round failed; trying again")
                busy = 0
            if not busy:
                stopping.wait(poll_s)
    finally:
        for w in workers:
            w.close()


# ------------------------------------------------------------------------------------- test messages


def probe_message(channel: str) -> Message:
    """A message saying the channel works, with an id of its own (it is not stored)."""
    now = datetime.now(UTC)
    alert = Alert(
        rule="test",
        kind="test",
        severity="info",
        subject=channel,
        period=now.isoformat(timespec="seconds"),
        title=f"chainrisk test message for channel {channel}",
        body="If you can read this, chainrisk alerts reach this channel.",
        facts={"channel": channel, "sent_at": now.isoformat(timespec="seconds")},
        observed_at=now,
    )
    return Message(alert, f"msg_chainrisk_test_{uuid.uuid4().hex}", None, now)


def send_test(settings: Settings, name: str) -> Result:
    """Send a test message to channel `name` now, once, and return what came of it."""
    by_name = channels_by_name(settings)
    if name not in by_name:
        known = ", ".join(by_name) or "none; add a [[channels]] entry"
        raise DispatchError(f"unknown channel {name!r}; configured channels: {known}")
    channel = by_name[name]
    with http_client(channel.timeout_s) as client:
        return sender(channel, client).send(probe_message(name))
