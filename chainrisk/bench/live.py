"""`chainrisk bench live`: how long after a block is mined its health factors are in PostgreSQL, while the
devnet scenario runs and `chainrisk serve` follows the chain.

The service runs as in production, a `python -m chainrisk serve` process of its own, on a fresh devnet and
a scratch database. By default the history is kept at every block that moves a pool (`history_period_s =
0`), so each such block gets `account_health_history` rows of its own. Three watchers time the run: the
node's head every `NODE_POLL_S` (when a block was mined), the (pool, block) rows of the history table every
`DB_POLL_S` (when its health factors were in), and the service's `chainrisk_local_head`, which moves once
the keeper has finished a batch (when a block was indexed with positions kept, whatever the history
period). `delay_s` is per block with rows, until the last of the pools it moved had them; `kept_delay_s`
is per block of the scenario.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg

from chainrisk.bench import machine, scratch_database
from chainrisk.db import to_libpq_url
from chainrisk.serve.service import ServiceError

CHAIN_ID = 31337
CHAIN = "devnet"  # the chain's name in the generated config
POLL_INTERVAL_S = 0.5  # as `chainrisk devnet config` writes it
NODE_POLL_S = 0.01
DB_POLL_S = 0.02
ROW_WINDOW = 500  # blocks below the newest seen that a poll looks at again (pools commit one by one)
CATCH_UP_S = 600
TARGET_P95_S = 2.0


class _Watcher(threading.Thread):
    """Calls `poll` every `every` seconds until stopped; `seen` maps what it saw to when it first did."""

    def __init__(self, every: float) -> None:
        super().__init__(daemon=True)
        self.every, self.seen, self.stopped = every, dict[Any, float](), threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.poll(time.monotonic())

    def poll(self, now: float) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopped.set()
        self.join()


class NodeWatcher(_Watcher):
    """When each block number first appeared as the node's head (several at once share that time)."""

    def __init__(self, url: str) -> None:
        super().__init__(NODE_POLL_S)
        self.url, self.client, self.head = url, httpx.Client(timeout=5), -1

    def poll(self, now: float) -> None:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
        head = int(self.client.post(self.url, json=body).json()["result"], 16)
        for block in range(self.head + 1, head + 1):
            self.seen[block] = now
        self.head = max(self.head, head)

    def stop(self) -> None:
        super().stop()
        self.client.close()


class RowWatcher(_Watcher):
    """When each (pool, block) of account_health_history first had rows."""

    def __init__(self, conninfo: str, start: int) -> None:
        super().__init__(DB_POLL_S)
        self.conn = psycopg.connect(conninfo, autocommit=True)
        self.low = start

    def poll(self, now: float) -> None:
        rows = self.conn.execute(
            "SELECT DISTINCT pool, block_number FROM account_health_history"
            " WHERE chain_id = %s AND block_number >= %s",
            (CHAIN_ID, self.low),
        ).fetchall()
        for pool, block in rows:
            self.seen.setdefault((str(pool), int(block)), now)
        if rows:
            self.low = max(self.low, max(int(b) for _, b in rows) - ROW_WINDOW)

    def stop(self) -> None:
        super().stop()
        self.conn.close()


class KeptWatcher(_Watcher):
    """When the service had indexed each block with positions kept: its `chainrisk_local_head`, which the
    indexer moves after the keeper has finished the batch."""

    def __init__(self, port: int, start: int) -> None:
        super().__init__(DB_POLL_S)
        self.url, self.head = f"http://127.0.0.1:{port}/metrics", start

    def poll(self, now: float) -> None:
        with urllib.request.urlopen(self.url, timeout=5) as answer:
            text = answer.read().decode()
        for line in text.splitlines():
            if line.startswith(f'chainrisk_local_head{{chain="{CHAIN}"}}'):
                head = int(float(line.rsplit(" ", 1)[1]))
                for block in range(self.head + 1, head + 1):
                    self.seen[block] = now
                self.head = max(self.head, head)


