"""indexer/views.py holds the view set the migrations leave at the head, no more and no less."""

from __future__ import annotations

import psycopg

from analytics.views import VIEWS as FORECAST_VIEWS
from chainrisk.alerts.views import VIEWS as ALERT_VIEWS
from chainrisk.contagion.views import VIEWS as CONTAGION_VIEWS
from chainrisk.db import to_libpq_url
from chainrisk.reports.views import VIEWS as REPORT_VIEWS
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
        modules = [VIEWS, STATE_VIEWS, FORECAST_VIEWS, CONTAGION_VIEWS, ALERT_VIEWS]
        modules.append(REPORT_VIEWS)
        assert set(migrated) == set().union(*modules)
        assert set(functions) == set(FUNCTIONS)
        views = [*STATE_VIEWS.values(), *VIEWS.values(), *FORECAST_VIEWS.values()]
        for sql in [*views, *CONTAGION_VIEWS.values(), *ALERT_VIEWS.values(), *FUNCTIONS.values()]:
            conn.execute(sql)
        for sql in REPORT_VIEWS.values():
            conn.execute(sql)
        assert _definitions(conn) == migrated
        assert _functions(conn) == functions
        conn.rollback()


def test_migrations_do_not_import_the_live_views() -> None:
    from pathlib import Path

    versions = Path(__file__).resolve().parent.parent / "migrations" / "versions"
    importing = [p.name for p in versions.glob("*.py") if "indexer.views" in p.read_text()]
    assert importing == []


def test_the_reader_sees_the_latest_forecasts_and_regimes(db_url: str) -> None:
    import uuid

    from chainrisk.db import grant_reader
    from chainrisk.reader import reader_views

    conninfo = to_libpq_url(db_url)
    with psycopg.connect(conninfo) as conn:
        for day, variance in (("2024-01-01", 0.0004), ("2024-01-02", 0.0009)):
            run = conn.execute(
                "INSERT INTO forecast_runs (asset, target, source, input_start, input_end, code_version)"
                " VALUES ('ETH', 'parkinson', 'file', '2020-01-01', %s, 'v') RETURNING id",
                (day,),
            ).fetchone()
            assert run is not None
            conn.execute(
                "INSERT INTO volatility_forecasts VALUES (%s, 'har', 1, 'har-1', 'ETH', %s, %s, %s, 0.9,"
                " -0.05, 0.05)",
                (run[0], day, variance, variance**0.5),
            )
            conn.execute(
                "INSERT INTO regime_probabilities VALUES (%s, %s, 1, 2, 'ms-1', 'ETH', %s, 0.04)",
                (run[0], day, 0.3 if day.endswith("1") else 0.8),
            )
    name = f"reader_{uuid.uuid4().hex[:8]}"
    grant_reader(db_url, name, f"pw-{name}", sorted(reader_views()))
    try:
        with psycopg.connect(conninfo.replace("://postgres@", f"://{name}:pw-{name}@")) as conn:
            latest = conn.execute("SELECT as_of::text, variance FROM forecasts_latest").fetchall()
            regimes = conn.execute("SELECT day::text, probability FROM regimes_latest").fetchall()
            assert conn.execute("SELECT count(*) FROM forecasts").fetchone() == (2,)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{name}"')
            conn.execute(f'DROP ROLE "{name}"')
    assert latest == [("2024-01-02", 0.0009)]
    assert regimes == [("2024-01-02", 0.8)]
