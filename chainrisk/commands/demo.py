"""`chainrisk demo`: the main job, end to end — devnet, scenario, indexer, summary."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT / "data"
RECORDINGS = (
    ("mainnet block 18,000,000 (every log)", "chain/mainnet-block-18000000-logs.json"),
    ("mainnet Aave v3 + Uniswap v3 window", "chain/mainnet-aave-v3-window-25290309-logs.json"),
)
GENESIS_TIMESTAMP = 1_735_689_600


def demo(
    ctx: typer.Context,
    days: Annotated[int, typer.Option(min=1, help="Simulated days of the market scenario.")] = 30,
    wallets: Annotated[int, typer.Option(min=2, help="Wallets in the scenario.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the price path and the agents.")] = 1,
    data: Annotated[
        Path, typer.Option(help="Folder of recorded mainnet data (the repository's data/).")
    ] = DEFAULT_DATA,
) -> None:
    """Devnet with real Aave v3 markets, a seeded market scenario with a crash, everything indexed.

    Starts (or reuses) the embedded PostgreSQL unless CHAINRISK_DATABASE_URL is set, starts anvil, deploys,
    simulates, indexes the chain, indexes the recorded mainnet data through the replay server, and prints
    what was indexed and how to query it.
    """
    from rich.console import Console

    from chainrisk.cli import app_context, fail
    from chainrisk.db import redact_url, to_libpq_url
    from chainrisk.migrate import upgrade

    missing = missing_recordings(data)
    if missing:
        raise fail(
            f"recorded mainnet data missing: {', '.join(str(p) for p in missing)};"
            " pass --data with the folder that holds chain/ (the repository's data/ folder)"
        )
    console = Console()
    app = app_context(ctx)
    started = time.monotonic()
    with console.status("starting PostgreSQL and migrating"):
        url = app.database_url()
        upgrade(url)
    console.print(f"database: {redact_url(url)}")
    conninfo = to_libpq_url(url)
    manifest = _devnet(console, app.settings.home.resolve(), conninfo, days, wallets, seed)
    _risk_summary(console, conninfo, manifest)
    for title, rel in RECORDINGS:
        _index_recording(console, title, data / rel, conninfo)
    _summary(console, conninfo)
    console.print(
        f"\ndone in {time.monotonic() - started:.0f}s. Query it with [bold]chainrisk db shell[/], e.g."
    )
    console.print(
        "  SELECT borrower, debt_asset, debt_to_cover FROM liquidations ORDER BY debt_to_cover DESC LIMIT 5;"
    )
    console.print("  SELECT event, reason, count(*) FROM quarantine GROUP BY 1, 2;")


def missing_recordings(data: Path) -> list[Path]:
    """The recorded files the demo indexes that are not under `data`."""
    return [data / rel for _title, rel in RECORDINGS if not (data / rel).is_file()]


def _devnet(console: Any, home: Path, conninfo: str, days: int, wallets: int, seed: int) -> dict[str, Any]:
    from devnet.aave import deploy_markets
    from devnet.governance import default_holders, deploy_governance, manifest_with_governance
    from devnet.scenario import BLOCK_S, simulate
    from devnet.serve import PortAnvil, manifest_path, write_manifest
    from devnet.uniswap import deploy_uniswap, manifest_with_uniswap

    with PortAnvil(home, 0, extra_args=["--timestamp", str(GENESIS_TIMESTAMP)]) as node:
        node.rpc("anvil_setBlockTimestampInterval", [BLOCK_S])
        with console.status(
            "deploying Aave v3 markets 'aave' and 'spark', a Governor and Uniswap v3 on anvil"
        ):
            deployment = deploy_markets(node, home)
            governance = deploy_governance(deployment, home, default_holders())
            uniswap = deploy_uniswap(deployment, home)
            body = manifest_with_uniswap(
                manifest_with_governance(deployment.to_manifest(), governance), uniswap
            )
            manifest = write_manifest(body, manifest_path(home), node.url)
        console.print(
            f"devnet at {node.url}: markets deployed in blocks"
            f" {deployment.start_block}-{deployment.end_block}, governor and Uniswap v3 pools after them"
        )
        with console.status(f"simulating {days} days, {wallets} wallets") as status:
            result = simulate(
                deployment, days, wallets, seed, governance=governance, uniswap=uniswap,
                progress=lambda line: status.update(line),
            )  # fmt: skip
        console.print(
            f"scenario: {result.transactions:,} transactions in {result.blocks:,} blocks, "
            f"{len(result.liquidations)} liquidations, {len(result.proposals)} governance proposals,"
            f" ETH ${result.eth_low / 1e8:,.0f}-${result.eth_high / 1e8:,.0f} ({result.wall_s:.0f}s)"
        )
        _index_devnet(console, manifest, conninfo)
        _reconcile(console, node.url, conninfo, int(manifest["chain_id"]))
    return manifest


def _reconcile(console: Any, rpc_url: str, conninfo: str, chain_id: int, sample: int = 100) -> None:
    """Rebuilt account data of sampled wallets against the node's getUserAccountData at the indexed head."""
    import psycopg

    from indexer.chain import HttpChainClient
    from indexer.lending.health import indexed_head, pools
    from indexer.lending.reconcile import chain_account_data, compare, plan_at

    client = HttpChainClient([rpc_url])
    try:
        with psycopg.connect(conninfo) as conn:
            head = indexed_head(conn, chain_id)
            if head is None:
                return
            plan = plan_at(
                conn, client, chain_id, pools(conn, chain_id), head, sample=sample, seed=0, version="3.0"
            )
        report = compare(plan, chain_account_data(client, plan.wallets, head), tolerance_wei=0)
    finally:
        client.close()
    console.print(
        f"reconciled {len(report.comparisons)} sampled wallets (of {report.population:,}) against"
        f" Pool.getUserAccountData on the node at block {head:,}: {report.equal} equal to the wei"
    )