def run(
    home: Path,
    server_url: str,
    scenario: tuple[int, int, int],
    history_period_s: int,
    paced: tuple[int, float],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Deploy the devnet, start `chainrisk serve` on it, run the scenario (days, wallets, seed) while
    timing blocks, then `paced` (blocks, seconds apart) price updates; report the delays of both."""
    from devnet.stack import deploy_all, devnet_node

    with (
        scratch_database(server_url) as db,
        devnet_node(home) as node,
        tempfile.TemporaryDirectory(prefix="bench-live-") as scratch,
    ):
        stack = deploy_all(node, home)
        service = _Service(Path(scratch), node.url, stack.manifest(), db, history_period_s)
        try:
            start = service.caught_up(_head(node.url))
            say(f"serve follows the devnet from block {start}; running the scenario")
            watchers = (NodeWatcher(node.url), RowWatcher(to_libpq_url(db), start + 1))
            kept = KeptWatcher(service.port, start)
            for watcher in (*watchers, kept):
                watcher.start()
            load = os.getloadavg()[0]
            result = stack.simulate(*scenario)
            ended = time.monotonic()
            service.caught_up(result.last_block)  # the paced phase starts with no backlog
            behind_s = time.monotonic() - ended
            say(f"scenario indexed {behind_s:.1f}s after it ended; {paced[0]} price updates follow")
            steady = _paced(stack.deployment, *paced)
            service.caught_up(steady[1])
            for watcher in (*watchers, kept):
                watcher.stop()
            load = max(load, os.getloadavg()[0])
            say("scenario indexed; stopping serve")
        finally:
            code = service.stop()
    mined, rows = watchers[0].seen, watchers[1].seen
    span = (result.first_block, result.last_block)
    return {
        "benchmark": "live",
        **dict(zip(("days", "wallets", "seed"), scenario, strict=True)),
        "scenario_seconds": result.wall_s,
        "transactions": result.transactions,
        "blocks": result.blocks,
        "transactions_per_s": round(result.transactions / result.wall_s, 1),
        "blocks_per_s": round(result.blocks / result.wall_s, 1),
        "delay_s": _summary(_row_delays(mined, rows, span)),
        "kept_delay_s": _summary(_kept_delays(mined, kept.seen, span)),
        "indexed_after_scenario_s": round(behind_s, 2),
        "paced": {
            "blocks_per_s": round(steady[2], 2),
            "delay_s": _summary(_row_delays(mined, rows, steady[:2])),
            "kept_delay_s": _summary(_kept_delays(mined, kept.seen, steady[:2])),
        },
        "target_p95_s": TARGET_P95_S,
        "watch_resolution_s": {"node": NODE_POLL_S, "database": DB_POLL_S},
        "serve": {"poll_interval_s": POLL_INTERVAL_S, "history_period_s": history_period_s, "exit": code},
        "load_1min_max": round(load, 2),
        "machine": machine(),
    }


def _paced(deployment: Any, blocks: int, every_s: float) -> tuple[int, int, float]:
    """WETH's feed moved ±0.5% in turn, one block every `every_s` (automine): each block moves every WETH
    holder of both markets. Returns the first and last block, and the blocks per second achieved."""
    price, numbers = deployment.price("WETH"), []
    started = time.monotonic()
    for i in range(blocks):
        receipt = deployment.set_price("WETH", price * (1005 if i % 2 == 0 else 995) // 1000)
        numbers.append(int(receipt["blockNumber"], 16))
        time.sleep(max(0.0, started + (i + 1) * every_s - time.monotonic()))
    return numbers[0], numbers[-1], blocks / (time.monotonic() - started)


def _row_delays(
    mined: dict[int, float], written: dict[tuple[str, int], float], span: tuple[int, int]
) -> list[float]:
    """Per block with account_health_history rows: when the last of its pools had them, from when it was
    mined."""
    done: dict[int, float] = {}
    for (_, block), at in written.items():
        if span[0] <= block <= span[1]:
            done[block] = max(done.get(block, at), at)
    return [done[block] - mined[block] for block in sorted(done) if block in mined]


def _kept_delays(mined: dict[int, float], kept: dict[int, float], span: tuple[int, int]) -> list[float]:
    """Per block of the scenario: when the service had it indexed with positions kept, from its mining."""
    return [kept[b] - mined[b] for b in range(span[0], span[1] + 1) if b in kept and b in mined]


def _summary(delays: list[float]) -> dict[str, Any]:
    if not delays:
        return {"blocks": 0}
    values = np.asarray(delays)
    p50, p95 = (float(np.percentile(values, q)) for q in (50, 95))
    return {
        "blocks": len(delays),
        "p50": round(p50, 3),
        "p95": round(p95, 3),
        "max": round(float(values.max()), 3),
        "target_met": p95 <= TARGET_P95_S,
    }


def _head(url: str) -> int:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    return int(httpx.post(url, json=body, timeout=10).json()["result"], 16)


class _Service:
    """`python -m chainrisk serve` on the devnet's config, with its own status port and log file."""

    def __init__(
        self, scratch: Path, rpc_url: str, manifest: dict[str, Any], db: str, history_period_s: int
    ) -> None:
        from devnet.serve import indexer_toml

        config = scratch / "chainrisk.toml"
        chains = indexer_toml({**manifest, "rpc_url": rpc_url})
        # 0: rows at every block that moves a pool, so each such block has rows of its own to time.
        chains = chains.replace(
            "poll_interval_s = 0.5\n",
            f"poll_interval_s = {POLL_INTERVAL_S}\nhistory_period_s = {history_period_s}\n",
            1,
        )
        config.write_text(chains + "\n[serve.jobs.heartbeat]\nenabled = false\n")
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINRISK_")}
        env |= {
            "CHAINRISK_CONFIG": str(config),
            "CHAINRISK_DATABASE_URL": db,
            "CHAINRISK_HOME": str(scratch / "home"),
            "CHAINRISK_SERVE_PORT": str(self.port),
            "CHAINRISK_LOG_LEVEL": "WARNING",
        }
        self.log = scratch / "serve.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chainrisk", "serve"], env=env, stdout=out, stderr=out
            )

    def caught_up(self, block: int) -> int:
        """Wait until the service has indexed, positions included, through `block`; its block then."""
        deadline = time.monotonic() + CATCH_UP_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text()[-2000:]
                raise ServiceError(f"chainrisk serve exited {self.proc.returncode}: {tail}")
            chain = self._health().get("chains", {}).get(CHAIN, {})
            if chain.get("indexed") is not None and chain["indexed"] >= block and chain.get("lag") == 0:
                return int(chain["indexed"])
            time.sleep(0.1)
        raise ServiceError(f"chainrisk serve did not index through block {block} in {CATCH_UP_S}s")

    def _health(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as answer:
                body: dict[str, Any] = json.load(answer)
                return body
        except OSError:
            return {}

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
