"""PostgreSQL side of the indexer: COPY writes, the cursor in the same transaction, rollback on reorgs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy.dialects.postgresql import JSONB

from indexer.project import Row, Rows
from indexer.tables import EVENT_TABLES, blocks, chain_derived_tables, logs, quarantine
from indexer.types import BlockHeader


@dataclass(frozen=True, slots=True)
class Cursor:
    name: str
    chain_id: int
    block_number: int
    block_hash: str


def _columns(table: sa.Table) -> list[str]:
    return [c.name for c in table.columns]


def _json_positions(table: sa.Table) -> list[int]:
    return [i for i, c in enumerate(table.columns) if isinstance(c.type, JSONB)]


_JSON_POSITIONS = {name: _json_positions(t) for name, t in EVENT_TABLES.items()}


class Store:
    """Writes batches atomically: rows, recent headers and the cursor commit together or not at all."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        self.conn = conn
        derived = chain_derived_tables()
        self._derived = [t.name for t in derived]
        # Tables filled from logs: a re-indexed range replaces their rows.
        self._log_tables = [t.name for t in derived if "log_index" in t.c]
        # History tables: a row closed at or after the fork holds again once the fork's rows are gone.
        self._ranged = [t.name for t in derived if "valid_to" in t.c]

    # -- reads ---------------------------------------------------------------------------------------
    def cursor(self, name: str) -> Cursor | None:
        row = self.conn.execute(
            "SELECT chain_id, block_number, block_hash FROM cursors WHERE name = %s", (name,)
        ).fetchone()
        self.conn.commit()
        if row is None:
            return None
        chain_id, number, block_hash = row
        return Cursor(name, int(str(chain_id)), int(str(number)), str(block_hash))

    def block_hash(self, chain_id: int, number: int) -> str | None:
        row = self.conn.execute(
            "SELECT hash FROM blocks WHERE chain_id = %s AND number = %s", (chain_id, number)
        ).fetchone()
        self.conn.commit()
        return None if row is None else str(row[0])

    # -- writes --------------------------------------------------------------------------------------
    def write_batch(
        self,
        cursor: Cursor,
        start: int,
        rows: Rows,
        headers: Iterable[BlockHeader],
        addresses: Sequence[str],
        prune_below: int,
    ) -> None:
        """Replace rows of blocks start..cursor.block_number and advance the cursor, in one transaction."""
        with self.conn.transaction():
            self._lock_chain(cursor.chain_id)
            self._delete_range(cursor.chain_id, start, cursor.block_number, addresses)
            self._copy_lines(logs.name, _columns(logs), rows.logs)
            self._copy(quarantine.name, _columns(quarantine), rows.quarantine)
            for table, lines in rows.lines.items():
                self._copy_lines(table, _columns(EVENT_TABLES[table]), lines)
            for table, typed_rows in rows.typed.items():
                self._copy(table, _columns(EVENT_TABLES[table]), _wrap_json(table, typed_rows))
            self._save_headers(cursor.chain_id, headers, prune_below)
            self._save_cursor(cursor)

    def _lock_chain(self, chain_id: int) -> None:
        """Serialise writers of one chain until commit: sources with overlapping addresses replace each
        other's rows (delete, then copy), which interleaved would leave duplicates."""
        self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"chain:{chain_id}",))

    def try_lock_source(self, name: str) -> bool:
        """Take this session's writer lock on a source (its cursor); False when another session has it."""
        row = self.conn.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (f"source:{name}",)
        ).fetchone()
        self.conn.commit()
        return bool(row and row[0])

    def _delete_range(self, chain_id: int, start: int, end: int, addresses: Sequence[str]) -> None:
        where = "chain_id = %s AND block_number BETWEEN %s AND %s"
        params: list[object] = [chain_id, start, end]
        if addresses:
            where += " AND address = ANY(%s)"
            params.append(list(addresses))
        for table in self._log_tables:
            self.conn.execute(sql.SQL("DELETE FROM {} WHERE " + where).format(sql.Identifier(table)), params)

    def _copy(self, table: str, columns: list[str], rows: Sequence[Row]) -> None:
        if not rows:
            return
        with self.conn.cursor().copy(_copy_statement(table, columns)) as copy:
            for row in rows:
                copy.write_row(row)

    def _copy_lines(self, table: str, columns: list[str], lines: list[str]) -> None:
        """COPY rows already in text format, in chunks of about a megabyte."""
        if not lines:
            return
        with self.conn.cursor().copy(_copy_statement(table, columns)) as copy:
            for start in range(0, len(lines), _LINES_PER_WRITE):
                copy.write("".join(lines[start : start + _LINES_PER_WRITE]))

    def _save_headers(self, chain_id: int, headers: Iterable[BlockHeader], prune_below: int) -> None:
        rows = [(chain_id, h.number, h.hash, h.parent_hash, h.timestamp) for h in headers]
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO blocks (chain_id, number, hash, parent_hash, timestamp)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (chain_id, number) DO UPDATE"
                    " SET hash = EXCLUDED.hash, parent_hash = EXCLUDED.parent_hash,"
                    " timestamp = EXCLUDED.timestamp",
                    rows,
                )
        self.conn.execute("DELETE FROM blocks WHERE chain_id = %s AND number < %s", (chain_id, prune_below))

    def _save_cursor(self, cursor: Cursor) -> None:
        self.conn.execute(
            "INSERT INTO cursors (name, chain_id, block_number, block_hash, updated_at)"
            " VALUES (%s, %s, %s, %s, now()) ON CONFLICT (name) DO UPDATE SET chain_id = EXCLUDED.chain_id,"
            " block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash, updated_at = now()",
            (cursor.name, cursor.chain_id, cursor.block_number, cursor.block_hash),
        )

    def rollback(self, chain_id: int, fork_block: int, depth: int, old_hash: str, new_hash: str) -> Cursor:
        """Delete every chain-derived row at or above fork_block, reopen history rows closed there, move
        cursors back and record the reorg, in one transaction."""
        with self.conn.transaction():
            self._lock_chain(chain_id)
            for table in self._derived:
                column = "number" if table == blocks.name else "block_number"
                self.conn.execute(
                    sql.SQL("DELETE FROM {} WHERE chain_id = %s AND {} >= %s").format(
                        sql.Identifier(table), sql.Identifier(column)
                    ),
                    (chain_id, fork_block),
                )
            for table in self._ranged:
                self.conn.execute(
                    sql.SQL(_REOPEN).format(sql.Identifier(table)),
                    (chain_id, fork_block),
                )
            parent = self.conn.execute(
                "SELECT hash FROM blocks WHERE chain_id = %s AND number = %s", (chain_id, fork_block - 1)
            ).fetchone()
            parent_hash = str(parent[0]) if parent else ""
            self.conn.execute(
                "UPDATE cursors SET block_number = %s, block_hash = %s, updated_at = now()"
                " WHERE chain_id = %s AND block_number >= %s",
                (fork_block - 1, parent_hash, chain_id, fork_block),
            )
            self.conn.execute(
                "INSERT INTO reorgs (chain_id, fork_block, depth, old_hash, new_hash)"
                " VALUES (%s, %s, %s, %s, %s)",
                (chain_id, fork_block, depth, old_hash, new_hash),
            )
        return Cursor("", chain_id, fork_block - 1, parent_hash)


_LINES_PER_WRITE = 2_000
_REOPEN = "UPDATE {} SET valid_to = NULL, valid_to_time = NULL WHERE chain_id = %s AND valid_to >= %s"


def _copy_statement(table: str, columns: list[str]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


def _wrap_json(table: str, rows: list[Row]) -> list[Row]:
    positions = _JSON_POSITIONS[table]
    if not positions:
        return rows
    wrapped = []
    for row in rows:
        values = list(row)
        for i in positions:
            values[i] = Jsonb(values[i])
        wrapped.append(tuple(values))
    return wrapped
