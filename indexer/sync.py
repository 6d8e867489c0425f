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
from typing import TYPE_CHECKING, Protocol

from indexer.chain import RpcTransportError
from indexer.config import ChainConfig
from indexer.errors import IndexerError, InputError
from indexer.metrics import IndexerMetrics
from indexer.pipeline import Prefetcher, WriteJob, Writer
from indexer.project import project
from indexer.registry import DecoderRegistry
from indexer.store import Cursor, Store
from indexer.types import BlockHeader, LogBatch, LogFilter

if TYPE_CHECKING:
    from indexer.chain import ChainClient

log = logging.getLogger(__name__)


# One-shot runs give a node that stays behind the cursor this many polls before they stop.
MAX_LAG_WAITS = 60
# Follow mode waits this many poll intervals (at least a second) after an RPC outage.
OUTAGE_POLLS = 5


class HaltError(IndexerError):
    """The indexer cannot go on safely; the message says what to do."""


class DeepReorgError(HaltError):
    """A fork reaches below the window of stored block hashes."""

    def __init__(self, chain: str, block: int, window: int) -> None:
        super().__init__(
            f"reorg on {chain} deeper than the tracked window ({window} blocks): block {block} no longer"
            f" matches its stored hash and no older stored hash is left to find the fork point. Nothing"
            f" was written. Rewind below the fork with `chainrisk index --rewind-to N` (N a block you"
            f" trust, e.g. the node's finalized block) and restart; raise finality_depth if this chain"
            f" reorgs this deep."
        )
        self.block = block
        self.window = window


class NodeBehindError(HaltError):
    """The node stayed behind the indexed block for longer than a one-shot run waits."""

    def __init__(self, chain: str, head: int, cursor: int) -> None:
        super().__init__(
            f"the node for {chain} stays behind: its head is block {head}, already indexed through"
            f" {cursor}. Nothing was rolled back. Wait for it to sync, point --rpc (or rpc_urls) at a"
            f" synced node, or use --follow to wait as long as it takes."
        )
        self.head = head
        self.cursor = cursor


class SourceBusyError(HaltError):
    """Another process holds this source's writer lock."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"source {name!r} is being indexed by another process (it holds the source's lock)."
            f" Nothing was written. Wait for it to finish or stop it; to index the same contracts"
            f" separately, give this run another --name."
        )
        self.name = name


class StartBeyondHeadError(InputError):
    """A one-shot run asked to start after the node's head."""

    def __init__(self, chain: str, start: int, head: int) -> None:
        super().__init__(
            f"--from {start}: {chain}'s head is block {head}, so there is nothing to index yet."
            f" Nothing was written. Start at a block up to {head}, or add --follow to wait for block {start}."
        )
        self.start = start
        self.head = head


@dataclass
class Progress:
    """What the loop reports after each batch."""

    cursor: int
    target: int
    head: int
    logs: int
    blocks: int


