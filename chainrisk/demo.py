"""The demo, step by step: devnet, scenario, indexing, reconciliation, the risk picture, recorded mainnet.

`chainrisk demo` calls these in order; each prints what it did on the console it is given. The steps call
the packages' own entry points (`devnet.stack`, `chainrisk.indexing`, `chainrisk.reconciling`, the lending
read API); what is left here is the order, the wording and the tables.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainrisk.context import AppContext
from chainrisk.inputs import OptionError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from devnet.stack import Stack
    from graph.at_risk import AtRisk as Shock
    from indexer.lending.read import AtRisk, BadDebt

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "data"
RECORDINGS = (
    ("mainnet block 18,000,000 (every log)", "chain/mainnet-block-18000000-logs.json"),
    ("mainnet Aave v3 + Uniswap v3 window", "chain/mainnet-aave-v3-window-25290309-logs.json"),
)
DEVNET_CHAIN_ID = 31337
RECONCILE_SAMPLE = 100
ETH_MOVES = (-0.1, -0.2, -0.3)

DEMO_HISTORY_PERIOD_S = 86_400
DEMO_SCENARIOS = 2_000


def missing_recordings(data: Path) -> list[Path]:
    """The recorded files the demo indexes that are not under `data`."""
    return [data / rel for _title, rel in RECORDINGS if not (data / rel).is_file()]


def require_recordings(data: Path) -> None:
    """Refuse before anything starts when the recorded mainnet data is not under `data`."""
    missing = missing_recordings(data)
    if missing:
        raise OptionError(
            f"recorded mainnet data missing: {', '.join(str(p) for p in missing)};"
            " pass --data with the folder that holds chain/ (the repository's data/ folder)"
        )


def database(out: Console, app: AppContext) -> str:
    """Start (or reuse) PostgreSQL and migrate it; returns its conninfo."""
    from chainrisk.db import redact_url

    with out.status("starting PostgreSQL and migrating"):
        conninfo = app.conninfo(migrate=True)
    out.print(f"database: {redact_url(app.database_url())}")
    return conninfo


def devnet(
    out: Console, app: AppContext, conninfo: str, days: int, wallets: int, seed: int
) -> dict[str, Any]:
    """Deploy the devnet, run the scenario, index the chain and reconcile it; returns the manifest."""
    from devnet.serve import manifest_path, write_manifest
    from devnet.stack import deploy_all, devnet_node

    home = app.settings.home.resolve()
    with devnet_node(home) as node:
        deploying = "deploying Aave v3 ('aave', 'spark'), a Governor, Uniswap v3 and Morpho Blue on anvil"
        with out.status(deploying):
            stack = deploy_all(node, home)
            manifest = write_manifest(stack.manifest(), manifest_path(home), node.url)
        out.print(
            f"devnet at {node.url}: markets deployed in blocks"
            f" {stack.deployment.start_block}-{stack.deployment.end_block}, governor, Uniswap v3 pools and"
            " Morpho Blue after them"
        )
        _simulate(out, stack, days, wallets, seed)
        _index_devnet(out, manifest, conninfo)
        _reconcile(out, app, node.url, int(manifest["chain_id"]))
    return manifest


def _simulate(out: Console, stack: Stack, days: int, wallets: int, seed: int) -> None:
    with out.status(f"simulating {days} days, {wallets} wallets") as status:
        result = stack.simulate(days, wallets, seed, progress=lambda line: status.update(line))
    out.print(
        f"scenario: {result.transactions:,} transactions in {result.blocks:,} blocks, "
        f"{len(result.liquidations)} Aave and {len(result.morpho_liquidations)} Morpho liquidations,"
        f" {len(result.proposals)} governance proposals,"
        f" ETH ${result.eth_low / 1e8:,.0f}-${result.eth_high / 1e8:,.0f} ({result.wall_s:.0f}s)"
    )


def _index_devnet(out: Console, manifest: dict[str, Any], conninfo: str) -> None:
    import psycopg

    from chainrisk.indexing import ChainIndexer
    from devnet.serve import indexer_toml
    from indexer.catalog import sync_config
    from indexer.config import IndexConfig
    from indexer.lending.morpho import sync_oracles
    from indexer.runner import config_plan

    config = IndexConfig(**tomllib.loads(indexer_toml(manifest)))
    with psycopg.connect(conninfo) as conn:
        sync_config(conn, config.chains, config.tokens, config.labels)
        sync_oracles(conn, config.chains, config.morpho_oracles)
    # The scenario packs a month into ~1,300 blocks: a daily history keeps the demo quick (docs/SQL.md).
    chain = config.chains[0].model_copy(update={"history_period_s": DEMO_HISTORY_PERIOD_S})
    plan = config_plan(chain, config.contracts, stop=None, follow=False)
    [outcome] = ChainIndexer([plan], conninfo, progress=True).run()
    out.print(
        f"indexed the devnet through block {outcome.cursor.block_number:,} ({outcome.summary});"
        f" daily position history: {outcome.refreshes:,} pool snapshots"
    )


def _reconcile(out: Console, app: AppContext, rpc_url: str, chain_id: int) -> None:
    """Rebuilt account data of sampled wallets against the node's getUserAccountData at the indexed head."""
    from chainrisk.reconciling import Request, Target, reconcile

    report, _ = reconcile(app, Target(None, chain_id, [rpc_url]), Request(RECONCILE_SAMPLE))
    per = {p: sum(1 for c in report.comparisons if c.wallet.protocol == p) for p in report.protocols}
    out.print(
        f"reconciled {len(report.comparisons)} sampled wallets (of {report.population:,}) against"
        f" Pool.getUserAccountData on the node at block {report.block:,}: {report.equal} equal to the wei"
        f" ({', '.join(f'{p} {n}' for p, n in per.items())}; Morpho Blue against position, market, price)"
    )


