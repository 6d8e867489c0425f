"""`chainrisk devnet`: a local anvil chain with two real Aave v3 markets, an OpenZeppelin Governor and
Uniswap v3, the market scenario, and the indexer config for it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from chainrisk.exits import new_app

if TYPE_CHECKING:
    from devnet.anvil import Anvil

app = new_app(help="devnet commands.", no_args_is_help=True)
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
    from chainrisk.cli import app_context
    from chainrisk.inputs import free_port, output_file
    from devnet.aave import deploy_markets
    from devnet.governance import default_holders, deploy_governance, manifest_with_governance
    from devnet.scenario import BLOCK_S
    from devnet.serve import PortAnvil, manifest_path, write_manifest
    from devnet.uniswap import deploy_uniswap, manifest_with_uniswap

    free_port("--port", port, "127.0.0.1")
    if manifest is not None:
        output_file("--manifest", manifest)
    home = app_context(ctx).settings.home.resolve()  # solc-js and anvil run from other directories
    target = manifest or manifest_path(home)
    node = PortAnvil(home, port, extra_args=["--timestamp", str(genesis_timestamp)])
    node.start()
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
    from devnet.serve import ManifestError, indexer_toml, load_manifest

    path = _manifest(ctx, manifest)
    body = load_manifest(path)
    try:
        typer.echo(indexer_toml(body, chain), nl=False)
    except (KeyError, TypeError, ValueError) as exc:  # a manifest that load_manifest let through
        raise ManifestError(f"{path}: not a complete devnet manifest ({exc!r} is missing or wrong)") from None


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
    from chainrisk.inputs import input_file
    from devnet.aave import Deployment
    from devnet.governance import Governance
    from devnet.scenario import price_path, simulate
    from devnet.serve import load_manifest
    from devnet.uniswap import Uniswap

    if prices is not None:
        input_file("--prices", prices, "price file")
    home = app_context(ctx).settings.home.resolve()
    path = _manifest(ctx, manifest)
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
    from devnet.serve import load_manifest

    typer.echo(json.dumps(load_manifest(_manifest(ctx, manifest)), indent=2))


def _manifest(ctx: typer.Context, given: Path | None) -> Path:
    """The manifest to read: --manifest (an existing file) or the one `devnet up` writes under HOME."""
    from chainrisk.cli import app_context
    from chainrisk.inputs import input_file
    from devnet.serve import manifest_path

    if given is not None:
        return input_file("--manifest", given, "manifest")
    return manifest_path(app_context(ctx).settings.home)


def _serve(node: Anvil) -> None:
    """Block until Ctrl-C; exit 1 if the node stops answering on its own."""
    import httpx

    from chainrisk.cli import fail

    try:
        while True:
            time.sleep(1.0)
            try:
                node.rpc("eth_chainId")
            except httpx.TransportError:
                raise fail(f"anvil stopped answering; see {node.log_path}", code=1) from None
    except KeyboardInterrupt:
        typer.echo("stopping devnet")
