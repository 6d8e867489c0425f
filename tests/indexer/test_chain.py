"""The JSON-RPC client: range refusals, retries, failover and secrets, against a scripted node."""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from indexer.chain import (
    GROW_AFTER_SUCCESSES,
    ChainClient,
    ChainError,
    HttpChainClient,
    RangeRefusedError,
    RpcResponseError,
    RpcTransportError,
    is_range_refusal,
    next_range,
    range_hint,
    redact_url,
)
from indexer.replay import ReplayServer, load_recording
from indexer.types import BlockHeader, LogBatch, LogFilter
from tests.conftest import data_file
from tests.faultproxy import FAULTS, FaultProxy

URL = "http://node.test/"
Fault = Callable[[httpx.Request], httpx.Response]
INFURA = "query returned more than 10000 results. Try with this block range [{first}, {last}]."
ALCHEMY = (
    "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit "
    "on the response size, or you can request any block range with a cap of 10K logs in the response. "
    "Based on your parameters, this block range should work: [{first}, {last}]"
)


def block(number: int) -> dict[str, Any]:
    """A header whose hashes chain: hash(n) = 0x…n, parentHash = hash(n-1)."""
    return {
        "number": hex(number),
        "hash": f"0x{number:064x}",
        "parentHash": f"0x{number - 1:064x}",
        "timestamp": hex(1_700_000_000 + 12 * number),
    }


