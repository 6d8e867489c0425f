"""PostgreSQL tables of the alert outbox (SQLAlchemy Core, this module's MetaData); migration 0014 makes them.

`alerts` holds what fired, unique on its dedup key (rule:subject:period), written in the transaction of
the change that caused it. `alert_deliveries` holds one row per (alert, channel): its state, when it is
due, the dispatcher's lease. `alert_attempts` records every send, written before the request leaves (so an
attempt interrupted by a crash stays on record) and finished with its outcome. `alert_silences` mutes a
rule until a time. Channels are stored by name: their URLs, tokens and passwords never reach the database.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "ATTEMPT_OUTCOMES",
    "DELIVERY_STATES",
    "alert_attempts",
    "alert_deliveries",
    "alert_silences",
    "alerts",
    "metadata",
]

metadata = sa.MetaData()

# pending: due at next_attempt_at; in_flight: leased to a dispatcher; failed: the last attempt failed and a
# retry is due at next_attempt_at; unknown: a request was written and no answer came, and the channel does
# not resend; dead: not retried (rejected, attempts used up, or misconfigured) until `alerts retry`.
DELIVERY_STATES = ("pending", "in_flight", "sent", "failed", "unknown", "dead")
# interrupted: the dispatcher died (or its lease ran out) between writing the attempt and recording its
# answer; whether the receiver got the message is not known. This is the chat channels' duplicate window.
ATTEMPT_OUTCOMES = ("sent", "retry", "dead", "unknown", "interrupted")

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("dedup_key", sa.Text, nullable=False, unique=True, comment="rule:subject:period"),
    sa.Column("rule", sa.Text, nullable=False, comment="the [[alerts]] entry that fired"),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column(
        "subject", sa.Text, nullable=False, comment="what it is about: a wallet, market, proposal, job"
    ),
    sa.Column("period", sa.Text, nullable=False, comment="the window it belongs to (an hour, a block)"),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column(
        "facts",
        JSONB,
        nullable=False,
        server_default=sa.text("'{}'::jsonb"),
        comment="the figures behind the message",
    ),
    sa.Column("chain_id", sa.Integer),
    sa.Column("observed_at", sa.DateTime(timezone=True), comment="when the condition was seen"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(
        "severity IN ('info', 'low', 'medium', 'high', 'critical')", name="ck_alerts_severity"
    ),
    comment="Every alert that fired, once per rule, subject and period (the outbox).",
)

alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True, comment="also the webhook-id's number"),
    sa.Column("alert_id", sa.BigInteger, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("channel", sa.Text, nullable=False, comment="the [[channels]] name (never its URL or token)"),
    sa.Column("state", sa.Text, nullable=False, server_default=sa.text("'pending'")),
    sa.Column("attempts", sa.SmallInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("lease_until", sa.DateTime(timezone=True), comment="in_flight: the dispatcher's lease"),
    sa.Column("provider_id", sa.Text, comment="the message id the channel returned, where it returns one"),
    sa.Column("last_error", sa.Text, comment="one line, never a secret"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("alert_id", "channel", name="uq_alert_deliveries_alert_channel"),
    sa.CheckConstraint(
        "state IN ('pending', 'in_flight', 'sent', 'failed', 'unknown', 'dead')",
        name="ck_alert_deliveries_state",
    ),
    sa.Index("ix_alert_deliveries_due", "channel", "state", "next_attempt_at"),
    comment="One row per alert and channel: where the alert goes and how far it got.",
)

alert_attempts = sa.Table(
    "alert_attempts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "delivery_id",
        sa.BigInteger,
        sa.ForeignKey("alert_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("attempt", sa.SmallInteger, nullable=False, comment="1 for the first send"),
    sa.Column("worker", sa.Text, nullable=False, comment="the dispatcher that sent it (host:pid)"),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("outcome", sa.Text, comment="NULL while in flight"),
    sa.Column("http_status", sa.SmallInteger, comment="HTTP status, or the SMTP reply code"),
    sa.Column("retry_after_s", sa.Float, comment="the wait the channel asked for (429)"),
    sa.Column("error", sa.Text, comment="one line, never a secret"),
    sa.CheckConstraint(
        "outcome IN ('sent', 'retry', 'dead', 'unknown', 'interrupted')", name="ck_alert_attempts_outcome"
    ),
    sa.Index("ix_alert_attempts_delivery", "delivery_id", "attempt"),
    comment="Every send of every delivery, recorded before the request leaves.",
)

alert_silences = sa.Table(
    "alert_silences",
    metadata,
    sa.Column("rule", sa.Text, primary_key=True),
    sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    comment="A rule's alerts are not enqueued while now() < until (`chainrisk alerts silence`).",
)
