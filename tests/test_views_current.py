"""indexer/views.py holds the view set the migrations leave at the head, no more and no less."""

from __future__ import annotations

import psycopg

from chainrisk.db import to_libpq_url
from indexer.views import FUNCTIONS, STATE_VIEWS, VIEWS


def _definitions(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, str]:
    rows = conn.execute(
        "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY viewname"
    ).fetchall()
    return {str(name): str(definition) for name, definition in rows}


def _functions(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, str]:
    rows = conn.execute(
        "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' ORDER BY 1"
    ).fetchall()
    return {str(name): str(definition) for name, definition in rows}


def test_views_module_equals_the_migrated_views(any_db_url: str) -> None:
    with psycopg.connect(to_libpq_url(any_db_url)) as conn:
        migrated, functions = _definitions(conn), _functions(conn)
        assert set(migrated) == set(VIEWS) | set(STATE_VIEWS)
        assert set(functions) == set(FUNCTIONS)
        for sql in [*STATE_VIEWS.values(), *VIEWS.values(), *FUNCTIONS.values()]:
            conn.execute(sql)
        assert _definitions(conn) == migrated
        assert _functions(conn) == functions
        conn.rollback()


def test_migrations_do_not_import_the_live_views() -> None:
    from pathlib import Path

    versions = Path(__file__).resolve().parent.parent / "migrations" / "versions"
    importing = [p.name for p in versions.glob("*.py") if "indexer.views" in p.read_text()]
    assert importing == []