class FakeNode:
    """A MockTransport handler: headers for any block, one log per block, and optional refusals.

    `faults` are consumed one per HTTP request before the node answers normally; `limit` refuses wider
    eth_getLogs ranges with `message` (formatted with first, last, limit) the way `style` says.
    """

    def __init__(self, faults: list[Fault] | None = None, limit: int | None = None) -> None:
        self.faults = list(faults or [])
        self.limit = limit
        self.message = "block range is too large"
        self.style = "rpc"
        self.code = -32602
        self.spans: list[int] = []
        self.hosts: list[str] = []
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.hosts.append(request.url.host)
        if self.faults:
            return self.faults.pop(0)(request)
        body = orjson.loads(request.content)
        calls = body if isinstance(body, list) else [body]
        replies = [self.answer(call) for call in calls]
        refused = [r for r in replies if "error" in r]
        if refused and self.style != "rpc":
            return self.http_refusal(refused[0]["error"]["message"])
        return httpx.Response(200, content=orjson.dumps(replies if isinstance(body, list) else replies[0]))

    def answer(self, call: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": call["id"]}
        method, params = call["method"], call["params"]
        if method == "eth_getLogs":
            start, end = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
            self.spans.append(end - start + 1)
            if self.limit is not None and end - start + 1 > self.limit:
                last = hex(start + self.limit - 1)
                message = self.message.format(
                    first=hex(start),
                    last=last,
                    limit=self.limit,
                    span=end - start + 1,
                    first_dec=start,
                    last_dec=start + self.limit - 1,
                    limit_commas=f"{self.limit:,}",
                )
                return reply | {"error": {"code": self.code, "message": message}}
            return reply | {
                "result": [{"blockNumber": hex(n), "logIndex": "0x0"} for n in range(start, end + 1)]
            }
        if method == "eth_getBlockByNumber":
            tag = params[0]
            return reply | {"result": block(1_000 if tag in ("latest", "finalized") else int(tag, 16))}
        results = {"eth_chainId": "0x1", "eth_blockNumber": hex(1_000)}
        return reply | {"result": results[method]}

    def http_refusal(self, message: str) -> httpx.Response:
        if self.style == "http413":
            return httpx.Response(413, text=message)
        error = {"jsonrpc": "2.0", "id": None, "error": {"code": self.code, "message": message}}
        return httpx.Response(400, content=orjson.dumps(error))


class MaxRandom(random.Random):
    """Always draws the top of the jitter interval, so delays show the exponential ceiling."""

    def random(self) -> float:
        return 1.0


def client(node: FakeNode, **options: Any) -> HttpChainClient:
    defaults: dict[str, Any] = {"transport": httpx.MockTransport(node), "sleep": lambda s: None}
    return HttpChainClient(options.pop("urls", [URL]), **(defaults | options))


@pytest.fixture
def sleeps() -> list[float]:
    return []


# --- faults ------------------------------------------------------------------------------------------------


def status(code: int, **headers: str) -> Fault:
    return lambda request: httpx.Response(code, text="busy", headers=headers)


def body(content: bytes) -> Fault:
    return lambda request: httpx.Response(200, content=content)


def raising(exc_type: type[httpx.TransportError]) -> Fault:
    def fault(request: httpx.Request) -> httpx.Response:
        raise exc_type("failed talking to " + str(request.url), request=request)

    return fault


def rpc_error(code: int, message: str) -> Fault:
    return body(orjson.dumps({"jsonrpc": "2.0", "id": 0, "error": {"code": code, "message": message}}))


def missing_id(request: httpx.Request) -> httpx.Response:
    first = orjson.loads(request.content)[0]
    return httpx.Response(200, content=orjson.dumps([{"jsonrpc": "2.0", "id": first["id"], "result": []}]))


def null_header(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=orjson.dumps({"jsonrpc": "2.0", "id": 0, "result": None}))


# --- range refusals ----------------------------------------------------------------------------------------

REFUSALS = [
    # (message, style, code, provider limit, spans the client asks for)
    ("query returned more than 10000 results", "rpc", -32005, 600, [2000, 1000, 500]),
    (INFURA, "rpc", -32005, 700, [2000, 700]),
    ("block range is too large", "rpc", -32602, 900, [2000, 1000, 500]),
    ("exceed maximum block range: {limit}", "rpc", -32000, 1000, [2000, 1000]),
    ("max range {limit}", "rpc", -32600, 500, [2000, 500]),
    ("eth_getLogs: range limit of {limit}", "rpc", -32602, 1000, [2000, 1000]),
    ("block range too large, max {limit} blocks", "rpc", -32000, 1000, [2000, 1000]),
    (ALCHEMY, "rpc", -32602, 800, [2000, 800]),
    ("block range too large, max {limit} blocks", "http413", 0, 1000, [2000, 1000]),
    ("exceed maximum block range: {limit}", "http400", -32600, 250, [2000, 250]),
    ("query returned more than 10000 results", "http400", -32005, 600, [2000, 1000, 500]),
    # Infura since 2025: a block-range limit, not a result count.
    ("range {span} exceeds limit of {limit}", "rpc", -32602, 1000, [2000, 1000]),
    # reth: a result cap, with the range that fits.
    ("query exceeds max results 20000, retry with the range {first_dec}-{last_dec}", "rpc", -32602, 300,
     [2000, 300]),
    ("eth_getLogs is limited to a {limit_commas} range", "http413", -32614, 1500, [2000, 1500]),
    ("range {span} is bigger than range limit {limit}", "rpc", -32602, 700, [2000, 700]),
    ("block range is larger than max block range, block range = {span}, max block range = {limit}", "rpc",
     -32000, 1200, [2000, 1200]),
    # No hint: halve until it fits.
    ("logs matched by query exceeds limit of 10000", "rpc", -32005, 600, [2000, 1000, 500]),
    ("log query timed out", "rpc", -32000, 900, [2000, 1000, 500]),
    ("block range too high", "rpc", -32600, 1000, [2000, 1000]),
]  # fmt: skip


@pytest.mark.parametrize(
    "message",
    [
        "rate limit exceeded",
        "Too many requests, retry later",
        "block range extends beyond current head block",
        "header not found",
        "execution reverted",
        "invalid params",
    ],
)
def test_other_errors_are_not_range_refusals(message: str) -> None:
    assert not is_range_refusal(message)
    assert range_hint(message) is None


@pytest.mark.parametrize(("message", "style", "code", "limit", "spans"), REFUSALS)
def test_refusal_shrinks_to_the_hinted_range_and_grows_back(
    message: str, style: str, code: int, limit: int, spans: list[int]
) -> None:
    node = FakeNode(limit=limit)
    node.message, node.style, node.code = message, style, code
    kinds: list[str] = []
    with client(node, on_error=kinds.append) as chain:
        batch = chain.fetch_logs(5_000, 100_000, LogFilter())
        assert node.spans == spans
        assert (batch.start, batch.end) == (5_000, 5_000 + spans[-1] - 1)
        assert len(batch.logs) == spans[-1] and set(batch.headers) == {batch.end}
        assert kinds == ["range"] * (len(spans) - 1)
        node.limit = None
        widths = [
            _width(chain.fetch_logs(10_000, 100_000, LogFilter())) for _ in range(4 * GROW_AFTER_SUCCESSES)
        ]
    assert widths[0] == spans[-1]
    assert widths[-1] == 2000
    assert widths == sorted(widths)


def _width(batch: LogBatch) -> int:
    return batch.end - batch.start + 1


def test_range_stops_at_the_target_block() -> None:
    node = FakeNode()
    with client(node, max_block_range=10) as chain:
        ends = []
        start = 100
        while start <= 125:
            batch = chain.fetch_logs(start, 125, LogFilter(), all_headers=True)
            ends.append(batch.end)
            assert sorted(batch.headers) == list(range(start, batch.end + 1))
            assert batch.end_header == BlockHeader.from_rpc(block(batch.end))
            start = batch.end + 1
    assert ends == [109, 119, 125]
    assert node.spans == [10, 10, 6]
    assert node.requests == 3  # logs and headers travel in one batch


def test_one_block_refusal_is_a_hard_error() -> None:
    node = FakeNode(limit=0)
    with client(node) as chain, pytest.raises(RangeRefusedError) as caught:
        chain.fetch_logs(7, 10_000, LogFilter())
    assert caught.value.block == 7
    assert node.spans == [2000, 1000, 500, 250, 125, 62, 31, 15, 7, 3, 1]
    assert isinstance(caught.value, ChainError)


def test_hints_parse_and_never_widen() -> None:
    assert range_hint("this block range should work: [0x10, 0x1f]") == 16
    assert range_hint("Try with this block range [0x112A880, 0x112A8E3].") == 100
    assert range_hint("You can make eth_getLogs requests with up to a 2K block range") == 2000
    assert range_hint("block range too large, max 1000 blocks") == 1000
    assert range_hint("exceed maximum block range: 2000") == 2000
    assert range_hint("query returned more than 10000 results") is None
    assert next_range(1000, 5000) == 500
    assert next_range(1000, 0) == 500
    assert next_range(1000, 10) == 10
    assert next_range(1, None) == 1


def test_max_block_range_is_validated() -> None:
    with pytest.raises(ValueError, match="max_block_range"):
        HttpChainClient([URL], max_block_range=0)
    with pytest.raises(ValueError, match="at least one RPC URL"):
        HttpChainClient([])
    with pytest.raises(ValueError, match="http:// or https://") as caught:
        HttpChainClient(["wss://mainnet.infura.io/ws/v3/abcdef0123"])
    assert "abcdef0123" not in str(caught.value)


# --- retries -----------------------------------------------------------------------------------------------

EVERY_FAULT: list[tuple[Fault, str]] = [
    (status(429, **{"retry-after": "0"}), "http_429"),
    (status(500), "http_5xx"),
    (status(502), "http_5xx"),
    (status(503), "http_5xx"),
    (raising(httpx.ReadTimeout), "timeout"),
    (body(b'{"jsonrpc": "2.0", "id"'), "malformed"),
    (raising(httpx.RemoteProtocolError), "malformed"),
    (missing_id, "malformed"),
    (raising(httpx.ConnectError), "connect"),
]


def test_retries_every_fault_with_exponential_backoff(sleeps: list[float]) -> None:
    node = FakeNode([fault for fault, _ in EVERY_FAULT])
    kinds: list[str] = []
    chain = client(node, sleep=sleeps.append, rng=MaxRandom(), on_error=kinds.append, max_retries=9)
    with chain:
        batch = chain.fetch_logs(1, 1, LogFilter())
    assert batch.end == 1 and len(batch.logs) == 1
    assert kinds == [kind for _, kind in EVERY_FAULT]
    assert sleeps == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10, 10, 10])


