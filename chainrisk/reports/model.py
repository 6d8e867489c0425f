"""What a report holds, independent of how it is rendered: sections of tables, figures and plots, each
number with the SQL query or command that reproduces it.

A :class:`Report` is gathered once (:mod:`chainrisk.reports.gather`) and rendered twice, as HTML and as
Markdown (:mod:`chainrisk.reports.render`), so both show the same numbers; :meth:`Report.document` is the
JSON sidecar written beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Period = Literal["daily", "weekly"]
PERIODS: tuple[Period, ...] = ("daily", "weekly")
Value = int | float | str | bool | None


@dataclass(frozen=True)
class Table:
    """Rows of values as they came from their source. ``reproduce`` is the SQL that returns exactly these
    rows (``how == "sql"``, run against the reader views) or the command whose output holds them.
    ``formats`` maps a column to a format spec for display (floats default to ``,.2f``)."""

    title: str
    columns: list[str]
    rows: list[list[Value]]
    reproduce: str
    how: Literal["sql", "command"] = "sql"
    formats: dict[str, str] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "columns": self.columns,
            "rows": self.rows,
            "how": self.how,
            "reproduce": self.reproduce,
            "formats": self.formats,
        }


@dataclass(frozen=True)
class Plot:
    """A PNG and what it shows."""

    name: str  # file name, e.g. hf-distribution.png
    caption: str
    png: bytes


@dataclass
class Section:
    """One part of the report. ``missing`` says what is not available yet and how to get it; a section
    with only ``missing`` still appears, so a reader sees what the report does not cover."""

    key: str
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "text": self.text,
            "tables": [t.document() for t in self.tables],
            "plots": [{"name": p.name, "caption": p.caption} for p in self.plots],
            "missing": self.missing,
        }


@dataclass
class Report:
    """The whole report: where and when it stands, and its sections in order."""

    title: str
    chain_id: int
    block: int
    period: Period
    period_start: str  # ISO date of the period's first day (UTC)
    generated_at: str  # ISO time
    sections: list[Section]

    def plots(self) -> list[Plot]:
        return [p for s in self.sections for p in s.plots]

    def document(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "chain_id": self.chain_id,
            "block": self.block,
            "period": self.period,
            "period_start": self.period_start,
            "generated_at": self.generated_at,
            "sections": [s.document() for s in self.sections],
        }


def num(value: Value) -> float:
    """A numeric cell as a float (NULL counts as 0)."""
    if value is None:
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"not a number: {value!r}")
