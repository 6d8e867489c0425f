"""The learned contagion surrogate: synthetic books over time, training with the comparison, storage,
and prediction for one shock on a book.

    snapshots = synthetic_snapshots(count=6, positions=600, seed=0)
    trained = train(snapshots, scenarios=120, seed=0)       # tree and graph network, held-out metrics
    trained.document["models"]["severe"]["tree"]["auprc_cascade"]

The books are the devnet's markets, pools and oracles (``chainrisk.bench.cascade.devnet_book``) with
their balances scaled so the book is a few percent of the pools' depth (so sales move the pools and the
feeds follow); snapshot ``t`` draws a new book and raises every account's debt by 2 % per step, the book
growing more leveraged over time. A wallet holds one account in each devnet market.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from chainrisk.inputs import OptionError
from graph.cascade import LendingMarket
from graph.gnn.approx import approximate_cascade
from graph.gnn.baselines import TreeModel, scenario_table
from graph.gnn.compare import Data, build_data, one_seed, summarise
from graph.gnn.dataset import Snapshot
from graph.gnn.features import FEATURES, StaticGraph, shock_matrix, static_graph, tabular
from graph.gnn.model import ContagionGNN
from graph.gnn.tensors import IN_DIMS
from graph.gnn.train import TrainConfig, predict_gnn

SCALE = 25.0  # balances × 25: a 600-line book holds about $10M against pools of $80M–$130M depth
LEVERAGE_STEP = 0.02


def _wallet(user: str) -> str:
    # devnet_book alternates markets by account index: accounts 2k and 2k + 1 become one wallet.
    return f"0x{int(user, 16) // 2:040x}"


def _scaled(market: LendingMarket, leverage: float) -> LendingMarket:
    positions = {
        _wallet(user): tuple(
            replace(
                r,
                scaled_atoken_balance=int(r.scaled_atoken_balance * SCALE),
                scaled_vdebt_balance=int(r.scaled_vdebt_balance * SCALE * leverage),
            )
            for r in reserves
        )
        for user, reserves in market.positions.items()
    }
    emodes = {_wallet(user): value for user, value in market.emodes.items()}
    return LendingMarket(market.name, market.rules, positions, market.terms, emodes)


def synthetic_snapshots(count: int, positions: int, seed: int) -> list[Snapshot]:
    """``count`` snapshots of a devnet-shaped book of ``positions`` position lines (see the module)."""
    return [synthetic_snapshot(t, positions, seed) for t in range(count)]


def synthetic_snapshot(t: int, positions: int, seed: int) -> Snapshot:
    """Snapshot ``t`` of :func:`synthetic_snapshots` alone."""
    from chainrisk.bench.cascade import SHOCKED, address, devnet_book

    book = devnet_book(positions, seed=seed * 1_000 + t)
    markets = tuple(_scaled(m, 1.0 + LEVERAGE_STEP * t) for m in book.markets)
    return Snapshot(t, markets, book.pools, book.oracles, tuple(address(s) for s in SHOCKED))


@dataclass
class Trained:
    """The tree model and the graph network of one seed, the comparison document, the data's range."""

    tree: TreeModel
    gnn: ContagionGNN
    config: TrainConfig
    document: dict[str, Any]
    data_range: dict[str, Any]


def train(
    snapshots: Sequence[Snapshot], scenarios: int, seed: int, config: TrainConfig | None = None
) -> Trained:
    """Label the temporal split, fit every model of one seed, score them on the held-out sets."""
    config = replace(config or TrainConfig(), seed=seed)
    data = build_data(snapshots, scenarios, seed)
    result = one_seed(data, seed, config)
    fitted = result["fitted"]
    return Trained(fitted.tree, fitted.gnn, config, summarise(data, [result]), data_range(data, snapshots))


def data_range(data: Data, snapshots: Sequence[Snapshot]) -> dict[str, Any]:
    """What the models saw and what measured them."""
    return {
        "book": "synthetic devnet-shaped",
        "snapshots": [s.index for s in snapshots],
        "accounts": {str(t): len(g.accounts) for t, g in data.statics.items()},
        "train": [list(k) for k in data.split.train],
        "valid": [list(k) for k in data.split.valid],
        "test": [list(k) for k in data.split.test],
        "later": [list(k) for k in data.split.later],
        "labels": "graph.fastcascade (vectorised engine)",
    }


