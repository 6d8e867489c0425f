"""Backfill and live follow as one loop: fetch a range, check the hash chain, decode, write with the cursor.

Blocks at or below the safe boundary (the node's `finalized` block, or head − finality depth) need no
tracking: only the batch end's header is kept. Above it every header is stored, each batch's first parent
hash must equal the cursor's hash, and a mismatch walks back to the fork point, rolls back every
chain-derived table from there and re-indexes. A fork deeper than the stored window halts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from indexer.config import ChainConfig
from indexer.errors import IndexerError
from indexer.metrics import IndexerMetrics
from indexer.pipeline import Prefetcher, WriteJob, Writer
from indexer.project import project
from indexer.registry import DecoderRegistry
from indexer.store import Cursor, Store
from indexer.types import BlockHeader, LogBatch, LogFilter

if TYPE_CHECKING:
    from indexer.chain import ChainClient

log = logging.getLogger(__name__)


class HaltError(IndexerError):
    """The indexer cannot go on safely; the message says what to do."""


class DeepReorgError(HaltError):
    """A fork reaches below the window of stored block hashes."""

    def __init__(self, chain: str, block: int, window: int) -> None:
        super().__init__(
            f"reorg on {chain} deeper than the tracked window ({window} blocks): block {block} no longer"
            f" matches and no older stored hash is left to find the fork point. Nothing was written."
            f" Rewind below the fork with `chainrisk index --rewind-to N` (N a block you trust, e.g. the"
            f" node's finalized block) and restart; raise finality_depth if this chain reorgs this deep."
        )
        self.block = block
        self.window = window


@dataclass
class Progress:
    """What the loop reports after each batch."""

    cursor: int
    target: int
    head: int
    logs: int
    blocks: int


@dataclass
class SyncJob:
    """One source: a chain, a log filter, where to start, where (if anywhere) to stop."""

    name: str
    chain: ChainConfig
    filter: LogFilter
    start_block: int
    stop_block: int | None = None
    follow: bool = False
    use_finalized_tag: bool = True
    addresses: tuple[str, ...] = field(default=())


class Syncer:
    """Runs a SyncJob against a ChainClient and a Store."""

    def __init__(
        self,
        job: SyncJob,
        client: ChainClient,
        store: Store,
        registry: DecoderRegistry,
        metrics: IndexerMetrics | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.job, self.client, self.store, self.registry = job, client, store, registry
        self.metrics = metrics or IndexerMetrics()
        self.on_progress = on_progress
        self.sleep = sleep
        self.stop_requested = False
        self.reorg_count = 0

    @property
    def chain_id(self) -> int:
        return self.job.chain.chain_id

    def load_cursor(self) -> Cursor:
        existing = self.store.cursor(self.job.name)
        if existing is not None:
            if existing.chain_id != self.chain_id:
                raise HaltError(
                    f"source {self.job.name!r} was indexed on chain {existing.chain_id}, not {self.chain_id}"
                )
            return existing
        return Cursor(self.job.name, self.chain_id, self.job.start_block - 1, "")

    def run(self) -> Cursor:
        """Index until the stop block (or the head, without --follow); follow forever with --follow."""
        cursor = self.load_cursor()
        while not self.stop_requested:
            head = self.client.head()
            target = head if self.job.stop_block is None else min(self.job.stop_block, head)
            if cursor.block_number >= target:
                checked = self._check_tip(cursor, head)
                if checked.block_number < cursor.block_number:
                    cursor = checked
                    continue
                if self._done(cursor, head):
                    break
                self.sleep(self.job.chain.poll_interval_s)
                continue
            boundary = self.safe_boundary(head)
            if cursor.block_number < boundary:
                cursor = self.backfill(cursor, min(target, boundary), head)
            else:
                cursor = self.step(cursor, target, head, boundary)
        return cursor

    def backfill(self, cursor: Cursor, end: int, head: int) -> Cursor:
        """Index the finalized blocks after the cursor up to `end` through the fetch/decode/write pipeline."""
        prefetcher = Prefetcher(self.client, self.job.filter, cursor.block_number + 1, end)
        writer = Writer(self.store, self.job.addresses, lambda job: self._committed(job, end, head))
        try:
            while not self.stop_requested and (batch := prefetcher.next()) is not None:
                rows = project(self.chain_id, batch.logs, self.registry)
                new = Cursor(self.job.name, self.chain_id, batch.end, batch.end_header.hash)
                writer.submit(WriteJob(new, batch.start, rows, [batch.end_header], prune_below=end))
        finally:
            prefetcher.close()
            committed = writer.close()
        return committed or cursor

    def _committed(self, job: WriteJob, target: int, head: int) -> None:
        n_logs = len(job.rows.logs)
        self._report(
            job.cursor,
            target,
            head,
            n_logs,
            len(job.rows.quarantine),
            job.cursor.block_number - job.start + 1,
        )

    def _done(self, cursor: Cursor, head: int) -> bool:
        if self.job.stop_block is not None and cursor.block_number >= self.job.stop_block:
            return True
        return not self.job.follow

    def safe_boundary(self, head: int) -> int:
        """Highest block that needs no reorg tracking."""
        depth_bound = head - self.job.chain.finality_depth
        if self.job.use_finalized_tag:
            finalized = self.client.finalized()
            if finalized is not None:
                return min(finalized, head)
        return depth_bound

    def step(self, cursor: Cursor, target: int, head: int, boundary: int) -> Cursor:
        """Index one batch after the cursor; returns the new cursor (moved back after a reorg)."""
        start = cursor.block_number + 1
        tracked = start > boundary
        end = target if tracked else min(target, boundary)
        batch = self.client.fetch_logs(start, end, self.job.filter, all_headers=tracked)
        if tracked and not self._links(cursor, batch):
            return self._reorg(cursor, head)
        if tracked and not _logs_match_headers(batch):
            log.warning("logs of blocks %d..%d disagree with their headers; refetching", start, batch.end)
            return cursor
        headers = list(batch.headers.values()) if tracked else [batch.end_header]
        return self._write(cursor, batch, headers, target, head, prune_below=boundary)

    def _write(
        self,
        cursor: Cursor,
        batch: LogBatch,
        headers: list[BlockHeader],
        target: int,
        head: int,
        prune_below: int,
    ) -> Cursor:
        rows = project(self.chain_id, batch.logs, self.registry)
        new = Cursor(self.job.name, self.chain_id, batch.end, batch.end_header.hash)
        self.store.write_batch(new, batch.start, rows, headers, self.job.addresses, prune_below)
        blocks = batch.end - batch.start + 1
        self._report(new, target, head, len(batch.logs), len(rows.quarantine), blocks)
        return new

    def _links(self, cursor: Cursor, batch: LogBatch) -> bool:
        """True when the batch's headers chain onto the cursor and onto each other."""
        first = batch.headers.get(batch.start)
        if first is None:
            return True
        if cursor.block_hash and first.parent_hash != cursor.block_hash:
            return False
        for number in range(batch.start + 1, batch.end + 1):
            current, parent = batch.headers.get(number), batch.headers.get(number - 1)
            if current is not None and parent is not None and current.parent_hash != parent.hash:
                return False
        return True

    def _check_tip(self, cursor: Cursor, head: int) -> Cursor:
        """Caught up: make sure the cursor block is still canonical."""
        if not cursor.block_hash:
            return cursor
        if cursor.block_number <= head and self.client.header(cursor.block_number).hash == cursor.block_hash:
            return cursor
        return self._reorg(cursor, head)

    def _reorg(self, cursor: Cursor, head: int) -> Cursor:
        fork = self._find_fork(cursor, head)
        depth = cursor.block_number - fork + 1
        new_hash = self.client.header(fork).hash if fork <= head else ""
        log.warning("reorg on %s: rolling back %d block(s) from %d", self.job.chain.name, depth, fork)
        self.store.rollback(self.chain_id, fork, depth, cursor.block_hash, new_hash)
        self.reorg_count += 1
        self.metrics.reorg(self.job.chain.name, depth)
        return self.load_cursor()

    def _find_fork(self, cursor: Cursor, head: int) -> int:
        """First block whose stored hash differs from the node's (the fork point)."""
        number = min(cursor.block_number, head)
        while True:
            stored = cursor.block_hash if number == cursor.block_number else None
            stored = stored or self.store.block_hash(self.chain_id, number)
            if stored is None:
                raise DeepReorgError(self.job.chain.name, number, self.job.chain.finality_depth)
            if self.client.header(number).hash == stored:
                return number + 1
            number -= 1

    def _report(self, cursor: Cursor, target: int, head: int, n_logs: int, n_bad: int, n_blocks: int) -> None:
        self.metrics.batch_done(self.job.chain.name, cursor.block_number, head, n_logs, n_bad)
        if self.on_progress is not None:
            self.on_progress(Progress(cursor.block_number, target, head, n_logs, n_blocks))


def _logs_match_headers(batch: LogBatch) -> bool:
    for raw in batch.logs:
        header = batch.headers.get(int(raw["blockNumber"], 16))
        if header is not None and raw["blockHash"].lower() != header.hash:
            return False
    return True
