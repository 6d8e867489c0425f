"""`chainrisk index`: backfill and follow, from chainrisk.toml or ad-hoc flags."""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chainrisk.inputs import MAX_BLOCK, MAX_CHAIN_ID

if TYPE_CHECKING:
    from indexer.config import ChainConfig
    from indexer.runner import Plan

log = logging.getLogger(__name__)


# ChainConfig fields as the ad-hoc flags that set them, so a refused value names the flag.
FLAGS = {
    "rpc_urls": "--rpc",
    "chain_id": "--chain-id",
    "finality_depth": "--finality-depth",
    "max_block_range": "--max-range",
    "rpc_timeout_s": "--rpc-timeout",
}


def index(
    ctx: typer.Context,
    rpc: Annotated[
        list[str] | None,
        typer.Option(
            "--rpc", help="JSON-RPC URL; repeat for failover. Without it, chains come from the config."
        ),
    ] = None,
    address: Annotated[
        list[str] | None, typer.Option("--address", help="Only logs of this contract; repeatable.")
    ] = None,
    from_block: Annotated[
        int | None, typer.Option("--from", min=0, max=MAX_BLOCK, help="First block (ad-hoc mode).")
    ] = None,
    to_block: Annotated[
        int | None, typer.Option("--to", min=0, max=MAX_BLOCK, help="Last block; default: the head.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep following the head after the backfill.")
    ] = False,
    chain_id: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_CHAIN_ID, help="Expected chain id (ad-hoc); default: the node's."),
    ] = None,
    finality_depth: Annotated[
        int,
        typer.Option(
            min=0,
            max=10_000,
            help="Reorg window in blocks (ad-hoc). Against the node's `finalized` tag the deeper one"
            " wins: block hashes are kept, and reorgs rolled back, for every block above min(finalized,"
            " head - N), so never fewer than N blocks.",
        ),
    ] = 64,
    max_range: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Largest eth_getLogs range (ad-hoc).")
    ] = 2000,
    rpc_timeout: Annotated[
        float,
        typer.Option(
            "--rpc-timeout", help="Seconds one JSON-RPC request may take before it is retried (ad-hoc)."
        ),
    ] = 30.0,
    name: Annotated[
        str | None, typer.Option(help="Cursor name (ad-hoc); default derived from the filter.")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(envvar="CHAINRISK_METRICS_PORT", help="Serve Prometheus metrics on this port (0: off)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    positions: Annotated[
        bool,
        typer.Option(help="Keep Aave positions, health factors and their history current as batches commit."),
    ] = True,
    rewind_to: Annotated[
        int | None,
        typer.Option(
            min=0, max=MAX_BLOCK, help="Delete rows above this block and move cursors back, then exit."
        ),
    ] = None,
) -> None:
    """Copy event logs into PostgreSQL: raw `logs`, decoded event tables, `quarantine` for bad logs.

    Ad-hoc: `chainrisk index --rpc URL [--address A ...] --from N --to M`. With no address every log in
    the range is indexed. Without --rpc, every chain and contract in chainrisk.toml is indexed.
    Restarting resumes exactly after the last committed block.
    """
    from chainrisk.cli import app_context
    from chainrisk.db import to_libpq_url
    from chainrisk.indexing import ChainIndexer
    from chainrisk.inputs import free_port
    from chainrisk.migrate import upgrade
    from indexer.metrics import IndexerMetrics

    app = app_context(ctx)
    # Every input is checked before the database is touched: a refused run changes nothing.
    plans = _plans(
        app.settings,
        rpc,
        address or [],
        from_block,
        to_block,
        follow,
        chain_id,
        finality_depth,
        max_range,
        name,
        rpc_timeout,
    )
    port = metrics_port if metrics_port is not None else app.settings.metrics_port
    if port:
        free_port(_port_source(ctx, metrics_port), port, app.settings.metrics_addr)
    url = app.database_url()
    upgrade(url)
    conninfo = to_libpq_url(url)
    metrics = IndexerMetrics()
    if port:
        metrics.serve(port, app.settings.metrics_addr)
    if rewind_to is not None:
        _rewind(conninfo, plans, rewind_to)
        return
    if not rpc:
        _sync_catalog(conninfo, app.settings)
    indexer = ChainIndexer(plans, conninfo, metrics, keep_positions=positions, progress=progress)
    signal.signal(signal.SIGTERM, lambda signum, frame: indexer.stop())
    indexer.run(on_outcome=lambda outcome: typer.echo(outcome.line()))


