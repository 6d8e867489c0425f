"""`chainrisk labels`: the address book behind whale flows and exchange net flows."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer

from chainrisk.context import app_context, console, fail
from chainrisk.exits import new_app
from chainrisk.inputs import MAX_CHAIN_ID

app = new_app(
    help="Address labels (exchanges, protocols, bridges, treasuries). Seeded from the project's file on"
    " `chainrisk migrate`; \\[\\[labels]] in chainrisk.toml and your edits here take precedence"
    " over the seed.",
    no_args_is_help=True,
)

ChainId = Annotated[int, typer.Option("--chain-id", min=1, max=MAX_CHAIN_ID, help="Chain id of the address.")]
CATEGORIES = "exchange, protocol, bridge, treasury, fund, market_maker or other"


def _conninfo(ctx: typer.Context) -> str:
    """The database, its schema brought up to date first (the seed labels come with it)."""
    return app_context(ctx).conninfo(migrate=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    chain_id: Annotated[
        int | None, typer.Option("--chain-id", min=1, max=MAX_CHAIN_ID, help="Only this chain.")
    ] = None,
    category: Annotated[str | None, typer.Option(help=f"Only this category: {CATEGORIES}.")] = None,
) -> None:
    """Print the labels as a table."""
    import psycopg
    from rich.table import Table

    from chainrisk.inputs import OptionError
    from indexer.catalog import list_labels
    from indexer.config import LABEL_CATEGORIES

    if category is not None and category not in LABEL_CATEGORIES:
        raise OptionError(f"--category {category!r}: expected one of {CATEGORIES}")
    with psycopg.connect(_conninfo(ctx)) as conn:
        rows = list_labels(conn, chain_id, category)
    table = Table(title=f"{len(rows)} address labels")
    for column in ("chain", "address", "label", "category", "source", "reference"):
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console().print(table)


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

    from indexer.catalog import make_label, upsert_labels

    entry = make_label(chain_id, address, label, category, reference, where="labels add")
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

    from chainrisk.inputs import addresses
    from indexer.catalog import remove_label

    (checked,) = addresses("ADDRESS", [address])
    with psycopg.connect(_conninfo(ctx)) as conn:
        removed = remove_label(conn, chain_id, checked)
    if not removed:
        raise fail(
            f"no label for {checked} on chain {chain_id}: `chainrisk labels list --chain-id {chain_id}`"
            " shows the labelled addresses",
            code=1,
        )
    typer.echo(f"removed the label of {checked} on chain {chain_id}")


@app.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="CSV with columns chain_id,address,label,category[,reference].")
    ],
) -> None:
    """Load labels from a CSV as your own edits; a bad row rejects the whole file."""
    import psycopg

    from indexer.catalog import read_labels_csv, upsert_labels

    labels = read_labels_csv(path)
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

    from chainrisk.inputs import output_file
    from indexer.catalog import list_labels

    if out is not None:
        output_file("--out", out)
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
