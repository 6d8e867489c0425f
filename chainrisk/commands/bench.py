"""`chainrisk bench NAME`: benchmarks with a baseline measured in the same run."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from chainrisk.context import app_context

app = typer.Typer(
    help="Benchmarks: each prints its figures and a baseline from the same run.", no_args_is_help=True
)


@app.command("index")
def bench_index(
    ctx: typer.Context,
    logs: Annotated[int, typer.Option(min=1, help="Transfer logs to produce on anvil.")] = 500_000,
    repeats: Annotated[int, typer.Option(min=1, help="Indexing runs; the median is reported.")] = 3,
    baseline: Annotated[bool, typer.Option(help="Also time the plain web3.py path on the same logs.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """Index ERC-20 Transfer logs from anvil into PostgreSQL end to end (fetch, decode, COPY, cursor)."""
    from chainrisk.bench.index import run

    app = app_context(ctx)
    say = (lambda _: None) if as_json else typer.echo
    result = run(app.settings.home, app.database_url(), logs, repeats, baseline, say)
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


@app.command("flows")
def bench_flows(
    ctx: typer.Context,
    transfers: Annotated[
        int, typer.Option(min=100, help="Synthetic transfers of one tracked token.")
    ] = 1_000_000,
    repeats: Annotated[int, typer.Option(min=1, help="Timed queries; the median is reported.")] = 3,
    baseline: Annotated[bool, typer.Option(help="Also time the same sums done in pandas.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """Hourly exchange net flows in USD (the exchange_netflows view) over many transfers, against pandas."""
    from chainrisk.bench.flows import run

    say = (lambda _: None) if as_json else typer.echo
    result = run(app_context(ctx).database_url(), transfers, repeats, baseline, say)
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


@app.command("hf")
def bench_hf(
    positions: Annotated[int, typer.Option(min=1, help="Synthetic positions.")] = 1_000_000,
    scenarios: Annotated[int, typer.Option(min=1, help="Price-shock scenarios.")] = 100,
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs; the median is reported.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic book.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """Health factors of every position under a grid of per-asset price shocks (liquidation-at-risk)."""
    from chainrisk.bench.hf import benchmark

    result = benchmark(positions=positions, scenarios=scenarios, seed=seed, repeats=repeats)
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


@app.command("cascade")
def bench_cascade(
    positions: Annotated[int, typer.Option(min=10, help="Synthetic position lines.")] = 100_000,
    scenarios: Annotated[int, typer.Option(min=1, help="Price scenarios, run end to end.")] = 10_000,
    repeats: Annotated[int, typer.Option(min=1, help="Timed fast-path runs; the median is reported.")] = 1,
    worst: Annotated[
        int,
        typer.Option(min=0, help="Worst scenarios replayed on the exact path (about 2 min each at 100k)."),
    ] = 2,
    baseline_scenarios: Annotated[
        int, typer.Option(min=1, help="Scenarios the exact per-scenario baseline is measured on.")
    ] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the book and the scenarios.")] = 0,
    scaling: Annotated[
        int,
        typer.Option(min=0, help="Exact-engine scenarios timed in process and on a 2-worker cluster."),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """The vectorised liquidation cascade over the devnet's markets and pools (LM-fitted impact curves,
    the exact replay of the worst scenarios), with the exact per-scenario loop as the baseline."""
    from chainrisk.bench.cascade import benchmark

    result = benchmark(positions, scenarios, seed, repeats, worst, baseline_scenarios, scaling)
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


@app.command("devnet")
def bench_devnet(
    ctx: typer.Context,
    days: Annotated[int, typer.Option(min=1, help="Simulated days.")] = 30,
    wallets: Annotated[int, typer.Option(min=2, help="Wallets.")] = 500,
    seed: Annotated[int, typer.Option(help="Scenario seed.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """Deploy the devnet and run the default market scenario: wall time and transactions/s."""
    from chainrisk.bench.devnet import run

    result = run(app_context(ctx).settings.home.resolve(), days, wallets, seed)
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


@app.command("live")
def bench_live(
    ctx: typer.Context,
    days: Annotated[int, typer.Option(min=1, help="Simulated days.")] = 5,
    wallets: Annotated[int, typer.Option(min=2, help="Wallets.")] = 200,
    seed: Annotated[int, typer.Option(help="Scenario seed.")] = 1,
    history_period_s: Annotated[
        int, typer.Option(min=0, help="The chain's history_period_s (0: rows at every moving block).")
    ] = 0,
    paced_blocks: Annotated[int, typer.Option(min=1, help="Price updates after the scenario.")] = 30,
    pace_s: Annotated[float, typer.Option(min=0.05, help="Seconds between those updates.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """While the devnet scenario runs and `chainrisk serve` follows it: the delay from a block being mined
    to its health factors being in PostgreSQL (p50, p95), and the scenario's transactions per second;
    then the same delays for price updates mined at a steady pace."""
    from chainrisk.bench.live import run

    app = app_context(ctx)
    say = (lambda _: None) if as_json else typer.echo
    scenario = (days, wallets, seed)
    paced = (paced_blocks, pace_s)
    result = run(app.settings.home.resolve(), app.database_url(), scenario, history_period_s, paced, say)
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


@app.command("gnn")
def bench_gnn(
    positions: Annotated[int, typer.Option(min=50, help="Position lines per synthetic book.")] = 600,
    scenarios: Annotated[int, typer.Option(min=10, help="Scenarios per labelled set.")] = 120,
    seeds: Annotated[int, typer.Option(min=1, help="Training seeds; means and intervals over them.")] = 5,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs of the graph network.")] = 12,
    speed_scenarios: Annotated[int, typer.Option(min=1, help="Scenarios the speed figures run.")] = 200,
    speed_positions: Annotated[
        int | None,
        typer.Option(
            min=50, help="Position lines of the book the speed figures run on [default: --positions]."
        ),
    ] = None,
    threads: Annotated[int, typer.Option(min=1, help="Torch threads (the cores it may use).")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the books, the draws and the first model.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
) -> None:
    """The learned cascade surrogates (boosted trees, graph network) against the simulator: held-out
    accuracy over seeds and scenarios per second, with the exact and vectorised engines as baselines."""
    from rich.console import Console
    from rich.progress import Progress

    from chainrisk.bench.gnn import benchmark

    # Minutes of work: a bar on stderr, so that stdout holds the document only.
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("labelling the scenario sets", total=seeds + 2)

        def step(next_stage: str) -> None:
            bar.update(task, advance=1, description=next_stage)

        result = benchmark(
            positions, scenarios, seeds, epochs, speed_scenarios, threads, seed, speed_positions, step
        )
    typer.echo(json.dumps(result, default=str) if as_json else json.dumps(result, indent=2, default=str))