def test_jitter_stays_within_the_exponential_ceiling(sleeps: list[float]) -> None:
    node = FakeNode([status(503)] * 40)
    with client(node, sleep=sleeps.append, rng=random.Random(3), max_retries=40) as chain:
        assert chain.head() == 1_000
    ceilings = [min(10.0, 0.2 * 2**i) for i in range(40)]
    assert all(0 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))
    assert len(set(sleeps)) == len(sleeps)  # jittered, not a fixed schedule
    assert sum(sleeps[20:]) > 5 * sum(sleeps[:5])  # and growing


def test_retry_after_is_honoured(sleeps: list[float]) -> None:
    node = FakeNode([status(429, **{"retry-after": "3"}), status(429, **{"retry-after": "soon"})])
    with client(node, sleep=sleeps.append, rng=random.Random(1)) as chain:
        assert chain.chain_id() == 1
    assert sleeps[0] == 3 and sleeps[1] <= 0.4


def test_retries_exhausted(sleeps: list[float]) -> None:
    node = FakeNode([status(502)] * 3 + [raising(httpx.ReadTimeout)])
    with (
        client(node, sleep=sleeps.append, max_retries=3) as chain,
        pytest.raises(RpcTransportError) as caught,
    ):
        chain.head()
    assert (caught.value.attempts, caught.value.last_kind, caught.value.url) == (4, "timeout", URL)
    assert len(sleeps) == 3 and node.requests == 4


