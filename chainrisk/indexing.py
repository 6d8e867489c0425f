"""Indexing as the app runs it: every plan on its own thread, positions kept current on the way.

`ChainIndexer` is what `chainrisk index`, the demo and `chainrisk serve` call. Each plan (one chain, or
one ad-hoc filter) runs in its own thread, so following one chain never starves another; each gets a
lending `PositionKeeper` that hears of every committed batch and rollback. `stop()` (e.g. on SIGTERM)
lets every syncer finish the batch in hand and return.

`plans` turns what `chainrisk index` is asked (an `IndexRequest`) into checked plans before anything is
written; `metrics_on`, `sync_catalog` and `rewind` are the other steps of that command.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from indexer.config import ChainConfig
from indexer.lending.keeper import PositionKeeper
from indexer.metrics import IndexerMetrics
from indexer.runner import Plan, check_chain_id, make_client, run_plan
from indexer.store import Cursor
from indexer.sync import Progress, Syncer

if TYPE_CHECKING:
    from chainrisk.settings import Settings


@dataclass(frozen=True)
class Outcome:
    """Where one plan stopped, and what it did on the way."""

    plan: Plan
    cursor: Cursor
    summary: str
    refreshes: int

    def line(self) -> str:
        return f"{self.plan.job.name}: indexed through block {self.cursor.block_number} ({self.summary})"


class ChainIndexer:
    """Runs plans to their end (or forever when they follow); the first error stops the rest."""

    def __init__(
        self,
        plans: Sequence[Plan],
        conninfo: str,
        metrics: IndexerMetrics | None = None,
        *,
        keep_positions: bool = True,
        progress: bool = False,
    ) -> None:
        self.plans, self.conninfo = list(plans), conninfo
        self.metrics = metrics or IndexerMetrics()
        self.keep_positions, self.progress = keep_positions, progress
        self._running: list[Syncer] = []
        self._lock = threading.Lock()
        self._stopped = False

    def run(self, on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
        """Index every plan; `on_outcome` hears of each as it finishes."""
        show = self.progress and len(self.plans) == 1
        with ThreadPoolExecutor(max_workers=max(1, len(self.plans)), thread_name_prefix="chain") as pool:
            futures = [pool.submit(self._run_one, plan, show) for plan in self.plans]
            try:
                outcomes = [self._result(future.result(), on_outcome) for future in futures]
            except BaseException:
                self.stop()
                raise
        return outcomes

    def stop(self) -> None:
        """Every running syncer finishes its batch in hand and returns; plans not started do not start."""
        with self._lock:
            self._stopped = True
            for syncer in self._running:
                syncer.stop_requested = True

    def _result(self, outcome: Outcome, on_outcome: Callable[[Outcome], None] | None) -> Outcome:
        if on_outcome is not None:
            on_outcome(outcome)
        return outcome

    def _started(self, syncer: Syncer) -> None:
        with self._lock:
            self._running.append(syncer)
            if self._stopped:
                syncer.stop_requested = True

    def _run_one(self, plan: Plan, show_progress: bool) -> Outcome:
        client = make_client(plan.job.chain, self.metrics)
        chain = plan.job.chain
        keeper = (
            PositionKeeper(self.conninfo, chain.chain_id, period_s=chain.history_period_s)
            if self.keep_positions
            else None
        )
        try:
            check_chain_id(client, plan.job.chain)
            with ProgressView(plan.job.chain, show_progress) as view:
                cursor = run_plan(
                    plan,
                    self.conninfo,
                    self.metrics,
                    view.update,
                    self._started,
                    client=client,
                    listener=keeper,
                )
            return Outcome(plan, cursor, view.summary(), keeper.refreshes if keeper else 0)
        finally:
            client.close()
            if keeper is not None:
                keeper.close()


class ProgressView:
    """A rich progress bar with blocks/s, logs/s and ETA; silent when disabled or not a terminal."""

    def __init__(self, chain: ChainConfig, enabled: bool) -> None:
        self.chain, self.enabled = chain, enabled
        self.logs = self.blocks = 0
        self.started = time.monotonic()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressView:
        if self.enabled:
            from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._progress = Bar(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} blocks"),
                TextColumn("{task.fields[bps]:,.0f} blocks/s"),
                TextColumn("{task.fields[lps]:,.0f} logs/s"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, p: Progress) -> None:
        self.logs += p.logs
        self.blocks += p.blocks
        if self._progress is None:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        done_from = p.cursor - self.blocks
        if self._task is None:
            self._task = self._progress.add_task(self.chain.name, total=p.target - done_from, bps=0, lps=0)
        self._progress.update(
            self._task,
            total=p.target - done_from,
            completed=self.blocks,
            bps=self.blocks / elapsed,
            lps=self.logs / elapsed,
        )

    def summary(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (
            f"{self.blocks:,} blocks, {self.logs:,} logs in {elapsed:.1f}s, {self.logs / elapsed:,.0f} logs/s"
        )


# ------------------------------------------------------------------------------- what `index` asks for

# ChainConfig fields as the ad-hoc flags that set them, so a refused value names the flag.
FLAGS = {
    "rpc_urls": "--rpc",
    "chain_id": "--chain-id",
    "finality_depth": "--finality-depth",
    "max_block_range": "--max-range",
    "rpc_timeout_s": "--rpc-timeout",
}


@dataclass(frozen=True)
class IndexRequest:
    """What `chainrisk index` is asked: one ad-hoc filter on the `rpc` nodes, or (without `rpc`) every
    chain and contract of the config; `stop` and `follow` apply to both."""

    rpc: list[str] | None
    addresses: list[str] | None
    start: int | None
    stop: int | None
    follow: bool
    chain_id: int | None
    depth: int
    max_range: int
    name: str | None
    rpc_timeout: float = 30.0


def plans(settings: Settings, request: IndexRequest) -> list[Plan]:
    """The plans to run, every input checked (the ad-hoc node asked only for its chain id)."""
    from chainrisk.inputs import OptionError
    from chainrisk.inputs import addresses as checked_addresses
    from indexer.runner import adhoc_plan, config_plan

    rpc, start, stop = request.rpc, request.start, request.stop
    if rpc:
        if start is None:
            raise OptionError("--from: the first block is required with --rpc")
        if stop is not None and stop < start:
            raise OptionError(f"--to {stop} is below --from {start}; expected a block at or above it")
        wanted = checked_addresses("--address", request.addresses or [])
        _adhoc_chain(request, rpc, request.chain_id or 1)  # the flags are checked before the node is asked
        resolved = request.chain_id if request.chain_id is not None else _node_chain_id(rpc)
        chain = _adhoc_chain(request, rpc, resolved)
        return [adhoc_plan(chain, wanted, start, stop, request.follow, request.name)]
    if not settings.chains:
        raise OptionError(
            "nothing to index: pass --rpc URL --from N, or configure [[chains]] and"
            " [[contracts]] in chainrisk.toml"
        )
    idle = [c.name for c in settings.chains if not any(k.chain == c.name for k in settings.contracts)]
    if idle:
        raise OptionError(
            f"chain {idle[0]!r} has no [[contracts]] entry in the config: add one with chain = {idle[0]!r},"
            " or remove the chain"
        )
    return [config_plan(chain, settings.contracts, stop, request.follow) for chain in settings.chains]


def _adhoc_chain(request: IndexRequest, rpc: list[str], chain_id: int) -> ChainConfig:
    """The ad-hoc chain; a refused value names its flag."""
    from pydantic import ValidationError

    from chainrisk.inputs import OptionError

    try:
        return ChainConfig(
            name=f"chain-{chain_id}",
            chain_id=chain_id,
            rpc_urls=rpc,
            finality_depth=request.depth,
            max_block_range=request.max_range,
            rpc_timeout_s=request.rpc_timeout,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = FLAGS.get(str(err["loc"][0]), str(err["loc"][0]))
        reason = err["msg"].removeprefix("Value error, ")
        shown = "" if flag == "--rpc" else f" {err['input']!r}"  # URLs are named, redacted, in the reason
        raise OptionError(f"{flag}{shown}: {reason}") from None


def _node_chain_id(urls: list[str]) -> int:
    from indexer.chain import HttpChainClient

    client = HttpChainClient(urls)
    try:
        return client.chain_id()
    finally:
        client.close()


def metrics_on(port: int, addr: str) -> IndexerMetrics:
    """The indexer's metrics, served for Prometheus on `addr:port` unless `port` is 0."""
    metrics = IndexerMetrics()
    if port:
        metrics.serve(port, addr)
    return metrics


def sync_catalog(conninfo: str, settings: Settings) -> None:
    """Tracked tokens and config labels follow chainrisk.toml on every configured run."""
    import psycopg

    from indexer.catalog import sync_config
    from indexer.lending.morpho import sync_oracles

    with psycopg.connect(conninfo) as conn:
        sync_config(conn, settings.chains, settings.tokens, settings.labels)
        sync_oracles(conn, settings.chains, settings.morpho_oracles)


def rewind(conninfo: str, plans: Sequence[Plan], block: int) -> Iterator[str]:
    """Delete each plan's rows above `block` and move its cursors back; a line after each chain."""
    from indexer.runner import rewind as rewind_chain

    for plan in plans:
        rewind_chain(conninfo, plan.job.chain.chain_id, block)
        yield f"{plan.job.chain.name}: rows above block {block} deleted; cursors moved back"
