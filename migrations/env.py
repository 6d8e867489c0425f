"""Alembic environment: the URL comes from chainrisk settings (or the caller), metadata from every package."""

from __future__ import annotations

import sys

from alembic import context
from sqlalchemy import create_engine

from chainrisk.schema import all_metadata


def _url() -> str:
    url = context.config.attributes.get("url") or context.config.get_main_option("sqlalchemy.url")
    if url:
        return str(url)
    from chainrisk.db import resolve_url
    from chainrisk.errors import ChainriskError
    from chainrisk.settings import load_settings

    try:
        settings = load_settings()
        return resolve_url(settings.database_url, settings.home)
    except ChainriskError as exc:  # run as `alembic ...`: the same one line as the chainrisk command
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(exc.exit_code) from None


def run_migrations_online() -> None:
    engine = create_engine(_url())
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=all_metadata(), compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()  # a failed migration must not leave its connection open


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=all_metadata(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
