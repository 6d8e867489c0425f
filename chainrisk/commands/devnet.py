"""`chainrisk devnet`: a local anvil chain with two real Aave v3 markets, an OpenZeppelin Governor and
Uniswap v3, the market scenario, and the indexer config for it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from chainrisk.context import app_context, fail
from chainrisk.exits import new_app
from chainrisk.inputs import free_port, input_file, output_file
from devnet import GENESIS_TIMESTAMP

if TYPE_CHECKING:
    from devnet.anvil import Anvil
    from devnet.stack import Stack

app = new_app(help="devnet commands.", no_args_is_help=True)

Manifest = Annotated[
    Path | None,
    typer.Option(envvar="CHAINRISK_DEVNET_MANIFEST", help="Manifest to read.", show_default=False),
]
Json = Annotated[bool, typer.Option("--json", help="Print the result as one JSON line.")]
PORT_HELP = "JSON-RPC port; 0 picks a free one."
GENESIS_HELP = "Unix time of block 0; blocks then follow 12 s apart (a repeatable chain)."
PRICES_HELP = "Hourly ETH CSV (unix/timestamp and close columns) instead of the seeded path."
ACTIVITY_HELP = "Chance per wallet and hour of an extra action."
FEEDBACK_HELP = "Weight of the Uniswap pool price in the oracle prices (0: the price path alone)."


@app.command("up")
def devnet_up(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option(min=0, max=65535, envvar="CHAINRISK_DEVNET_PORT", help=PORT_HELP)
    ] = 8545,
    manifest: Annotated[
        Path | None,
        typer.Option(
            envvar="CHAINRISK_DEVNET_MANIFEST", help="Where to write the manifest.", show_default=False
        ),
    ] = None,
    genesis_timestamp: Annotated[int, typer.Option(min=1, help=GENESIS_HELP)] = GENESIS_TIMESTAMP,
) -> None:
    """Start anvil, deploy both markets, governance and Uniswap, write the manifest, serve until Ctrl-C."""
    from devnet.serve import manifest_path, write_manifest
    from devnet.stack import deploy_all, devnet_node

    free_port("--port", port, "127.0.0.1")
    if manifest is not None:
        output_file("--manifest", manifest)
    home = app_context(ctx).settings.home.resolve()  # solc-js and anvil run from other directories
    target = manifest or manifest_path(home)
    with devnet_node(home, port, genesis_timestamp) as node:
        stack = deploy_all(node, home)
        body = write_manifest(stack.manifest(), target, node.url)
        typer.echo(_deployed(node.url, stack, int(body["end_block"])))
        typer.echo(f"manifest: {target}")
        typer.echo("indexer config: chainrisk devnet config > chainrisk.toml; stop with Ctrl-C")
        _serve(node)


@app.command("config")
def devnet_config(
    ctx: typer.Context,
    manifest: Manifest = None,
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
    prices: Annotated[Path | None, typer.Option(help=PRICES_HELP)] = None,
    activity: Annotated[float, typer.Option(min=0.0, max=1.0, help=ACTIVITY_HELP)] = 0.005,
    feedback: Annotated[float, typer.Option(min=0.0, max=1.0, help=FEEDBACK_HELP)] = 0.0,
    manifest: Manifest = None,
    as_json: Json = False,
) -> None:
    """Run the market scenario on the running devnet; the full record goes next to the manifest."""
    from devnet.stack import run_scenario

    if prices is not None:
        input_file("--prices", prices, "price file")
    home = app_context(ctx).settings.home.resolve()
    path = _manifest(ctx, manifest)
    say = (lambda _: None) if as_json else typer.echo
    summary = run_scenario(
        path, home, days, wallets, seed, prices, progress=say, activity=activity, feedback=feedback
    )
    typer.echo(json.dumps(summary) if as_json else json.dumps(summary, indent=2))


@app.command("manifest")
def devnet_manifest(ctx: typer.Context, manifest: Manifest = None) -> None:
    """Print the manifest of the devnet (addresses, start block, assets, risk parameters) as JSON."""
    from devnet.serve import load_manifest

    typer.echo(json.dumps(load_manifest(_manifest(ctx, manifest)), indent=2))


def _manifest(ctx: typer.Context, given: Path | None) -> Path:
    """The manifest to read: --manifest (an existing file) or the one `devnet up` writes under HOME."""
    from devnet.serve import manifest_path

    if given is not None:
        return input_file("--manifest", given, "manifest")
    return manifest_path(app_context(ctx).settings.home)


def _deployed(url: str, stack: Stack, end_block: int) -> str:
    """One line: where the devnet answers and what runs on it."""
    deployment, governance, uniswap = stack.deployment, stack.governance, stack.uniswap
    assert governance is not None and uniswap is not None  # deploy_all deploys both
    return (
        f"devnet at {url} (chain id {deployment.chain_id}): "
        f"markets {', '.join(deployment.markets)}, governor {governance.governor} "
        f"(timelock {governance.timelock}, risk admin of '{governance.market}'), "
        f"Uniswap v3 pools {', '.join(uniswap.pools)}{_morpho(stack)}; "
        f"blocks {deployment.start_block}-{end_block} ({stack.deploy_s:.1f} s)"
    )


def _morpho(stack: Stack) -> str:
    if stack.morpho is None:
        return ""
    return f", Morpho Blue {stack.morpho.address} (markets {', '.join(stack.morpho.markets)})"


def _serve(node: Anvil) -> None:
    """Block until Ctrl-C; exit 1 if the node stops answering on its own."""
    import httpx

    try:
        while True:
            time.sleep(1.0)
            try:
                node.rpc("eth_chainId")
            except httpx.TransportError:
                raise fail(f"anvil stopped answering; see {node.log_path}", code=1) from None
    except KeyboardInterrupt:
        typer.echo("stopping devnet")
