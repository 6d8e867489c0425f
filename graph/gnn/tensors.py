"""A book's exposure graph under many scenarios as one batch of disjoint graphs for :mod:`graph.gnn.model`.

The structure is the book's; only the features move with the scenario, so the edges of one copy are
built once and repeated with an offset per scenario. Scenario ``s``'s accounts are rows
``s·N … s·N + N − 1`` of the account features (scenario-major, as :func:`graph.gnn.features.tabular`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from graph.gnn.features import FEATURES, FloatArray, StaticGraph, tabular
from graph.gnn.model import EdgeType

IN_DIMS = {"account": len(FEATURES), "wallet": 2, "market": 2, "asset": 10, "pool": 3}


@dataclass(frozen=True)
class GraphBatch:
    """Node features, edges and edge amounts of ``scenarios`` copies of one book."""

    scenarios: int
    x: dict[str, Tensor]
    edge_index: dict[EdgeType, Tensor]
    edge_attr: dict[EdgeType, Tensor]

    def to(self, device: torch.device) -> GraphBatch:
        """The same batch on ``device``."""
        return GraphBatch(
            self.scenarios,
            {k: v.to(device) for k, v in self.x.items()},
            {k: v.to(device) for k, v in self.edge_index.items()},
            {k: v.to(device) for k, v in self.edge_attr.items()},
        )


def _kusd(values: FloatArray) -> FloatArray:
    result: FloatArray = np.log1p(np.maximum(values, 0.0) / 1e3)
    return result


def _static_nodes(static: StaticGraph) -> dict[str, FloatArray]:
    n_wallets, n_markets = len(static.wallets), len(static.markets)
    debt = static.debt_usd.sum(axis=1)
    wallet_debt, wallet_count = np.zeros(n_wallets), np.zeros(n_wallets)
    np.add.at(wallet_debt, static.account_wallet, debt)
    np.add.at(wallet_count, static.account_wallet, 1.0)
    market_debt, market_count = np.zeros(n_markets), np.zeros(n_markets)
    np.add.at(market_debt, static.account_market, debt)
    np.add.at(market_count, static.account_market, 1.0)
    return {
        "wallet": np.stack([np.log1p(wallet_count), _kusd(wallet_debt)], axis=1),
        "market": np.stack([np.log1p(market_count), _kusd(market_debt)], axis=1),
    }


def _asset_nodes(static: StaticGraph, shocks: FloatArray, below: FloatArray) -> FloatArray:
    """(scenarios, assets, 10): the shock, the oracle, the book's exposure, round one's sales."""
    s, a = shocks.shape
    total = static.collateral_usd.sum(axis=0)
    selling = np.einsum("sn,na,sa->sa", below, static.collateral_usd, shocks)
    depth = static.asset_depth
    fixed = np.stack(
        [static.feed, static.deviation * 100, np.log1p(static.heartbeat / 3_600), _kusd(total),
         _kusd(static.debt_usd.sum(axis=0)), np.log1p(depth / 1e6)], axis=1,
    )  # fmt: skip
    moving = np.stack(
        [shocks - 1.0, np.log(shocks), selling / np.maximum(total, 1.0),
         np.where(depth > 0, selling / np.maximum(depth, 1.0), 0.0)], axis=2,
    )  # fmt: skip
    result: FloatArray = np.concatenate([moving, np.broadcast_to(fixed, (s, a, fixed.shape[1]))], axis=2)
    return result


def _pool_nodes(static: StaticGraph, shocks: FloatArray) -> FloatArray:
    s = shocks.shape[0]
    fixed = np.stack([np.log1p(static.pool_depth_usd / 1e6), static.pool_fee * 100], axis=1)
    relative = np.log(shocks[:, static.pool_assets[:, 0]] / shocks[:, static.pool_assets[:, 1]])
    result: FloatArray = np.concatenate(
        [np.broadcast_to(fixed, (s, *fixed.shape)), relative[:, :, None]], axis=2
    )
    return result


def _edges(static: StaticGraph) -> tuple[dict[EdgeType, FloatArray], dict[EdgeType, FloatArray]]:
    """One copy's edges (2, E) and amounts (E, 2)."""
    n = len(static.accounts)
    accounts = np.arange(n)
    coll_i, coll_a = np.nonzero(static.collateral_usd)
    debt_i, debt_a = np.nonzero(static.debt_usd)
    total = np.maximum(static.collateral_usd.sum(axis=0), 1.0)
    debts = np.maximum(static.debt_usd.sum(axis=0), 1.0)
    coll_attr = np.stack([_kusd(static.collateral_usd[coll_i, coll_a]),
                          static.collateral_usd[coll_i, coll_a] / total[coll_a]], axis=1)  # fmt: skip
    debt_attr = np.stack([_kusd(static.debt_usd[debt_i, debt_a]),
                          static.debt_usd[debt_i, debt_a] / debts[debt_a]], axis=1)  # fmt: skip
    pools = np.arange(len(static.pools))
    pool_src = np.concatenate([static.pool_assets[:, 0], static.pool_assets[:, 1]])
    pool_dst = np.concatenate([pools, pools])
    depth = np.log1p(static.pool_depth_usd[pool_dst] / 1e6)
    pool_attr = np.stack([depth, np.zeros_like(depth)], axis=1)
    index = {
        ("account", "collateral", "asset"): np.stack([coll_i, coll_a]),
        ("asset", "collateral_of", "account"): np.stack([coll_a, coll_i]),
        ("account", "debt", "asset"): np.stack([debt_i, debt_a]),
        ("asset", "debt_of", "account"): np.stack([debt_a, debt_i]),
        ("asset", "traded_in", "pool"): np.stack([pool_src, pool_dst]),
        ("pool", "prices", "asset"): np.stack([pool_dst, pool_src]),
        ("account", "held_by", "wallet"): np.stack([accounts, static.account_wallet]),
        ("wallet", "holds", "account"): np.stack([static.account_wallet, accounts]),
        ("account", "in", "market"): np.stack([accounts, static.account_market]),
        ("market", "has", "account"): np.stack([static.account_market, accounts]),
    }
    attr = {
        ("account", "collateral", "asset"): coll_attr,
        ("asset", "collateral_of", "account"): coll_attr,
        ("account", "debt", "asset"): debt_attr,
        ("asset", "debt_of", "account"): debt_attr,
        ("asset", "traded_in", "pool"): pool_attr,
    }
    return index, attr