def risk_summary(out: Console, conninfo: str, manifest: dict[str, Any]) -> None:
    """Positions rebuilt from events (equal to getUserAccountData), then the at-risk picture and flows."""
    import psycopg

    from graph.at_risk import at_risk
    from indexer.lending import read
    from indexer.lending.health import indexed_head, pools, refresh, refresh_morpho
    from indexer.lending.morpho import morpho_contracts

    chain_id = int(manifest["chain_id"])
    eth_like = [manifest["assets"][s]["token"] for s in ("WETH", "wstETH") if s in manifest["assets"]]
    with psycopg.connect(conninfo) as conn:
        head = indexed_head(conn, chain_id)
        if head is None:
            return
        refreshed = [refresh(conn, chain_id, pool, head) for pool in pools(conn, chain_id)]
        markets = [
            r for m in morpho_contracts(conn, chain_id) for r in refresh_morpho(conn, chain_id, m, head)
        ]
        conn.commit()
        shocks = at_risk(conn, chain_id, eth_like, ETH_MOVES)
        under, bad = read.at_risk(conn, chain_id), read.unrealised_bad_debt(conn, chain_id)
    users, positions = sum(r.users for r in refreshed), sum(r.users for r in markets)
    out.print(
        f"positions: {users:,} Aave v3 accounts in {len(refreshed)} pools and {positions:,} Morpho Blue"
        f" positions in {len(markets)} markets, health factors at block {head:,}"
    )
    out.print(_risk_table(under, shocks, bad))
    out.print(_flows_table(conninfo, chain_id))


def contagion(out: Console, conninfo: str, manifest: dict[str, Any], home: Path) -> None:
    """The tail of bad debt over scenarios drawn from the analytics (stored), then the report."""
    import psycopg

    from chainrisk.contagion.runs import VarOptions, compute, prepare, save
    from chainrisk.contagion.scenarios import STRESS_DAYS
    from chainrisk.reports.build import write_report
    from chainrisk.reports.gather import gather

    chain_id = int(manifest["chain_id"])
    options = VarOptions(DEMO_SCENARIOS, seed=1, stress_days=STRESS_DAYS, engine="fast", chain_id=chain_id)
    request, _ = options.check()
    with psycopg.connect(conninfo) as conn:
        inputs, request = prepare(conn, options, request)
        run = compute(inputs, request, engine="fast")
        run_id = save(conn, inputs, request, run)
    tails = run.document["bad_debt_usd"]
    worst = max(run.document["stress_days"], key=lambda day: day["bad_debt_usd"])
    out.print(
        f"contagion: {DEMO_SCENARIOS:,} one-day scenarios (run {run_id}): VaR99 of bad debt"
        f" {tails['VaR99']['point']:,.0f} USD, ES99 {tails['ES99']['point']:,.0f} USD; worst stress day"
        f" {worst['day']}: {worst['bad_debt_usd']:,.0f} USD of bad debt after {worst['depth']} round(s)"
    )
    folder = home / "demo-report"
    with psycopg.connect(conninfo) as conn:
        report = gather(conn, "daily", None, datetime.now(UTC), chain_id=chain_id)
    write_report(report, folder)
    out.print(f"report: {folder / 'report.html'} and a forum post beside it (chainrisk report contagion)")


