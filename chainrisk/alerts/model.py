"""What an alert is, independent of where it goes: the record rules produce and the outbox stores.

The shape follows the findings of on-chain monitors (a name, a description, a severity, the addresses
concerned and free-form metadata), plus what delivery needs: the rule that fired, the subject it fired
for and the period, which together are the alert's dedup key — the same rule, subject and period never
produce a second alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class Alert:
    """One alert. ``rule`` names the ``[[alerts]]`` entry, ``kind`` its kind; ``subject`` what it is about
    (a wallet, a market, a proposal, a job); ``period`` the window it belongs to (e.g. the hour or the
    block it was found in), so a condition that persists does not fire again within its period.
    ``facts`` holds the figures behind the message, JSON-able, each a number a reader can check."""

    rule: str
    kind: str
    severity: Severity
    subject: str
    period: str
    title: str
    body: str
    facts: dict[str, Any] = field(default_factory=dict)
    chain_id: int | None = None
    observed_at: datetime | None = None

    @property
    def dedup_key(self) -> str:
        """``rule:subject:period``: unique in the outbox."""
        return f"{self.rule}:{self.subject}:{self.period}"
