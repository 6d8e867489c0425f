"""Morpho Blue in the contagion commands' documents: one scenario's outcome and its simulate document.

The books are tests/graph/test_cascade_morpho.py's: an Aave WETH/USDC market and a Morpho WETH/USDC
market on one pool; Carol's Morpho position (1 WETH against 2,000 USDC) loses all its collateral at
WETH $1,500 and leaves bad debt.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from chainrisk.contagion.inputs import Inputs
from chainrisk.contagion.report import report, simulate
from chainrisk.contagion.var import outcome
from tests.graph.test_cascade import KEY, USDC, WETH, _market, _oracles, _pool
from tests.graph.test_cascade_morpho import CAROL, MORPHO_ID, _morpho

SHOCK = {WETH: Fraction(3, 4)}


def _inputs() -> Inputs:
    book = _morpho({CAROL: (1, 2_000)})
    return Inputs(
        1, 1, (_market(),), {"aave": "aave-pool", MORPHO_ID: "morpho WETH/USDC"}, {KEY: _pool()},
        {KEY: "0xpool"}, _oracles("fixed"), {WETH: "WETH", USDC: "USDC"}, {WETH: 18, USDC: 6}, (book,),
    )  # fmt: skip


def test_the_outcome_counts_morphos_bad_debt_per_market() -> None:
    inputs = _inputs()
    assert inputs.market_names == ["aave", MORPHO_ID]
    result = simulate(inputs, SHOCK)
    amount = result.bad_debt[(MORPHO_ID, USDC)]
    found = outcome(inputs, SHOCK)
    assert found.by_market[MORPHO_ID] == amount / 10**6 > 0  # USDC at $1
    assert found.by_asset[(MORPHO_ID, USDC)] == found.by_market[MORPHO_ID]
    assert found.bad_debt == sum(found.by_market.values())
    assert any(x.market == MORPHO_ID for x in found.liquidations)


def test_the_simulate_document_names_each_liquidations_protocol() -> None:
    inputs = _inputs()
    document: dict[str, Any] = report(inputs, SHOCK, simulate(inputs, SHOCK))
    rows = [x for r in document["rounds"] for x in r["liquidations"]]
    assert {(x["protocol"], x["market"], x["market_label"]) for x in rows} >= {
        ("morpho_blue", MORPHO_ID, "morpho WETH/USDC")
    }
    bad = document["bad_debt"]
    assert [(x["market"], x["market_label"]) for x in bad] == [(MORPHO_ID, "morpho WETH/USDC")]