def test_unavailable_header_is_retried() -> None:
    node = FakeNode([null_header, null_header])
    kinds: list[str] = []
    with client(node, on_error=kinds.append) as chain:
        assert chain.header(42).hash == f"0x{42:064x}"
    assert kinds == ["block_unavailable"] * 2


def test_transient_rpc_errors_are_retried_and_others_raise(sleeps: list[float]) -> None:
    node = FakeNode(
        [rpc_error(-32005, "project ID request rate exceeded"), rpc_error(-32000, "header not found")]
    )
    with client(node, sleep=sleeps.append) as chain:
        assert chain.head() == 1_000
        assert len(sleeps) == 2
        node.faults = [rpc_error(-32602, "invalid argument 0: hex string without 0x prefix")]
        with pytest.raises(RpcResponseError) as caught:
            chain.head()
    assert (caught.value.code, caught.value.method) == (-32602, "eth_blockNumber")
    assert "hex string" in caught.value.message and len(sleeps) == 2


def test_finalized_is_none_when_unsupported() -> None:
    node = FakeNode([rpc_error(-32602, "invalid block tag finalized")])
    with client(node) as chain:
        assert chain.finalized() is None
        assert chain.finalized() == 1_000


def test_string_ids_and_whole_batch_errors() -> None:
    def string_ids(request: httpx.Request) -> httpx.Response:
        calls = orjson.loads(request.content)
        replies = [{"jsonrpc": "2.0", "id": str(c["id"]), "result": block(7)} for c in calls]
        return httpx.Response(200, content=orjson.dumps(replies[::-1]))

    whole = rpc_error(-32600, "batch requests are not supported on this plan")
    with client(FakeNode([string_ids, whole])) as chain:
        assert set(chain.headers([7, 7])) == {7}
        with pytest.raises(RpcResponseError, match="not supported"):
            chain.headers([1, 2])


def test_client_satisfies_the_protocol() -> None:
    chain: ChainClient = client(FakeNode())
    chain.close()


def test_headers_in_one_batch() -> None:
    node = FakeNode()
    with client(node) as chain:
        headers = chain.headers([3, 5, 4])
        assert chain.headers([]) == {}
    assert list(headers) == [3, 5, 4]
    assert headers[5].parent_hash == headers[4].hash
    assert node.requests == 1


def test_413_on_headers_is_a_response_error() -> None:
    node = FakeNode([lambda request: httpx.Response(413, text="batch too large")])
    with client(node) as chain, pytest.raises(RpcResponseError, match="batch too large"):
        chain.headers([1, 2])


# --- failover ----------------------------------------------------------------------------------------------


def test_failover_moves_to_the_next_url(sleeps: list[float]) -> None:
    node = FakeNode([raising(httpx.ConnectError), status(503), raising(httpx.ConnectError)])
    urls = ["http://a.test/", "http://b.test/", "http://c.test/"]
    with client(node, urls=urls, sleep=sleeps.append) as chain:
        assert chain.head() == 1_000
        assert chain.head() == 1_000
    assert node.hosts == ["a.test", "b.test", "c.test", "a.test", "a.test"]
    assert len(sleeps) == 3


def test_retry_budget_is_shared_across_urls() -> None:
    node = FakeNode([status(500)] * 10)
    urls = ["http://a.test/", "http://b.test/"]
    with client(node, urls=urls, max_retries=4) as chain, pytest.raises(RpcTransportError) as caught:
        chain.head()
    assert node.hosts == ["a.test", "b.test", "a.test", "b.test", "a.test"]
    assert caught.value.url == "http://a.test/"


# --- secrets -----------------------------------------------------------------------------------------------

SECRET_URLS = [
    ("https://eth-mainnet.g.alchemy.com/v2/SECRETKEY123", "SECRETKEY123"),
    ("https://mainnet.infura.io/v3/abcdef0123", "abcdef0123"),
    ("https://user:pw@host.test/?apikey=XYZ", "XYZ"),
]


