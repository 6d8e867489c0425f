"""A JSON-RPC proxy for tests: forwards to an upstream URL and injects provider faults by a seeded schedule.

Faults come from a seeded, shuffled deck: each kind holds about `rate` of its cards and at least one, so
every kind shows up once per deck (about 1/min(rate) requests) whatever the timing. The kinds:

- ``http_429`` (with ``Retry-After: 0``), ``http_500``, ``http_502``, ``http_503``;
- ``delay``: the reply comes ``delay_s`` late, past a client timeout shorter than that;
- ``truncate``: the body stops halfway though its Content-Length promised more;
- ``malformed``: half a JSON document with a matching Content-Length;
- ``missing_id``: a batch reply lacking its last response.

Independently, an eth_getLogs request spanning more than ``max_range`` blocks is refused in one of the
providers' formats (``REFUSALS``, dealt from their own shuffled deck), counted as ``range:<format>``; such
a request draws no fault card. The proxy binds 127.0.0.1 only.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, cast

import httpx
import orjson

from indexer.replay import BackgroundHTTPServer, HttpService

FAULTS = ("http_429", "http_500", "http_502", "http_503", "delay", "truncate", "malformed", "missing_id")

_ALCHEMY = (
    "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit "
    "on the response size, or you can request any block range with a cap of 10K logs in the response. "
    "Based on your parameters, this block range should work: [{first}, {last}]"
)
_INFURA = "query returned more than 10000 results. Try with this block range [{first}, {last}]."


@dataclass(frozen=True)
class Refusal:
    """A provider's way of refusing a range: HTTP status, JSON-RPC code (None: plain text) and message."""

    status: int
    code: int | None
    message: str


REFUSALS: dict[str, Refusal] = {
    "infura": Refusal(200, -32005, _INFURA),
    "alchemy": Refusal(200, -32602, _ALCHEMY),
    "erigon": Refusal(200, -32000, "exceed maximum block range: {limit}"),
    "too_large": Refusal(200, -32602, "block range is too large"),
    "max_range": Refusal(200, -32600, "max range {limit}"),
    "range_limit": Refusal(400, -32000, "eth_getLogs is limited to a range limit of {limit}"),
    "results_400": Refusal(400, -32005, "query returned more than 10000 results"),
    "text_413": Refusal(413, None, "block range too large, max {limit} blocks"),
    "infura_range": Refusal(200, -32602, "range {span} exceeds limit of {limit}"),
    "reth": Refusal(
        200, -32602, "query exceeds max results 20000, retry with the range {first_dec}-{last_dec}"
    ),
    "quicknode_413": Refusal(413, -32614, "eth_getLogs is limited to a {limit_commas} range"),
    "no_hint": Refusal(200, -32005, "logs matched by query exceeds limit of 10000"),
}


@dataclass
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None  # a Content-Length other than len(body): truncation

    @property
    def declared(self) -> int:
        return self.length if self.length is not None else len(self.body)


