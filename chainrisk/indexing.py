"""Indexing as the app runs it: every plan on its own thread, positions kept current on the way.

`ChainIndexer` is what `chainrisk index`, the demo and `chainrisk serve` call. Each plan (one chain, or
one ad-hoc filter) runs in its own thread, so following one chain never starves another; each gets a
lending `PositionKeeper` that hears of every committed batch and rollback. `stop()` (e.g. on SIGTERM)
lets every syncer finish the batch in hand and return.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from indexer.config import ChainConfig
from indexer.lending.keeper import PositionKeeper
from indexer.metrics import IndexerMetrics
from indexer.runner import Plan, check_chain_id, make_client, run_plan
from indexer.store import Cursor
from indexer.sync import Progress, Syncer


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
