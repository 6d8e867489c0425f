"""`chainrisk demo`: the main job, end to end, on what exists today."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
RECORDINGS = (
    ("mainnet block 18,000,000 (every log)", "chain/mainnet-block-18000000-logs.json"),
    (
        "mainnet Aave v3 + Uniswap v3, blocks 25,290,209–25,290,309",
        "chain/mainnet-aave-v3-window-25290309-logs.json",
    ),
)


def demo(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="Folder of recorded chain data.")] = DEFAULT_DATA,
) -> None:
    """Index real recorded mainnet data into PostgreSQL through the replay server and summarise it.

    Uses the embedded PostgreSQL unless CHAINRISK_DATABASE_URL is set. Safe to run again: re-indexing a
    range replaces its rows.
    """
    from rich.console import Console

    from chainrisk.cli import app_context, fail
    from chainrisk.db import redact_url, to_libpq_url
    from chainrisk.migrate import upgrade

    console = Console(stderr=False)
    missing = [rel for _, rel in RECORDINGS if not (data / rel).exists()]
    if missing:
        raise fail(f"recorded data not found under {data}: {', '.join(missing)} (use --data DIR)")
    started = time.monotonic()
    with console.status("starting PostgreSQL and migrating"):
        url = app_context(ctx).database_url()
        upgrade(url)
    console.print(f"database: {redact_url(url)}")
    for title, rel in RECORDINGS:
        _index_recording(console, title, data / rel, to_libpq_url(url))
    _summary(console, to_libpq_url(url))
    console.print(
        f"\ndone in {time.monotonic() - started:.1f}s. Query it with [bold]chainrisk db shell[/], e.g."
    )
    console.print("  SELECT reserve, amount, user_address FROM aave_v3_borrow ORDER BY amount DESC LIMIT 5;")
    console.print("  SELECT event, reason, count(*) FROM quarantine GROUP BY 1, 2;")


def _index_recording(console: Any, title: str, path: Path, conninfo: str) -> None:
    from indexer.config import ChainConfig
    from indexer.replay import ReplayServer, load_recording
    from indexer.runner import adhoc_plan, run_plan

    recording = load_recording([path])
    with ReplayServer(recording) as server, console.status(f"indexing {title}"):
        chain = ChainConfig(name="mainnet", chain_id=1, rpc_urls=[server.url])
        first, last = recording.first, recording.last
        plan = adhoc_plan(chain, (), first, last, follow=False, name=f"demo:{path.name}")
        cursor = run_plan(plan, conninfo)
    console.print(f"indexed {title}: blocks {first:,}–{cursor.block_number:,}")


def _summary(console: Any, conninfo: str) -> None:
    import psycopg
    from rich.table import Table

    from indexer.tables import EVENT_TABLES

    table = Table(title="indexed events", show_lines=False)
    table.add_column("table")
    table.add_column("rows", justify="right")
    with psycopg.connect(conninfo) as conn:
        for name in ["logs", *sorted(EVENT_TABLES), "quarantine"]:
            (count,) = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone() or (0,)
            if count:
                table.add_row(name, f"{count:,}")
        (blocks,) = conn.execute("SELECT count(DISTINCT block_number) FROM logs").fetchone() or (0,)
    console.print(table)
    console.print(f"{blocks:,} blocks with logs")
