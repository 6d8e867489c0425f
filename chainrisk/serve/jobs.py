"""The job registry of `chainrisk serve`: what each kind of job does, and its default schedule.

A kind of job is one function `run(JobRun) -> dict` plus a `JobKind` entry in `JOBS` and a schedule field
of the same name in `chainrisk.serve.config.ServeJobs`. The runner claims the period, hands the function a
`JobRun` whose `conn` is an open transaction, and records success in that same transaction: whatever the
function writes through `conn` commits together with the run's record, or not at all. The dict it returns
is stored as the run's `result` (JSON).

Kinds that plug in the same way: contagion runs (`graph` DebtRank over the indexed positions), risk
reports, and alert dispatch from an outbox (see docs/SERVICE.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from chainrisk.serve.config import ForecastAsset
from chainrisk.serve.schedule import Schedule

if TYPE_CHECKING:
    from chainrisk.settings import Settings

Conn = psycopg.Connection[tuple[Any, ...]]

NODE_TIMEOUT_S = 5.0
MIN_ORACLE_DAYS = 3  # a price file's bar interval is read from its bars: three at least


@dataclass(frozen=True)
class ServiceContext:
    """What jobs see of the service: settings, the database and the stop request."""

    settings: Settings
    url: str  # SQLAlchemy URL, for code that opens its own engine
    conninfo: str  # the same database as a libpq URL
    cursors: dict[str, str]  # chain name -> name of the cursor its indexing plan keeps
    stopping: threading.Event

    @property
    def home(self) -> Path:
        return self.settings.home


@dataclass(frozen=True)
class JobRun:
    """One run of one job for one period."""

    job: str
    period: datetime
    conn: Conn  # an open transaction: it commits with the run's success record, or rolls back
    service: ServiceContext
    asset: ForecastAsset | None
    claimed_at: datetime


@dataclass(frozen=True)
class JobKind:
    """A kind of job: its function, default schedule, whether it runs once per forecast asset, and for
    kinds that commit through a connection of their own, how to tell that an unfinished run did commit."""

    run: Callable[[JobRun], dict[str, Any]]
    default: Schedule
    summary: str
    per_asset: bool = False
    committed: Callable[[JobRun], dict[str, Any] | None] | None = None


@dataclass(frozen=True)
class ScheduledJob:
    """A job as the scheduler runs it: `forecast` becomes `forecast:ETH`, `forecast:BTC`, …"""

    name: str
    kind: JobKind
    schedule: Schedule
    asset: ForecastAsset | None = None


# ------------------------------------------------------------------------------------------ heartbeat


def heartbeat(run: JobRun) -> dict[str, Any]:
    """Record each chain's indexed block and its node's head: proof of life with the indexer's progress."""
    chains: dict[str, Any] = {}
    for chain in run.service.settings.chains:
        cursor = run.service.cursors.get(chain.name)
        row = run.conn.execute("SELECT block_number FROM cursors WHERE name = %s", (cursor,)).fetchone()
        indexed = int(row[0]) if row else None
        head, error = _node_head(chain.rpc_urls, chain.rpc_timeout_s)
        lag = head - indexed if head is not None and indexed is not None else None
        chains[chain.name] = {"indexed": indexed, "head": head, "lag": lag}
        if error:
            chains[chain.name]["error"] = error
    return {"chains": chains}


def _node_head(urls: list[str], timeout_s: float) -> tuple[int | None, str | None]:
    """The node's latest block, or why there is none (one line, URLs redacted): a dead node is what a
    heartbeat reports, not a reason to skip it."""
    from chainrisk.exits import one_line
    from indexer.chain import HttpChainClient
    from indexer.errors import IndexerError

    client = HttpChainClient(urls, timeout_s=min(timeout_s, NODE_TIMEOUT_S), max_retries=1)
    try:
        return client.head(), None
    except IndexerError as exc:
        return None, one_line(str(exc))
    finally:
        client.close()


# ------------------------------------------------------------------------------------------- forecast

ORACLE_TICKS = """
SELECT to_timestamp(u.updated_at::double precision) AS time,
       u.current / 10::numeric ^ k.price_decimals AS price
FROM tracked_tokens k
JOIN price_answer_updated u ON u.chain_id = k.chain_id
WHERE k.chain_id = :chain_id AND k.token = :token
  AND u.address IN (
      SELECT k.price_feed WHERE k.price_feed IS NOT NULL
      UNION
      SELECT s.source FROM aave_oracle_asset_source_updated s
      WHERE k.price_feed IS NULL AND s.chain_id = k.chain_id AND s.asset = k.token)
ORDER BY u.block_number, u.log_index
"""


def forecast(run: JobRun) -> dict[str, Any]:
    """Volatility forecasts and regime probabilities of one asset, as `chainrisk forecast run` writes them."""
    from analytics import SERVICE_MODELS, SERVICE_REGIME_MODEL
    from analytics.live import write_latest

    asset = _asset(run)
    _quiet_torch()
    written = write_latest(
        run.service.url,
        price_source(run.service, asset),
        asset.asset,
        asset.target,
        tuple(asset.models) if asset.models else SERVICE_MODELS,
        asset.regime_model or SERVICE_REGIME_MODEL,
    )
    return {
        "run_id": int(written["run_id"]),
        "input_end": str(written["input_end"]),
        "forecasts": len(written["forecasts"]),
        "regime_rows": len(written["regimes"]),
    }


