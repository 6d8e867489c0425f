"""One leader per database: a PostgreSQL session advisory lock, held by one connection for the term.

PostgreSQL frees a session lock when the session ends, so a leader that dies (even by SIGKILL) hands the
lead to the next process that asks. The lock's connection uses TCP keepalives: a leader cut off from the
database notices within seconds that its session (and so its lead) may be gone.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

import psycopg

# The lock key, as the indexer names its per-source locks: a 64-bit hash of a name.
LEADER_LOCK = "chainrisk:serve:leader"


def new_term() -> str:
    """A name for one leadership term: the host, the process and a random part (a pid can repeat)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaderLock:
    """The database's leader lock, tried without waiting; `alive` tells whether it is still held."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None

    def try_acquire(self, term: str) -> bool:
        """Take the lock if it is free; the session is named after `term` (pg_stat_activity shows it)."""
        if self._conn is None or self._conn.closed:
            # Keepalives: a leader cut off from the database learns within seconds that its lead may be gone.
            self._conn = psycopg.connect(
                self.conninfo,
                autocommit=True,
                application_name=f"chainrisk serve {term}"[:63],
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
            )
        row = self._conn.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (LEADER_LOCK,)
        ).fetchone()
        return bool(row and row[0])

    def alive(self) -> bool:
        """True while the session holding the lock still answers (and so still holds it)."""
        if self._conn is None or self._conn.closed:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def release(self) -> None:
        """End the session, and with it the lock."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
