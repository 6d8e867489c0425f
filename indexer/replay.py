"""Serve recorded JSON-RPC data so the indexer runs unchanged against real mainnet recordings.

`load_recording` reads, from .json or JSON-lines files (one JSON value per line):

- JSON-RPC responses, or lists of them, whose `result` is a block object or a list of logs;
- plain lists of log objects (`eth_getLogs` results), optionally carrying `blockTimestamp`;
- plain lists of block objects.

`ReplayServer` answers eth_chainId, net_version, eth_blockNumber, eth_getBlockByNumber,
eth_getBlockByHash and eth_getLogs from it, single or batched. The whole recording counts as final:
"latest", "safe" and "finalized" all name the last recorded block, and "earliest" the first.

Headers the recording lacks are synthesized so that a client walking every header from the first to the
last recorded block sees one consistent parent-hash chain:

- a block known only from its logs takes the logs' `blockHash` and `blockTimestamp`;
- a block with no record at all takes the `parentHash` of the next block when that block is recorded,
  else a keccak-derived placeholder hash; its timestamp is interpolated between known ones;
- every synthesized header's `parentHash` is the hash (recorded or synthesized) of the block before it.

Blocks after the last recorded one are null, like blocks a node has not seen yet. Blocks before the first
are history a node would have: synthesized headers with no logs, so that a client tracking the last
`finality_depth` headers can walk below a recording shorter than that.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self, cast

import orjson

from indexer.errors import InputError
from indexer.types import RawLog

logger = logging.getLogger(__name__)

# Spacing assumed between blocks when only one neighbouring timestamp is known (post-merge mainnet).
SECONDS_PER_BLOCK = 12
FINAL_TAGS = frozenset({"latest", "safe", "finalized", "pending"})


class RecordingError(InputError):
    """A recording file that cannot be read: `path` names it, `reason` says what is wrong."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True, slots=True)
class LogBlock:
    """What logs tell about a block the recording has no object for."""

    hash: str
    timestamp: int | None


@dataclass(repr=False, eq=False)
class Recording:
    """Recorded blocks and logs, with headers synthesized for the blocks in between."""

    blocks: dict[int, dict[str, Any]]
    logs: list[RawLog]
    log_blocks: dict[int, LogBlock] = field(default_factory=dict)
    chain_id: int | None = None

    def __post_init__(self) -> None:
        known = sorted(self.blocks.keys() | self.log_blocks.keys())
        if not known:
            raise ValueError("a recording needs at least one block or log")
        self.first, self.last = known[0], known[-1]
        self._log_numbers = [_quantity(log["blockNumber"]) for log in self.logs]
        self._by_hash = {self._known_hash(n): n for n in known}
        self._by_hash.update({str(b["parentHash"]).lower(): n - 1 for n, b in self.blocks.items()})
        self._stamps = sorted(n for n in known if self._known_timestamp(n) is not None)

    def __repr__(self) -> str:
        return (
            f"Recording(blocks {self.first}..{self.last}, {len(self.blocks)} recorded, {len(self.logs)} logs)"
        )

    def block(self, number: int) -> dict[str, Any] | None:
        """The recorded block object, a synthesized header, or None after the recording."""
        if not 0 <= number <= self.last:
            return None
        if number in self.blocks:
            return self.blocks[number]
        return {
            "number": hex(number),
            "hash": self.hash_of(number),
            "parentHash": self.hash_of(number - 1),
            "timestamp": hex(self.timestamp_of(number)),
            "transactions": [],
        }

    def block_by_hash(self, block_hash: str) -> dict[str, Any] | None:
        """The block with this hash, if it is recorded or known from logs or a child's parentHash."""
        wanted = block_hash.lower()
        number = self._by_hash.get(wanted)
        if number is None or self.hash_of(number) != wanted:
            return None
        return self.block(number)

    def hash_of(self, number: int) -> str:
        """The recorded or synthesized hash of `number`."""
        if number in self.blocks or number in self.log_blocks:
            return self._known_hash(number)
        child = self.blocks.get(number + 1)
        if child is not None:
            return str(child["parentHash"]).lower()
        return placeholder_hash(number)

    def timestamp_of(self, number: int) -> int:
        """The recorded timestamp of `number`, or one interpolated between its neighbours."""
        known = self._known_timestamp(number)
        if known is not None:
            return known
        i = bisect.bisect_left(self._stamps, number)
        before = self._stamps[i - 1] if i > 0 else None
        after = self._stamps[i] if i < len(self._stamps) else None
        return _interpolate(number, before, after, self._timestamp_at)

    def logs_between(self, start: int, end: int) -> list[RawLog]:
        """Logs of blocks start..end (inclusive), sorted by (blockNumber, logIndex)."""
        lo = bisect.bisect_left(self._log_numbers, start)
        hi = bisect.bisect_right(self._log_numbers, end)
        return self.logs[lo:hi]

    def _known_hash(self, number: int) -> str:
        if number in self.blocks:
            return str(self.blocks[number]["hash"]).lower()
        return self.log_blocks[number].hash

    def _known_timestamp(self, number: int) -> int | None:
        if number in self.blocks:
            return _quantity(self.blocks[number]["timestamp"])
        info = self.log_blocks.get(number)
        return info.timestamp if info is not None else None

    def _timestamp_at(self, number: int) -> int:
        return cast(int, self._known_timestamp(number))