def gnn_weights(model: ContagionGNN) -> bytes:
    """The network's state_dict as bytes."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def gnn_from_weights(weights: bytes, config: Mapping[str, Any]) -> ContagionGNN:
    """The network stored by :func:`gnn_weights` (``weights_only``: no code runs on load)."""
    model = ContagionGNN(IN_DIMS, int(config["hidden"]), int(config["layers"]))
    model.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
    model.eval()
    return model


def tree_weights(model: TreeModel) -> bytes:
    """The tree model pickled (scikit-learn estimators have no other format); read back by
    :func:`chainrisk.contagion.surrogate_store.tree_from_weights`."""
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def config_of(config: TrainConfig) -> dict[str, Any]:
    """The training configuration as JSON, with the feature list the weights expect."""
    return {**asdict(config), "features": list(FEATURES)}


@dataclass(frozen=True)
class Prediction:
    """One shock on one book: per account the liquidation probability, in total the bad debt estimate."""

    accounts: tuple[tuple[str, str], ...]
    probability: np.ndarray[Any, np.dtype[np.float64]]
    bad_debt_usd: float
    below_one: int
    liquidated_usd: np.ndarray[Any, np.dtype[np.float64]] | None = None  # expected debt repaid (trees)
    account_bad_debt_usd: np.ndarray[Any, np.dtype[np.float64]] | None = None  # expected (trees)
    first_round: np.ndarray[Any, np.dtype[np.float64]] | None = None  # were it liquidated (trees)


def predict(
    static: StaticGraph, shock: Mapping[str, Fraction], kind: str, *, gnn: ContagionGNN | None = None,
    tree: TreeModel | None = None,
) -> Prediction:  # fmt: skip
    """Apply a stored model to a shock (asset → price factor) on a book's exposure graph."""
    assets = list(shock)
    factors = np.array([[float(shock[a]) for a in assets]])
    shocks = shock_matrix(static, assets, factors)
    approx = approximate_cascade(static, shocks)
    table = tabular(static, shocks, approx)
    below = int(table[:, FEATURES.index("below_one")].sum())
    if kind == "gnn":
        assert gnn is not None
        probability, by_market, _ = predict_gnn(gnn, static, shocks, table)
        bad = float(by_market.sum())
    else:
        assert tree is not None
        probability = tree.scores(table)
        bad = float(tree.bad_debt_usd(scenario_table(static, shocks, table, approx))[0])
        # Trees stored before the value model or the per-account heads have none.
        value = tree.liquidated_usd(table, probability) if getattr(tree, "value", None) is not None else None
        heads = getattr(tree, "heads", None)
        if heads is not None:
            return Prediction(
                static.accounts, probability, bad, below, value,
                heads.bad_debt_usd(table, approx.bad_debt_account.reshape(-1)),
                heads.first_round(table),
            )  # fmt: skip
        return Prediction(static.accounts, probability, bad, below, value)
    return Prediction(static.accounts, probability, bad, below)


def book_graph(snapshot: Snapshot) -> StaticGraph:
    """The exposure graph of a snapshot's book."""
    return static_graph(snapshot.markets, snapshot.pools, snapshot.oracles)


# ------------------------------------------------------------------------------------------- commands


def training_device(asked: str) -> str:
    """The torch device the network trains on: ``auto`` is the first GPU torch sees, else the CPU. A GPU
    asked for by name that torch does not see is an :class:`OptionError`."""
    cuda = torch.cuda.is_available()
    if asked == "auto":
        return "cuda" if cuda else "cpu"
    if asked == "cpu":
        return "cpu"
    if asked.startswith("cuda"):
        index = asked.partition(":")[2]
        if not cuda or (index and (not index.isdigit() or int(index) >= torch.cuda.device_count())):
            raise OptionError(f"--device {asked!r}: torch sees no such GPU here; use cpu or auto")
        return asked
    raise OptionError(f"--device {asked!r}: expected auto, cpu, cuda or cuda:N")


SNAPSHOTS = 6


