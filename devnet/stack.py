"""The whole devnet: both Aave v3 markets, the Governor, Uniswap v3 and Morpho Blue on one anvil, and its
scenario.

    with devnet_node(home) as node:
        stack = deploy_all(node, home)
        write_manifest(stack.manifest(), manifest_path(home), node.url)
        result = stack.simulate(days=30, wallets=500, seed=1)

`chainrisk devnet up`, the demo and `chainrisk bench devnet` deploy through :func:`deploy_all`;
`chainrisk devnet simulate` runs the scenario on a running devnet through :func:`run_scenario`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devnet import GENESIS_TIMESTAMP
from devnet.aave import Deployment, deploy_markets
from devnet.anvil import Anvil
from devnet.errors import DevnetError
from devnet.governance import Governance, default_holders, deploy_governance, manifest_with_governance
from devnet.morpho import Morpho, deploy_morpho, manifest_with_morpho
from devnet.scenario import BLOCK_S, PricePath, ScenarioResult, price_path, simulate
from devnet.serve import PortAnvil, load_manifest
from devnet.uniswap import Uniswap, deploy_uniswap, manifest_with_uniswap


class DevnetDownError(DevnetError, ConnectionError):
    """The devnet a manifest names does not answer; the message says how to start it."""

    exit_code = 2


@dataclass(frozen=True)
class Stack:
    """What runs on the devnet: the markets, and the Governor, Uniswap pools and Morpho when deployed."""

    deployment: Deployment
    governance: Governance | None
    uniswap: Uniswap | None
    deploy_s: float = 0.0
    morpho: Morpho | None = None

    @classmethod
    def from_manifest(cls, body: Mapping[str, Any], home: Path) -> Stack:
        """The stack a manifest describes, bound to the node at its ``rpc_url``."""
        deployment = Deployment.from_manifest(body, str(body["rpc_url"]), home)
        return cls(
            deployment,
            Governance.from_manifest(body, deployment),
            Uniswap.from_manifest(body, deployment),
            morpho=Morpho.from_manifest(body, deployment),
        )

    def manifest(self) -> dict[str, Any]:
        """The manifest body (without ``rpc_url``): the markets, then the governance, Uniswap and Morpho
        sections."""
        body = self.deployment.to_manifest()
        if self.governance is not None:
            body = manifest_with_governance(body, self.governance)
        if self.uniswap is not None:
            body = manifest_with_uniswap(body, self.uniswap)
        return body if self.morpho is None else manifest_with_morpho(body, self.morpho)

    def simulate(
        self, days: int, wallets: int, seed: int, prices: Path | PricePath | None = None, **options: Any
    ) -> ScenarioResult:
        """The market scenario (:func:`devnet.scenario.simulate`) with this stack's Governor, pools and
        Morpho markets."""
        return simulate(
            self.deployment, days, wallets, seed, prices, governance=self.governance, uniswap=self.uniswap,
            morpho=self.morpho, **options,
        )  # fmt: skip


@contextmanager
def devnet_node(home: Path, port: int = 0, genesis_timestamp: int = GENESIS_TIMESTAMP) -> Iterator[Anvil]:
    """Anvil on ``port`` (0: any free one) whose blocks start at ``genesis_timestamp`` and follow 12 s
    apart, so a seed makes the very same chain, hashes included; stopped on leaving the block."""
    with PortAnvil(home, port, extra_args=["--timestamp", str(genesis_timestamp)]) as node:
        node.rpc("anvil_setBlockTimestampInterval", [BLOCK_S])
        yield node


def deploy_all(node: Anvil, home: Path) -> Stack:
    """Deploy both Aave markets, the Governor (risk admin of 'aave'), the Uniswap v3 pools and Morpho Blue.

    Morpho comes last, so the contracts deployed before it keep their addresses.
    """
    started = time.perf_counter()
    deployment = deploy_markets(node, home)
    governance = deploy_governance(deployment, home, default_holders())
    uniswap = deploy_uniswap(deployment, home)
    morpho = deploy_morpho(deployment, home)
    return Stack(deployment, governance, uniswap, time.perf_counter() - started, morpho)


def run_scenario(
    manifest: Path, home: Path, days: int, wallets: int, seed: int, prices: Path | None = None, **options: Any
) -> dict[str, Any]:
    """Run the scenario on the devnet ``manifest`` describes; the full record goes next to the manifest.

    ``options`` go to :func:`devnet.scenario.simulate` (``progress``, ``activity``, ``feedback``). Returns
    the summary: the result without its labels, liquidations and proposals in short, the record's path.
    A bad price file fails before any transaction is sent.
    """
    try:
        body = load_manifest(manifest)
        start = {symbol: int(asset["initial_price"]) for symbol, asset in body["assets"].items()}
        planned = price_path(days, seed, start, prices)  # bad CSVs fail here, before any transaction
        stack = Stack.from_manifest(body, home)
        result = stack.simulate(days, wallets, seed, planned, **options)
    except httpx.TransportError as exc:
        raise DevnetDownError(
            f"the devnet in {manifest} does not answer ({exc}): start it with `chainrisk devnet up`"
        ) from None
    return _summary(result, _write_record(result, manifest.parent / "scenario.json"))


def _write_record(result: ScenarioResult, record: Path) -> Path:
    record.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return record


def _summary(result: ScenarioResult, record: Path) -> dict[str, Any]:
    summary = {**result.to_dict(), "liquidations": len(result.liquidations), "record": str(record)}
    summary["morpho_liquidations"] = len(result.morpho_liquidations)
    summary["proposals"] = [{"description": p.description, "state": p.state} for p in result.proposals]
    summary.pop("labels")
    return summary
