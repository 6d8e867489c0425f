"""Run Alembic from code, with the URL handed in rather than read from alembic.ini."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent
# pg_advisory_lock key held while migrating and seeding: "chainris" in ASCII, a number no one else picks.
MIGRATION_LOCK = 0x636861696E726973


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate to `revision`; at the head, (re)load the project's seed address labels too.

    Concurrent upgrades of one database take turns: the second finds the schema migrated and only reseeds.
    """
    with migration_lock(url):
        command.upgrade(alembic_config(url), revision)
        if revision == "head":
            seed(url)


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold the database's migration lock (a session advisory lock, freed if the process dies)."""
    import psycopg

    from chainrisk.db import to_libpq_url

    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def seed(url: str) -> None:
    import psycopg

    from chainrisk.db import to_libpq_url
    from indexer.catalog import seed_labels

    with psycopg.connect(to_libpq_url(url)) as conn:
        # A database migrated to a revision before the labels table has nothing to seed.
        row = conn.execute("SELECT to_regclass('address_labels') IS NOT NULL").fetchone()
        if row and row[0]:
            seed_labels(conn)


def check(url: str) -> None:
    """Raise if the tables declared in code differ from what the migrations create."""
    command.check(alembic_config(url))
