"""Run Alembic from code, with the URL handed in rather than read from alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate to `revision`; at the head, (re)load the project's seed address labels too."""
    command.upgrade(alembic_config(url), revision)
    if revision == "head":
        seed(url)


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
