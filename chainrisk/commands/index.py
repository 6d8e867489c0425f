"""`chainrisk index`: backfill and follow, from chainrisk.toml or ad-hoc flags."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Annotated

import typer

from chainrisk.context import AppContext, app_context
from chainrisk.inputs import MAX_BLOCK, MAX_CHAIN_ID, free_port

if TYPE_CHECKING:
    from indexer.runner import Plan

RPC_HELP = "JSON-RPC URL; repeat for failover. Without it, chains come from the config."
CHAIN_ID_HELP = "Expected chain id (ad-hoc); default: the node's."
FINALITY_HELP = (
    "Reorg window in blocks (ad-hoc). Against the node's `finalized` tag the deeper one wins: block hashes"
    " are kept, and reorgs rolled back, for every block above min(finalized, head - N), so never fewer than"
    " N blocks."
)
TIMEOUT_HELP = "Seconds one JSON-RPC request may take before it is retried (ad-hoc)."
METRICS_HELP = "Serve Prometheus metrics on this port (0: off)."
POSITIONS_HELP = "Keep Aave positions, health factors and their history current as batches commit."
REWIND_HELP = "Delete rows above this block and move cursors back, then exit."

Rpc = Annotated[list[str] | None, typer.Option("--rpc", help=RPC_HELP)]
Address = Annotated[
    list[str] | None, typer.Option("--address", help="Only logs of this contract; repeatable.")
]
FromBlock = Annotated[
    int | None, typer.Option("--from", min=0, max=MAX_BLOCK, help="First block (ad-hoc mode).")
]
ToBlock = Annotated[
    int | None, typer.Option("--to", min=0, max=MAX_BLOCK, help="Last block; default: the head.")
]
Follow = Annotated[bool, typer.Option("--follow", help="Keep following the head after the backfill.")]
ChainId = Annotated[int | None, typer.Option(min=1, max=MAX_CHAIN_ID, help=CHAIN_ID_HELP)]
FinalityDepth = Annotated[int, typer.Option(min=0, max=10_000, help=FINALITY_HELP)]
MaxRange = Annotated[int, typer.Option(min=1, max=1_000_000, help="Largest eth_getLogs range (ad-hoc).")]
RpcTimeout = Annotated[float, typer.Option("--rpc-timeout", help=TIMEOUT_HELP)]
Name = Annotated[str | None, typer.Option(help="Cursor name (ad-hoc); default derived from the filter.")]
MetricsPort = Annotated[int | None, typer.Option(envvar="CHAINRISK_METRICS_PORT", help=METRICS_HELP)]
ShowProgress = Annotated[bool, typer.Option(help="Show a progress bar.")]
Positions = Annotated[bool, typer.Option(help=POSITIONS_HELP)]
RewindTo = Annotated[int | None, typer.Option(min=0, max=MAX_BLOCK, help=REWIND_HELP)]


def index(
    ctx: typer.Context,
    rpc: Rpc = None,
    address: Address = None,
    from_block: FromBlock = None,
    to_block: ToBlock = None,
    follow: Follow = False,
    chain_id: ChainId = None,
    finality_depth: FinalityDepth = 64,
    max_range: MaxRange = 2000,
    rpc_timeout: RpcTimeout = 30.0,
    name: Name = None,
    metrics_port: MetricsPort = None,
    progress: ShowProgress = True,
    positions: Positions = True,
    rewind_to: RewindTo = None,
) -> None:
    """Copy event logs into PostgreSQL: raw `logs`, decoded event tables, `quarantine` for bad logs.

    Ad-hoc: `chainrisk index --rpc URL [--address A ...] --from N --to M`. With no address every log in
    the range is indexed. Without --rpc, every chain and contract in chainrisk.toml is indexed.
    Restarting resumes exactly after the last committed block.
    """
    from chainrisk import indexing

    app = app_context(ctx)
    # Every input is checked before the database is touched: a refused run changes nothing.
    request = indexing.IndexRequest(
        rpc, address, from_block, to_block, follow, chain_id, finality_depth, max_range, name, rpc_timeout
    )
    plans = indexing.plans(app.settings, request)
    port = _metrics_port(ctx, app, metrics_port)
    conninfo = app.conninfo(migrate=True)
    metrics = indexing.metrics_on(port, app.settings.metrics_addr)
    if rewind_to is not None:
        _rewind(conninfo, plans, rewind_to)
        return
    if not rpc:
        indexing.sync_catalog(conninfo, app.settings)
    indexer = indexing.ChainIndexer(plans, conninfo, metrics, keep_positions=positions, progress=progress)
    signal.signal(signal.SIGTERM, lambda signum, frame: indexer.stop())
    indexer.run(on_outcome=lambda outcome: typer.echo(outcome.line()))


def _metrics_port(ctx: typer.Context, app: AppContext, flag: int | None) -> int:
    """The metrics port (0: off), checked free before the database is touched."""
    port = flag if flag is not None else app.settings.metrics_port
    if port:
        free_port(_port_source(ctx, flag), port, app.settings.metrics_addr)
    return port


def _port_source(ctx: typer.Context, flag: int | None) -> str:
    """Where the metrics port came from, for a message about it."""
    if flag is None:
        return "metrics_port (chainrisk.toml)"
    source = ctx.get_parameter_source("metrics_port")
    return (
        "CHAINRISK_METRICS_PORT" if source is not None and source.name == "ENVIRONMENT" else "--metrics-port"
    )


def _rewind(conninfo: str, plans: list[Plan], block: int) -> None:
    from chainrisk.indexing import rewind

    for line in rewind(conninfo, plans, block):
        typer.echo(line)
