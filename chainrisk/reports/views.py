"""Reader view over the stored reports: what was generated, for which period, when, and where it was
announced (`reports_generated`).

Like chainrisk/alerts/views.py, this holds the current definition once; the migration that created it
keeps a frozen copy (migrations/versions/0017_governance_queue_and_payloads.py).
"""

from __future__ import annotations

# The announcement is the outbox alert of rule `report:<kind>` whose facts name the report's id; its
# deliveries say where it went. A report stored with no channels has no announcement (NULL alert_id).
REPORTS_GENERATED = """
CREATE OR REPLACE VIEW reports_generated AS
SELECT r.id AS report_id, r.kind, r.period, r.period_start,
       r.period_start + CASE r.period WHEN 'weekly' THEN 6 ELSE 0 END AS period_end,
       r.chain_id, r.block, r.created_at, r.summary ->> 'title' AS title, r.summary -> 'lines' AS summary,
       r.directory, r.files, r.files ->> 'report.html' AS html_sha256,
       a.id AS alert_id, a.facts ->> 'link' AS link,
       coalesce(d.deliveries, '{}'::jsonb) AS announced_to,
       coalesce(d.sent, 0) AS channels_sent, coalesce(d.channels, 0) AS channels
FROM reports r
LEFT JOIN alerts a ON a.rule = 'report:' || r.kind AND a.facts ->> 'report_id' = r.id::text
LEFT JOIN (
    SELECT alert_id, jsonb_object_agg(channel, state) AS deliveries,
           count(*) FILTER (WHERE state = 'sent') AS sent, count(*) AS channels
    FROM alert_deliveries
    GROUP BY alert_id
) d ON d.alert_id = a.id
"""

VIEWS: dict[str, str] = {"reports_generated": REPORTS_GENERATED}

COMMENTS: dict[str, str] = {
    "reports_generated": (
        "One row per stored report: its kind, period (period_start to period_end, both UTC days"
        " included), chain and block, when it was written (created_at), its title and summary lines,"
        " the folder and each file's SHA-256, and its announcement: the outbox alert (alert_id), the link"
        " it carried, and its delivery state per channel (announced_to: channel -> state; channels_sent of"
        " channels). No announcement (no channels configured): alert_id NULL, announced_to empty."
    ),
}
