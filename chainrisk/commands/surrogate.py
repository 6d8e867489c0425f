"""`chainrisk contagion train` and `chainrisk contagion predict`: the learned surrogate of the cascade."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any

import typer

from chainrisk.context import app_context, console
from chainrisk.inputs import OptionError

_TRAIN_HELP = "\n\n".join(
    (
        "Train the cascade surrogates (boosted trees and a graph network) and store them with their metrics.",
        "Labels come from the vectorised cascade on books at several points in time: --book synthetic (the"
        " default) draws devnet-shaped books; --book indexed takes the indexed chain's own book (Aave and"
        " Morpho Blue) at --snapshots blocks from its first borrows to its head. Earlier books with mild and"
        " moderate days train, the two latest books with severe days test. Both models are stored (next"
        " version of each) with the data they saw and their held-out AUPRC and VaR95 error; `predict` and"
        " `contagion var --engine surrogate` use them. A few minutes on two cores at the defaults.",
        "Example: chainrisk contagion train --scenarios 120 --seed 0",
        "Example: chainrisk contagion train --book indexed --snapshots 8",
    )
)
_PREDICT_HELP = "\n\n".join(
    (
        "Who the cascade would liquidate under a shock, and the bad debt, from a stored surrogate.",
        "--book indexed (the default) reads the indexed chain's markets and pools at its head (the chain"
        " the model was trained on, else --chain-id, else the one chain with Aave pools); --book"
        " synthetic uses the latest book the model was trained on. Per account: the liquidation"
        " probability and, from the trees, the debt repaid, the bad debt left and the round. Milliseconds"
        " instead of a simulation; `contagion simulate` gives the exact answer.",
        "Example: chainrisk contagion predict --shock ETH=-30% --model tree",
    )
)

TrainScenarios = Annotated[
    int, typer.Option(min=10, max=100_000, help="Scenarios per labelled set (6 sets are drawn).")
]
TrainSeed = Annotated[int, typer.Option(min=0, max=2**31 - 1, help="Seed of the draws and the training.")]
Positions = Annotated[int, typer.Option(min=50, max=100_000, help="Position lines per synthetic book.")]
TrainBook = Annotated[
    str, typer.Option(help="synthetic (devnet-shaped books) or indexed (the indexed chain over time).")
]
Snapshots = Annotated[
    int, typer.Option(min=4, max=50, help="Books over time (the two latest are held out for testing).")
]
Device = Annotated[
    str,
    typer.Option(help="Where the graph network trains: auto (a GPU when torch sees one), cpu, cuda, cuda:N."),
]
ChainId = Annotated[
    int | None, typer.Option(min=1, help="With --book indexed: the chain (default: the one with Aave pools).")
]
PredictChainId = Annotated[
    int | None,
    typer.Option(
        min=1, help="With --book indexed: the chain (default: the model's own, else the one with Aave pools)."
    ),
]
Epochs = Annotated[int, typer.Option(min=1, max=500, help="Most epochs of the graph network.")]
Shocks = Annotated[list[str], typer.Option(help="SYMBOL=PERCENT price move, e.g. ETH=-30%; repeatable.")]
Model = Annotated[str, typer.Option(help="gnn or tree (the stored model of that kind).")]
Book = Annotated[str, typer.Option(help="indexed (the chain's head) or synthetic (the training book).")]
Top = Annotated[int, typer.Option(min=1, max=10_000, help="Accounts listed, likeliest first.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]


def train_command(
    ctx: typer.Context,
    scenarios: TrainScenarios = 120,
    seed: TrainSeed = 0,
    positions: Positions = 600,
    epochs: Epochs = 12,
    book: TrainBook = "synthetic",
    snapshots: Snapshots = 6,
    chain_id: ChainId = None,
    device: Device = "auto",
    as_json: Json = False,
) -> None:
    if book not in ("indexed", "synthetic"):
        raise OptionError(f"--book {book!r}: expected synthetic or indexed")
    from chainrisk.contagion import surrogate as model_api

    where = model_api.training_device(device)

    conninfo = app_context(ctx).conninfo(migrate=True)  # fails fast, before minutes of training
    working = "labelling the scenarios and training the surrogates"
    with contextlib.nullcontext() if as_json else console().status(working):
        document = model_api.train_and_store(
            conninfo,
            scenarios,
            seed,
            positions,
            epochs,
            book=book,
            snapshots=snapshots,
            chain_id=chain_id,
            device=where,
        )
    if as_json:
        typer.echo(json.dumps(document, indent=2, default=str))
    else:
        _print_train(document)


def predict_command(
    ctx: typer.Context,
    shock: Shocks,
    model: Model = "tree",
    book: Book = "indexed",
    top: Top = 10,
    chain_id: PredictChainId = None,
    as_json: Json = False,
) -> None:
    from chainrisk.contagion import inputs as loading

    if model not in ("gnn", "tree"):
        raise OptionError(f"--model {model!r}: expected gnn or tree")
    if book not in ("indexed", "synthetic"):
        raise OptionError(f"--book {book!r}: expected indexed or synthetic")
    for given in shock:
        loading.split_shock(given)  # a malformed shock fails before the database is opened
    from chainrisk.contagion import surrogate as model_api

    document = model_api.predict_command(app_context(ctx).conninfo(), shock, model, book, top, chain_id)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        _print_predict(document)


def _print_train(document: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="Held-out (later books, severe days): means over the held-out sets")
    for column in ("model", "AUPRC", "AUPRC cascade-induced", "VaR95 error"):
        table.add_column(column)
    for name, row in document["models"]["severe"].items():
        if name.startswith("bootstrap"):
            continue
        error = row.get("var95_relative_error", {}).get("mean")
        table.add_row(
            name, f"{row['auprc']['mean']:.3f}", f"{row['auprc_cascade']['mean']:.3f}",
            "-" if error is None else f"{error:.1%}",
        )  # fmt: skip
    console().print(table)
    stored = document["stored"]
    console().print(
        f"stored: tree v{stored['tree']}, gnn v{stored['gnn']}; fast path: {document['fast_path']}"
    )


def _print_predict(document: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{document['model']} v{document['version']}: likeliest liquidations")
    for column in ("market", "wallet", "probability", "expected repaid", "expected bad debt", "round"):
        table.add_column(column)
    for row in document["accounts"]:
        repaid, bad, round_ = (
            row.get(k) for k in ("expected_liquidated_usd", "expected_bad_debt_usd", "first_round")
        )
        table.add_row(
            row["market"], row["wallet"], f"{row['probability']:.3f}",
            "-" if repaid is None else f"${repaid:,.0f}", "-" if bad is None else f"${bad:,.0f}",
            "-" if round_ is None else f"{round_:.1f}",
        )  # fmt: skip
    console().print(table)
    console().print(
        f"bad debt estimate: ${document['bad_debt_usd']:,.0f}; expected liquidations:"
        f" {document['expected_liquidations']:.1f}"
        + (
            ""
            if document.get("expected_liquidated_usd") is None
            else f" repaying ${document['expected_liquidated_usd']:,.0f}"
        )
        + f"; below HF 1 after the shock: {document['below_one']}"
    )


def register(app: typer.Typer) -> None:
    """Add `train` and `predict` to the `contagion` command group."""
    app.command("train", help=_TRAIN_HELP)(train_command)
    app.command("predict", help=_PREDICT_HELP)(predict_command)
