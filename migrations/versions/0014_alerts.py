"""alerts outbox: alerts, their deliveries and every attempt, silences; reader views over them

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The SQL of the views as this revision created them: frozen here, never edited.
ALERTS_FIRED = """
CREATE OR REPLACE VIEW alerts_fired AS
SELECT a.id AS alert_id, a.created_at, a.observed_at, a.rule, a.kind, a.severity, a.subject, a.period,
       a.title, a.body, a.facts, a.chain_id, a.dedup_key,
       coalesce(d.deliveries, '{}'::jsonb) AS deliveries,
       coalesce(d.sent, 0) AS channels_sent, coalesce(d.channels, 0) AS channels
FROM alerts a
LEFT JOIN (
    SELECT alert_id, jsonb_object_agg(channel, state) AS deliveries,
           count(*) FILTER (WHERE state = 'sent') AS sent, count(*) AS channels
    FROM alert_deliveries
    GROUP BY alert_id
) d ON d.alert_id = a.id
"""

DELIVERY_ATTEMPTS = """
CREATE OR REPLACE VIEW alert_delivery_attempts AS
SELECT d.alert_id, a.rule, a.severity, a.title, d.id AS delivery_id, d.channel, d.state, d.attempts,
       d.next_attempt_at, d.provider_id, d.last_error, t.attempt, t.started_at, t.finished_at, t.outcome,
       t.http_status, t.retry_after_s, t.error
FROM alert_deliveries d
JOIN alerts a ON a.id = d.alert_id
LEFT JOIN alert_attempts t ON t.delivery_id = d.id
"""

COMMENTS = {
    "alerts_fired": (
        "One row per alert: the rule that fired, when (created_at; observed_at: when the condition was"
        " seen), why (title, body, facts), and its delivery state per channel (deliveries: channel ->"
        " state; channels_sent of channels)."
    ),
    "alert_delivery_attempts": (
        "One row per attempt to deliver an alert to a channel (a delivery never attempted yet appears"
        " once with a NULL attempt): the delivery's current state, and each attempt's start, finish,"
        " outcome (sent, retry, dead, unknown: no answer to a written request, interrupted: the"
        " dispatcher stopped before the answer was recorded), HTTP status or SMTP code, the wait the"
        " channel asked for and the error."
    ),
}

VIEWS = (ALERTS_FIRED, DELIVERY_ATTEMPTS)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("dedup_key", sa.Text(), nullable=False, comment="rule:subject:period"),
        sa.Column("rule", sa.Text(), nullable=False, comment="the [[alerts]] entry that fired"),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column(
            "subject", sa.Text(), nullable=False, comment="what it is about: a wallet, market, proposal, job"
        ),
        sa.Column("period", sa.Text(), nullable=False, comment="the window it belongs to (an hour, a block)"),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "facts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
            comment="the figures behind the message",
        ),
        sa.Column("chain_id", sa.Integer(), nullable=True),
        sa.Column(
            "observed_at", sa.DateTime(timezone=True), nullable=True, comment="when the condition was seen"
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "severity IN ('info', 'low', 'medium', 'high', 'critical')", name="ck_alerts_severity"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedup_key"),
        comment="Every alert that fired, once per rule, subject and period (the outbox).",
    )
    op.create_table(
        "alert_deliveries",
        sa.Column(
            "id",
            sa.BigInteger(),
            sa.Identity(always=False),
            nullable=False,
            comment="also the webhook-id's number",
        ),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "channel", sa.Text(), nullable=False, comment="the [[channels]] name (never its URL or token)"
        ),
        sa.Column("state", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempts", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "lease_until",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="in_flight: the dispatcher's lease",
        ),
        sa.Column(
            "provider_id",
            sa.Text(),
            nullable=True,
            comment="the message id the channel returned, where it returns one",
        ),
        sa.Column("last_error", sa.Text(), nullable=True, comment="one line, never a secret"),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'in_flight', 'sent', 'failed', 'unknown', 'dead')",
            name="ck_alert_deliveries_state",
        ),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("alert_id", "channel", name="uq_alert_deliveries_alert_channel"),
        comment="One row per alert and channel: where the alert goes and how far it got.",
    )
    op.create_index("ix_alert_deliveries_due", "alert_deliveries", ["channel", "state", "next_attempt_at"])
    op.create_table(
        "alert_attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.SmallInteger(), nullable=False, comment="1 for the first send"),
        sa.Column("worker", sa.Text(), nullable=False, comment="the dispatcher that sent it (host:pid)"),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True, comment="NULL while in flight"),
        sa.Column(
            "http_status", sa.SmallInteger(), nullable=True, comment="HTTP status, or the SMTP reply code"
        ),
        sa.Column("retry_after_s", sa.Float(), nullable=True, comment="the wait the channel asked for (429)"),
        sa.Column("error", sa.Text(), nullable=True, comment="one line, never a secret"),
        sa.CheckConstraint(
            "outcome IN ('sent', 'retry', 'dead', 'unknown', 'interrupted')", name="ck_alert_attempts_outcome"
        ),
        sa.ForeignKeyConstraint(["delivery_id"], ["alert_deliveries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        comment="Every send of every delivery, recorded before the request leaves.",
    )
    op.create_index("ix_alert_attempts_delivery", "alert_attempts", ["delivery_id", "attempt"])
    op.create_table(
        "alert_silences",
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("rule"),
        comment="A rule's alerts are not enqueued while now() < until (`chainrisk alerts silence`).",
    )
    for statement in VIEWS:
        op.execute(statement)
    for view, comment in COMMENTS.items():
        op.execute(f"COMMENT ON VIEW {view} IS '{comment.replace(chr(39), chr(39) * 2)}'")


def downgrade() -> None:
    for view in reversed(list(COMMENTS)):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.drop_table("alert_silences")
    op.drop_index("ix_alert_attempts_delivery", table_name="alert_attempts")
    op.drop_table("alert_attempts")
    op.drop_index("ix_alert_deliveries_due", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_table("alerts")
