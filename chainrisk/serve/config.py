"""The `[serve]` table of chainrisk.toml: job schedules and the assets to forecast.

Only shapes are checked here (settings load for every command); what needs a file, the analytics model
list or the database is checked when `chainrisk serve` starts, before it touches anything.

    [serve.jobs.heartbeat]
    interval = "30s"            # or cron = "*/5 * * * *" (UTC); neither: the job's default
    enabled = true

    [[serve.assets]]
    asset = "ETH"
    prices = "data/prices/binance-ethusdt-daily.csv"   # a price file, or the indexed oracle prices of
    # chain = "mainnet"                                # a [[tokens]] entry: chain and token (symbol or
    # token = "WETH"                                   # address)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
MAX_INTERVAL_S = 366 * 86_400
_INTERVAL = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_ASSET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def interval_seconds(value: str | int) -> int:
    """Seconds of an interval written `30s`, `15m`, `1h`, `1d` or as a whole number of seconds."""
    match = _INTERVAL.match(str(value))
    if match is None:
        raise ValueError("expected a whole number with a unit s, m, h or d, e.g. '30s', '15m', '1h', '1d'")
    seconds = int(match.group(1)) * UNITS[match.group(2) or "s"]
    if not 1 <= seconds <= MAX_INTERVAL_S:
        raise ValueError(f"expected an interval from 1s to {MAX_INTERVAL_S // 86_400}d")
    return seconds


def check_cron(line: str) -> str:
    """A five-field crontab line (minute hour day month weekday), read in UTC."""
    from datetime import UTC, datetime

    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(line, timezone=UTC)
    except ValueError as exc:
        raise ValueError(f"not a crontab line ({exc}); expected five fields, e.g. '10 0 * * *'") from None
    if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
        raise ValueError("this crontab line never fires (e.g. February 30); expected one that does")
    return line


class JobSchedule(BaseModel):
    """When one kind of job runs: every `interval`, or at each `cron` time (UTC); neither: its default."""

    model_config = ConfigDict(extra="forbid")

    interval: str | None = None
    cron: str | None = None
    enabled: bool = True

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("expected an interval such as '30s' or '1h'")
        if isinstance(value, int | str):
            interval_seconds(value)
            return str(value)
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @model_validator(mode="after")
    def _one_kind(self) -> JobSchedule:
        if self.interval is not None and self.cron is not None:
            raise ValueError("give interval or cron, not both")
        return self


class ServeJobs(BaseModel):
    """One schedule per kind of job; `chainrisk.serve.jobs.JOBS` holds what each kind does."""

    model_config = ConfigDict(extra="forbid")

    heartbeat: JobSchedule = Field(default_factory=JobSchedule)
    forecast: JobSchedule = Field(default_factory=JobSchedule)
    # Off unless their table is written: each needs configuration (markets indexed, rules, channels)
    # that a fresh install does not have.
    contagion: JobSchedule = Field(default_factory=lambda: JobSchedule(enabled=False))
    alerts: JobSchedule = Field(default_factory=lambda: JobSchedule(enabled=False))
    report: JobSchedule = Field(default_factory=lambda: JobSchedule(enabled=False))


class ForecastAsset(BaseModel):
    """An asset whose volatility forecasts and regime probabilities the `forecast` job writes."""

    model_config = ConfigDict(extra="forbid")

    asset: Annotated[str, Field(min_length=1, max_length=32)]
    prices: Path | None = None
    chain: str | None = None
    token: str | None = None
    target: Literal["parkinson", "rv"] = "parkinson"
    models: list[str] | None = None  # None: analytics.SERVICE_MODELS
    regime_model: str | None = None  # None: analytics.SERVICE_REGIME_MODEL

    @field_validator("asset")
    @classmethod
    def _asset(cls, value: str) -> str:
        if not _ASSET.match(value):
            raise ValueError("expected letters, digits, '.', '_' or '-' (it names the job), e.g. 'ETH'")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ForecastAsset:
        oracle = self.chain is not None or self.token is not None
        if self.prices is not None and oracle:
            raise ValueError("give prices (a price file) or chain and token (oracle prices), not both")
        if self.prices is None and (self.chain is None or self.token is None):
            raise ValueError("give prices (a price file), or chain and token (the indexed oracle prices)")
        return self


class ServeConfig(BaseModel):
    """`chainrisk serve`: schedules, forecast assets and how often a standby asks for the lead."""

    model_config = ConfigDict(extra="forbid")

    jobs: ServeJobs = Field(default_factory=ServeJobs)
    assets: list[ForecastAsset] = Field(default_factory=list)
    standby_poll_s: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = 1.0


def check_assets(
    assets: list[ForecastAsset], chains: dict[str, int], tokens: dict[tuple[str, str], str]
) -> None:
    """Asset names once each; oracle assets on a configured chain and a [[tokens]] entry of it.

    `chains` maps chain names to ids; `tokens` maps (chain, symbol or address) to the token address.
    """
    seen: set[str] = set()
    for i, asset in enumerate(assets):
        where = f"serve.assets.{i}"
        if asset.asset in seen:
            raise ValueError(f"{where}.asset {asset.asset!r} is given twice; give each asset once")
        seen.add(asset.asset)
        if asset.chain is None or asset.token is None:
            continue
        if asset.chain not in chains:
            known = ", ".join(sorted(chains)) or "none"
            raise ValueError(f"{where}.chain {asset.chain!r} is not a [[chains]] name (configured: {known})")
        if (asset.chain, asset.token.lower()) not in tokens and (asset.chain, asset.token) not in tokens:
            raise ValueError(
                f"{where}.token {asset.token!r} is not a [[tokens]] entry of chain {asset.chain!r};"
                " add it there (its symbol or address) so its price feed is known"
            )
