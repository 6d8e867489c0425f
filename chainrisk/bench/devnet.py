"""`chainrisk bench devnet`: deploy the whole devnet and run the default market scenario, timed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chainrisk.bench import machine


def run(home: Path, days: int, wallets: int, seed: int) -> dict[str, Any]:
    """Deploy time, scenario wall time and transactions per second on a fresh anvil."""
    from devnet.stack import deploy_all, devnet_node

    with devnet_node(home) as node:
        stack = deploy_all(node, home)
        result = stack.simulate(days, wallets, seed)
    return {
        "benchmark": "devnet",
        "days": days,
        "wallets": wallets,
        "seed": seed,
        "deploy_seconds": round(stack.deploy_s, 2),
        "scenario_seconds": result.wall_s,
        "transactions": result.transactions,
        "blocks": result.blocks,
        "transactions_per_s": round(result.transactions / result.wall_s, 1),
        "liquidations": len(result.liquidations),
        "machine": machine(),
    }