class BatchListener(Protocol):
    """Hears what the loop committed: layers above (positions, alerts) keep up through it."""

    def indexed(self, through: int) -> None: ...

    def rolled_back(self, fork: int) -> None: ...


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
        listener: BatchListener | None = None,
    ) -> None:
        self.job, self.client, self.store, self.registry = job, client, store, registry
        self.listener = listener
        self.metrics = metrics or IndexerMetrics()
        self.on_progress = on_progress
        self.sleep = sleep
        self.stop_requested = False
        self.reorg_count = 0
        self._lag_waits = 0

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
        """Index until the stop block (or the head, without --follow); follow forever with --follow.

        Nothing is indexed before the cursor's block is verified on the node's chain: at start, and again
        after every RPC outage that follow mode waits out.
        """
        cursor = self.load_cursor()
        verified = False
        while not self.stop_requested:
            try:
                if not verified:
                    cursor, verified = self.verify(cursor), True
                    self._heard(cursor)
                cursor, done = self._advance(cursor)
            except RpcTransportError as exc:
                if not self.job.follow:
                    raise
                verified = False
                self._outage(exc)
                continue
            if done:
                break
        return cursor

    def verify(self, cursor: Cursor) -> Cursor:
        """The cursor once its block is known to be canonical: rolled back to the fork point if it is not.

        Waits while the node is behind the cursor; raises DeepReorgError for a fork below the window.
        """
        while not self.stop_requested:
            head = self.client.head()
            checked = self._checked(cursor, head)
            if checked is not None:
                return checked
            self._behind(cursor, head)
        return cursor

    def _advance(self, cursor: Cursor) -> tuple[Cursor, bool]:
        """One move: a batch, a rollback, or a wait; True when the job is done."""
        head = self.client.head()
        if not cursor.block_hash and self.job.start_block > head:
            return cursor, self._start_beyond_head(head)
        if head < cursor.block_number:
            return self._caught_up(cursor, head)
        target = head if self.job.stop_block is None else min(self.job.stop_block, head)
        if cursor.block_number >= target:
            return self._caught_up(cursor, head)
        boundary = self.safe_boundary(head)
        if cursor.block_number < boundary:
            return self.backfill(cursor, min(target, boundary), head), False
        return self.step(cursor, target, head, boundary), False

    def _caught_up(self, cursor: Cursor, head: int) -> tuple[Cursor, bool]:
        """Nothing new to fetch: re-check the tip (a reorg can shorten the chain), then stop or wait."""
        checked = self._checked(cursor, head)
        if checked is None:
            self._behind(cursor, head)
            return cursor, False
        if checked != cursor:
            return checked, False
        if self._done(cursor, head):
            return cursor, True
        self.sleep(self.job.chain.poll_interval_s)
        return cursor, False

    def _start_beyond_head(self, head: int) -> bool:
        if not self.job.follow:
            raise StartBeyondHeadError(self.job.chain.name, self.job.start_block, head)
        log.info("%s: waiting for block %d (head %d)", self.job.chain.name, self.job.start_block, head)
        self.sleep(self.job.chain.poll_interval_s)
        return False

    def _behind(self, cursor: Cursor, head: int) -> None:
        """The node answered from behind the cursor: wait for it, never roll back for it."""
        self.metrics.lagging_node(self.job.chain.name)
        self._lag_waits += 1
        if not self.job.follow and self._lag_waits > MAX_LAG_WAITS:
            raise NodeBehindError(self.job.chain.name, head, cursor.block_number)
        log.warning(
            "%s: the node is behind (head %d, indexed through %d); waiting",
            self.job.chain.name,
            head,
            cursor.block_number,
        )
        self.sleep(self.job.chain.poll_interval_s)

    def _outage(self, exc: RpcTransportError) -> None:
        wait = max(1.0, OUTAGE_POLLS * self.job.chain.poll_interval_s)
        log.warning("%s: %s; retrying in %.0fs", self.job.chain.name, exc, wait)
        self.sleep(wait)

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
        """Highest block that needs no reorg tracking: the lower of the node's finalized block and
        head − finality_depth, so the window never holds fewer blocks than the configured depth."""
        depth_bound = head - self.job.chain.finality_depth
        if self.job.use_finalized_tag:
            finalized = self.client.finalized()
            if finalized is not None:
                return min(finalized, depth_bound)
        return depth_bound

    def step(self, cursor: Cursor, target: int, head: int, boundary: int) -> Cursor:
        """Index one batch after the cursor; returns the new cursor (moved back after a reorg)."""
        start = cursor.block_number + 1
        tracked = start > boundary
        end = target if tracked else min(target, boundary)
        batch = self.client.fetch_logs(start, end, self.job.filter, all_headers=tracked)
        if tracked and not self._links(cursor, batch):
            return self._relink(cursor, head)
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

    def _relink(self, cursor: Cursor, head: int) -> Cursor:
        """A batch that does not chain onto the cursor: a reorg only if the cursor's block changed."""
        checked = self._checked(cursor, head)
        if checked is None or checked == cursor:
            # Another node behind a load balancer answered part of the batch; fetch it again.
            self.metrics.lagging_node(self.job.chain.name)
            self.sleep(self.job.chain.poll_interval_s)
            return cursor
        return checked

    def _checked(self, cursor: Cursor, head: int) -> Cursor | None:
        """The cursor if its block is canonical, the fork's parent after a rollback, None if undecided.

        A rollback needs proof: a block at a height we stored whose hash differs from the stored one.
        A lower head or a missing block proves nothing (None: the node is behind).
        """
        if not cursor.block_hash:
            return cursor
        number = min(cursor.block_number, head)
        stored = self._stored_hash(cursor, number)
        if stored is None:
            return None
        if self.client.header(number).hash == stored:
            return cursor if number == cursor.block_number else None
        return self._roll_back(cursor, self._find_fork(cursor, number))

    def _stored_hash(self, cursor: Cursor, number: int) -> str | None:
        if number == cursor.block_number:
            return cursor.block_hash
        return self.store.block_hash(self.chain_id, number)

    def _find_fork(self, cursor: Cursor, differing: int) -> int:
        """First block of the fork, walking down from `differing`, a block whose hash no longer matches."""
        number = differing - 1
        while True:
            stored = self._stored_hash(cursor, number) if number >= 0 else None
            if stored is None:
                raise DeepReorgError(self.job.chain.name, differing, self.job.chain.finality_depth)
            if self.client.header(number).hash == stored:
                return number + 1
            differing, number = number, number - 1

    def _roll_back(self, cursor: Cursor, fork: int) -> Cursor:
        depth = cursor.block_number - fork + 1
        new_hash = self.client.header(fork).hash
        log.warning("reorg on %s: rolling back %d block(s) from %d", self.job.chain.name, depth, fork)
        self.store.rollback(self.chain_id, fork, depth, cursor.block_hash, new_hash)
        if self.listener is not None:
            self.listener.rolled_back(fork)
        self.reorg_count += 1
        self.metrics.reorg(self.job.chain.name, depth)
        return self.load_cursor()

    def _heard(self, cursor: Cursor) -> None:
        if self.listener is not None and cursor.block_hash:
            self.listener.indexed(cursor.block_number)

    def _report(self, cursor: Cursor, target: int, head: int, n_logs: int, n_bad: int, n_blocks: int) -> None:
        self._lag_waits = 0
        self._heard(cursor)
        self.metrics.batch_done(self.job.chain.name, cursor.block_number, head, n_logs, n_bad)
        if self.on_progress is not None:
            self.on_progress(Progress(cursor.block_number, target, head, n_logs, n_blocks))


def _logs_match_headers(batch: LogBatch) -> bool:
    for raw in batch.logs:
        header = batch.headers.get(int(raw["blockNumber"], 16))
        if header is not None and raw["blockHash"].lower() != header.hash:
            return False
    return True
