"""`chainrisk graph`: contagion between markets over the indexed exposure graph."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer

from chainrisk.context import app_context, fail
from chainrisk.exits import new_app
from chainrisk.inputs import MAX_CHAIN_ID
from graph.errors import ShockError as ShockError  # also importable from here, as before

app = new_app(
    help="Cross-market exposure graph and contagion (DebtRank, Eisenberg–Noe clearing).", no_args_is_help=True
)


def split_shocks(shocks: Sequence[str]) -> list[tuple[str, float]]:
    """``MARKET=FRACTION`` → (market name, fraction), checked before any market is looked up."""
    parsed: list[tuple[str, float]] = []
    for shock in shocks:
        name, sep, value = shock.partition("=")
        if not sep:
            raise ShockError(f"--shock: expected MARKET=FRACTION, got {shock!r}")
        market = name.strip().lower()
        if any(market == seen for seen, _ in parsed):
            raise ShockError(f"--shock: market {market!r} is shocked twice; give each market once")
        parsed.append((market, _fraction(shock, value)))
    return parsed


def parse_shocks(
    shocks: Sequence[str], markets: Sequence[str], labels: Mapping[str, str]
) -> dict[str, float]:
    """``MARKET=FRACTION`` → {pool: fraction}; MARKET is the pool address, its label, or the label's market
    name (``aave`` for ``aave-pool``). A market given twice, under any of its names, is refused: which
    fraction should win is not for the program to guess."""
    names = {pool: pool for pool in markets}
    for pool, label in labels.items():
        names[label] = pool
        names[label.removesuffix("-pool")] = pool
    parsed: dict[str, float] = {}
    given: dict[str, str] = {}
    for name, fraction in split_shocks(shocks):
        found = names.get(name)
        if found is None:
            known = ", ".join(sorted(k for k in names if not k.startswith("0x")) or markets)
            raise ShockError(f"--shock: unknown market {name!r}; markets on this chain: {known}")
        if found in parsed:
            raise ShockError(
                f"--shock: market {name!r} is shocked twice (also as {given[found]!r}); give each market once"
            )
        parsed[found], given[found] = fraction, name
    return parsed


def _fraction(shock: str, value: str) -> float:
    try:
        fraction = float(value)
    except ValueError:
        raise ShockError(f"--shock: FRACTION must be a number in [0, 1], got {shock!r}") from None
    if not 0 <= fraction <= 1:
        raise ShockError(f"--shock: FRACTION must lie in [0, 1] (1 = the market defaults), got {shock!r}")
    return fraction


@app.command("debtrank")
def debtrank_command(
    ctx: typer.Context,
    chain_id: Annotated[
        int,
        typer.Option("--chain-id", min=1, max=MAX_CHAIN_ID, help="Chain whose positions to use."),
    ],
    shock: Annotated[
        list[str] | None,
        typer.Option(help="MARKET=FRACTION of the market's buffer lost at the start; repeatable."),
    ] = None,
    variant: Annotated[
        str, typer.Option(help="original (Battiston et al. 2012) or differential (Bardoscia et al. 2015).")
    ] = "original",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """DebtRank over the market-to-market exposure matrix built from position_reserves."""
    import numpy as np
    import psycopg

    from graph.debtrank import debtrank
    from graph.exposure import exposure_graph, market_exposure, market_labels, read_positions

    if variant not in ("original", "differential"):
        raise fail(f"--variant {variant!r}: expected original or differential")
    split_shocks(shock or [])  # a malformed --shock fails before the database is opened
    with psycopg.connect(app_context(ctx).conninfo()) as conn:
        positions, labels = read_positions(conn, chain_id), market_labels(conn, chain_id)
    exposure = market_exposure(exposure_graph(positions))
    if not exposure.markets or exposure.weights.sum() == 0:
        raise fail(
            f"no borrowing positions indexed on chain {chain_id}: index its Aave v3 Pool first (a"
            ' [[contracts]] entry with abi = "aave_v3_pool" on that chain, then `chainrisk index`)',
            code=1,
        )
    shocks = parse_shocks(shock or [], exposure.markets, labels)
    initial = np.array([shocks.get(m, 0.0) for m in exposure.markets])
    result = debtrank(exposure.exposures, exposure.buffers, exposure.weights, initial, variant)  # type: ignore[arg-type]
    report = _report(chain_id, exposure.markets, labels, exposure.buffers, result)
    typer.echo(json.dumps(report, indent=2) if as_json else _table(report))


def _report(
    chain_id: int, markets: Sequence[str], labels: Mapping[str, str], buffers: Any, result: Any
) -> dict[str, Any]:
    rows = [
        {
            "market": pool,
            "label": labels.get(pool),
            "buffer_usd": float(buffers[i]),
            "weight": float(result.weights[i]),
            "initial_stress": float(result.initial[i]),
            "final_stress": float(result.final[i]),
        }
        for i, pool in enumerate(markets)
    ]
    return {
        "chain_id": chain_id,
        "variant": result.variant,
        "markets": rows,
        "additional_stress": result.additional_stress,
        "additional_defaults": result.additional_defaults,
        "rounds": result.rounds,
    }


def _table(report: Mapping[str, Any]) -> str:
    lines = [f"{'market':<44} {'label':<14} {'buffer USD':>16} {'weight':>7} {'initial':>8} {'final':>8}"]
    for row in report["markets"]:
        lines.append(
            f"{row['market']:<44} {row['label'] or '':<14} {row['buffer_usd']:>16,.2f} {row['weight']:>7.4f}"
            f" {row['initial_stress']:>8.4f} {row['final_stress']:>8.4f}"
        )
    lines.append(
        f"weighted additional stress {report['additional_stress']:.6f}, additional defaults"
        f" {report['additional_defaults']}, rounds {report['rounds']} ({report['variant']} DebtRank)"
    )
    return "\n".join(lines)


@app.command("clearing")
def clearing_command(
    ctx: typer.Context,
    chain_id: Annotated[
        int,
        typer.Option("--chain-id", min=1, max=MAX_CHAIN_ID, help="Chain whose positions to use."),
    ],
    shock: Annotated[
        list[str] | None,
        typer.Option(help="SYMBOL=PERCENT price move before clearing, e.g. ETH=-30%; repeatable."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Eisenberg–Noe clearing of markets and wallets at shocked prices (a lens beside the cascade).

    Wallets owe the markets their debt; markets owe wallets what they supplied. Clearing winds every
    position up at once, pro rata across markets: the shortfall beyond what under-water wallets lack on
    their own is the loss passed on through shared wallets.
    """
    import psycopg

    from chainrisk.contagion.clearing import clearing_report, clearing_table
    from chainrisk.contagion.inputs import split_shock

    for given in shock or []:
        split_shock(given)  # a malformed shock fails before the database is opened
    with psycopg.connect(app_context(ctx).conninfo()) as conn:
        document = clearing_report(conn, chain_id, shock or [])
    typer.echo(json.dumps(document, indent=2) if as_json else clearing_table(document))
