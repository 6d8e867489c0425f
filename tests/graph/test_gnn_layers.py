"""Shapes of each layer of the surrogate's graph network, and the batch that repeats a book per scenario."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chainrisk.contagion.surrogate import book_graph, synthetic_snapshots
from graph.gnn.dataset import draw_factors
from graph.gnn.features import FEATURES, shock_matrix, tabular
from graph.gnn.model import AmountConv, ContagionGNN
from graph.gnn.tensors import IN_DIMS, graph_batch, node_counts


@pytest.fixture(scope="module")
def book():
    snapshot = synthetic_snapshots(1, 60, seed=3)[0]
    static = book_graph(snapshot)
    shocks = shock_matrix(static, snapshot.moving, draw_factors(snapshot.moving, "severe", 3, seed=1))
    return static, shocks


def test_amount_conv_maps_sources_to_targets_with_the_edge_amounts() -> None:
    torch.manual_seed(0)
    conv = AmountConv(4, 6, edge_dim=2)
    sources, targets = torch.randn(3, 4), torch.randn(2, 4)
    edges = torch.tensor([[0, 1, 2, 2], [0, 0, 1, 1]])
    amounts = torch.randn(4, 2)
    out = conv((sources, targets), edges, amounts)
    assert out.shape == (2, 6)
    # The amounts travel with the messages: other amounts, other output.
    assert not torch.allclose(out, conv((sources, targets), edges, amounts + 1.0))
    # A target without edges gets its own transform only.
    three = torch.randn(3, 4)
    lonely = conv((sources, three), edges, amounts)[2]
    assert torch.allclose(lonely, conv.lin_dst(three[2]))


def test_amount_conv_reset_parameters_draws_new_weights() -> None:
    conv = AmountConv(4, 6, edge_dim=2)
    before = conv.lin_src.weight.detach().clone()
    conv.reset_parameters()
    assert conv.lin_src.weight.shape == (6, 4)
    assert not torch.equal(before, conv.lin_src.weight)


def test_batch_repeats_the_book_once_per_scenario(book) -> None:
    static, shocks = book
    batch = graph_batch(static, shocks)
    counts = node_counts(static)
    for node, dim in IN_DIMS.items():
        assert batch.x[node].shape == (3 * counts[node], dim)
    for (src, _, dst), index in batch.edge_index.items():
        per_copy = index.shape[1] // 3
        # Copy k's edges join copy k's nodes only.
        for k in range(3):
            part = index[:, k * per_copy : (k + 1) * per_copy]
            assert part[0].min() >= k * counts[src] and part[0].max() < (k + 1) * counts[src]
            assert part[1].min() >= k * counts[dst] and part[1].max() < (k + 1) * counts[dst]
    assert batch.x["account"].shape[1] == len(FEATURES)
    assert np.allclose(batch.x["account"].numpy(), tabular(static, shocks), atol=1e-5)


def test_network_outputs_one_logit_per_account_and_one_estimate_per_market(book) -> None:
    static, shocks = book
    torch.manual_seed(0)
    model = ContagionGNN(IN_DIMS, hidden=8, layers=2)
    batch = graph_batch(static, shocks)
    logits, markets = model(batch.x, batch.edge_index, batch.edge_attr)
    assert logits.shape == (3 * len(static.accounts),)
    assert markets.shape == (3 * len(static.markets),)
    embedded = model.embed(batch.x, batch.edge_index, batch.edge_attr)
    assert {k: v.shape[1] for k, v in embedded.items()} == dict.fromkeys(IN_DIMS, 8)
    # Scenario 0 alone gives scenario 0's outputs: the copies do not talk to each other.
    alone = graph_batch(static, shocks[:1])
    first, _ = model(alone.x, alone.edge_index, alone.edge_attr)
    assert torch.allclose(first, logits[: len(static.accounts)], atol=1e-5)