def _risk_table(under: AtRisk, shocks: list[Shock], bad: BadDebt) -> Table:
    from rich.table import Table

    table = Table(title="risk at the head of the devnet")
    table.add_column("measure")
    for column in ("accounts", "collateral (USD)", "debt (USD)"):
        table.add_column(column, justify="right")
    table.add_row(
        "health factor under 1.1",
        f"{under.accounts:,}",
        f"{under.collateral_usd:,.0f}",
        f"{under.debt_usd:,.0f}",
    )
    for row in shocks:
        table.add_row(
            f"liquidatable if ETH {row.move:+.0%}", f"{row.liquidatable_accounts:,}",
            f"{row.collateral_at_risk_usd:,.0f}", f"{row.debt_at_risk_usd:,.0f}",
        )  # fmt: skip
    table.add_row("bad debt (debt above collateral)", f"{bad.accounts:,}", "", f"{bad.usd:,.0f}")
    return table


def _flows_table(conninfo: str, chain_id: int) -> Table:
    """Whale transfers and exchange net flows per token, valued at the oracle prices of their blocks."""
    import psycopg
    from rich.table import Table

    from indexer.read import token_flows

    with psycopg.connect(conninfo) as conn:
        flows = token_flows(conn, chain_id)
    table = Table(title="whale flows and exchange net flows (USD)")
    for column in ("token", "whale transfers", "whales to exchanges", "net into exchanges", "peak hour"):
        table.add_column(column, justify="left" if column == "token" else "right")
    for f in flows:
        table.add_row(
            f.symbol,
            f"{f.whale_transfers:,}",
            f"{f.whales_to_exchanges_usd:,.0f}",
            f"{f.net_into_exchanges_usd:,.0f}",
            f"{f.peak_hour_usd:,.0f}",
        )
    return table


def index_recordings(out: Console, data: Path, conninfo: str) -> None:
    """Index each recording through the replay server, as the indexer would index a node."""
    from indexer.config import ChainConfig
    from indexer.replay import ReplayServer, load_recording
    from indexer.runner import adhoc_plan, run_plan

    for title, rel in RECORDINGS:
        path = data / rel
        recording = load_recording([path])
        with ReplayServer(recording) as server, out.status(f"indexing {title}"):
            chain = ChainConfig(name="mainnet", chain_id=1, rpc_urls=[server.url])
            plan = adhoc_plan(
                chain, (), recording.first, recording.last, follow=False, name=f"demo:{path.name}"
            )
            cursor = run_plan(plan, conninfo)
        out.print(f"indexed {title} (recorded, replayed): blocks {recording.first:,}–{cursor.block_number:,}")


def summary(out: Console, conninfo: str) -> None:
    """Events indexed per table and chain, then liquidations and governance in all."""
    import psycopg

    from indexer.lending import read
    from indexer.read import events_per_table, governance

    with psycopg.connect(conninfo) as conn:
        table = _events_table(events_per_table(conn))
        liquidations = read.liquidations(conn)
        votes = governance(conn)
    out.print(table)
    out.print(
        f"liquidations: {liquidations.count:,} of {liquidations.borrowers:,} borrowers;"
        f" ${liquidations.debt_repaid_usd:,.0f} of debt repaid for ${liquidations.collateral_seized_usd:,.0f}"
        " of collateral"
    )
    out.print(f"governance: {votes.proposals} proposals ({votes.executed} executed), {votes.votes} votes")


def _events_table(counts: dict[str, dict[int, int]]) -> Table:
    from rich.table import Table

    table = Table(title="indexed events by chain")
    for column in ("table", "devnet (31337)", "mainnet (1)"):
        table.add_column(column, justify="right" if column != "table" else "left")
    for name, per_chain in counts.items():
        table.add_row(name, f"{per_chain.get(DEVNET_CHAIN_ID, 0):,}", f"{per_chain.get(1, 0):,}")
    return table


def closing(out: Console, seconds: float) -> None:
    """How long it took and how to query what was indexed."""
    out.print(f"\ndone in {seconds:.0f}s. Query it with [bold]chainrisk db shell[/], e.g.")
    out.print(
        "  SELECT borrower, debt_asset, debt_to_cover FROM liquidations ORDER BY debt_to_cover DESC LIMIT 5;"
    )
    out.print("  SELECT event, reason, count(*) FROM quarantine GROUP BY 1, 2;")
