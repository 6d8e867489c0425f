"""`chainrisk reconcile`: our Aave v3 account data against the chain's getUserAccountData, and our Morpho
Blue positions against Morpho's position/market views and the oracle's price, per wallet."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chainrisk.context import app_context, console
from chainrisk.inputs import MAX_BLOCK, OptionError

if TYPE_CHECKING:
    from indexer.lending.reconcile import Comparison, Report
    from indexer.protocols.aave_math import Version

LABELS = ("collateral", "debt", "available borrows", "liq. threshold", "LTV", "health factor")
MORPHO_LABELS = ("supply shares", "borrow shares", "collateral", "borrowed", "oracle price", "health factor")
UINT256_MAX = 2**256 - 1

SAMPLE_HELP = "Wallets to compare, sampled from those with a position."
CHAIN_HELP = "Chain name from the config; default: the only configured chain."
POOL_HELP = "Aave v3 Pool address; repeatable. Default: every indexed pool and Morpho Blue market."
VERSION_HELP = "Rounding of our side: 3.0 (@aave/core-v3 1.19) or 3.5."
RPC_HELP = "JSON-RPC URL (archive node for past blocks); default: the chain's."
TOLERANCE_HELP = "Largest drift of any value that still counts as a match."


def reconcile(
    ctx: typer.Context,
    sample: Annotated[int, typer.Option(min=1, help=SAMPLE_HELP)],
    chain: Annotated[str | None, typer.Option(help=CHAIN_HELP)] = None,
    pool: Annotated[list[str] | None, typer.Option("--pool", help=POOL_HELP)] = None,
    block: Annotated[
        int | None, typer.Option(min=0, max=MAX_BLOCK, help="Block to compare at; default: the indexed head.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the wallet sample.")] = 0,
    aave_version: Annotated[str, typer.Option(help=VERSION_HELP)] = "3.0",
    rpc_url: Annotated[str | None, typer.Option(help=RPC_HELP)] = None,
    tolerance_wei: Annotated[int, typer.Option(min=0, help=TOLERANCE_HELP)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar for the eth_calls.")] = True,
) -> None:
    """Compare health factors rebuilt from indexed events with Pool.getUserAccountData via eth_call
    (Morpho Blue: with position, market and the oracle's price; health from those views).

    Exit 0: every sampled wallet matches within --tolerance-wei; 1: some drift; 2: bad input or no node.
    """
    from chainrisk.inputs import addresses
    from chainrisk.reconciling import Request, target
    from chainrisk.reconciling import reconcile as run

    app = app_context(ctx)
    version = _version(aave_version)
    request = Request(sample, addresses("--pool", pool or []), block, seed, version, tolerance_wei)
    chosen = target(app.settings, chain, rpc_url)
    report, context = run(app, chosen, request, show_progress=progress and not as_json)
    if as_json:
        typer.echo(json.dumps({**context, **report.to_json()}))
    else:
        _print_report(report, context)
    raise typer.Exit(0 if report.ok else 1)


def _version(value: str) -> Version:
    from indexer.protocols.aave_math import VERSIONS

    if value not in VERSIONS:
        raise OptionError(f"--aave-version: expected {' or '.join(VERSIONS)}, got {value!r}")
    return value


# --------------------------------------------------------------------------------------- display


def _print_report(report: Report, context: dict[str, Any]) -> None:
    """One group of six rows per wallet: each value ours and the chain's ("=" when equal) and the drift."""
    from rich.table import Table

    several = len(context["pools"]) > 1
    table = Table(title=f"positions at block {report.block:,}: ours (Aave {report.version}) vs chain")
    table.add_column("protocol")
    table.add_column("wallet", overflow="fold")
    table.add_column("value")
    for name in ("ours", "chain", "drift"):
        table.add_column(name, justify="right", overflow="fold")
    for c in report.comparisons:
        heading = [c.wallet.user, f"pool {_short(c.wallet.pool)}" if several else "", _status(c, report)]
        labels = MORPHO_LABELS if c.wallet.protocol == "morpho_blue" else LABELS
        for i, label in enumerate(labels):
            row = [c.wallet.protocol if i == 0 else "", heading[i] if i < len(heading) else "", label]
            table.add_row(*row, *_cells(i, c), end_section=i == 5)
    console().print(table)
    console().print(_summary(report, context))


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
    if "morpho_blue" in report.protocols:
        drift = report.max_drift_of("morpho_blue")
        lines.append(
            "Morpho Blue max drift: "
            + ", ".join(f"{a} {d:,}" for a, d in zip(MORPHO_LABELS, drift, strict=True))
        )
    colour = "green" if report.ok else "red"
    return f"[{colour}]" + "\n".join(lines) + "[/]"
