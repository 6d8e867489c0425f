"""Backfill as a three-stage pipeline: fetch (thread) → decode (caller) → COPY and commit (thread).

RPC time, decoding and PostgreSQL's COPY work overlap; each stage hands batches on in block order through
a small bounded queue, so memory stays bounded and commits stay in order (each batch still commits its
rows and the cursor in one transaction).

Only blocks at or below the safe boundary are prefetched: they cannot reorg, so fetching them early can
never race a rollback. Batch sizes adapt to aim at `target_logs` logs per batch, which bounds memory and
keeps the pipeline full when log density varies by orders of magnitude between blocks.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from indexer.project import Rows
from indexer.store import Cursor, Store
from indexer.types import BlockHeader, LogBatch, LogFilter

if TYPE_CHECKING:
    from indexer.chain import ChainClient

TARGET_LOGS = 20_000
MAX_SPAN = 100_000


@dataclass
class _Failed:
    error: BaseException


class Prefetcher:
    """Yields LogBatches covering start..end in order; re-raises a fetch error in the consumer."""

    def __init__(self, client: ChainClient, filt: LogFilter, start: int, end: int, depth: int = 2) -> None:
        self.client, self.filter, self.start, self.end = client, filt, start, end
        self._queue: queue.Queue[LogBatch | _Failed | None] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._span = MAX_SPAN
        self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = self.start
        try:
            while start <= self.end and not self._stop.is_set():
                batch = self.client.fetch_logs(start, min(self.end, start + self._span - 1), self.filter)
                self._adapt(batch)
                self._put(batch)
                start = batch.end + 1
            self._put(None)
        except BaseException as exc:  # handed to the consumer, which owns error handling
            self._put(_Failed(exc))

    def _adapt(self, batch: LogBatch) -> None:
        blocks = batch.end - batch.start + 1
        if not batch.logs:
            self._span = min(MAX_SPAN, self._span * 2)
            return
        density = len(batch.logs) / blocks
        self._span = max(1, min(MAX_SPAN, int(TARGET_LOGS / density)))

    def _put(self, item: LogBatch | _Failed | None) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def next(self) -> LogBatch | None:
        """The next batch in block order, or None when the range is done."""
        item = self._queue.get()
        if isinstance(item, _Failed):
            raise item.error
        return item

    def close(self) -> None:
        """Stop fetching and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass
class WriteJob:
    """One batch ready to commit."""

    cursor: Cursor
    start: int
    rows: Rows
    headers: list[BlockHeader]
    prune_below: int


class Writer:
    """Commits WriteJobs in order on a thread; `close()` waits and re-raises the first failure."""

    def __init__(self, store: Store, addresses: Sequence[str], on_commit: Callable[[WriteJob], None]) -> None:
        self.store, self.addresses, self.on_commit = store, addresses, on_commit
        self._queue: queue.Queue[WriteJob | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self.committed: Cursor | None = None
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                self.store.write_batch(
                    job.cursor, job.start, job.rows, job.headers, self.addresses, job.prune_below
                )
            except BaseException as exc:  # handed back to the caller in close()
                self._error = exc
                continue
            self.committed = job.cursor
            self.on_commit(job)

    def submit(self, job: WriteJob) -> None:
        """Queue a batch (blocks while two are pending); raises early if a write already failed."""
        if self._error is not None:
            raise self._error
        self._queue.put(job)

    def close(self) -> Cursor | None:
        """Finish pending writes; return the last committed cursor or raise the write error."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.committed