def fast_path(document: Mapping[str, Any]) -> str:
    """The model the fast path ships: the graph network only when its cascade-subset AUPRC on the severe
    held-out sets beats the tree's by 0.02 with every bootstrap interval above zero."""
    severe = document["models"]["severe"]
    ours, theirs = severe["gnn"]["auprc_cascade"]["mean"], severe["tree"]["auprc_cascade"]["mean"]
    if ours is None or theirs is None or not np.isfinite(ours - theirs):  # no cascade to judge on
        return "tree"
    margin = ours - theirs
    boot = severe["bootstrap_gnn_vs_tree"]
    wins = margin >= 0.02 and boot["intervals_excluding_zero"] == len(boot["intervals"])
    return "gnn" if wins else "tree"


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (JSON and PostgreSQL's jsonb have no NaN)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def train_and_store(
    conninfo: str, scenarios: int, seed: int, positions: int, epochs: int, *, book: str = "synthetic",
    snapshots: int = SNAPSHOTS, chain_id: int | None = None, device: str = "cpu",
) -> dict[str, Any]:  # fmt: skip
    """Train on :func:`synthetic_snapshots` or, with ``book="indexed"``, on :func:`indexed_snapshots`;
    store both models; return the comparison and the versions."""
    import psycopg

    from chainrisk.contagion.surrogate_store import save_model

    if book == "indexed":
        with psycopg.connect(conninfo) as conn:
            taken, blocks = indexed_snapshots(conn, snapshots, chain_id)
        described: dict[str, Any] = {"book": "indexed", "chain_id": blocks[0], "blocks": blocks[1]}
    else:
        taken = synthetic_snapshots(snapshots, positions, seed)
        described = {"positions": positions, "book_seed": seed}
    torch.set_num_threads(min(2, torch.get_num_threads()))
    trained = train(taken, scenarios, seed, TrainConfig(epochs=epochs, device=device))
    document = finite({k: v for k, v in trained.document.items() if k != "seeds"})
    choice = fast_path(document)
    metrics = {"models": document["models"], "held_out": document["held_out"], "fast_path": choice}
    data_range = {**trained.data_range, **described}
    config = config_of(trained.config)
    stored = {}
    with psycopg.connect(conninfo) as conn:
        for kind, weights in (("tree", tree_weights(trained.tree)), ("gnn", gnn_weights(trained.gnn))):
            _, stored[kind] = save_model(
                conn, kind, seed=seed, scenarios=scenarios, data_range=data_range, metrics=metrics,
                config=config, weights=weights,
            )  # fmt: skip
    return {**document, "stored": stored, "fast_path": choice, "data_range": data_range}


_FIRST_BORROW = """
SELECT min(block_number) FROM (
    SELECT block_number FROM aave_v3_borrow WHERE chain_id = %(c)s AND block_number <= %(b)s
    UNION ALL
    SELECT block_number FROM morpho_blue_borrow WHERE chain_id = %(c)s AND block_number <= %(b)s
) borrows
"""


def snapshot_blocks(first: int, head: int, count: int) -> list[int]:
    """``count`` blocks evenly spaced from ``first`` (the first borrow) to ``head``, both included; fewer
    when the range holds fewer blocks."""
    if head <= first:
        return [head]
    return sorted({round(first + (head - first) * k / (count - 1)) for k in range(count)})


def indexed_snapshots(
    conn: Any, count: int, chain_id: int | None = None
) -> tuple[list[Snapshot], tuple[int, list[int]]]:
    """The indexed book at ``count`` blocks from its first borrow to the head (:func:`snapshot_blocks`),
    Aave markets and Morpho Blue books, with the assets whose oracle follows a pool as the ones the
    scenarios move; and (chain, blocks). Raises :class:`OptionError` when there is too little history."""
    from chainrisk.contagion import inputs as loading

    head = loading.load_inputs(conn, chain_id, None)
    first = conn.execute(_FIRST_BORROW, {"c": head.chain_id, "b": head.block}).fetchone()
    if first is None or first[0] is None:
        raise OptionError(
            f"--book indexed: no borrow indexed on chain {head.chain_id}; index the lending markets first"
            " or use --book synthetic"
        )
    blocks = snapshot_blocks(int(str(first[0])), head.block, count)
    if len(blocks) < 4:
        raise OptionError(
            f"--book indexed: the index of chain {head.chain_id} holds borrowers over {len(blocks)}"
            " block(s); a temporal split needs 4 books at distinct blocks; index more history or use"
            " --book synthetic"
        )
    found = []
    for t, block in enumerate(blocks):
        inputs = head if block == head.block else loading.load_inputs(conn, head.chain_id, block)
        moving = tuple(a for a, o in sorted(inputs.oracles.items()) if o.kind != "fixed")
        if not moving:
            raise OptionError(
                f"--book indexed: at block {block} no asset's oracle follows a pool, so no scenario moves"
                " a price; index the Uniswap v3 pools of the collateral assets"
            )
        found.append(Snapshot(t, tuple(inputs.books), inputs.pools, inputs.oracles, moving))
    return found, (head.chain_id, blocks)


