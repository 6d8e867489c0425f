"""`chainrisk labels`: the address book behind whale flows and exchange net flows."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Address labels (exchanges, protocols, bridges, treasuries). Seeded from the project's file on"
    " `chainrisk migrate`; \\[\\[labels]] in chainrisk.toml and your edits here take precedence"
    " over the seed.",
    no_args_is_help=True,
)

ChainId = Annotated[int, typer.Option("--chain-id", min=1, help="Chain id of the address.")]
CATEGORIES = "exchange, protocol, bridge, treasury, fund, market_maker or other"


def _conninfo(ctx: typer.Context) -> str:
    from chainrisk.cli import app_context
    from chainrisk.db import to_libpq_url
    from chainrisk.migrate import upgrade

    url = app_context(ctx).database_url()
    upgrade(url)
    return to_libpq_url(url)


@app.command("list")
def list_(
    ctx: typer.Context,
    chain_id: Annotated[int | None, typer.Option("--chain-id", help="Only this chain.")] = None,
    category: Annotated[str | None, typer.Option(help=f"Only this category: {CATEGORIES}.")] = None,
) -> None:
    """Print the labels as a table."""
    import psycopg
    from rich.console import Console
    from rich.table import Table

    from indexer.catalog import list_labels

    with psycopg.connect(_conninfo(ctx)) as conn:
        rows = list_labels(conn, chain_id, category)
    table = Table(title=f"{len(rows)} address labels")
    for column in ("chain", "address", "label", "category", "source", "reference"):
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console().print(table)


@app.command()
def add(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="0x… address (40 hex digits).")],
    label: Annotated[str, typer.Argument(help="A name, e.g. 'Binance 14'.")],
    category: Annotated[str, typer.Option(help=f"One of {CATEGORIES}.")],
    chain_id: ChainId = 1,
    reference: Annotated[str | None, typer.Option(help="Where the label can be checked.")] = None,
) -> None:
    """Add or change a label; it overrides the seed file and chainrisk.toml."""
    import psycopg

    from chainrisk.cli import fail
    from indexer.catalog import CatalogError, make_label, upsert_labels

    try:
        entry = make_label(chain_id, address, label, category, reference)
    except CatalogError as exc:
        raise fail(str(exc)) from None
    with psycopg.connect(_conninfo(ctx)) as conn:
        upsert_labels(conn, [entry], "user")
    typer.echo(f"{entry.address} on chain {chain_id}: {entry.label} ({entry.category})")


@app.command()
def remove(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="0x… address.")],
    chain_id: ChainId = 1,
) -> None:
    """Delete a label (a seed label comes back on the next `chainrisk migrate`)."""
    import psycopg

    from chainrisk.cli import fail
    from indexer.catalog import CatalogError, remove_label

    try:
        with psycopg.connect(_conninfo(ctx)) as conn:
            removed = remove_label(conn, chain_id, address)
    except CatalogError as exc:
        raise fail(str(exc)) from None
    if not removed:
        raise fail(f"no label for {address} on chain {chain_id}", code=1)
    typer.echo(f"removed the label of {address.lower()} on chain {chain_id}")


@app.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="CSV with columns chain_id,address,label,category[,reference].")
    ],
) -> None:
    """Load labels from a CSV as your own edits; a bad row rejects the whole file."""
    import psycopg

    from chainrisk.cli import fail
    from indexer.catalog import CatalogError, read_labels_csv, upsert_labels

    try:
        labels = read_labels_csv(path)
    except CatalogError as exc:
        raise fail(str(exc)) from None
    with psycopg.connect(_conninfo(ctx)) as conn:
        count = upsert_labels(conn, labels, "user")
    typer.echo(f"imported {count} labels from {path}")


@app.command()
def export(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option(help="Write here instead of standard output.")] = None,
) -> None:
    """Write every label as CSV (the format `import` reads)."""
    import psycopg

    from indexer.catalog import list_labels

    with psycopg.connect(_conninfo(ctx)) as conn:
        rows = list_labels(conn)
    handle = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
    try:
        writer = csv.writer(handle)
        writer.writerow(["chain_id", "address", "label", "category", "reference", "source"])
        for chain, address, label, category, source, reference in rows:
            writer.writerow([chain, address, label, category, reference or "", source])
    finally:
        if out:
            handle.close()
