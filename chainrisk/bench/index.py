"""`chainrisk bench index`: ERC-20 Transfer logs on anvil → PostgreSQL, ours against plain web3.py."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from chainrisk.bench import machine, scratch_database
from chainrisk.db import to_libpq_url

Say = Callable[[str], None]
FINALITY_LAG = 64


@dataclass
class Chain:
    url: str
    token: str
    first: int
    last: int
    abi: list[dict[str, Any]]


def run(home: Path, server_url: str, logs: int, repeats: int, baseline: bool, say: Say) -> dict[str, Any]:
    """Produce `logs` Transfer logs on a fresh anvil, index them `repeats` times, time both paths."""
    from devnet.anvil import Anvil
    from devnet.deploy import bulk_token
    from devnet.npm import ensure_node_modules

    ensure_node_modules(home)
    with Anvil(home) as node:
        say(f"anvil at {node.url}: producing {logs:,} Transfer logs")
        started = time.monotonic()
        token = bulk_token(node, home)
        # Distinct recipients are capped: anvil's per-block cost grows with contract storage.
        span = token.spray(logs, seed=1, recipients=20_000)
        # A backfill indexes history: mine past anvil's finalized lag (64 blocks) so the logs are final.
        node.mine(FINALITY_LAG + 1)
        produced = time.monotonic() - started
        chain = Chain(node.url, token.address, span.first, span.last, token.contract.abi)
        ours = [_timed(lambda: _ours(chain, server_url), say, "chainrisk") for _ in range(repeats)]
        theirs = [
            _timed(lambda: _baseline(chain, server_url), say, "web3.py") for _ in range(1 if baseline else 0)
        ]
    return _result(logs, produced, ours, theirs)


def _timed(work: Callable[[], int], say: Say, label: str) -> tuple[float, int]:
    started = time.monotonic()
    count = work()
    elapsed = time.monotonic() - started
    say(f"{label}: {count:,} logs in {elapsed:.2f}s ({count / elapsed:,.0f} logs/s)")
    return elapsed, count


def _result(
    logs: int, produced: float, ours: list[tuple[float, int]], theirs: list[tuple[float, int]]
) -> dict[str, Any]:
    ours_s = statistics.median(t for t, _ in ours)
    result: dict[str, Any] = {
        "benchmark": "index",
        "logs": logs,
        "indexed_logs": ours[0][1],
        "runs": len(ours),
        "seconds": round(ours_s, 3),
        "logs_per_s": round(logs / ours_s),
        "all_seconds": [round(t, 3) for t, _ in ours],
        "produce_seconds": round(produced, 2),
        "machine": machine(),
    }
    if theirs:
        base_s = theirs[0][0]
        result.update(
            baseline="web3.py get_logs + process_log + executemany INSERT",
            baseline_seconds=round(base_s, 3),
            baseline_logs_per_s=round(theirs[0][1] / base_s),
            speedup=round(base_s / ours_s, 2),
        )
    return result


def _ours(chain: Chain, server_url: str) -> int:
    from indexer.config import ChainConfig
    from indexer.runner import adhoc_plan, run_plan

    config = ChainConfig(name="anvil", chain_id=31337, rpc_urls=[chain.url], max_block_range=2000)
    plan = adhoc_plan(config, [chain.token], chain.first, chain.last, follow=False)
    with scratch_database(server_url) as url:
        run_plan(plan, to_libpq_url(url))
        with psycopg.connect(to_libpq_url(url)) as conn:
            row = conn.execute("SELECT count(*) FROM erc20_transfers").fetchone()
    return int(row[0]) if row else 0


_BASELINE_TABLE = (
    "CREATE TABLE baseline_transfers (block_number bigint, log_index int, tx_hash text, token text,"
    " from_address text, to_address text, value numeric(78,0), PRIMARY KEY (block_number, log_index))"
)


def _baseline(chain: Chain, server_url: str) -> int:
    """The plain web3.py path: get_logs, process_log, row inserts, one commit per range."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(chain.url, request_kwargs={"timeout": 600}))
    event = w3.eth.contract(address=Web3.to_checksum_address(chain.token), abi=chain.abi).events.Transfer()
    count = 0
    with scratch_database(server_url) as url, psycopg.connect(to_libpq_url(url)) as conn:
        conn.execute(_BASELINE_TABLE)
        for start in range(chain.first, chain.last + 1, 2000):
            end = min(start + 1999, chain.last)
            raw = w3.eth.get_logs({"address": event.address, "fromBlock": start, "toBlock": end})
            rows = [_baseline_row(event.process_log(log)) for log in raw]
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO baseline_transfers VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)
            conn.commit()
            count += len(rows)
    return count


def _baseline_row(decoded: Any) -> tuple[object, ...]:
    args = decoded["args"]
    return (
        decoded["blockNumber"],
        decoded["logIndex"],
        decoded["transactionHash"].hex(),
        decoded["address"].lower(),
        args["from"].lower(),
        args["to"].lower(),
        args["value"],
    )