def node_counts(static: StaticGraph) -> dict[str, int]:
    """Nodes of each type in one copy of the book."""
    return {
        "account": len(static.accounts),
        "wallet": len(static.wallets),
        "market": len(static.markets),
        "asset": len(static.assets),
        "pool": len(static.pools),
    }


def graph_batch(static: StaticGraph, shocks: FloatArray, table: FloatArray | None = None) -> GraphBatch:
    """The batch of ``len(shocks)`` copies; ``table`` (from :func:`tabular`) is computed when not given."""
    s = shocks.shape[0]
    table = tabular(static, shocks) if table is None else table
    below = table[:, FEATURES.index("below_one")].reshape(s, -1)
    static_x = _static_nodes(static)
    x = {
        "account": table,
        "wallet": np.tile(static_x["wallet"], (s, 1)),
        "market": np.tile(static_x["market"], (s, 1)),
        "asset": _asset_nodes(static, shocks, below).reshape(-1, IN_DIMS["asset"]),
        "pool": _pool_nodes(static, shocks).reshape(-1, IN_DIMS["pool"]),
    }
    counts = node_counts(static)
    one_index, one_attr = _edges(static)
    edge_index = {}
    for edge, pairs in one_index.items():
        offsets = np.array([counts[edge[0]], counts[edge[2]]])[:, None]
        tiled = np.concatenate([pairs + offsets * k for k in range(s)], axis=1)
        edge_index[edge] = torch.as_tensor(tiled, dtype=torch.long)
    edge_attr = {e: torch.as_tensor(np.tile(a, (s, 1)), dtype=torch.float32) for e, a in one_attr.items()}
    return GraphBatch(
        s, {t: torch.as_tensor(np.ascontiguousarray(v), dtype=torch.float32) for t, v in x.items()},
        edge_index, edge_attr,
    )  # fmt: skip