@pytest.mark.parametrize(("url", "secret"), SECRET_URLS)
@pytest.mark.parametrize("fault", [raising(httpx.ConnectError), raising(httpx.ReadTimeout), status(500)])
def test_secrets_never_reach_messages_or_logs(
    url: str, secret: str, fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    node = FakeNode([fault] * 3)
    with client(node, urls=[url], max_retries=2) as chain, pytest.raises(RpcTransportError) as caught:
        chain.head()
    texts = [str(caught.value), repr(caught.value), caught.value.url, _traceback(caught.value)]
    texts += [record.getMessage() for record in caplog.records]
    assert caplog.records, "the failures should be logged"
    assert not [text for text in texts if secret in text or "pw@" in text]


@pytest.mark.parametrize(("url", "secret"), SECRET_URLS)
def test_secrets_stay_out_of_successful_request_logs(
    url: str, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # the CLI quiets httpx; this test needs its records
    with client(FakeNode(), urls=[url]) as chain:
        chain.fetch_logs(1, 1, LogFilter())
    assert [r for r in caplog.records if r.name == "httpx"], "httpx logs each request at INFO"
    assert not [r for r in caplog.records if secret in r.getMessage() or "pw@" in r.getMessage()]


@pytest.mark.parametrize(("url", "secret"), SECRET_URLS)
def test_secrets_echoed_by_the_provider_are_scrubbed(url: str, secret: str) -> None:
    echo = rpc_error(-32602, f"invalid request to {url}: bad params")
    with client(FakeNode([echo]), urls=[url]) as chain, pytest.raises(RpcResponseError) as caught:
        chain.head()
    assert secret not in str(caught.value) and "bad params" in str(caught.value)


def test_redact_url() -> None:
    assert (
        redact_url("https://eth-mainnet.g.alchemy.com/v2/SECRETKEY123")
        == "https://eth-mainnet.g.alchemy.com/v2/***"
    )
    assert redact_url("https://mainnet.infura.io/v3/abcdef0123") == "https://mainnet.infura.io/v3/***"
    assert (
        redact_url("https://user:pw@host:8545/rpc?apikey=XYZ&x=1")
        == "https://***@host:8545/rpc?apikey=***&x=***"
    )
    assert redact_url("http://127.0.0.1:8545/") == "http://127.0.0.1:8545/"
    assert redact_url("http://[::1]:8545/KEY") == "http://[::1]:8545/***"


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


# --- through a real proxy --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aave_replay() -> Iterator[ReplayServer]:
    with ReplayServer(load_recording(data_file("chain/mainnet-aave-v3-window-25290309-logs.json"))) as server:
        yield server


def fetch_all(chain: HttpChainClient, start: int, end: int, all_headers: bool) -> LogBatch:
    """Loop fetch_logs over start..end, merging the batches."""
    merged = LogBatch(start, start - 1, [], {})
    while merged.end < end:
        batch = chain.fetch_logs(merged.end + 1, end, LogFilter(), all_headers=all_headers)
        merged.logs.extend(batch.logs)
        merged.headers.update(batch.headers)
        merged.end = batch.end
    return merged


def test_faulty_proxy_gives_the_same_logs_as_the_node(aave_replay: ReplayServer) -> None:
    first, last = 25_290_260, 25_290_309
    with HttpChainClient([aave_replay.url]) as direct:
        expected = [fetch_all(direct, first, last, all_headers=flag) for flag in (True, False)]
    assert len(expected[0].logs) == 163 and len(expected[0].headers) == 50
    rates = dict.fromkeys(FAULTS, 0.06)
    kinds: list[str] = []
    with FaultProxy(aave_replay.url, seed=11, rates=rates, max_range=4, delay_s=0.5) as proxy:
        options: dict[str, Any] = {"max_block_range": 16, "timeout_s": 0.2, "max_retries": 40}
        with HttpChainClient([proxy.url], sleep=lambda s: None, on_error=kinds.append, **options) as chain:
            got = [fetch_all(chain, first, last, all_headers=flag) for flag in (True, False)]
    assert got[0] == expected[0]
    assert (got[1].end, got[1].logs) == (expected[1].end, expected[1].logs)
    # Without all_headers only each batch's end header comes back; chunking differs but values agree.
    assert {n: expected[0].headers[n] for n in got[1].headers} == got[1].headers
    assert {kind: proxy.counts[kind] for kind in FAULTS if not proxy.counts[kind]} == {}
    assert sum(n for kind, n in proxy.counts.items() if kind.startswith("range:")) >= 3
    assert {"http_429", "http_5xx", "timeout", "malformed", "range"} <= set(kinds)
