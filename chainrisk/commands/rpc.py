"""`chainrisk rpc` commands."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from chainrisk.exits import new_app
from chainrisk.inputs import MAX_CHAIN_ID

app = new_app(help="rpc commands.", no_args_is_help=True)

FILES_HELP = (
    "Recordings: JSON-RPC responses (block objects or eth_getLogs results), plain lists of logs or blocks,"
    " as JSON or JSON lines."
)
CHAIN_ID_HELP = "eth_chainId to answer when the recorded blocks carry no chainId."


@app.command("replay")
def replay(
    files: Annotated[list[Path], typer.Argument(help=FILES_HELP, dir_okay=False)],
    port: Annotated[
        int, typer.Option(help="Port to listen on (0 picks a free one).", envvar="CHAINRISK_REPLAY_PORT")
    ] = 8545,
    host: Annotated[
        str, typer.Option(help="Address to bind; keep it local.", envvar="CHAINRISK_REPLAY_HOST")
    ] = "127.0.0.1",
    chain_id: Annotated[
        int, typer.Option(help=CHAIN_ID_HELP, envvar="CHAINRISK_REPLAY_CHAIN_ID", min=1, max=MAX_CHAIN_ID)
    ] = 1,
) -> None:
    """Serve recorded chain data as a JSON-RPC endpoint until Ctrl-C, so the indexer runs unchanged on it.

    Methods: eth_chainId, net_version, eth_blockNumber, eth_getBlockByNumber, eth_getBlockByHash, eth_getLogs.

    The whole recording counts as finalized; unrecorded blocks in between get synthesized headers.
    """
    from chainrisk.inputs import free_port
    from indexer.replay import ReplayServer, load_recording

    free_port("--port", port, host)  # before reading what may be large files
    recording = load_recording(files)
    with ReplayServer(recording, host=host, port=port, chain_id=chain_id) as server:
        typer.echo(server.url)
        typer.echo(
            f"serving blocks {recording.first}..{recording.last}, {len(recording.logs)} logs; Ctrl-C stops",
            err=True,
        )
        _wait_for_interrupt()


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