class FaultProxy(HttpService):
    """Forwards JSON-RPC to `upstream_url`, injecting faults; `counts` says how many of each."""

    def __init__(
        self,
        upstream_url: str,
        *,
        seed: int = 0,
        rates: Mapping[str, float] | None = None,
        max_range: int | None = None,
        delay_s: float = 1.0,
    ) -> None:
        unknown = set(rates or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; expected some of {FAULTS}")
        if sum((rates or {}).values()) > 1:
            raise ValueError("fault rates add up to more than 1")
        self.upstream_url = upstream_url
        self.rates = dict(rates or {})
        self.max_range = max_range
        self.delay_s = delay_s
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._fault_deck: list[str | None] = []
        self._refusal_deck: list[str | None] = []
        self._lock = threading.Lock()
        self._upstream = httpx.Client(timeout=30)
        self._http = BackgroundHTTPServer(_ProxyHandler, self, "127.0.0.1", 0)

    def stop(self) -> None:
        """Stop serving and close the upstream connections."""
        super().stop()
        self._upstream.close()

    def respond(self, body: bytes) -> _Reply:
        """The reply to one request body, faulty or forwarded."""
        too_wide = self._too_wide(_requests(body))
        if too_wide is not None:
            return self._refuse(body, too_wide, self._deal(self._refusal_deck, _refusal_deck))
        fault = self._deal(self._fault_deck, self._new_fault_deck)
        if fault is None:
            return self._forward(body)
        return self._inject(fault, body)

    def _deal(self, deck: list[str | None], refill: Callable[[], list[str | None]]) -> str | None:
        with self._lock:
            if not deck:
                deck.extend(refill())
                self._rng.shuffle(deck)
            return deck.pop()

    def _new_fault_deck(self) -> list[str | None]:
        rates = {kind: rate for kind, rate in self.rates.items() if rate > 0}
        if not rates:
            return [None]
        size = math.ceil(1 / min(rates.values()))
        cards: list[str | None] = [k for k, r in rates.items() for _ in range(max(1, round(r * size)))]
        return cards + [None] * max(0, size - len(cards))

    def _count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1

    def _forward(self, body: bytes) -> _Reply:
        response = self._upstream.post(
            self.upstream_url, content=body, headers={"content-type": "application/json"}
        )
        return _Reply(response.status_code, response.content, {"content-type": "application/json"})

    def _inject(self, fault: str, body: bytes) -> _Reply:
        if fault.startswith("http_"):
            self._count(fault)
            return _Reply(int(fault[5:]), b"upstream trouble", {"retry-after": "0"})
        if fault == "delay":
            self._count(fault)
            time.sleep(self.delay_s)
            return self._forward(body)
        reply = self._forward(body)
        changed = _CORRUPTIONS[fault](reply)
        if changed is not None:
            self._count(fault)
            return changed
        return reply

    def _too_wide(self, requests: list[dict[str, Any]]) -> tuple[int, int, int] | None:
        """(position in the batch, fromBlock, span) of an eth_getLogs wider than max_range."""
        if self.max_range is None:
            return None
        for position, request in enumerate(requests):
            if request.get("method") != "eth_getLogs":
                continue
            query = request["params"][0]
            start, end = int(query["fromBlock"], 16), int(query["toBlock"], 16)
            if end - start + 1 > self.max_range:
                return position, start, end - start + 1
        return None

    def _refuse(self, body: bytes, where: tuple[int, int, int], name: str | None) -> _Reply:
        assert name is not None
        self._count(f"range:{name}")
        refusal = REFUSALS[name]
        position, start, span = where
        limit = cast(int, self.max_range)
        message = refusal.message.format(
            limit=limit,
            first=hex(start),
            last=hex(start + limit - 1),
            span=span,
            first_dec=start,
            last_dec=start + limit - 1,
            limit_commas=f"{limit:,}",
        )
        if refusal.code is None:
            return _Reply(refusal.status, message.encode(), {"content-type": "text/plain"})
        error = {"code": refusal.code, "message": message}
        if refusal.status != 200:
            return _Reply(refusal.status, orjson.dumps({"jsonrpc": "2.0", "id": None, "error": error}))
        return self._with_error(body, position, error)

    def _with_error(self, body: bytes, position: int, error: dict[str, Any]) -> _Reply:
        """Forward the batch but answer its eth_getLogs with `error`, as a provider would."""
        reply = self._forward(body)
        replies = orjson.loads(reply.body)
        if isinstance(replies, dict):
            return _Reply(200, orjson.dumps({"jsonrpc": "2.0", "id": replies.get("id"), "error": error}))
        rid = _requests(body)[position].get("id")
        patched = [
            {"jsonrpc": "2.0", "id": rid, "error": error} if r.get("id") == rid else r for r in replies
        ]
        return _Reply(200, orjson.dumps(patched))


def _refusal_deck() -> list[str | None]:
    return list(REFUSALS)


def _requests(body: bytes) -> list[dict[str, Any]]:
    parsed = orjson.loads(body)
    return parsed if isinstance(parsed, list) else [parsed]


def _truncate(reply: _Reply) -> _Reply:
    return _Reply(reply.status, reply.body[: len(reply.body) // 2], reply.headers, len(reply.body))


def _malformed(reply: _Reply) -> _Reply:
    return _Reply(reply.status, reply.body[: len(reply.body) // 2], reply.headers)


def _missing_id(reply: _Reply) -> _Reply | None:
    replies = orjson.loads(reply.body)
    if not isinstance(replies, list) or len(replies) < 2:
        return None  # nothing to drop from a single reply
    return _Reply(reply.status, orjson.dumps(replies[:-1]), reply.headers)


_CORRUPTIONS: dict[str, Callable[[_Reply], _Reply | None]] = {
    "truncate": _truncate,
    "malformed": _malformed,
    "missing_id": _missing_id,
}


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        proxy = cast(FaultProxy, cast(Any, self.server).app)
        reply = proxy.respond(body)
        truncated = reply.length is not None
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(reply.declared))
        if truncated:
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the counts say what happened
