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

Morpho Blue is kept the same way, one contract at a time: its markets are its pools, moved by the
contract's events and by the feeds of their oracles and tokens, and snapshotted together (one replay of
the contract's events per keeper, advanced as blocks come).

Progress per pool is the pool's latest snapshot block, so a crash between a batch and its refresh
resumes where it stopped, and a rollback (which deletes the history from the fork on) resumes from there.
"""

from __future__ import annotations

import logging

import psycopg

from indexer.lending import morpho
from indexer.lending.health import pools, refresh, refresh_morpho
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
        self._morpho_done: dict[str, int] = {}
        self._replays: dict[str, morpho.MorphoReplay] = {}

    def indexed(self, through: int) -> None:
        """Everything up to `through` is committed: bring every pool's history up to it."""
        conn = self._connection()
        for pool in pools(conn, self.chain_id):
            self._sync_pool(conn, pool, through)
        for contract in morpho.morpho_contracts(conn, self.chain_id):
            self._sync_morpho(conn, contract, through)
        conn.commit()

    def rolled_back(self, fork: int) -> None:
        """Rows from `fork` on are gone: resume each pool from before it."""
        self._done = {pool: min(block, fork - 1) for pool, block in self._done.items()}
        self._morpho_done = {m: min(block, fork - 1) for m, block in self._morpho_done.items()}
        self._replays = {m: r for m, r in self._replays.items() if r.block < fork}

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

    def _sync_morpho(self, conn: Conn, contract: str, through: int) -> None:
        done = self._morpho_done.get(contract)
        if done is not None and done >= through:
            return
        ids = _market_ids(conn, self.chain_id, contract, through)
        latest = _latest_morpho_snapshot(conn, self.chain_id, ids, self.period_s)
        if done is None:
            done = -1 if latest is None else latest[0]
        try:
            for block, bucket in _morpho_blocks(conn, self.chain_id, contract, done, through, self.period_s):
                if latest is not None and latest[0] < block and latest[1] == bucket:
                    for market in ids:
                        undo_from(conn, self.chain_id, market, latest[0])
                refresh_morpho(
                    conn, self.chain_id, contract, block, self._replay(contract, block), self._warn_once
                )
                conn.commit()
                latest = (block, bucket)
                self.refreshes += 1
        except PositionsError as exc:
            conn.rollback()
            self._replays.pop(contract, None)
            self._warn_once(contract, str(exc))
            return
        self._morpho_done[contract] = through

    def _replay(self, contract: str, block: int) -> morpho.MorphoReplay:
        """The contract's replay, started again when it is past `block` (after a period's undo)."""
        replay = self._replays.get(contract)
        if replay is None or replay.block > block:
            replay = self._replays[contract] = morpho.MorphoReplay(self.chain_id, contract)
        return replay

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


def _market_ids(conn: Conn, chain_id: int, contract: str, through: int) -> list[str]:
    rows = conn.execute(
        "SELECT id FROM morpho_blue_create_market"
        " WHERE chain_id = %s AND address = %s AND block_number <= %s",
        (chain_id, contract, through),
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


def _latest_morpho_snapshot(
    conn: Conn, chain_id: int, ids: list[str], period_s: int
) -> tuple[int, int] | None:
    """(block, period) of the latest snapshot of any of the contract's markets."""
    bucket = _BUCKET.format(ts="extract(epoch FROM block_time)::bigint", number="block_number")
    row = conn.execute(
        f"SELECT block_number, {bucket} FROM account_health_history"
        " WHERE chain_id = %(c)s AND pool = ANY(%(p)s) ORDER BY block_number DESC LIMIT 1",
        {"c": chain_id, "p": ids, "period": period_s},
    ).fetchone()
    return None if row is None else (int(str(row[0])), int(str(row[1])))


def _morpho_blocks(
    conn: Conn, chain_id: int, contract: str, after: int, through: int, period_s: int
) -> list[tuple[int, int]]:
    """(block, period) of the last block of each period in (after, through] that moves the contract's
    markets: its own events and those of its oracles' feeds and its tokens' USD feeds, from its first
    CreateMarket on."""
    bucket = _BUCKET.format(ts="max(block_timestamp)", number="block_number")
    rows = conn.execute(
        f"""
        WITH moving AS (
            SELECT block_number, {bucket} AS period FROM logs
             WHERE chain_id = %(c)s AND address = ANY(%(a)s) AND block_number > %(after)s
               AND block_number <= %(through)s
               AND block_number >= (SELECT min(block_number) FROM morpho_blue_create_market
                                     WHERE chain_id = %(c)s AND address = %(m)s)
             GROUP BY block_number
        )
        SELECT max(block_number), period FROM moving GROUP BY period ORDER BY 1
        """,
        {
            "c": chain_id,
            "m": contract,
            "a": _morpho_moving_addresses(conn, chain_id, contract, through),
            "after": after,
            "through": through,
            "period": period_s,
        },
    ).fetchall()
    conn.commit()
    return [(int(str(r[0])), int(str(r[1]))) for r in rows]


def _morpho_moving_addresses(conn: Conn, chain_id: int, contract: str, block: int) -> list[str]:
    rows = conn.execute(
        """
        WITH markets AS (
            SELECT loan_token, collateral_token, oracle FROM morpho_blue_create_market
             WHERE chain_id = %(c)s AND address = %(m)s AND block_number <= %(b)s
        ), tokens AS (
            SELECT loan_token AS token FROM markets UNION SELECT collateral_token FROM markets
        )
        SELECT unnest(ARRAY[o.base_feed, o.quote_feed]) FROM morpho_oracles o
          JOIN markets k ON o.chain_id = %(c)s AND o.address = k.oracle
        UNION SELECT price_feed FROM tracked_tokens
               WHERE chain_id = %(c)s AND token IN (SELECT token FROM tokens)
        UNION SELECT source FROM aave_oracle_asset_source_updated
               WHERE chain_id = %(c)s AND block_number <= %(b)s AND asset IN (SELECT token FROM tokens)
        """,
        {"c": chain_id, "m": contract, "b": block},
    ).fetchall()
    return sorted({contract, *(str(r[0]) for r in rows if r[0] is not None)})
