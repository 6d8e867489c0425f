"""The kinds of `[[alerts]]` rules: a registry of name -> (parameter model, evaluate function).

Each kind lives in its own module of this package and registers itself when imported:

    register("health_factor", HealthFactorParams, evaluate)

`evaluate(conn, rule, params, now) -> list[Alert]` reads the index through `conn` (an open transaction)
and returns what fires now; `params` is the rule's parameters validated by the kind's model. Every module
of the package whose name does not start with `_` is imported by `kinds()`, so a new kind is a new file.

Helpers shared by the kinds (the rule's period, its chain id, number formatting) are here too.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg
from pydantic import BaseModel

if TYPE_CHECKING:
    from chainrisk.alerts.model import Alert
    from chainrisk.alerts.rules_config import AlertRuleConfig

Conn = psycopg.Connection[tuple[Any, ...]]
Evaluate = Callable[[Conn, "AlertRuleConfig", Any, datetime], "list[Alert]"]


class Kind(NamedTuple):
    """A kind of rule: the model its parameters are validated by, and what evaluates it."""

    params: type[BaseModel]
    evaluate: Evaluate


KINDS: dict[str, Kind] = {}
_loaded = False


def register(name: str, params: type[BaseModel], evaluate: Evaluate) -> None:
    """Make `name` a rule kind (called by the kind's module when imported)."""
    KINDS[name] = Kind(params, evaluate)


def kinds() -> dict[str, Kind]:
    """Every registered kind, after importing each kind module of this package once."""
    global _loaded
    if not _loaded:
        for module in pkgutil.iter_modules(__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{__name__}.{module.name}")
        _loaded = True
    return KINDS


# ------------------------------------------------------------------------------------------- helpers


def period_of(rule: AlertRuleConfig, now: datetime) -> str:
    """The cooldown window `now` falls in, e.g. `2026-11-30T14:00:00Z/1h`: the period of the alert's
    dedup key, so a condition that persists fires at most once per cooldown and subject."""
    seconds = rule.cooldown_s
    start = int(now.timestamp()) // seconds * seconds
    stamp = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp}/{rule.cooldown}"


def chain_ids(conn: Conn, rule: AlertRuleConfig) -> list[int]:
    """The chain ids a rule looks at: its `chain`, or every chain the index has a cursor for."""
    if rule.chain_id is not None:
        return [rule.chain_id]
    rows = conn.execute("SELECT DISTINCT chain_id FROM cursors ORDER BY 1").fetchall()
    return [int(r[0]) for r in rows]


def usd(value: float | Decimal) -> str:
    """A dollar amount for a message: `$1,234,567`."""
    return f"${float(value):,.0f}"


def short(address: str) -> str:
    """`0x1234…abcd`: enough of an address to recognise it in a chat message."""
    return f"{address[:6]}…{address[-4:]}" if len(address) > 12 else address


def alert(
    rule: AlertRuleConfig,
    now: datetime,
    *,
    subject: str,
    title: str,
    body: str,
    facts: dict[str, Any],
    chain_id: int | None = None,
    period: str | None = None,
) -> Alert:
    """An alert of `rule`; its period is the rule's cooldown window unless the kind names one (e.g. the
    hour of a net flow, the block of a transfer)."""
    from chainrisk.alerts.model import Alert

    return Alert(
        rule=rule.name,
        kind=rule.kind,
        severity=rule.severity,
        subject=subject,
        period=period if period is not None else period_of(rule, now),
        title=title,
        body=body,
        facts=facts,
        chain_id=chain_id,
        observed_at=now,
    )


def token_filter(conn: Conn, chain_id: int, assets: list[str]) -> list[str] | None:
    """Token addresses of the rule's `assets` (symbols or addresses, any case) on a chain; None: all."""
    if not assets:
        return None
    wanted = [a.lower() for a in assets]
    rows = conn.execute(
        "SELECT token FROM tracked_tokens"
        " WHERE chain_id = %s AND (lower(symbol) = ANY(%s) OR token = ANY(%s))",
        (chain_id, wanted, wanted),
    ).fetchall()
    return [str(r[0]) for r in rows]


def window_s(text: str) -> int:
    """Seconds of a window written like a cooldown (`15m`, `1h`, `1d`)."""
    from chainrisk.serve.config import interval_seconds

    return interval_seconds(text)


def check_window(value: str) -> str:
    """Validator of window parameters: the same form as `cooldown`."""
    window_s(value)
    return value
