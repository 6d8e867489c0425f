"""Morpho Blue in the exposure graph and the clearing network, from the cascade's Morpho books.

A wallet borrows USDC against WETH both on an Aave pool and on a Morpho market (LLTV 86 %); a second
wallet only on Morpho. WETH at $2,000, USDC at $1.
"""

from __future__ import annotations

import pytest

from graph.exposure import Position, clearing_network, exposure_graph, market_exposure, morpho_positions
from tests.graph.test_cascade import USDC, WETH
from tests.graph.test_cascade_morpho import CAROL, DAVE, MORPHO_ID, _morpho

AAVE = "0x" + "a0" * 20
PRICES = {WETH: 2_000 * 10**8, USDC: 10**8}
# Carol: 10 WETH, 13,900 USDC on Morpho; 5 WETH, 4,000 USDC on Aave. Dave: 10 WETH, 13,700 USDC on Morpho.
AAVE_ROWS = [Position(AAVE, CAROL, WETH, 10_000.0, 0.0), Position(AAVE, CAROL, USDC, 0.0, 4_000.0)]


def _positions() -> list[Position]:
    book = _morpho({CAROL: (10, 13_900), DAVE: (10, 13_700)})
    return AAVE_ROWS + morpho_positions([book], PRICES)


def test_morpho_rows_are_the_books_at_the_prices() -> None:
    rows = morpho_positions([_morpho({CAROL: (10, 13_900)})], PRICES)
    assert rows == [
        Position(MORPHO_ID, CAROL, WETH, 20_000.0, 0.0, "morpho_blue"),
        Position(MORPHO_ID, CAROL, USDC, 0.0, 13_900.0, "morpho_blue"),
    ]


def test_market_nodes_and_edges_carry_their_protocol() -> None:
    graph = exposure_graph(_positions())
    assert graph.nodes[("market", MORPHO_ID)] == {"kind": "market", "protocol": "morpho_blue"}
    assert graph.nodes[("market", AAVE)]["protocol"] == "aave_v3"
    edge = graph.edges[("wallet", DAVE), ("market", MORPHO_ID)]
    assert (edge["collateral_usd"], edge["debt_usd"], edge["protocol"]) == (20_000.0, 13_700.0, "morpho_blue")
    assert graph.edges[("market", MORPHO_ID), ("asset", WETH)]["collateral_usd"] == 40_000.0


def test_a_wallet_on_both_protocols_links_their_markets() -> None:
    exposure = market_exposure(exposure_graph(_positions()))
    aave, morpho = exposure.markets.index(AAVE), exposure.markets.index(MORPHO_ID)
    # Carol's 13,900 Morpho debt is backed by her collateral pro rata: 10,000 of her 30,000 sits on Aave.
    assert exposure.exposures[morpho, aave] == pytest.approx(13_900 * 10_000 / 30_000)
    assert exposure.exposures[aave, morpho] == pytest.approx(4_000 * 20_000 / 30_000)
    assert exposure.buffers[morpho] == pytest.approx(40_000 - 27_600)


def test_the_clearing_network_holds_the_morpho_market() -> None:
    network = clearing_network(_positions(), {WETH: 0.6})
    morpho = network.nodes.index(("market", MORPHO_ID))
    dave = network.nodes.index(("wallet", DAVE))
    assert network.liabilities[dave, morpho] == pytest.approx(13_700.0)
    assert network.liabilities[morpho, dave] == pytest.approx(12_000.0)  # his collateral at $1,200