def forecast_committed(run: JobRun) -> dict[str, Any] | None:
    """The forecast an unfinished run wrote, if it got that far: `write_latest` commits on its own
    connection, so a leader can die between that commit and the run's record. Its row is the one for
    this asset and source created after the claim (only the leader writes forecasts on schedule)."""
    asset = _asset(run)
    row = run.conn.execute(
        "SELECT id, input_end FROM forecast_runs WHERE asset = %s AND source = %s AND created_at >= %s"
        " ORDER BY id DESC LIMIT 1",
        (asset.asset, str(price_source_path(run.service, asset)), run.claimed_at),
    ).fetchone()
    if row is None:
        return None
    return {"run_id": int(row[0]), "input_end": str(row[1]), "recovered": True}


def price_source_path(service: ServiceContext, asset: ForecastAsset) -> Path:
    """The price file the forecast reads: the configured one, or where oracle prices are exported."""
    if asset.prices is not None:
        return asset.prices
    return service.home / "serve" / f"oracle-prices-{asset.asset}.csv"


def price_source(service: ServiceContext, asset: ForecastAsset) -> Path:
    """The price file, after exporting the indexed oracle prices into it when the asset uses them."""
    path = price_source_path(service, asset)
    if asset.prices is None:
        _export_oracle_prices(service, asset, path)
    return path


def _export_oracle_prices(service: ServiceContext, asset: ForecastAsset, path: Path) -> None:
    """Daily bars of the token's oracle updates, as a price file the forecast reads (written whole, then
    renamed into place, so a reader never sees half of it)."""
    import pandas as pd

    from analytics.loaders import PriceDataError, load_oracle_prices

    chain_id, token = _oracle_token(service.settings, asset)
    bars = load_oracle_prices(service.url, ORACLE_TICKS, {"chain_id": chain_id, "token": token}).bars
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    frame = bars[["open", "high", "low", "close"]].copy()
    frame.index = pd.DatetimeIndex(frame.index).strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.to_csv(partial, index_label="time")
    partial.replace(path)
    if len(bars) < MIN_ORACLE_DAYS:
        # Exported all the same (it shows what is indexed); the forecast could not read its interval.
        raise PriceDataError(
            f"the forecast of {asset.asset} needs at least {MIN_ORACLE_DAYS} days of oracle prices to read"
            f" them as daily bars; {len(bars)} day(s) indexed so far"
        )


def _oracle_token(settings: Settings, asset: ForecastAsset) -> tuple[int, str]:
    """Chain id and token address of an oracle-priced asset (settings checked that both exist)."""
    chain_id = next(c.chain_id for c in settings.chains if c.name == asset.chain)
    wanted = (asset.token or "").lower()
    token = next(
        t.address
        for t in settings.tokens
        if t.chain == asset.chain and wanted in (t.symbol.lower(), t.address.lower())
    )
    return chain_id, token


def _asset(run: JobRun) -> ForecastAsset:
    if run.asset is None:
        raise ValueError(f"job {run.job!r} runs per asset but was given none")
    return run.asset


def _quiet_torch() -> None:
    # Model fitting must not take every core from the indexer running beside it.
    import torch

    torch.set_num_threads(1)


# ------------------------------------------------------------------------------------- other packages
# Each kind's work lives with its package; imported when the job runs, so `serve` starts light.


def contagion(run: JobRun) -> dict[str, Any]:
    """Monte Carlo VaR of bad debt on the indexed head, stored with its run (chainrisk.contagion.job)."""
    from chainrisk.contagion.job import run_job

    return run_job(run)


def alerts(run: JobRun) -> dict[str, Any]:
    """Evaluate every [[alerts]] rule and put what fires in the outbox (chainrisk.alerts.job)."""
    from chainrisk.alerts.job import run_job

    return run_job(run)


def report(run: JobRun) -> dict[str, Any]:
    """The period's contagion report, written once and announced (chainrisk.reports.job)."""
    from chainrisk.reports.job import run_job

    return run_job(run)


# ------------------------------------------------------------------------------------------- registry

JOBS: dict[str, JobKind] = {
    "heartbeat": JobKind(
        run=heartbeat,
        default=Schedule(interval_s=60),
        summary="each chain's indexed block and node head, recorded in the run",
    ),
    "forecast": JobKind(
        run=forecast,
        default=Schedule(cron="10 0 * * *"),
        summary="volatility forecasts and regime probabilities per [[serve.assets]] entry",
        per_asset=True,
        committed=forecast_committed,
    ),
    "contagion": JobKind(
        run=contagion,
        default=Schedule(cron="30 0 * * *"),
        summary="contagion VaR of bad debt on the indexed head, stored (after the forecasts)",
    ),
    "alerts": JobKind(
        run=alerts,
        default=Schedule(interval_s=30),
        summary="every [[alerts]] rule evaluated; what fires goes to the outbox",
    ),
    "report": JobKind(
        run=report,
        default=Schedule(cron="0 1 * * *"),
        summary="the contagion report of the period, written once and announced",
    ),
}


def scheduled_jobs(settings: Settings) -> list[ScheduledJob]:
    """Every enabled job as scheduled: per-asset kinds once per configured asset."""
    jobs = []
    for name, kind in JOBS.items():
        configured = getattr(settings.serve.jobs, name)
        if not configured.enabled:
            continue
        schedule = Schedule.of(configured, kind.default)
        if kind.per_asset:
            jobs += [ScheduledJob(f"{name}:{a.asset}", kind, schedule, a) for a in settings.serve.assets]
        else:
            jobs.append(ScheduledJob(name, kind, schedule))
    return jobs
