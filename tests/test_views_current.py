"""indexer/views.py holds the view set the migrations leave at the head, no more and no less."""

from __future__ import annotations

import psycopg

from chainrisk.db import to_libpq_url
from indexer.views import VIEWS


def _definitions(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, str]:
    rows = conn.execute(
        "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY viewname"
    ).fetchall()
    return {str(name): str(definition) for name, definition in rows}


def test_views_module_equals_the_migrated_views(any_db_url: str) -> None:
    with psycopg.connect(to_libpq_url(any_db_url)) as conn:
        migrated = _definitions(conn)
        assert set(migrated) == set(VIEWS)
        for sql in VIEWS.values():
            conn.execute(sql)
        assert _definitions(conn) == migrated
        conn.rollback()


def test_migrations_do_not_import_the_live_views() -> None:
    from pathlib import Path

    versions = Path(__file__).resolve().parent.parent / "migrations" / "versions"
    importing = [p.name for p in versions.glob("*.py") if "indexer.views" in p.read_text()]
    assert importing == []
