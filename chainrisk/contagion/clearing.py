"""Eisenberg–Noe clearing of the indexed book at shocked prices: the second lens beside the cascade.

    document = clearing_report(conn, chain_id=1, shocks=["ETH=-30%"])

The network is :func:`graph.exposure.clearing_network` (markets owe their suppliers, wallets owe the
markets they borrowed from); :func:`graph.clearing.clear` finds the greatest clearing vector. The report
separates the first-order shortfall — what wallets under water cannot pay even when every market pays
them in full — from the clearing shortfall, which adds what the markets' losses pass on to suppliers who
are borrowers elsewhere: the contagion the cascade's rounds do not see, because Aave ring-fences each
market's collateral and this lens does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from chainrisk.contagion.inputs import parse_shocks, token_symbols
from chainrisk.errors import ChainriskError
from graph.clearing import ClearingResult, clear
from graph.exposure import ClearingNetwork, clearing_network, market_labels, read_positions

Conn = psycopg.Connection[tuple[object, ...]]


class NothingToClearError(ChainriskError):
    """The chain has no indexed borrowing positions."""

    exit_code = 1


def clearing_report(conn: Conn, chain_id: int, shocks: Sequence[str]) -> dict[str, Any]:
    """Clear the chain's book at the shocked prices; a JSON-able document."""
    positions = read_positions(conn, chain_id)
    if not any(p.debt_usd for p in positions):
        raise NothingToClearError(
            f"no borrowing positions indexed on chain {chain_id}: index its Aave v3 Pool first (a"
            ' [[contracts]] entry with abi = "aave_v3_pool" on that chain, then `chainrisk index`)'
        )
    symbols = token_symbols(conn, chain_id)
    moves = parse_shocks(shocks, symbols, sorted({p.asset for p in positions}))
    network = clearing_network(positions, {a: float(f) for a, f in moves.items()})
    result = clear(network.liabilities, network.external_assets, [0.0] * len(network.nodes))
    labels = market_labels(conn, chain_id)
    shock = {asset: {"symbol": symbols.get(asset), "factor": str(f)} for asset, f in sorted(moves.items())}
    return _document(chain_id, shock, network, result, labels)


def _document(
    chain_id: int,
    shock: Mapping[str, Any],
    network: ClearingNetwork,
    result: ClearingResult,
    labels: Mapping[str, str],
) -> dict[str, Any]:
    unpaid = result.obligations - result.payments
    wallets = [i for i, (kind, _) in enumerate(network.nodes) if kind == "wallet"]
    markets = [
        {
            "market": name,
            "label": labels.get(name),
            "owed_to_suppliers_usd": float(result.obligations[i]),
            "paid_usd": float(result.payments[i]),
            "shortfall_usd": float(unpaid[i]),
            "defaulted": bool(result.defaulted[i]),
        }
        for i, (kind, name) in enumerate(network.nodes)
        if kind == "market"
    ]
    first_order = float(network.first_order_shortfall[wallets].sum())
    shortfall = float(unpaid[wallets].sum())
    return {
        "chain_id": chain_id,
        "shock": dict(shock),
        "markets": markets,
        "wallets": len(wallets),
        "wallets_defaulted": int(result.defaulted[wallets].sum()),
        "wallet_shortfall_usd": shortfall,
        "first_order_shortfall_usd": first_order,
        "contagion_shortfall_usd": max(shortfall - first_order, 0.0),
        "rounds": result.rounds,
    }


def clearing_table(document: Mapping[str, Any]) -> str:
    """The document as a plain-text table."""
    header = f"{'market':<44} {'label':<14} {'owed USD':>16} {'paid USD':>16} {'shortfall USD':>14}"
    lines = [header]
    for row in document["markets"]:
        lines.append(
            f"{row['market']:<44} {row['label'] or '':<14} {row['owed_to_suppliers_usd']:>16,.2f}"
            f" {row['paid_usd']:>16,.2f} {row['shortfall_usd']:>14,.2f}"
        )
    first, passed = document["first_order_shortfall_usd"], document["contagion_shortfall_usd"]
    lines.append(
        f"wallets {document['wallets']}, defaulted {document['wallets_defaulted']}; shortfall"
        f" {document['wallet_shortfall_usd']:,.2f} USD (first order {first:,.2f}, through the markets"
        f" {passed:,.2f}); rounds {document['rounds']}"
    )
    return "\n".join(lines)
