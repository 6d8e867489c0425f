"""Queries whose text reproduces their rows: literal values only, results as JSON values."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from chainrisk.contagion.inputs import Conn
from chainrisk.reports.model import Table, Value


def query(conn: Conn, title: str, sql: str, formats: dict[str, str] | None = None) -> Table:
    """Run ``sql`` (literal values only, so the text reproduces the rows) into a :class:`Table`."""
    cur = conn.execute(sql.strip().encode())  # bytes: the text is built from integers and constants
    columns = [d.name for d in cur.description or ()]
    return Table(title, columns, [json_row(r) for r in cur.fetchall()], sql.strip(), "sql", formats or {})


def json_row(row: Sequence[Any]) -> list[Value]:
    return [json_value(v) for v in row]


def json_value(value: Any) -> Value:
    """A database value as JSON holds it: integral numerics stay exact integers (uint256 caps, ids)."""
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent  # 0 or more: no fractional digits (round(x), counts)
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, int | float | str | bool):
        return value
    return str(value)
