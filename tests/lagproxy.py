"""A JSON-RPC proxy for tests that behaves like a load balancer with one node `lag` blocks behind.

About one request in `every` (a seeded draw) goes to the lagging node: its head is `lag` blocks lower,
blocks above that head are null, and an eth_getLogs reaching above it is refused the way geth refuses a
range past its head.
Everything else is forwarded unchanged. The lagging node is on the same chain, so nothing it says
is evidence of a reorg. The proxy binds 127.0.0.1 only.
"""

from __future__ import annotations

import random
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, cast

import httpx
import orjson

from indexer.replay import BackgroundHTTPServer, HttpService

BEYOND_HEAD = {"code": -32602, "message": "block range extends beyond current head block"}


class LaggingProxy(HttpService):
    """Forwards to `upstream_url`; one request in `every` is answered by a node `lag` blocks behind."""

    def __init__(self, upstream_url: str, *, lag: int, every: int = 2, seed: int = 0) -> None:
        self.upstream_url = upstream_url
        self.lag = lag
        self.every = every
        self.lagged = 0
        self.down = False  # True: every request gets HTTP 503, as during an outage
        self.refused = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._upstream = httpx.Client(timeout=30)
        self._http = BackgroundHTTPServer(_Handler, self, "127.0.0.1", 0)

    def stop(self) -> None:
        super().stop()
        self._upstream.close()

    def respond(self, body: bytes) -> bytes | None:
        """The reply body, or None for an HTTP 503 while `down`."""
        if self.down:
            with self._lock:
                self.refused += 1
            return None
        with self._lock:
            lagging = self._rng.randrange(self.every) == 0
        if not lagging:
            return self._post(body)
        with self._lock:
            self.lagged += 1
        head = int(self._call("eth_blockNumber", []), 16) - self.lag
        parsed = orjson.loads(body)
        if isinstance(parsed, list):
            return orjson.dumps([self._answer(r, head) for r in parsed])
        return orjson.dumps(self._answer(parsed, head))

    def _answer(self, request: dict[str, Any], head: int) -> dict[str, Any]:
        method, params, rid = request["method"], request.get("params", []), request.get("id")
        if method == "eth_blockNumber":
            return _result(rid, hex(head))
        if method == "eth_getBlockByNumber":
            return _result(rid, self._block(params, head))
        if method == "eth_getLogs" and int(params[0]["toBlock"], 16) > head:
            return {"jsonrpc": "2.0", "id": rid, "error": BEYOND_HEAD}
        return _result(rid, self._call(method, params))

    def _block(self, params: list[Any], head: int) -> Any:
        tag = hex(head) if params[0] in ("latest", "pending") else params[0]
        if tag.startswith("0x"):
            return None if int(tag, 16) > head else self._call("eth_getBlockByNumber", [tag, *params[1:]])
        block = self._call("eth_getBlockByNumber", params)  # safe, finalized, earliest
        if block is not None and int(block["number"], 16) > head:
            return self._call("eth_getBlockByNumber", [hex(head), *params[1:]])
        return block

    def _call(self, method: str, params: list[Any]) -> Any:
        request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        return orjson.loads(self._post(orjson.dumps(request)))["result"]

    def _post(self, body: bytes) -> bytes:
        headers = {"content-type": "application/json"}
        return self._upstream.post(self.upstream_url, content=body, headers=headers).content


def _result(rid: Any, value: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "result": value}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        proxy = cast(LaggingProxy, cast(Any, self.server).app)
        reply = proxy.respond(body)
        if reply is None:
            reply = b"upstream unavailable"
            self.send_response(503)
        else:
            self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass
