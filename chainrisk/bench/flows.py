"""`chainrisk bench flows`: hourly exchange net flows in USD over many transfers, the view against pandas.

A scratch database gets one tracked token, an oracle source, a price update every 10 blocks, 20 labelled
exchanges and N transfers (10 a block, a fifth touching an exchange). Ours is a query of the
`exchange_netflows` view (each transfer valued at the price in force just before it); the baseline pulls
the same rows into pandas and does the as-of join and hourly sums there. Both totals must agree.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg

from chainrisk.bench import machine, scratch_database
from chainrisk.db import to_libpq_url

Say = Callable[[str], None]
CHAIN = 1
TOKEN = "0x" + "aa" * 20
FEED = "0x" + "bb" * 20
ORACLE = "0x" + "cc" * 20
EXCHANGES = [f"0x{i:040x}" for i in range(1, 21)]
PER_BLOCK = 10
PRICE_EVERY = 10
GENESIS = 1_700_000_000
QUERY = "SELECT count(*), coalesce(sum(netflow_usd), 0) FROM exchange_netflows"


def run(server_url: str, transfers: int, repeats: int, baseline: bool, say: Say) -> dict[str, Any]:
    with scratch_database(server_url) as url:
        conninfo = to_libpq_url(url)
        started = time.monotonic()
        _load(conninfo, transfers)
        say(f"loaded {transfers:,} transfers in {time.monotonic() - started:.1f}s")
        ours = [_timed(lambda: _ours(conninfo), say, "exchange_netflows view") for _ in range(repeats)]
        theirs = [_timed(lambda: _pandas(conninfo), say, "pandas") for _ in range(1 if baseline else 0)]
    return _result(transfers, ours, theirs)


def _timed(work: Callable[[], tuple[int, Decimal]], say: Say, label: str) -> tuple[float, Decimal]:
    started = time.monotonic()
    hours, total = work()
    elapsed = time.monotonic() - started
    say(f"{label}: {hours:,} token-hours, net {total:,.0f} USD in {elapsed:.2f}s")
    return elapsed, total


def _load(conninfo: str, transfers: int) -> None:
    rng = random.Random(1)
    blocks = transfers // PER_BLOCK + 2
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tracked_tokens VALUES (%s, %s, 'TKN', 18, 1000000, NULL, 8)", (CHAIN, TOKEN)
        )
        conn.execute(
            "INSERT INTO aave_oracle_asset_source_updated VALUES (%s, 0, 0, '0x', '0x', %s, %s, %s)",
            (CHAIN, ORACLE, TOKEN, FEED),
        )
        conn.cursor().executemany(
            "INSERT INTO address_labels (chain_id, address, label, category, source)"
            " VALUES (%s, %s, %s, 'exchange', 'user')",
            [(CHAIN, a, f"exchange {i}") for i, a in enumerate(EXCHANGES)],
        )
        _copy(conn, "price_answer_updated", "current, round_id, updated_at",
              ((b, 0, FEED, 2_000 * 10**8 + rng.randrange(-10**10, 10**10), b, b)
               for b in range(0, blocks, PRICE_EVERY)))  # fmt: skip
        _copy(conn, "erc20_transfers", "from_address, to_address, value",
              ((1 + i // PER_BLOCK, 1 + i % PER_BLOCK, TOKEN, *_parties(rng), rng.randrange(10**15, 10**22))
               for i in range(transfers)))  # fmt: skip
        _copy(conn, "logs", "tx_index, topic0, data, block_timestamp",
              ((1 + i // PER_BLOCK, 1 + i % PER_BLOCK, TOKEN, 0, "0x", "0x", _time(1 + i // PER_BLOCK))
               for i in range(transfers)))  # fmt: skip
        conn.execute("ANALYZE")


def _time(block: int) -> int:
    return GENESIS + 12 * block


def _parties(rng: random.Random) -> tuple[str, str]:
    wallet, other = f"0x{1000 + rng.randrange(50_000):040x}", f"0x{1000 + rng.randrange(50_000):040x}"
    if rng.random() < 0.2:
        other = rng.choice(EXCHANGES)
    return (wallet, other) if rng.random() < 0.5 else (other, wallet)


def _copy(conn: psycopg.Connection[Any], table: str, columns: str, rows: Any) -> None:
    head = "chain_id, block_number, log_index, block_hash, tx_hash, address"
    with conn.cursor().copy(f"COPY {table} ({head}, {columns}) FROM STDIN") as copy:
        for block, index, address, *rest in rows:
            copy.write_row((CHAIN, block, index, "0x", "0x", address, *rest))


def _ours(conninfo: str) -> tuple[int, Decimal]:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(QUERY).fetchone()
    assert row is not None
    return int(row[0]), Decimal(row[1])


def _pandas(conninfo: str) -> tuple[int, Decimal]:
    """The same numbers the usual way: raw rows into DataFrames, merge_asof, groupby."""
    import pandas as pd

    with psycopg.connect(conninfo) as conn:
        transfers = _frame(conn, "SELECT t.block_number, t.log_index, t.from_address, t.to_address,"
                           " t.value::float8 / 1e18 AS amount, l.block_timestamp FROM erc20_transfers t"
                           " JOIN logs l USING (chain_id, block_number, log_index)")  # fmt: skip
        prices = _frame(conn, "SELECT block_number, log_index, current::float8 / 1e8 AS price"
                        " FROM price_answer_updated")  # fmt: skip
        exchanges = {
            r[0] for r in conn.execute("SELECT address FROM address_labels WHERE category = 'exchange'")
        }
    for frame in (transfers, prices):
        frame["position"] = frame["block_number"] * 1_000_000 + frame["log_index"]
    priced = pd.merge_asof(
        transfers.sort_values("position"), prices.sort_values("position")[["position", "price"]],
        on="position", allow_exact_matches=False,
    )  # fmt: skip
    inbound, outbound = priced["to_address"].isin(exchanges), priced["from_address"].isin(exchanges)
    flows = priced[inbound != outbound]
    signed = flows["amount"] * flows["price"] * inbound[inbound != outbound].map({True: 1.0, False: -1.0})
    hours = (flows["block_timestamp"] // 3600).rename("hour")
    per_hour = signed.groupby(hours).sum()
    return len(per_hour), Decimal(str(per_hour.sum()))


def _frame(conn: psycopg.Connection[Any], query: str) -> Any:
    import pandas as pd

    with conn.cursor() as cur:
        cur.execute(query)
        columns = [d.name for d in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=columns)


def _result(
    transfers: int, ours: list[tuple[float, Decimal]], theirs: list[tuple[float, Decimal]]
) -> dict[str, Any]:
    ours_s = statistics.median(t for t, _ in ours)
    result: dict[str, Any] = {
        "benchmark": "flows",
        "transfers": transfers,
        "runs": len(ours),
        "seconds": round(ours_s, 3),
        "transfers_per_s": round(transfers / ours_s),
        "all_seconds": [round(t, 3) for t, _ in ours],
        "net_usd": float(ours[0][1]),
        "machine": machine(),
    }
    if theirs:
        base_s, base_total = theirs[0]
        result.update(
            baseline="raw rows into pandas, merge_asof on (block, log index), hourly groupby",
            baseline_seconds=round(base_s, 3),
            baseline_transfers_per_s=round(transfers / base_s),
            speedup=round(base_s / ours_s, 2),
            totals_agree=abs(float(base_total) - float(ours[0][1]))
            <= 1e-6 * max(1.0, abs(float(base_total))),
        )
    return result
