"""Keep the lending history current while the indexer runs: a listener on the sync loop.

After each committed batch, every block in it with an event that can move a pool's accounts (the pool's
own events, its aTokens and debt tokens, its configurators, the oracles and price feeds of its assets) is
replayed in order: the pool's snapshot at that block is recorded, changes only. Refreshing whole pools
at those blocks is what keeps every exposed wallet exact: a price or an index update moves every holder.

Progress per pool is the pool's latest history block, so a crash between a batch and its refresh
resumes where it stopped, and a rollback (which deletes the history from the fork on) resumes from there.
"""

from __future__ import annotations

import logging

import psycopg

from indexer.lending.health import pools, refresh
from indexer.lending.positions import PositionsError, reserve_tokens
from indexer.protocols.aave_math import Version

log = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[object, ...]]


class PositionKeeper:
    """Refreshes each pool of one chain at every block that can move it, up to what is indexed."""

    def __init__(self, conninfo: str, chain_id: int, version: Version = "3.0") -> None:
        self.conninfo, self.chain_id, self.version = conninfo, chain_id, version
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
        if done is None:
            done = _latest_history(conn, self.chain_id, pool)
        if done >= through:
            return
        try:
            for block in _moving_blocks(conn, self.chain_id, pool, done, through):
                refresh(conn, self.chain_id, pool, block, version=self.version)
                conn.commit()  # each block's snapshot on its own: a crash keeps what was done
                self.refreshes += 1
        except PositionsError as exc:
            conn.rollback()
            self._warn_once(pool, str(exc))
            return
        self._done[pool] = through

    def _warn_once(self, pool: str, reason: str) -> None:
        if pool not in self._skipped:
            self._skipped.add(pool)
            log.warning("positions of pool %s are not kept current: %s", pool, reason)


def _latest_history(conn: Conn, chain_id: int, pool: str) -> int:
    row = conn.execute(
        "SELECT max(block_number) FROM account_health_history WHERE chain_id = %s AND pool = %s",
        (chain_id, pool),
    ).fetchone()
    conn.commit()
    return -1 if row is None or row[0] is None else int(str(row[0]))


def _moving_blocks(conn: Conn, chain_id: int, pool: str, after: int, through: int) -> list[int]:
    """Blocks in (after, through] with a log from an address whose events move `pool`'s accounts.

    Nobody holds a position before the pool's first ReserveDataUpdated (a supply emits one), so blocks
    before it, when the reserves may not even be initialised, are left out.
    """
    rows = conn.execute(
        "SELECT DISTINCT block_number FROM logs WHERE chain_id = %s AND address = ANY(%s)"
        " AND block_number > %s AND block_number <= %s AND block_number >= ("
        "   SELECT min(block_number) FROM aave_v3_reserve_data_updated WHERE chain_id = %s AND address = %s"
        " ) ORDER BY 1",
        (chain_id, _moving_addresses(conn, chain_id, pool, through), after, through, chain_id, pool),
    ).fetchall()
    conn.commit()
    return [int(str(r[0])) for r in rows]


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