def _plans(
    settings: Any,
    rpc: list[str] | None,
    addresses: list[str],
    start: int | None,
    stop: int | None,
    follow: bool,
    chain_id: int | None,
    depth: int,
    max_range: int,
    name: str | None,
    rpc_timeout: float = 30.0,
) -> list[Plan]:
    from chainrisk.inputs import OptionError
    from chainrisk.inputs import addresses as checked_addresses
    from indexer.runner import adhoc_plan, config_plan

    if rpc:
        if start is None:
            raise OptionError("--from: the first block is required with --rpc")
        if stop is not None and stop < start:
            raise OptionError(f"--to {stop} is below --from {start}; expected a block at or above it")
        wanted = checked_addresses("--address", addresses)
        _adhoc_chain(rpc, chain_id or 1, depth, max_range, rpc_timeout)  # flags checked before the node
        resolved = chain_id if chain_id is not None else _node_chain_id(rpc)
        chain = _adhoc_chain(rpc, resolved, depth, max_range, rpc_timeout)
        return [adhoc_plan(chain, wanted, start, stop, follow, name)]
    if not settings.chains:
        raise OptionError(
            "nothing to index: pass --rpc URL --from N, or configure [[chains]] and"
            " [[contracts]] in chainrisk.toml"
        )
    idle = [c.name for c in settings.chains if not any(k.chain == c.name for k in settings.contracts)]
    if idle:
        raise OptionError(
            f"chain {idle[0]!r} has no [[contracts]] entry in the config: add one with chain = {idle[0]!r},"
            " or remove the chain"
        )
    return [config_plan(chain, settings.contracts, stop, follow) for chain in settings.chains]


def _port_source(ctx: typer.Context, flag: int | None) -> str:
    """Where the metrics port came from, for a message about it."""
    if flag is None:
        return "metrics_port (chainrisk.toml)"
    source = ctx.get_parameter_source("metrics_port")
    return (
        "CHAINRISK_METRICS_PORT" if source is not None and source.name == "ENVIRONMENT" else "--metrics-port"
    )


def _adhoc_chain(rpc: list[str], chain_id: int, depth: int, max_range: int, timeout: float) -> ChainConfig:
    """The ad-hoc chain; a refused value names its flag."""
    from pydantic import ValidationError

    from chainrisk.inputs import OptionError
    from indexer.config import ChainConfig

    try:
        return ChainConfig(
            name=f"chain-{chain_id}",
            chain_id=chain_id,
            rpc_urls=rpc,
            finality_depth=depth,
            max_block_range=max_range,
            rpc_timeout_s=timeout,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = FLAGS.get(str(err["loc"][0]), str(err["loc"][0]))
        reason = err["msg"].removeprefix("Value error, ")
        shown = "" if flag == "--rpc" else f" {err['input']!r}"  # URLs are named, redacted, in the reason
        raise OptionError(f"{flag}{shown}: {reason}") from None


def _sync_catalog(conninfo: str, settings: Any) -> None:
    """Tracked tokens and config labels follow chainrisk.toml on every configured run."""
    import psycopg

    from indexer.catalog import sync_config

    with psycopg.connect(conninfo) as conn:
        sync_config(conn, settings.chains, settings.tokens, settings.labels)


def _node_chain_id(urls: list[str]) -> int:
    from indexer.chain import HttpChainClient

    client = HttpChainClient(urls)
    try:
        return client.chain_id()
    finally:
        client.close()


def _rewind(conninfo: str, plans: list[Plan], block: int) -> None:
    from indexer.runner import rewind

    for plan in plans:
        rewind(conninfo, plan.job.chain.chain_id, block)
        typer.echo(f"{plan.job.chain.name}: rows above block {block} deleted; cursors moved back")
