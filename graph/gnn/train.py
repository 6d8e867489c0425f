"""Training and scoring the graph network on labelled scenario sets: mini-batches of scenarios of one book,
binary cross-entropy on every account's liquidation plus squared error on each market's log1p bad debt,
Adam, early stopping on the validation loss, fixed seeds; CPU by default, any torch device when given.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from graph.gnn.approx import Approximation, approximate_cascade
from graph.gnn.dataset import LabelledSet
from graph.gnn.features import FloatArray, StaticGraph, shock_matrix, tabular
from graph.gnn.model import ContagionGNN
from graph.gnn.tensors import IN_DIMS, GraphBatch, graph_batch


@dataclass(frozen=True)
class Prepared:
    """A labelled set with its graph, shocks and feature rows, ready for every model."""

    labelled: LabelledSet
    static: StaticGraph
    shocks: FloatArray
    table: FloatArray
    approx: Approximation  # of the same shocks: the scenario features and the bad-debt anchor read it

    @property
    def liquidated(self) -> np.ndarray:
        """Liquidated in any round, per row (scenario-major)."""
        return self.labelled.first_round.reshape(-1) > 0


def prepare(labelled: LabelledSet, static: StaticGraph) -> Prepared:
    """Shocks and feature rows of a labelled set over its book's graph."""
    shocks = shock_matrix(static, labelled.assets, labelled.factors)
    approx = approximate_cascade(static, shocks)
    return Prepared(labelled, static, shocks, tabular(static, shocks, approx), approx)


@dataclass(frozen=True)
class TrainConfig:
    """Sizes and schedule; ``device`` is any torch device name."""

    hidden: int = 32
    layers: int = 3
    epochs: int = 25
    patience: int = 4
    batch: int = 16
    learning_rate: float = 3e-3
    market_weight: float = 0.5
    seed: int = 0
    device: str = "cpu"


@dataclass
class History:
    """Losses per epoch and the epoch whose weights were kept."""

    train: list[float] = field(default_factory=list)
    valid: list[float] = field(default_factory=list)
    best_epoch: int = 0


def _batches(prepared: Prepared, size: int) -> list[tuple[GraphBatch, Tensor, Tensor]]:
    """(graph, account labels, market targets) per chunk of ``size`` scenarios."""
    out = []
    n = len(prepared.static.accounts)
    liquidated = prepared.liquidated.astype(np.float32)
    target = np.log1p(prepared.labelled.bad_debt_by_market / 1e3).astype(np.float32)
    for lo in range(0, prepared.shocks.shape[0], size):
        hi = min(lo + size, prepared.shocks.shape[0])
        graph = graph_batch(prepared.static, prepared.shocks[lo:hi], prepared.table[lo * n : hi * n])
        out.append(
            (
                graph,
                torch.from_numpy(liquidated[lo * n : hi * n]),
                torch.from_numpy(target[lo:hi].reshape(-1)),
            )
        )
    return out


def _loss(model: ContagionGNN, graph: GraphBatch, labels: Tensor, target: Tensor, weight: float) -> Tensor:
    logits, markets = model(graph.x, graph.edge_index, graph.edge_attr)
    loss: Tensor = nn.functional.binary_cross_entropy_with_logits(logits, labels)
    return loss + weight * nn.functional.mse_loss(markets, target)


def _epoch(
    model: ContagionGNN, batches: Sequence[tuple[GraphBatch, Tensor, Tensor]], config: TrainConfig,
    optimiser: torch.optim.Optimizer | None, rng: np.random.Generator,
) -> float:  # fmt: skip
    device = torch.device(config.device)
    total = 0.0
    order = rng.permutation(len(batches)) if optimiser is not None else np.arange(len(batches))
    for i in order:
        graph, labels, target = batches[int(i)]
        with torch.set_grad_enabled(optimiser is not None):
            loss = _loss(model, graph.to(device), labels.to(device), target.to(device), config.market_weight)
        if optimiser is not None:
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
        total += float(loss.detach())
    return total / max(1, len(batches))


def train_gnn(
    train: Sequence[Prepared], valid: Sequence[Prepared], config: TrainConfig
) -> tuple[ContagionGNN, History]:
    """Train with early stopping on ``valid``; returns the best epoch's model (on the CPU)."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = ContagionGNN(IN_DIMS, config.hidden, config.layers).to(torch.device(config.device))
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    train_batches = [b for p in train for b in _batches(p, config.batch)]
    valid_batches = [b for p in valid for b in _batches(p, config.batch)]
    history, best, stale = History(), float("inf"), 0
    kept = copy.deepcopy(model.state_dict())
    for epoch in range(config.epochs):
        model.train()
        history.train.append(_epoch(model, train_batches, config, optimiser, rng))
        model.eval()
        history.valid.append(_epoch(model, valid_batches, config, None, rng))
        if history.valid[-1] < best - 1e-4:
            best, stale, history.best_epoch = history.valid[-1], 0, epoch
            kept = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    model.load_state_dict(kept)
    return model.to(torch.device("cpu")), history


@torch.no_grad()
def predict_gnn(
    model: ContagionGNN, static: StaticGraph, shocks: FloatArray, table: FloatArray | None = None,
    batch: int = 64, device: str = "cpu",
) -> tuple[FloatArray, FloatArray, FloatArray]:  # fmt: skip
    """(liquidation probability per row, bad debt USD per (scenario, market), account embeddings)."""
    model.eval()
    model.to(torch.device(device))
    table = tabular(static, shocks) if table is None else table
    n = len(static.accounts)
    probs, debts, embeds = [], [], []
    for lo in range(0, shocks.shape[0], batch):
        hi = min(lo + batch, shocks.shape[0])
        graph = graph_batch(static, shocks[lo:hi], table[lo * n : hi * n]).to(torch.device(device))
        h = model.embed(graph.x, graph.edge_index, graph.edge_attr)
        probs.append(torch.sigmoid(model.account_head(h["account"]).squeeze(-1)).cpu().numpy())
        markets = model.market_head(h["market"]).squeeze(-1).clamp(min=0.0)
        debts.append((torch.expm1(markets) * 1e3).cpu().numpy().reshape(hi - lo, -1))
        embeds.append(h["account"].cpu().numpy())
    model.to(torch.device("cpu"))
    return (
        np.concatenate(probs).astype(np.float64),
        np.concatenate(debts).astype(np.float64),
        np.concatenate(embeds).astype(np.float64),
    )
