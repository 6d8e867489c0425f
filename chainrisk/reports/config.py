"""The `[report]` table of chainrisk.toml: what the `report` job of `chainrisk serve` writes and who hears.

    [report]
    period = "weekly"                 # daily (default) or weekly: one report per period
    channels = ["risk-discord"]       # [[channels]] names that announce it (default: every channel)
    link = "https://risk.example.org/reports"   # where the report folder is served (default: its path)

The job also needs `[serve.jobs.report]` to run (see docs/REPORTS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from chainrisk.alerts.channels_config import ChannelConfig


class ReportConfig(BaseModel):
    """The report job's settings."""

    model_config = ConfigDict(extra="forbid")

    period: Literal["daily", "weekly"] = "daily"
    # None: every [[channels]] entry; []: announce nowhere.
    channels: list[str] | None = None
    # Folder the reports go in, one subfolder per period (default: <home>/reports).
    directory: Path | None = None
    # The URL the report folder is served under; the announcement links <link>/<subfolder>/report.html.
    link: str | None = Field(default=None, pattern=r"^https?://\S+$")
    # The chain to report on, when more than one has Aave markets indexed.
    chain_id: int | None = Field(default=None, ge=1)


def check_channels(report: ReportConfig, channels: Sequence[ChannelConfig]) -> None:
    """Refuse a [report] channel that no [[channels]] entry names."""
    names = [c.name for c in channels]
    for name in report.channels or []:
        if name not in names:
            known = ", ".join(names) if names else "none; add a [[channels]] entry"
            raise ValueError(f"[report] channels: unknown channel {name!r}; configured channels: {known}")


def announce_to(report: ReportConfig, channels: Sequence[ChannelConfig]) -> list[str]:
    """The channels that announce a report: those named, or every configured one."""
    return list(report.channels) if report.channels is not None else [c.name for c in channels]
