"""Keep the lending history current while the indexer runs: a listener on the sync loop.

A block "moves" a pool when it has an event of the pool, its aTokens and debt tokens, its configurators,
or the oracles and price feeds of its assets. After each committed batch the keeper records the pool's
snapshot (every account, changes only) at every moving block, or, with `period_s` > 0, at the last
moving block of each period of that many seconds of block time and at the latest moving block. That
last one is provisional: a later moving block in the same period takes its place, so the history holds
one snapshot per period, at its last moving block, whatever the batches were, and the current rows are
exact at the latest moving block.
Refreshing whole pools is what keeps every exposed wallet exact: a price or an index update moves every
holder.

Progress per pool is the pool's latest snapshot block, so a crash between a batch and its refresh
resumes where it stopped, and a rollback (which deletes the history from the fork on) resumes from there.
"""

from __future__ import annotations

import logging

import psycopg

from indexer.lending.health import pools, refresh
from indexer.lending.history import undo_from
from indexer.lending.positions import PositionsError, reserve_tokens
from indexer.protocols.aave_math import Version

log = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[object, ...]]


class PositionKeeper:
    """Refreshes each pool of one chain at every block that can move it, up to what is indexed."""

    def __init__(self, conninfo: str, chain_id: int, version: Version = "3.0", period_s: int = 0) -> None:
        if period_s < 0:
            raise ValueError(f"period_s: expected 0 (every moving block) or more seconds, got {period_s}")
        self.conninfo, self.chain_id, self.version, self.period_s = conninfo, chain_id, version, period_s
        self.refreshes = 0
        self._done: dict[str, int] = {}
        self._conn: Conn | None = None
        self._skipped: set[str] = set()

    def indexed(self, through: int) -> None:
        """Everything up to `through` is committed: bring every pool's history up to it."""
        conn = self._connection()
        for pool in pools(conn, self.chain_id):
            self._sync_pool(conn, pool, through)

    def rolled_back(self, fork: int) -> None:
        """Rows from `fork` on are gone: resume each pool from before it."""
        self._done = {pool: min(block, fork - 1) for pool, block in self._done.items()}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> PositionKeeper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.conninfo)
        return self._conn

    def _sync_pool(self, conn: Conn, pool: str, through: int) -> None:
        done = self._done.get(pool)
        if done is not None and done >= through:
            return
        latest = _latest_snapshot(conn, self.chain_id, pool, self.period_s)
        if done is None:
            done = -1 if latest is None else latest[0]
        try:
            for block, bucket in _snapshot_blocks(conn, self.chain_id, pool, done, through, self.period_s):
                self._snapshot(conn, pool, block, bucket, latest)
                latest = (block, bucket)
                self.refreshes += 1
        except PositionsError as exc:
            conn.rollback()
            self._warn_once(pool, str(exc))
            return
        self._done[pool] = through

    def _snapshot(
        self, conn: Conn, pool: str, block: int, bucket: int, latest: tuple[int, int] | None
    ) -> None:
        """The pool at `block`, replacing the period's provisional snapshot (`latest`), in one transaction."""
        if latest is not None and latest[0] < block and latest[1] == bucket:
            undo_from(conn, self.chain_id, pool, latest[0])
        refresh(conn, self.chain_id, pool, block, version=self.version)
        conn.commit()  # each snapshot on its own: a crash keeps what was done

    def _warn_once(self, pool: str, reason: str) -> None:
        if pool not in self._skipped:
            self._skipped.add(pool)
            log.warning("positions of pool %s are not kept current: %s", pool, reason)


# A period's number: the block itself when every moving block is kept (period 0); else from the block's
# time, or from its number at 12 s a block when the node gave no time.
_BUCKET = (
    "CASE WHEN %(period)s = 0 THEN {number} ELSE coalesce({ts}, {number} * 12) / greatest(%(period)s, 1) END"
)


def _snapshot_blocks(
    conn: Conn, chain_id: int, pool: str, after: int, through: int, period_s: int
) -> list[tuple[int, int]]:
    """(block, period) of the last moving block of each period in (after, through], in order.

    Nobody holds a position before the pool's first ReserveDataUpdated (a supply emits one), so blocks
    before it, when the reserves may not even be initialised, are left out.
    """
    bucket = _BUCKET.format(ts="max(block_timestamp)", number="block_number")
    rows = conn.execute(
        f"""
        WITH moving AS (
            SELECT block_number, {bucket} AS period FROM logs
             WHERE chain_id = %(c)s AND address = ANY(%(a)s) AND block_number > %(after)s
               AND block_number <= %(through)s
               AND block_number >= (SELECT min(block_number) FROM aave_v3_reserve_data_updated
                                     WHERE chain_id = %(c)s AND address = %(p)s)
             GROUP BY block_number
        )
        SELECT max(block_number), period FROM moving GROUP BY period ORDER BY 1
        """,
        {
            "c": chain_id,
            "p": pool,
            "a": _moving_addresses(conn, chain_id, pool, through),
            "after": after,
            "through": through,
            "period": period_s,
        },
    ).fetchall()
    conn.commit()
    return [(int(str(r[0])), int(str(r[1]))) for r in rows]


def _latest_snapshot(conn: Conn, chain_id: int, pool: str, period_s: int) -> tuple[int, int] | None:
    """(block, period) of the pool's latest snapshot."""
    bucket = _BUCKET.format(ts="extract(epoch FROM block_time)::bigint", number="block_number")
    row = conn.execute(
        f"SELECT block_number, {bucket} FROM account_health_history"
        " WHERE chain_id = %(c)s AND pool = %(p)s ORDER BY block_number DESC LIMIT 1",
        {"c": chain_id, "p": pool, "period": period_s},
    ).fetchone()
    return None if row is None else (int(str(row[0])), int(str(row[1])))


def _moving_addresses(conn: Conn, chain_id: int, pool: str, block: int) -> list[str]:
    reserves, configurators = reserve_tokens(conn, chain_id, pool, block)
    assets = list(reserves)
    feeds = conn.execute(
        "SELECT address, source FROM aave_oracle_asset_source_updated"
        " WHERE chain_id = %s AND asset = ANY(%s) AND block_number <= %s"
        " UNION SELECT price_feed, price_feed FROM tracked_tokens"
        " WHERE chain_id = %s AND token = ANY(%s) AND price_feed IS NOT NULL",
        (chain_id, assets, block, chain_id, assets),
    ).fetchall()
    tokens = [t for r in reserves.values() for t in (r.a_token, r.v_token)]
    return sorted({pool, *tokens, *configurators, *(str(a) for row in feeds for a in row)})
