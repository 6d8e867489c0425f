"""Write a pool's snapshot at a block into the history tables: close what changed, open what is new.

A row holds from `block_number` until `valid_to` (NULL: still current). Writing the same snapshot twice
changes nothing, and a snapshot at a block before the open rows is refused, so the history only grows
forward; a reorg's rollback (Store.rollback) is what moves it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg

from indexer.lending.positions import PositionsError

Conn = psycopg.Connection[tuple[object, ...]]
Row = tuple[object, ...]

# (table, columns of the key after chain_id and pool, number of value columns after block_number)
_HEALTH = ("account_health_history", 1, 7)
_RESERVES = ("position_reserves_history", 2, 5)


def write_snapshot(
    conn: Conn,
    chain_id: int,
    pool: str,
    block: int,
    timestamp: int,
    health: Sequence[Row],
    reserves: Sequence[Row],
    protocol: str = "aave_v3",
) -> int:
    """Record `pool`'s rows at `block` (as `snapshot` returns them); returns how many rows changed.

    `protocol` names the pool's protocol (aave_v3, morpho_blue) in every row written.
    """
    when = datetime.fromtimestamp(timestamp, UTC)
    with conn.transaction():
        _check_forward(conn, chain_id, pool, block)
        return _write(conn, _HEALTH, chain_id, pool, block, (when, protocol), health) + _write(
            conn, _RESERVES, chain_id, pool, block, (when, protocol), reserves
        )


def _check_forward(conn: Conn, chain_id: int, pool: str, block: int) -> None:
    row = conn.execute(
        "SELECT max(block_number) FROM account_health_history WHERE chain_id = %s AND pool = %s",
        (chain_id, pool),
    ).fetchone()
    latest = None if row is None or row[0] is None else int(str(row[0]))
    if latest is not None and block < latest:
        raise PositionsError(
            f"pool {pool} already has history at block {latest}: a snapshot at {block} would rewrite it;"
            " roll back below it first (chainrisk index --rewind-to)"
        )


def _write(
    conn: Conn,
    shape: tuple[str, int, int],
    chain_id: int,
    pool: str,
    block: int,
    stamp: tuple[datetime, str],
    rows: Sequence[Row],
) -> int:
    table, n_key, n_values = shape
    when, protocol = stamp
    new = {_key(r, n_key): r for r in rows}
    old = _open_rows(conn, table, chain_id, pool, n_key, n_values)
    changed = [k for k, r in new.items() if old.get(k) != _values(r, n_key, n_values)]
    gone = [k for k in old if k not in new]
    _close(conn, table, chain_id, pool, n_key, [*changed, *gone], block, when)
    with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
        for key in changed:
            copy.write_row((*new[key], None, when, None, protocol))
    return len(changed) + len(gone)


def undo_from(conn: Conn, chain_id: int, pool: str, block: int) -> None:
    """Take back `pool`'s snapshots from `block` on, reopening the rows they closed (a pool's rollback)."""
    for table, _, _ in (_HEALTH, _RESERVES):
        conn.execute(
            f"DELETE FROM {table} WHERE chain_id = %s AND pool = %s AND block_number >= %s",
            (chain_id, pool, block),
        )
        conn.execute(
            f"UPDATE {table} SET valid_to = NULL, valid_to_time = NULL"
            " WHERE chain_id = %s AND pool = %s AND valid_to >= %s",
            (chain_id, pool, block),
        )


def _key(row: Row, n_key: int) -> tuple[str, ...]:
    return tuple(str(v) for v in row[2 : 2 + n_key])


def _values(row: Row, n_key: int, n_values: int) -> tuple[str, ...]:
    start = 3 + n_key  # chain_id, pool, key columns, block_number
    return tuple(_text(v) for v in row[start : start + n_values])


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _open_rows(
    conn: Conn, table: str, chain_id: int, pool: str, n_key: int, n_values: int
) -> dict[tuple[str, ...], tuple[str, ...]]:
    rows = conn.execute(
        f"SELECT * FROM {table} WHERE chain_id = %s AND pool = %s AND valid_to IS NULL", (chain_id, pool)
    ).fetchall()
    return {_key(r, n_key): _values(r, n_key, n_values) for r in rows}


def _close(
    conn: Conn,
    table: str,
    chain_id: int,
    pool: str,
    n_key: int,
    keys: Sequence[tuple[str, ...]],
    block: int,
    when: datetime,
) -> None:
    if not keys:
        return
    columns = ", ".join(("user_address", "asset")[:n_key])
    arrays = ", ".join(["%s::text[]"] * n_key)
    conn.execute(
        f"UPDATE {table} SET valid_to = %s, valid_to_time = %s"
        f" WHERE chain_id = %s AND pool = %s AND valid_to IS NULL"
        f" AND ({columns}) IN (SELECT * FROM unnest({arrays}))",
        (block, when, chain_id, pool, *([k[i] for k in keys] for i in range(n_key))),
    )