def _index_devnet(console: Any, manifest: dict[str, Any], conninfo: str) -> None:
    import psycopg

    from chainrisk.indexing import ChainIndexer
    from devnet.serve import indexer_toml
    from indexer.catalog import sync_config
    from indexer.config import IndexConfig
    from indexer.runner import config_plan

    config = IndexConfig(**tomllib.loads(indexer_toml(manifest)))
    chain = config.chains[0]
    with psycopg.connect(conninfo) as conn:
        sync_config(conn, config.chains, config.tokens, config.labels)
    plan = config_plan(chain, config.contracts, stop=None, follow=False)
    [outcome] = ChainIndexer([plan], conninfo, progress=True).run()
    console.print(
        f"indexed the devnet through block {outcome.cursor.block_number:,} ({outcome.summary});"
        f" positions recorded at {outcome.refreshes:,} pool-blocks"
    )


def _risk_summary(console: Any, conninfo: str, manifest: dict[str, Any]) -> None:
    """Positions rebuilt from events (equal to getUserAccountData), then the at-risk picture."""
    import psycopg
    from rich.table import Table

    from graph.at_risk import at_risk
    from indexer.lending.health import indexed_head, pools, refresh

    chain_id = int(manifest["chain_id"])
    eth_like = [manifest["assets"][s]["token"] for s in ("WETH", "wstETH") if s in manifest["assets"]]
    with psycopg.connect(conninfo) as conn:
        head = indexed_head(conn, chain_id)
        if head is None:
            return
        refreshed = [refresh(conn, chain_id, pool, head) for pool in pools(conn, chain_id)]
        shocks = at_risk(conn, chain_id, eth_like, [-0.1, -0.2, -0.3])
        under = conn.execute(RISK_QUERIES["under_1_1"], (chain_id,)).fetchone()
        bad = conn.execute(RISK_QUERIES["bad_debt"], (chain_id,)).fetchone()
    users = sum(r.users for r in refreshed)
    console.print(
        f"positions: {users:,} accounts in {len(refreshed)} pools, health factors at block {head:,}"
    )
    table = Table(title="risk at the head of the devnet")
    table.add_column("measure")
    table.add_column("accounts", justify="right")
    table.add_column("collateral (USD)", justify="right")
    table.add_column("debt (USD)", justify="right")
    if under:
        table.add_row("health factor under 1.1", f"{under[0]:,}", f"{under[1]:,.0f}", f"{under[2]:,.0f}")
    for row in shocks:
        table.add_row(
            f"liquidatable if ETH {row.move:+.0%}", f"{row.liquidatable_accounts:,}",
            f"{row.collateral_at_risk_usd:,.0f}", f"{row.debt_at_risk_usd:,.0f}",
        )  # fmt: skip
    if bad:
        table.add_row("bad debt (debt above collateral)", f"{bad[0]:,}", "", f"{bad[1]:,.0f}")
    console.print(table)
    _flows(console, conninfo, chain_id)


