"""`chainrisk index` through the replay server on real recorded mainnet data."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from chainrisk.db import to_libpq_url
from indexer.config import ChainConfig
from indexer.protocols import aave_v3, erc20
from indexer.replay import ReplayServer, load_recording
from indexer.runner import adhoc_plan, run_plan
from tests.conftest import data_file

BLOCK_18M = "chain/mainnet-block-18000000-logs.json"
AAVE_WINDOW = "chain/mainnet-aave-v3-window-25290309-logs.json"
AAVE_POOL = "0x87870bca3f3fd6335c3f4ce8392d69350b4fa4e2"


@pytest.fixture
def replay_18m() -> Iterator[str]:
    with ReplayServer(load_recording([data_file(BLOCK_18M)])) as server:
        yield server.url


def _index(
    url: str, db: str, start: int, stop: int, addresses: tuple[str, ...] = (), name: str | None = None
):
    chain = ChainConfig(name="mainnet", chain_id=1, rpc_urls=[url])
    return run_plan(adhoc_plan(chain, addresses, start, stop, follow=False, name=name), to_libpq_url(db))


def _one(db: str, query: str, *params: object) -> tuple[object, ...]:
    with psycopg.connect(to_libpq_url(db)) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return tuple(row)


def _file_logs() -> list[dict[str, Any]]:
    responses = json.loads(data_file(BLOCK_18M).read_text())
    logs: list[dict[str, Any]] = next(r["result"] for r in responses if isinstance(r["result"], list))
    return logs


def test_block_18m_stores_all_291_logs_and_decodes_the_borrow(replay_18m: str, any_db_url: str) -> None:
    cursor = _index(replay_18m, any_db_url, 18_000_000, 18_000_000)
    assert cursor.block_number == 18_000_000
    assert cursor.block_hash == "0x95b198e154acbfc64109dfd22d8224fe927fd8dfdedfae01587674482ba4baf3"
    assert _one(any_db_url, "SELECT count(*), count(DISTINCT log_index) FROM logs") == (291, 291)
    borrow = _one(
        any_db_url,
        "SELECT address, reserve, user_address, on_behalf_of, amount, interest_rate_mode, borrow_rate,"
        " referral_code, tx_hash FROM aave_v3_borrow WHERE block_number = 18000000 AND log_index = 67",
    )
    user = "0xdf455882303fa4fa16bd96da7f0ae3b13983cc4c"
    assert borrow == (
        AAVE_POOL,
        "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
        user,
        user,
        Decimal(8_000_000_000),
        2,
        Decimal(33644872836996289678670063),
        0,
        "0xde0ca4c3db355459e8573d7d6f6373256ef1e883e331f3aaf9e4cb8bd668138d",
    )
    rdu = _one(any_db_url, "SELECT liquidity_index, variable_borrow_index FROM aave_v3_reserve_data_updated")
    assert rdu == (Decimal(1015494049517220113165116742), Decimal(1021518098419305908812071208))


def test_erc20_and_erc721_transfers_split_between_typed_table_and_quarantine(
    replay_18m: str, db_url: str
) -> None:
    _index(replay_18m, db_url, 18_000_000, 18_000_000)
    transfers = [x for x in _file_logs() if x["topics"] and x["topics"][0] == erc20.TRANSFER.topic0]
    by_topics = Counter(len(x["topics"]) for x in transfers)
    assert _one(db_url, "SELECT count(*) FROM erc20_transfers") == (by_topics[3],)
    assert _one(
        db_url,
        "SELECT count(*) FROM quarantine WHERE reason = 'expected 3 topics, got 4'"
        " AND event = 'Transfer(address,address,uint256)'",
    ) == (by_topics[4],)
    total = sum(int(str(x["data"]), 16) for x in transfers if len(x["topics"]) == 3)
    assert _one(db_url, "SELECT sum(value) FROM erc20_transfers") == (Decimal(total),)


def test_reindexing_a_range_leaves_no_duplicates(replay_18m: str, db_url: str) -> None:
    _index(replay_18m, db_url, 18_000_000, 18_000_000, name="first")
    _index(replay_18m, db_url, 18_000_000, 18_000_000, name="second")
    usdc = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
    _index(replay_18m, db_url, 18_000_000, 18_000_000, addresses=(usdc,))
    assert _one(db_url, "SELECT count(*) FROM logs") == (291,)
    assert _one(db_url, "SELECT count(*) FROM logs WHERE address = %s", usdc) == (13,)


def test_aave_window_every_pool_event_lands_in_its_table(db_url: str) -> None:
    path = data_file(AAVE_WINDOW)
    logs = json.loads(path.read_text())
    with ReplayServer(load_recording([path])) as server:
        _index(server.url, db_url, 25_290_209, 25_290_309, addresses=(AAVE_POOL,))
    pool_logs = [x for x in logs if x["address"].lower() == AAVE_POOL]
    assert _one(db_url, "SELECT count(*) FROM logs") == (len(pool_logs),)
    by_table = {spec.topic0: spec.table for spec in aave_v3.POOL_EVENTS}
    expected = Counter(by_table[x["topics"][0]] for x in pool_logs)
    assert len(expected) == 8
    for table, count in expected.items():
        assert _one(db_url, f"SELECT count(*) FROM {table}") == (count,), table
    assert _one(db_url, "SELECT count(*) FROM quarantine") == (0,)
    (with_atokens,) = _one(db_url, "SELECT count(*) FROM aave_v3_repay WHERE use_a_tokens")
    assert isinstance(with_atokens, int) and with_atokens >= 1