def _indexed_graph(
    conninfo: str, shocks: Sequence[str], chain_id: int | None
) -> tuple[StaticGraph, dict[str, Fraction]]:
    import psycopg

    from chainrisk.contagion import inputs as loading

    with psycopg.connect(conninfo) as conn:
        inputs = loading.load_inputs(conn, chain_id, None)
    parsed = loading.parse_shocks(shocks, inputs.symbols, list(inputs.oracles))
    return static_graph(inputs.books, inputs.pools, inputs.oracles), parsed


def _synthetic_graph(
    data_range: Mapping[str, Any], shocks: Sequence[str]
) -> tuple[StaticGraph, dict[str, Fraction]]:
    from chainrisk.bench.cascade import address
    from chainrisk.contagion import inputs as loading
    from devnet.aave import ASSETS

    latest = synthetic_snapshots(SNAPSHOTS, int(data_range["positions"]), int(data_range["book_seed"]))[-1]
    symbols = {address(a.symbol): a.symbol for a in ASSETS}
    parsed = loading.parse_shocks(shocks, symbols, list(latest.oracles))
    return book_graph(latest), parsed


def _at(values: np.ndarray[Any, np.dtype[np.float64]] | None, i: int) -> float | None:
    return None if values is None else float(values[i])


def predict_command(
    conninfo: str, shocks: Sequence[str], kind: str, book: str, top: int, chain_id: int | None = None
) -> dict[str, Any]:
    """Load the latest model of ``kind``, apply it to the shock on the chosen book, rank the accounts. With
    the indexed book and no ``chain_id``: the chain the model was trained on, if it was trained on one."""
    import psycopg

    from chainrisk.contagion.surrogate_store import load_model, tree_from_weights

    with psycopg.connect(conninfo) as conn:
        stored = load_model(conn, kind)
    if book == "indexed":
        trained_on = stored.data_range.get("chain_id") if stored.data_range.get("book") == "indexed" else None
        static, parsed = _indexed_graph(conninfo, shocks, chain_id if chain_id is not None else trained_on)
    elif stored.data_range.get("book") == "indexed":
        raise OptionError(
            f"--book synthetic: {kind} v{stored.version} was trained on the indexed book, not on a"
            " synthetic one; use --book indexed"
        )
    else:
        static, parsed = _synthetic_graph(stored.data_range, shocks)
    if kind == "gnn":
        result = predict(static, parsed, kind, gnn=gnn_from_weights(stored.weights, stored.config))
    else:
        result = predict(static, parsed, kind, tree=tree_from_weights(stored.weights))
    order = np.argsort(-result.probability, kind="stable")[:top]
    return {
        "model": kind,
        "version": stored.version,
        "book": book,
        "shock": {asset: float(f) for asset, f in parsed.items()},
        "bad_debt_usd": result.bad_debt_usd,
        "expected_liquidations": float(result.probability.sum()),
        "expected_liquidated_usd": (
            None if result.liquidated_usd is None else float(result.liquidated_usd.sum())
        ),
        "expected_account_bad_debt_usd": (
            None if result.account_bad_debt_usd is None else float(result.account_bad_debt_usd.sum())
        ),
        "below_one": result.below_one,
        "accounts": [
            {
                "market": result.accounts[i][0],
                "wallet": result.accounts[i][1],
                "probability": float(result.probability[i]),
                "expected_liquidated_usd": _at(result.liquidated_usd, i),
                "expected_bad_debt_usd": _at(result.account_bad_debt_usd, i),
                "first_round": _at(result.first_round, i),
            }
            for i in order
        ],
    }
