"""Jobs built from config: each chain's settings reach the client that serves it."""

from __future__ import annotations

import time

import pytest

from indexer.chain import RpcTransportError
from indexer.config import ChainConfig
from indexer.metrics import IndexerMetrics
from indexer.runner import make_client
from tests.faultproxy import FaultProxy


def test_the_rpc_timeout_setting_reaches_the_client() -> None:
    errors = IndexerMetrics()
    with FaultProxy("http://127.0.0.1:9", rates={"delay": 1.0}, delay_s=2.0) as proxy:
        chain = ChainConfig(name="slow", chain_id=1, rpc_urls=[proxy.url], rpc_timeout_s=0.2)
        client = make_client(chain, errors)
        started = time.monotonic()
        with client, pytest.raises(RpcTransportError, match="timeout"):
            client._max_retries = 0  # one attempt: the time it takes is the timeout
            client.head()
    assert time.monotonic() - started < 1.5
    assert errors.rpc_errors.labels(kind="timeout")._value.get() == 1
