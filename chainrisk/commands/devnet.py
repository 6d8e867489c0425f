"""`chainrisk devnet`: a local anvil chain with two real Aave v3 markets, an OpenZeppelin Governor and
Uniswap v3, the market scenario, and the indexer config for it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from devnet.anvil import Anvil

app = typer.Typer(help="devnet commands.", no_args_is_help=True)
GENESIS_TIMESTAMP = 1_735_689_600  # 2025-01-01T00:00:00Z


@app.command("up")
def devnet_up(
    ctx: typer.Context,
    port: Annotated[
        int,
        typer.Option(
            min=0, max=65535, envvar="CHAINRISK_DEVNET_PORT", help="JSON-RPC port; 0 picks a free one."
        ),
    ] = 8545,
    manifest: Annotated[
        Path | None,
        typer.Option(
            envvar="CHAINRISK_DEVNET_MANIFEST", help="Where to write the manifest.", show_default=False
        ),
    ] = None,
    genesis_timestamp: Annotated[
        int,
        typer.Option(min=1, help="Unix time of block 0; blocks then follow 12 s apart (a repeatable chain)."),
    ] = GENESIS_TIMESTAMP,
) -> None:
    """Start anvil, deploy both markets, governance and Uniswap, write the manifest, serve until Ctrl-C."""
    from chainrisk.cli import app_context, fail
    from devnet.aave import deploy_markets
    from devnet.anvil import AnvilError
    from devnet.governance import default_holders, deploy_governance, manifest_with_governance
    from devnet.npm import NodeToolsError
    from devnet.scenario import BLOCK_S
    from devnet.serve import PortAnvil, manifest_path, write_manifest
    from devnet.uniswap import deploy_uniswap, manifest_with_uniswap

    home = app_context(ctx).settings.home.resolve()  # solc-js and anvil run from other directories
    target = manifest or manifest_path(home)
    node = PortAnvil(home, port, extra_args=["--timestamp", str(genesis_timestamp)])
    try:
        node.start()
    except (AnvilError, NodeToolsError) as exc:
        raise fail(str(exc)) from None
    node.rpc("anvil_setBlockTimestampInterval", [BLOCK_S])
    try:
        started = time.perf_counter()
        deployment = deploy_markets(node, home)
        governance = deploy_governance(deployment, home, default_holders())
        uniswap = deploy_uniswap(deployment, home)
        body = manifest_with_uniswap(manifest_with_governance(deployment.to_manifest(), governance), uniswap)
        write_manifest(body, target, node.url)
        typer.echo(
            f"devnet at {node.url} (chain id {deployment.chain_id}): "
            f"markets {', '.join(deployment.markets)}, governor {governance.governor} "
            f"(timelock {governance.timelock}, risk admin of '{governance.market}'), "
            f"Uniswap v3 pools {', '.join(uniswap.pools)}; "
            f"blocks {deployment.start_block}-{body['end_block']} ({time.perf_counter() - started:.1f} s)"
        )
        typer.echo(f"manifest: {target}")
        typer.echo("indexer config: chainrisk devnet config > chainrisk.toml; stop with Ctrl-C")
        _serve(node)
    finally:
        node.stop()


@app.command("config")
def devnet_config(
    ctx: typer.Context,
    manifest: Annotated[
        Path | None,
        typer.Option(envvar="CHAINRISK_DEVNET_MANIFEST", help="Manifest to read.", show_default=False),
    ] = None,
    chain: Annotated[str, typer.Option(help="Chain name used in the config.")] = "devnet",
) -> None:
    """Print a chainrisk.toml (the chains and contracts tables) for the devnet the manifest describes."""
    from chainrisk.cli import app_context, fail
    from devnet.serve import ManifestError, indexer_toml, load_manifest, manifest_path

    path = manifest or manifest_path(app_context(ctx).settings.home)
    try:
        typer.echo(indexer_toml(load_manifest(path), chain), nl=False)
    except (ManifestError, KeyError, TypeError, ValueError) as exc:
        raise fail(f"{path}: {exc}" if not isinstance(exc, ManifestError) else str(exc)) from None


@app.command("simulate")
def devnet_simulate(
    ctx: typer.Context,
    days: Annotated[int, typer.Option(min=1, help="Simulated days (hourly steps).")] = 30,
    wallets: Annotated[int, typer.Option(min=2, help="Lenders and borrowers.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the price path and the agents.")] = 0,
    prices: Annotated[
        Path | None,
        typer.Option(help="Hourly ETH CSV (unix/timestamp and close columns) instead of the seeded path."),
    ] = None,
    activity: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Chance per wallet and hour of an extra action.")
    ] = 0.005,
    feedback: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Weight of the Uniswap pool price in the oracle prices (0: the price path alone).",
        ),
    ] = 0.0,
    manifest: Annotated[
        Path | None,
        typer.Option(envvar="CHAINRISK_DEVNET_MANIFEST", help="Manifest to read.", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON line.")] = False,
) -> None:
    """Run the market scenario on the running devnet; the full record goes next to the manifest."""
    import httpx

    from chainrisk.cli import app_context, fail
    from devnet.aave import Deployment
    from devnet.governance import Governance
    from devnet.scenario import ScenarioError, price_path, simulate
    from devnet.serve import ManifestError, load_manifest, manifest_path
    from devnet.uniswap import Uniswap

    home = app_context(ctx).settings.home.resolve()
    path = manifest or manifest_path(home)
    try:
        body = load_manifest(path)
        start = {symbol: int(asset["initial_price"]) for symbol, asset in body["assets"].items()}
        planned = price_path(days, seed, start, prices)  # bad CSVs fail here, before any transaction
        deployment = Deployment.from_manifest(body, str(body["rpc_url"]), home)
        governance = Governance.from_manifest(body, deployment)
        uniswap = Uniswap.from_manifest(body, deployment)
        say = (lambda _: None) if as_json else typer.echo
        result = simulate(
            deployment,
            days,
            wallets,
            seed,
            planned,
            activity=activity,
            progress=say,
            governance=governance,
            uniswap=uniswap,
            feedback=feedback,
        )
    except (ManifestError, ScenarioError) as exc:
        raise fail(str(exc)) from None
    except httpx.TransportError as exc:
        raise fail(
            f"the devnet in {path} does not answer ({exc}): start it with `chainrisk devnet up`"
        ) from None
    record = path.parent / "scenario.json"
    record.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    summary = {**result.to_dict(), "liquidations": len(result.liquidations), "record": str(record)}
    summary["proposals"] = [{"description": p.description, "state": p.state} for p in result.proposals]
    summary.pop("labels")
    typer.echo(json.dumps(summary) if as_json else json.dumps(summary, indent=2))


@app.command("manifest")
def devnet_manifest(
    ctx: typer.Context,
    manifest: Annotated[
        Path | None,
        typer.Option(envvar="CHAINRISK_DEVNET_MANIFEST", help="Manifest to read.", show_default=False),
    ] = None,
) -> None:
    """Print the manifest of the devnet (addresses, start block, assets, risk parameters) as JSON."""
    from chainrisk.cli import app_context, fail
    from devnet.serve import ManifestError, load_manifest, manifest_path

    path = manifest or manifest_path(app_context(ctx).settings.home)
    try:
        typer.echo(json.dumps(load_manifest(path), indent=2))
    except ManifestError as exc:
        raise fail(str(exc)) from None


def _serve(node: Anvil) -> None:
    """Block until Ctrl-C; exit 1 if the node stops answering on its own."""
    import httpx

    try:
        while True:
            time.sleep(1.0)
            try:
                node.rpc("eth_chainId")
            except httpx.TransportError:
                typer.echo(f"error: anvil stopped answering; see {node.log_path}", err=True)
                raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("stopping devnet")
