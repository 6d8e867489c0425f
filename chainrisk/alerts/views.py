"""Reader views over the alert outbox: what fired, when and why (`alerts_fired`), and where each alert
went with every attempt (`alert_delivery_attempts`).

Like chainrisk/contagion/views.py, this holds the current definitions once; the migration that created
them keeps a frozen copy (migrations/versions/0014_alerts.py).
"""

from __future__ import annotations

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

VIEWS: dict[str, str] = {
    "alerts_fired": ALERTS_FIRED,
    "alert_delivery_attempts": DELIVERY_ATTEMPTS,
}

COMMENTS: dict[str, str] = {
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
