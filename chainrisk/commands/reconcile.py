"""`chainrisk reconcile`: our Aave v3 account data against the chain's getUserAccountData, per wallet."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chainrisk.inputs import MAX_BLOCK, OptionError

if TYPE_CHECKING:
    from chainrisk.cli import AppContext
    from chainrisk.settings import Settings
    from indexer.chain import HttpChainClient
    from indexer.lending.positions import Conn
    from indexer.lending.reconcile import Comparison, Report
    from indexer.protocols.aave_math import Version

# An interactive check fails fast instead of riding out a long outage as the indexer does.
MAX_RETRIES = 4
LABELS = ("collateral", "debt", "available borrows", "liq. threshold", "LTV", "health factor")
UINT256_MAX = 2**256 - 1


@dataclass(frozen=True)
class Target:
    """The chain to reconcile: its config name and id when configured, and the URLs to ask."""

    name: str | None
    chain_id: int | None
    urls: list[str]


def reconcile(
    ctx: typer.Context,
    sample: Annotated[
        int, typer.Option(min=1, help="Wallets to compare, sampled from those with a position.")
    ],
    chain: Annotated[
        str | None, typer.Option(help="Chain name from the config; default: the only configured chain.")
    ] = None,
    pool: Annotated[
        list[str] | None,
        typer.Option("--pool", help="Aave v3 Pool address; repeatable. Default: every indexed pool."),
    ] = None,
    block: Annotated[
        int | None,
        typer.Option(min=0, max=MAX_BLOCK, help="Block to compare at; default: the indexed head."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the wallet sample.")] = 0,
    aave_version: Annotated[
        str, typer.Option(help="Rounding of our side: 3.0 (@aave/core-v3 1.19) or 3.5.")
    ] = "3.0",
    rpc_url: Annotated[
        str | None, typer.Option(help="JSON-RPC URL (archive node for past blocks); default: the chain's.")
    ] = None,
    tolerance_wei: Annotated[
        int, typer.Option(min=0, help="Largest drift of any value that still counts as a match.")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar for the eth_calls.")] = True,
) -> None:
    """Compare health factors rebuilt from indexed events with Pool.getUserAccountData via eth_call.

    Exit 0: every sampled wallet matches within --tolerance-wei; 1: some drift; 2: bad input or no node.
    """
    import psycopg

    from chainrisk.cli import app_context, fail
    from chainrisk.inputs import addresses
    from indexer.chain import ChainError, RpcTransportError
    from indexer.protocols.aave_math import VERSIONS

    app = app_context(ctx)
    if aave_version not in VERSIONS:
        raise OptionError(f"--aave-version: expected {' or '.join(VERSIONS)}, got {aave_version!r}")
    pools = addresses("--pool", pool or [])
    target = _target(app.settings, chain, rpc_url)
    try:
        client = _client(target.urls)
        try:
            args = (sample, pools, block, seed, aave_version, tolerance_wei, progress and not as_json)
            report, context = _run(app, target, client, *args)
        finally:
            client.close()
    # Exit 1 means drift here, so a node that fails is answered as 2 like the other refusals.
    except RpcTransportError as exc:
        raise fail(f"the node does not answer: {exc}") from None
    except ChainError as exc:
        raise fail(str(exc)) from None
    except psycopg.errors.UndefinedTable:
        raise fail(
            "the database has no chainrisk tables: run `chainrisk migrate`, then `chainrisk index`"
        ) from None
    except psycopg.OperationalError as exc:
        raise fail(f"cannot reach the database: {str(exc).strip()}") from None
    context["seed"] = seed
    if as_json:
        typer.echo(json.dumps({**context, **report.to_json()}))
    else:
        _print_report(report, context)
    raise typer.Exit(0 if report.ok else 1)


def _target(settings: Settings, name: str | None, rpc_url: str | None) -> Target:
    from indexer.config import check_rpc_url
    from indexer.errors import InputError

    chains = settings.chains
    names = [c.name for c in chains]
    if name is not None and name not in names:
        raise OptionError(f"--chain: no chain named {name!r} in the config; known: {names}")
    if name is None and len(chains) > 1:
        raise OptionError(f"several chains are configured ({', '.join(names)}): pass --chain NAME")
    if rpc_url is not None:
        try:
            check_rpc_url(rpc_url)
        except InputError as exc:
            raise OptionError(f"--rpc-url: {exc}") from None
    chosen = next((c for c in chains if c.name == name), None) if name else (chains[0] if chains else None)
    if chosen is None:
        if rpc_url is None:
            raise OptionError("no RPC URL: pass --rpc-url URL, or configure [[chains]] in chainrisk.toml")
        return Target(None, None, [rpc_url])
    return Target(chosen.name, chosen.chain_id, [rpc_url] if rpc_url else list(chosen.rpc_urls))


def _client(urls: list[str]) -> HttpChainClient:
    from indexer.chain import HttpChainClient

    return HttpChainClient(urls, max_retries=MAX_RETRIES)


def _run(
    app: AppContext,
    target: Target,
    client: HttpChainClient,
    sample: int,
    pools: list[str],
    block: int | None,
    seed: int,
    version: Version,
    tolerance_wei: int,
    show_progress: bool,
) -> tuple[Report, dict[str, Any]]:
    """Check the node, rebuild our side from the database, then ask the chain."""
    import psycopg

    from chainrisk.db import to_libpq_url
    from indexer.lending.reconcile import chain_account_data, compare, plan_at

    chain_id = _chain_id(client, target)
    decimals = {t.address: t.decimals for t in app.settings.tokens if t.chain == target.name}
    with psycopg.connect(to_libpq_url(app.database_url())) as conn:
        chosen = _pools(conn, chain_id, pools)
        at = _block(conn, chain_id, block)
        plan = plan_at(conn, client, chain_id, chosen, at, sample=sample, seed=seed, version=version,
                       decimals=decimals)  # fmt: skip
    with _progress(show_progress, len(plan.wallets)) as advance:
        chain_data = chain_account_data(client, plan.wallets, at, advance)
    context = {"chain": target.name, "chain_id": chain_id, "pools": chosen}
    return compare(plan, chain_data, tolerance_wei), context


def _chain_id(client: HttpChainClient, target: Target) -> int:
    actual = client.chain_id()
    if target.chain_id is not None and actual != target.chain_id:
        raise OptionError(
            f"chain {target.name!r}: the config says chain_id {target.chain_id}, the node serves {actual}"
        )
    return actual


def _pools(conn: Conn, chain_id: int, wanted: list[str]) -> list[str]:
    from indexer.lending.health import pools

    indexed = pools(conn, chain_id)
    if not indexed:
        raise OptionError(
            f"no Aave v3 pool is indexed on chain {chain_id}: index one first (a [[contracts]] entry with"
            ' abi = "aave_v3_pool" for that chain in chainrisk.toml, then `chainrisk index`)'
        )
    for address in wanted:
        if address not in indexed:
            raise OptionError(
                f"--pool {address} is not an indexed pool of chain {chain_id}; indexed: {indexed}"
            )
    return sorted(set(wanted)) or indexed


def _block(conn: Conn, chain_id: int, wanted: int | None) -> int:
    from indexer.lending.health import indexed_head

    head = indexed_head(conn, chain_id)
    if head is None:
        raise OptionError(
            f"nothing is indexed on chain {chain_id}: configure it in chainrisk.toml ([[chains]] and"
            " [[contracts]]), then run `chainrisk index`"
        )
    if wanted is not None and wanted > head:
        raise OptionError(
            f"--block {wanted} is above the indexed head {head}; expected a block at or below it"
        )
    return head if wanted is None else wanted


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr advanced per JSON-RPC batch; a no-op when disabled."""
    if not enabled:
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("getUserAccountData"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("eth_call", total=total)
        yield lambda n: bar.advance(task, n)


# --------------------------------------------------------------------------------------- display


def _print_report(report: Report, context: dict[str, Any]) -> None:
    """One group of six rows per wallet: each value ours and the chain's ("=" when equal) and the drift."""
    from rich.console import Console
    from rich.table import Table

    several = len(context["pools"]) > 1
    table = Table(
        title=f"getUserAccountData at block {report.block:,}: ours (Aave {report.version}) vs chain"
    )
    table.add_column("wallet", overflow="fold")
    table.add_column("value")
    for name in ("ours", "chain", "drift"):
        table.add_column(name, justify="right", overflow="fold")
    for c in report.comparisons:
        heading = [c.wallet.user, f"pool {_short(c.wallet.pool)}" if several else "", _status(c, report)]
        for i, label in enumerate(LABELS):
            table.add_row(heading[i] if i < len(heading) else "", label, *_cells(i, c), end_section=i == 5)
    Console().print(table)
    Console().print(_summary(report, context))


def _status(c: Comparison, report: Report) -> str:
    if c.equal:
        return "[green]equal to the wei[/]"
    return "[yellow]within tolerance[/]" if c.within(report.tolerance_wei) else "[red]drifts[/]"


def _cells(i: int, c: Comparison) -> tuple[str, str, str]:
    ours, chain, drift = c.ours[i], c.chain[i], c.drift[i]
    if drift == 0:
        return _value(i, ours), "[green]=[/]", ""
    relative = c.hf_relative_drift if i == 5 else None
    shown = f"{drift:,}" + (f" ({relative:.2e})" if relative is not None else "")
    return _value(i, ours), f"[red]{_value(i, chain)}[/]", f"[red]{shown}[/]"


def _value(i: int, value: int) -> str:
    # A wallet without debt has the maximal health factor: the number itself says nothing.
    return "∞ (no debt)" if i == 5 and value == UINT256_MAX else f"{value:,}"


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


def _summary(report: Report, context: dict[str, Any]) -> str:
    compared = len(report.comparisons)
    drifting = compared - report.within_tolerance
    chain = context["chain"] or f"chain {context['chain_id']}"
    lines = [
        f"{chain}, block {report.block:,}: {compared} of {report.population} wallets compared"
        f" (seed {context['seed']}); {report.equal} equal to the wei, {drifting} drifting"
        + (f" beyond {report.tolerance_wei:,} wei" if report.tolerance_wei else ""),
        "max drift: "
        + ", ".join(f"{label} {d:,}" for label, d in zip(LABELS, report.max_drift, strict=True)),
    ]
    relative = report.max_hf_relative_drift
    lines[-1] += f" (HF relative {'unbounded' if relative is None else f'{relative:.2e}'})"
    colour = "green" if report.ok else "red"
    return f"[{colour}]" + "\n".join(lines) + "[/]"
