"""The surrogate's graph network: heterogeneous message passing over accounts, wallets, markets, assets and
pools (torch-geometric), one liquidation logit per account and one bad-debt estimate per market.

Each node type is first encoded to ``hidden`` features; then ``layers`` rounds of :class:`HeteroConv`
pass messages along every edge type (collateral and debt edges with their amounts through
:class:`AmountConv`, pool prices back to assets through :class:`GATConv`, membership edges through
:class:`SAGEConv`), with a residual connection. Two rounds reach the path account → asset → pool → asset →
account that a cascade takes (a sale moves the pool, the feed follows it, the next account falls).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
from torch import Tensor, nn

with warnings.catch_warnings():
    # torch-geometric 2.8 scripts a class with torch.jit at import, which torch 2.13 deprecates; the
    # scripted class is not one this module uses.
    warnings.simplefilter("ignore", DeprecationWarning)
    from torch_geometric.nn import GATConv, HeteroConv, MessagePassing, SAGEConv

EdgeType = tuple[str, str, str]

NODE_TYPES = ("account", "wallet", "market", "asset", "pool")
AMOUNT_EDGES: tuple[EdgeType, ...] = (
    ("account", "collateral", "asset"),
    ("asset", "collateral_of", "account"),
    ("account", "debt", "asset"),
    ("asset", "debt_of", "account"),
    ("asset", "traded_in", "pool"),
)
PLAIN_EDGES: tuple[EdgeType, ...] = (
    ("account", "held_by", "wallet"),
    ("wallet", "holds", "account"),
    ("account", "in", "market"),
    ("market", "has", "account"),
)
ATTENTION_EDGES: tuple[EdgeType, ...] = (("pool", "prices", "asset"),)
EDGE_DIM = 2


class AmountConv(MessagePassing):  # type: ignore[misc]  # torch-geometric ships no type hints
    """Mean of ``relu(W_s x_j + W_e e_ij)`` over the sources of each target, added to ``W_d x_i``: a
    SAGE-style layer whose messages carry the edge's amounts (collateral, debt, pool depth)."""

    def __init__(self, in_channels: int, out_channels: int, edge_dim: int) -> None:
        super().__init__(aggr="mean")
        self.lin_src = nn.Linear(in_channels, out_channels)
        self.lin_edge = nn.Linear(edge_dim, out_channels, bias=False)
        self.lin_dst = nn.Linear(in_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fresh weights (PyG's layer protocol)."""
        super().reset_parameters()
        self.lin_src.reset_parameters()
        self.lin_edge.reset_parameters()
        self.lin_dst.reset_parameters()

    def forward(self, x: tuple[Tensor, Tensor], edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        """(source features, target features), edges (2, E), amounts (E, edge_dim) → (targets, out)."""
        aggregated: Tensor = self.propagate(edge_index, x=x, edge_attr=edge_attr)
        result: Tensor = aggregated + self.lin_dst(x[1])
        return result

    def message(self, x_j: Tensor, edge_attr: Tensor) -> Tensor:
        """One edge's message: the source and the amounts it moves."""
        result: Tensor = torch.relu(self.lin_src(x_j) + self.lin_edge(edge_attr))
        return result


def _conv(edge: EdgeType, hidden: int) -> nn.Module:
    if edge in AMOUNT_EDGES:
        return AmountConv(hidden, hidden, EDGE_DIM)
    conv: nn.Module
    if edge in ATTENTION_EDGES:
        conv = GATConv((hidden, hidden), hidden, heads=1, add_self_loops=False)
    else:
        conv = SAGEConv((hidden, hidden), hidden)
    return conv


class ContagionGNN(nn.Module):
    """Encoders per node type, ``layers`` heterogeneous rounds, an account head and a market head."""

    def __init__(self, in_dims: Mapping[str, int], hidden: int = 32, layers: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.encoders = nn.ModuleDict({t: nn.Linear(in_dims[t], hidden) for t in NODE_TYPES})
        edges = AMOUNT_EDGES + PLAIN_EDGES + ATTENTION_EDGES
        self.convs = nn.ModuleList(
            [HeteroConv({e: _conv(e, hidden) for e in edges}, aggr="sum") for _ in range(layers)]
        )
        self.account_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.market_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def embed(
        self,
        x: Mapping[str, Tensor],
        edge_index: Mapping[EdgeType, Tensor],
        edge_attr: Mapping[EdgeType, Tensor],
    ) -> dict[str, Tensor]:
        """Every node's ``hidden`` features after the message passing."""
        h = {t: torch.relu(self.encoders[t](x[t])) for t in NODE_TYPES}
        for conv in self.convs:
            out = conv(h, dict(edge_index), edge_attr_dict=dict(edge_attr))
            h = {t: torch.relu(out[t]) + h[t] if t in out else h[t] for t in NODE_TYPES}
        return h

    def forward(
        self,
        x: Mapping[str, Tensor],
        edge_index: Mapping[EdgeType, Tensor],
        edge_attr: Mapping[EdgeType, Tensor],
    ) -> tuple[Tensor, Tensor]:
        """(account liquidation logits, market log1p bad debt in thousands of USD)."""
        h = self.embed(x, edge_index, edge_attr)
        return self.account_head(h["account"]).squeeze(-1), self.market_head(h["market"]).squeeze(-1)