def _flows(console: Any, conninfo: str, chain_id: int) -> None:
    """Whale transfers and exchange net flows per token, valued at the oracle prices of their blocks."""
    import psycopg
    from rich.table import Table

    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(RISK_QUERIES["flows"], (chain_id, chain_id)).fetchall()
    table = Table(title="whale flows and exchange net flows (USD)")
    for column in ("token", "whale transfers", "whales to exchanges", "net into exchanges", "peak hour"):
        table.add_column(column, justify="left" if column == "token" else "right")
    for symbol, whales, to_exchanges, net, peak in rows:
        table.add_row(str(symbol), f"{whales:,}", f"{to_exchanges:,.0f}", f"{net:,.0f}", f"{peak:,.0f}")
    console.print(table)


RISK_QUERIES = {
    "under_1_1": "SELECT count(*), coalesce(sum(collateral_usd), 0), coalesce(sum(debt_usd), 0)"
    " FROM positions_at_risk WHERE chain_id = %s",
    "bad_debt": "SELECT count(*), coalesce(sum(usd), 0) FROM bad_debt"
    " WHERE chain_id = %s AND kind = 'unrealised'",
    "flows": """
        WITH w AS (
            SELECT symbol, count(*) AS whales,
                   coalesce(sum(usd) FILTER (WHERE direction = 'to_exchange'), 0) AS to_exchanges
            FROM whale_flows WHERE chain_id = %s GROUP BY symbol
        ), n AS (
            SELECT symbol, sum(netflow_usd) AS net, max(netflow_usd) AS peak
            FROM exchange_netflows WHERE chain_id = %s GROUP BY symbol
        )
        SELECT symbol, coalesce(w.whales, 0), coalesce(w.to_exchanges, 0), coalesce(n.net, 0),
               coalesce(n.peak, 0)
        FROM w FULL JOIN n USING (symbol)
        ORDER BY symbol
    """,
}


def _index_recording(console: Any, title: str, path: Path, conninfo: str) -> None:
    from indexer.config import ChainConfig
    from indexer.replay import ReplayServer, load_recording
    from indexer.runner import adhoc_plan, run_plan

    recording = load_recording([path])
    with ReplayServer(recording) as server, console.status(f"indexing {title}"):
        chain = ChainConfig(name="mainnet", chain_id=1, rpc_urls=[server.url])
        plan = adhoc_plan(chain, (), recording.first, recording.last, follow=False, name=f"demo:{path.name}")
        cursor = run_plan(plan, conninfo)
    console.print(f"indexed {title} (recorded, replayed): blocks {recording.first:,}–{cursor.block_number:,}")


def _summary(console: Any, conninfo: str) -> None:
    import psycopg
    from rich.table import Table

    from indexer.tables import EVENT_TABLES

    table = Table(title="indexed events by chain")
    for column in ("table", "devnet (31337)", "mainnet (1)"):
        table.add_column(column, justify="right" if column != "table" else "left")
    with psycopg.connect(conninfo) as conn:
        for name in ["logs", *sorted(EVENT_TABLES), "quarantine"]:
            counts: dict[int, int] = dict(
                conn.execute(f'SELECT chain_id, count(*) FROM "{name}" GROUP BY 1').fetchall()
            )
            if counts:
                table.add_row(name, f"{counts.get(31337, 0):,}", f"{counts.get(1, 0):,}")
        liquidations = conn.execute(
            "SELECT count(*), count(DISTINCT borrower), coalesce(sum(debt_repaid_usd), 0),"
            " coalesce(sum(collateral_seized_usd), 0) FROM liquidations"
        ).fetchone()
        proposals = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE state = 'executed'), coalesce(sum(voters), 0)"
            " FROM proposals"
        ).fetchone()
    console.print(table)
    if liquidations:
        console.print(
            f"liquidations: {liquidations[0]:,} of {liquidations[1]:,} borrowers;"
            f" ${liquidations[2]:,.0f} of debt repaid for ${liquidations[3]:,.0f} of collateral"
        )
    if proposals:
        console.print(f"governance: {proposals[0]} proposals ({proposals[1]} executed), {proposals[2]} votes")
