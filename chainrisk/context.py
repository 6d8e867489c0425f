"""What every command reads: the settings, the database (resolved once), a console, and `fail`.

`chainrisk.cli` builds the `AppContext` in its callback; commands reach it with `app_context(ctx)`. Commands
import this module, never `chainrisk.cli`, so the CLI imports its commands and not the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

from chainrisk.errors import ChainriskError
from chainrisk.settings import Settings

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class AppContext:
    settings: Settings
    _url: str | None = None

    def database_url(self) -> str:
        """Resolve once per process; starts the embedded server when no URL is configured."""
        if self._url is None:
            from chainrisk.db import resolve_url

            self._url = resolve_url(self.settings.database_url, self.settings.home)
        return self._url

    def conninfo(self, *, migrate: bool = False) -> str:
        """The database as a libpq conninfo; `migrate` brings the schema up to date first."""
        from chainrisk.db import to_libpq_url

        url = self.database_url()
        if migrate:
            from chainrisk.migrate import upgrade

            upgrade(url)
        return to_libpq_url(url)


def app_context(ctx: typer.Context) -> AppContext:
    """The context the CLI's callback put on the root of `ctx`."""
    obj = ctx.find_root().obj
    assert isinstance(obj, AppContext)
    return obj


def console(*, stderr: bool = False) -> Console:
    """A rich console: stdout for what a command reports, stderr for status beside data it prints."""
    from rich.console import Console  # rich only when a command draws tables or spinners

    return Console(stderr=stderr)


def fail(message: str, code: int = 2) -> ChainriskError:
    """An error to raise; the app prints it as `error: <message>` and exits with `code`."""
    error = ChainriskError(message)
    error.exit_code = code
    return error