def placeholder_hash(number: int) -> str:
    """A deterministic stand-in hash for an unrecorded block."""
    from eth_utils.crypto import keccak

    return "0x" + keccak(f"chainrisk-replay-block:{number}".encode()).hex()


def _interpolate(number: int, before: int | None, after: int | None, at: Callable[[int], int]) -> int:
    if before is not None and after is not None:
        t0, t1 = at(before), at(after)
        return t0 + (t1 - t0) * (number - before) // (after - before)
    if before is not None:
        return at(before) + SECONDS_PER_BLOCK * (number - before)
    if after is not None:
        return max(0, at(after) - SECONDS_PER_BLOCK * (after - number))
    return 0


def _quantity(value: Any) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"expected a 0x-prefixed hex quantity, got {value!r}")
    return int(value, 16)


# --- loading -------------------------------------------------------------------------------------------


def load_recording(paths: Iterable[str | Path] | str | Path) -> Recording:
    """Read recordings (JSON or JSON lines) into one `Recording`; raises RecordingError."""
    files = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    loader = _Loader()
    for path in files:
        for value, where in _read_values(path):
            loader.absorb(value, where, str(path))
    return loader.recording(", ".join(map(str, files)))


def _read_values(path: Path) -> Iterable[tuple[Any, str]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RecordingError(str(path), f"cannot be read ({exc.strerror})") from None
    if not raw.strip():
        raise RecordingError(str(path), "is empty: expected JSON or JSON lines")
    if path.suffix == ".jsonl":
        return _read_lines(path, raw)
    try:
        return [(orjson.loads(raw), "the document")]
    except orjson.JSONDecodeError as whole:
        try:
            return _read_lines(path, raw)  # JSON lines under another name
        except RecordingError as lines:
            if b"\n" not in raw.strip():
                raise RecordingError(str(path), f"is not valid JSON ({whole})") from None
            raise RecordingError(
                str(path), f"is neither JSON ({whole}) nor JSON lines ({lines.reason})"
            ) from None


def _read_lines(path: Path, raw: bytes) -> list[tuple[Any, str]]:
    values = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values.append((orjson.loads(line), f"line {number}"))
        except orjson.JSONDecodeError as exc:
            raise RecordingError(str(path), f"line {number} is not valid JSON ({exc})") from None
    return values


class _Loader:
    """Collects blocks and logs from many files, checking each item names what it is."""

    def __init__(self) -> None:
        self.blocks: dict[int, dict[str, Any]] = {}
        self.logs: dict[tuple[int, int], RawLog] = {}
        self.chain_id: int | None = None

    def absorb(self, value: Any, where: str, path: str) -> None:
        if isinstance(value, list):
            for i, item in enumerate(value):
                self.absorb(item, f"{where} item {i}", path)
            return
        if not isinstance(value, dict):
            raise RecordingError(path, f"{where} is a JSON {type(value).__name__}; expected an object")
        try:
            self._absorb_object(value, where, path)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            if isinstance(exc, RecordingError):
                raise
            raise RecordingError(path, f"{where} has a bad field: {exc}") from None

    def _absorb_object(self, item: dict[str, Any], where: str, path: str) -> None:
        if "result" in item or "error" in item:
            if item.get("error") is not None:
                raise RecordingError(path, f"{where} is a JSON-RPC error response: {item['error']}")
            if item.get("result") is None:
                raise RecordingError(path, f"{where} is a JSON-RPC response with a null result")
            self.absorb(item["result"], f"{where} result", path)
        elif "logIndex" in item and "topics" in item:
            self.logs.setdefault((_quantity(item["blockNumber"]), _quantity(item["logIndex"])), item)
        elif {"number", "hash", "parentHash"} <= item.keys():
            self._add_block(item, where, path)
        else:
            keys = ", ".join(sorted(item)[:8])
            raise RecordingError(path, f"{where} is neither a block, a log nor a JSON-RPC response ({keys})")

    def _add_block(self, block: dict[str, Any], where: str, path: str) -> None:
        number = _quantity(block["number"])
        _quantity(block["timestamp"])
        seen = self.blocks.get(number)
        if seen is not None and seen["hash"].lower() != block["hash"].lower():
            raise RecordingError(path, f"{where}: block {number} recorded twice with different hashes")
        self.blocks[number] = block
        if "chainId" in block and self.chain_id is None:
            self.chain_id = _quantity(block["chainId"])

    def recording(self, names: str) -> Recording:
        if not self.blocks and not self.logs:
            raise RecordingError(names, "no blocks or logs found")
        logs = [self.logs[key] for key in sorted(self.logs)]
        return Recording(self.blocks, logs, self._log_blocks(logs, names), self.chain_id)

    def _log_blocks(self, logs: list[RawLog], names: str) -> dict[int, LogBlock]:
        found: dict[int, LogBlock] = {}
        for log in logs:
            number, block_hash = _quantity(log["blockNumber"]), str(log["blockHash"]).lower()
            recorded = self.blocks.get(number)
            if recorded is not None and recorded["hash"].lower() != block_hash:
                raise RecordingError(
                    names, f"a log of block {number} names hash {block_hash}, not the block's"
                )
            if recorded is None and number not in found:
                stamp = log.get("blockTimestamp")
                found[number] = LogBlock(block_hash, _quantity(stamp) if stamp is not None else None)
        return found


# --- JSON-RPC ------------------------------------------------------------------------------------------


class _RpcFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ReplayRpc:
    """Answers JSON-RPC requests (bytes in, bytes out) from a `Recording`."""

    def __init__(self, recording: Recording, chain_id: int = 1) -> None:
        self.recording = recording
        self.chain_id = recording.chain_id if recording.chain_id is not None else chain_id
        self._methods: dict[str, Callable[[list[Any]], Any]] = {
            "eth_chainId": lambda _: hex(self.chain_id),
            "net_version": lambda _: str(self.chain_id),
            "web3_clientVersion": lambda _: "chainrisk-replay",
            "eth_blockNumber": lambda _: hex(self.recording.last),
            "eth_getBlockByNumber": lambda p: self.recording.block(self._number(_param(p, 0))),
            "eth_getBlockByHash": lambda p: self.recording.block_by_hash(str(_param(p, 0))),
            "eth_getLogs": lambda p: self._logs(_param(p, 0)),
        }

    def handle(self, body: bytes) -> bytes:
        """The reply to one HTTP request body: a single request or a batch."""
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return orjson.dumps(_error(None, -32700, "parse error"))
        if isinstance(request, list):
            if not request:
                return orjson.dumps(_error(None, -32600, "empty batch"))
            return orjson.dumps([self.answer(item) for item in request])
        return orjson.dumps(self.answer(request))

    def answer(self, request: Any) -> dict[str, Any]:
        """The response object for one request object."""
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error(None, -32600, "invalid request: expected an object with a method")
        rid = request.get("id")
        method = self._methods.get(request["method"])
        if method is None:
            return _error(rid, -32601, f"the method {request['method']} does not exist/is not available")
        params = request.get("params", [])
        try:
            return {"jsonrpc": "2.0", "id": rid, "result": method(params if isinstance(params, list) else [])}
        except _RpcFailure as failure:
            return _error(rid, failure.code, failure.message)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return _error(rid, -32602, f"invalid params: {exc}")

    def _number(self, tag: Any) -> int:
        if tag in FINAL_TAGS or tag is None:
            return self.recording.last
        if tag == "earliest":
            return self.recording.first
        return _quantity(tag)

    def _logs(self, query: Any) -> list[RawLog]:
        if not isinstance(query, dict):
            raise _RpcFailure(-32602, "invalid params: expected a filter object")
        start, end = self._log_range(query)
        addresses = _addresses(query.get("address"))
        topics = _topics(query.get("topics"))
        logs = self.recording.logs_between(start, end)
        if not addresses and not topics:
            return logs
        return [log for log in logs if _matches(log, addresses, topics)]

    def _log_range(self, query: dict[str, Any]) -> tuple[int, int]:
        if query.get("blockHash") is not None:
            block = self.recording.block_by_hash(str(query["blockHash"]))
            if block is None:
                raise _RpcFailure(-32000, f"unknown block {query['blockHash']}")
            number = _quantity(block["number"])
            return number, number
        start = self._number(query.get("fromBlock", "latest"))
        end = self._number(query.get("toBlock", "latest"))
        if start > end:
            raise _RpcFailure(-32602, f"invalid block range params: fromBlock {start} > toBlock {end}")
        return start, end


def _param(params: list[Any], index: int) -> Any:
    if len(params) <= index:
        raise _RpcFailure(-32602, f"invalid params: missing value for required argument {index}")
    return params[index]


def _error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def _addresses(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    items = [value] if isinstance(value, str) else value
    return frozenset(str(a).lower() for a in items)


def _topics(value: Any) -> list[frozenset[str] | None]:
    """Per position: None is a wildcard, else the set of accepted topics (an OR-list)."""
    if not value:
        return []
    wanted: list[frozenset[str] | None] = []
    for position in value:
        if position is None or position == []:
            wanted.append(None)
        else:
            items = [position] if isinstance(position, str) else position
            wanted.append(frozenset(str(t).lower() for t in items if t is not None))
    return wanted


def _matches(log: RawLog, addresses: frozenset[str], topics: list[frozenset[str] | None]) -> bool:
    if addresses and log["address"].lower() not in addresses:
        return False
    have = log["topics"]
    if len(topics) > len(have):  # as geth: more filter positions than topics never matches
        return False
    return all(want is None or have[i].lower() in want for i, want in enumerate(topics))


# --- HTTP ----------------------------------------------------------------------------------------------


class _TrackingServer(ThreadingHTTPServer):
    """Remembers open connections so that stopping closes idle keep-alive ones instead of waiting."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], app: Any) -> None:
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):  # already closed by the client
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)


class BackgroundHTTPServer:
    """A threaded HTTP server on a background thread; `handler` reaches `app` as `self.server.app`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], app: Any, host: str, port: int) -> None:
        self._handler = handler
        self._app = app
        self._address = (host, port)
        self._server: _TrackingServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """http://host:port/ of the running server."""
        if self._server is None:
            raise RuntimeError("the server is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> None:
        """Bind and serve on a background thread."""
        if self._server is not None:
            return
        self._server = _TrackingServer(self._address, self._handler, self._app)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close open connections and release the port."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None


class _RpcHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect from a node
    timeout = 60

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        reply = cast(ReplayRpc, cast(_TrackingServer, self.server).app).handle(body)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("replay %s - %s", self.address_string(), format % args)


class HttpService:
    """start/stop/url and `with` for an object that serves through `self._http`."""

    _http: BackgroundHTTPServer

    @property
    def url(self) -> str:
        """The URL it serves at."""
        return self._http.url

    def start(self) -> None:
        """Start serving in the background."""
        self._http.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._http.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ReplayServer(HttpService):
    """A local JSON-RPC endpoint serving a `Recording`; use start()/stop() or `with`."""

    def __init__(
        self, recording: Recording, host: str = "127.0.0.1", port: int = 0, chain_id: int = 1
    ) -> None:
        self.rpc = ReplayRpc(recording, chain_id)
        self._http = BackgroundHTTPServer(_RpcHandler, self.rpc, host, port)
