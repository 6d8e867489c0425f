"""The one place that talks JSON-RPC: a small `ChainClient` protocol and its HTTP implementation.

Providers refuse large eth_getLogs ranges, rate-limit, time out and drop connections as a matter of
course, so `HttpChainClient` shrinks ranges on refusal (using the provider's hint when it gives one) and
grows them back, retries with exponential backoff and full jitter, and fails over between URLs.

Exceptions::

    ChainError                  anything the chain client raises
     ├─ RpcTransportError       retries exhausted (url, attempts, last_kind)
     ├─ RpcResponseError        a JSON-RPC error object (code, message, method)
     └─ RangeRefusedError       eth_getLogs refused even a 1-block range (block, message)

URLs often carry API keys, so messages and log lines only ever show `redact_url(url)`, and httpx
exceptions (whose text includes the URL) are never chained or quoted.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard, TypeVar

import httpx
import orjson

from indexer.errors import IndexerError
from indexer.types import BlockHeader, LogBatch, LogFilter, RawLog

logger = logging.getLogger(__name__)

T = TypeVar("T")

# After this many successful eth_getLogs batches in a row the range doubles again.
GROW_AFTER_SUCCESSES = 5
# A Retry-After beyond this is treated as this: a stalled indexer is worse than a few more 429s.
MAX_RETRY_AFTER_S = 60.0


class ChainError(IndexerError):
    """Base of every error the chain client raises."""


class RpcTransportError(ChainError):
    """Every attempt failed (HTTP status, timeout, connection, malformed reply); retries exhausted."""

    def __init__(self, url: str, attempts: int, last_kind: str) -> None:
        self.url = url
        self.attempts = attempts
        self.last_kind = last_kind
        super().__init__(
            f"JSON-RPC request failed after {attempts} attempts; last error {last_kind} at {url}"
        )


class RpcResponseError(ChainError):
    """The node answered with a JSON-RPC error object that retrying will not fix."""

    def __init__(self, code: int, message: str, method: str) -> None:
        self.code = code
        self.message = message
        self.method = method
        super().__init__(f"{method} failed with JSON-RPC error {code}: {message}")


class RangeRefusedError(ChainError):
    """eth_getLogs was refused for a single block: no smaller range exists to try."""

    def __init__(self, block: int, message: str) -> None:
        self.block = block
        self.message = message
        super().__init__(f"eth_getLogs refused even the 1-block range [{block}, {block}]: {message}")


class ChainClient(Protocol):
    """What the indexer needs from a chain."""

    def chain_id(self) -> int: ...

    def head(self) -> int: ...

    def finalized(self) -> int | None: ...

    def header(self, number: int) -> BlockHeader: ...

    def headers(self, numbers: Sequence[int]) -> dict[int, BlockHeader]: ...

    def fetch_logs(self, start: int, end: int, filt: LogFilter, all_headers: bool = False) -> LogBatch: ...

    def close(self) -> None: ...


# --- secrets -------------------------------------------------------------------------------------------

_SAFE_SEGMENT = re.compile(r"^(?:v\d+|rpc|api|jsonrpc|http|ws)$", re.IGNORECASE)


def redact_url(url: str | httpx.URL) -> str:
    """`url` with API keys, user info and query values replaced by '***'."""
    parts = urllib.parse.urlsplit(str(url))
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    if parts.username or parts.password:
        netloc = f"***@{netloc}"
    segments = [s if not s or _SAFE_SEGMENT.match(s) else "***" for s in parts.path.split("/")]
    query = "&".join(f"{key}=***" for key, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    return urllib.parse.urlunsplit((parts.scheme, netloc, "/".join(segments), query, ""))


def url_secrets(url: str) -> list[str]:
    """The parts of `url` that `redact_url` hides: user info, key-like path segments, query values."""
    parts = urllib.parse.urlsplit(url)
    found = [parts.username or "", parts.password or ""]
    found += [s for s in parts.path.split("/") if s and not _SAFE_SEGMENT.match(s)]
    found += [value for _, value in urllib.parse.parse_qsl(parts.query)]
    return [s for s in found if len(s) >= 3]


class _RedactUrls(logging.Filter):
    """httpx logs every request URL at INFO; this rewrites those URLs before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if _looks_like_url(a) else a for a in record.args)
        return True


def _looks_like_url(value: object) -> TypeGuard[str | httpx.URL]:
    return isinstance(value, httpx.URL) or (isinstance(value, str) and "://" in value)


_filter_lock = threading.Lock()


def _install_log_redaction() -> None:
    with _filter_lock:
        for name in ("httpx", "httpcore"):
            target = logging.getLogger(name)
            if not any(isinstance(f, _RedactUrls) for f in target.filters):
                target.addFilter(_RedactUrls())


# --- provider errors -----------------------------------------------------------------------------------

# An eth_getLogs refusal talks about the range, its blocks or its results (logs) and about a limit on
# them; docs/INDEXER.md lists the providers' formats this was written against.
_RANGE_TOPIC = re.compile(r"\brange\b|\bblocks?\b|\bresults?\b|\blogs?\b|response size", re.IGNORECASE)
_RANGE_LIMITED = re.compile(
    r"exceed|limit|too (?:large|big|wide|high|many)|\bmax|more than|bigger than|larger than"
    r"|timed? ?out|timeout|should work|retry with",
    re.IGNORECASE,
)
# Not about size: a rate limit is retried as it is, a range past the head waits for the node.
_NOT_A_SIZE = re.compile(r"rate limit|request rate|requests per|compute units|capacity", re.IGNORECASE)
_BEYOND_HEAD = re.compile(
    r"beyond (?:the )?(?:current )?head|after (?:the )?last (?:accepted )?block|future block|unknown block"
    r"|block not found|header not found",
    re.IGNORECASE,
)
# "Try with this block range [0x1, 0x2]" (Infura), "this block range should work: [0x1, 0x2]" (Alchemy).
_RANGE_PAIR = re.compile(r"\[\s*(0x[0-9a-f]+)\s*,\s*(0x[0-9a-f]+)\s*\]", re.IGNORECASE)
# "retry with the range 24383075-24383096" (reth): decimal, both ends included.
_RANGE_DASH = re.compile(r"range\s+(\d+)\s*-\s*(\d+)", re.IGNORECASE)
# A stated maximum in blocks: "maximum block range: 2000", "max block range = 5000", "range limit of 1000",
# "range 12000 exceeds limit of 10000", "is bigger than range limit 2000", "limited to a 10,000 range",
# "max 1000 blocks", "up to a 2K block range". A limit on results (logs) is not a block count.
_RANGE_LIMIT = re.compile(
    r"(?:max(?:imum)? block range|max(?:imum)? range|range limit(?: of)?|range \d+ exceeds limit of"
    r"|limited to an?|up to an?|\bmax)\s*(?:is|of|=)?\s*:?\s*(\d[\d,]*)(k)?\b(?!\s*results)",
    re.IGNORECASE,
)
# Errors a later attempt (or another URL) can get past.
_TRANSIENT = re.compile(
    r"rate limit|too many requests|request rate|capacity|header not found|try again"
    r"|temporar|timeout|timed out|busy|unavailable|overloaded|internal error",
    re.IGNORECASE,
)
_TRANSIENT_CODES = frozenset({-32005, -32603, 429})


def is_range_refusal(text: str) -> bool:
    """Whether a provider's error text refuses an eth_getLogs range (or its result) as too large."""
    if _NOT_A_SIZE.search(text) or _BEYOND_HEAD.search(text):
        return False
    if _RANGE_PAIR.search(text) or _RANGE_DASH.search(text):
        return True
    return bool(_RANGE_TOPIC.search(text) and _RANGE_LIMITED.search(text))


def is_beyond_head(text: str) -> bool:
    """Whether an error says the node does not have a block yet: a lagging node, to wait for."""
    return bool(_BEYOND_HEAD.search(text))


def range_hint(text: str) -> int | None:
    """The range size a refusal suggests, in blocks, or None when it only says "too large"."""
    for pattern, base in ((_RANGE_PAIR, 16), (_RANGE_DASH, 10)):
        if pair := pattern.search(text):
            first, last = int(pair.group(1), base), int(pair.group(2), base)
            return last - first + 1 if last >= first else None
    if limit := _RANGE_LIMIT.search(text):
        return int(limit.group(1).replace(",", "")) * (1000 if limit.group(2) else 1)
    return None


def next_range(span: int, hint: int | None) -> int:
    """The range to try after `span` blocks were refused: the hint when it is smaller, else half."""
    if hint is not None and 1 <= hint < span:
        return hint
    return max(1, span // 2)


class _Retryable(Exception):
    """One failed attempt that a later attempt may get past; `detail` never contains a URL."""

    def __init__(self, kind: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after


class _RangeRefused(Exception):
    """eth_getLogs refused the range; `hint` is the provider's suggested size if it gave one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = range_hint(message)


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    params: list[Any]


# --- the client ----------------------------------------------------------------------------------------


class HttpChainClient:
    """`ChainClient` over HTTP JSON-RPC: batching, adaptive log ranges, retries and URL failover.

    `on_error(kind)` hears of every failure, for metrics: http_429, http_5xx (and http_4xx, http_3xx),
    timeout, connect, malformed (bad JSON, truncated body, reply missing from a batch), block_unavailable
    (a null header), rpc_error (a JSON-RPC error object) and range (an eth_getLogs range refused).

    One client per thread: the adaptive range and the current URL are plain, unlocked state.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        max_block_range: int = 2000,
        timeout_s: float = 30,
        max_retries: int = 8,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 10,
        transport: httpx.BaseTransport | None = None,
        on_error: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not urls:
            raise ValueError("expected at least one RPC URL")
        if max_block_range < 1:
            raise ValueError(f"max_block_range must be at least 1, got {max_block_range}")
        self._urls = [_checked_url(url) for url in urls]
        self._url_index = 0
        self._max_range = max_block_range
        self._range = max_block_range
        self._successes = 0
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._on_error = on_error or (lambda kind: None)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._secrets = sorted({s for url in self._urls for s in url_secrets(url)}, key=len, reverse=True)
        _install_log_redaction()
        self._http = httpx.Client(transport=transport, timeout=timeout_s)

    @property
    def current_range(self) -> int:
        """The eth_getLogs range, in blocks, the next fetch will ask for."""
        return self._range

    def chain_id(self) -> int:
        """eth_chainId as an integer."""
        return _hex_int(self._request("eth_chainId", []), "eth_chainId")

    def head(self) -> int:
        """The latest block number (eth_blockNumber)."""
        return _hex_int(self._request("eth_blockNumber", []), "eth_blockNumber")

    def finalized(self) -> int | None:
        """The finalized block number, or None when the node does not know the tag."""
        try:
            block = self._request("eth_getBlockByNumber", ["finalized", False])
        except RpcResponseError:
            return None
        return _hex_int(block.get("number"), "eth_getBlockByNumber") if isinstance(block, dict) else None

    def header(self, number: int) -> BlockHeader:
        """The header of block `number`."""
        return self.headers([number])[number]

    def headers(self, numbers: Sequence[int]) -> dict[int, BlockHeader]:
        """The headers of `numbers`, fetched in one batch request."""
        if not numbers:
            return {}
        return self._batch([_block_call(n) for n in numbers], lambda blocks: _headers(numbers, blocks))

    def fetch_logs(self, start: int, end: int, filt: LogFilter, all_headers: bool = False) -> LogBatch:
        """Logs of start..e with e ≤ end limited by the current range, plus headers, in one batch."""
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        while True:
            last = min(end, start + self._range - 1)
            numbers = list(range(start, last + 1)) if all_headers else [last]
            calls = [_Call("eth_getLogs", [filt.to_rpc(start, last)]), *map(_block_call, numbers)]
            try:
                logs, headers = self._batch(calls, functools.partial(_logs_and_headers, numbers))
            except _RangeRefused as refusal:
                self._shrink(start, last, refusal)
                continue
            self._grow()
            return LogBatch(start, last, logs, headers)

    def eth_calls(self, calls: Sequence[tuple[str, str]], block: int) -> list[str]:
        """The return data (hex) of each ``eth_call`` ``(to, data)`` at block `block`, in one batch request.

        A JSON-RPC error for any call raises it (RpcResponseError, or RpcTransportError once retries of
        a transient one run out), so a result list is always complete.
        """
        if not calls:
            return []
        tag = hex(block)
        batch = [_Call("eth_call", [{"to": to, "data": data}, tag]) for to, data in calls]
        return self._batch(batch, _call_results)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> HttpChainClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- range ---------------------------------------------------------------------------------------

    def _shrink(self, start: int, last: int, refusal: _RangeRefused) -> None:
        self._on_error("range")
        span = last - start + 1
        if span == 1:
            raise RangeRefusedError(start, refusal.message)
        self._range = next_range(span, refusal.hint)
        self._successes = 0
        logger.info("eth_getLogs refused %d blocks; trying %d", span, self._range)

    def _grow(self) -> None:
        self._successes += 1
        if self._successes >= GROW_AFTER_SUCCESSES and self._range < self._max_range:
            self._range = min(self._max_range, self._range * 2)
            self._successes = 0

    # --- requests ------------------------------------------------------------------------------------

    def _request(self, method: str, params: list[Any]) -> Any:
        return self._batch([_Call(method, params)], lambda results: results[0])

    def _batch(self, calls: list[_Call], convert: Callable[[list[Any]], T]) -> T:
        """`convert` of the results of `calls` (in order), retrying across URLs.

        Raises ChainError, or _RangeRefused for eth_getLogs. `convert` runs inside the retry loop so
        that a malformed result is retried like a malformed reply.
        """
        payload = _encode(calls)
        attempts = self._max_retries + 1
        failure, url = _Retryable("none", ""), self._urls[self._url_index]
        for attempt in range(attempts):
            url = self._urls[self._url_index]
            try:
                return convert(self._attempt(url, payload, calls))
            except _Retryable as caught:
                failure = caught
            self._failed(url, failure, attempt, attempts)
        raise RpcTransportError(redact_url(url), attempts, failure.kind)

    def _failed(self, url: str, failure: _Retryable, attempt: int, attempts: int) -> None:
        self._on_error(failure.kind)
        logger.warning(
            "JSON-RPC attempt %d/%d at %s failed: %s (%s)",
            attempt + 1,
            attempts,
            redact_url(url),
            failure.kind,
            failure.detail,
        )
        self._url_index = (self._url_index + 1) % len(self._urls)
        if attempt + 1 < attempts:
            self._sleep(self._delay(attempt, failure.retry_after))

    def _scrub(self, text: str) -> str:
        """Provider text with our URLs' secrets removed: some gateways echo the request URL."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter: uniform in [0, min(max, base·2^attempt)], but never less than Retry-After."""
        ceiling = min(self._backoff_max_s, self._backoff_base_s * 2.0**attempt)
        delay = self._rng.random() * ceiling
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
        return delay

    def _attempt(self, url: str, payload: bytes, calls: list[_Call]) -> list[Any]:
        response = self._post(url, payload)
        try:
            _check_status(response, self._scrub)
        except _RangeRefused as refusal:
            if calls[0].method == "eth_getLogs":
                raise
            self._on_error("rpc_error")
            raise RpcResponseError(response.status_code, refusal.message, calls[0].method) from None
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise _Retryable("malformed", f"invalid JSON in a {len(response.content)}-byte reply") from None
        return self._results(body, calls)

    def _post(self, url: str, payload: bytes) -> httpx.Response:
        headers = {"content-type": "application/json"}
        try:
            return self._http.post(url, content=payload, headers=headers)
        except httpx.TimeoutException as exc:
            raise _Retryable("timeout", type(exc).__name__) from None
        except (httpx.RemoteProtocolError, httpx.DecodingError) as exc:
            raise _Retryable("malformed", type(exc).__name__) from None
        except httpx.HTTPError as exc:
            raise _Retryable("connect", type(exc).__name__) from None

    def _results(self, body: Any, calls: list[_Call]) -> list[Any]:
        if isinstance(body, dict) and "error" in body and (len(calls) > 1 or body.get("id") is None):
            self._rpc_error(body["error"], calls[0].method)  # one error for the whole request
        replies = body if isinstance(body, list) else [body]
        # Keyed by text: some gateways echo numeric ids as strings.
        by_id = {str(r.get("id")): r for r in replies if isinstance(r, dict)}
        return [self._result(by_id.get(str(i)), call) for i, call in enumerate(calls)]

    def _result(self, reply: dict[str, Any] | None, call: _Call) -> Any:
        if reply is None:
            raise _Retryable("malformed", f"reply for {call.method} missing from the batch")
        if reply.get("error") is not None:
            self._rpc_error(reply["error"], call.method)
        if "result" not in reply:
            raise _Retryable("malformed", f"reply for {call.method} has neither result nor error")
        result = reply["result"]
        if result is None and _names_a_block(call):
            raise _Retryable("block_unavailable", f"block {call.params[0]} not available yet")
        return result

    def _rpc_error(self, error: Any, method: str) -> None:
        code, message = _error_fields(error)
        message = self._scrub(message)
        if method == "eth_getLogs" and is_range_refusal(message):
            raise _RangeRefused(message)
        if is_beyond_head(message):
            raise _Retryable("block_unavailable", f"JSON-RPC error {code}: {message}")
        if code in _TRANSIENT_CODES or _TRANSIENT.search(message):
            raise _Retryable("rpc_error", f"JSON-RPC error {code}: {message}")
        self._on_error("rpc_error")
        raise RpcResponseError(code, message, method)


def _checked_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise ValueError(f"invalid RPC URL {redact_url(url)}") from None
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"expected an http:// or https:// RPC URL, got {redact_url(url)}")
    return url


def _check_status(response: httpx.Response, scrub: Callable[[str], str]) -> None:
    """Map HTTP failures: range refusals in 400/413 bodies, 429 and 5xx retryable, others too."""
    status = response.status_code
    if status == 200:
        return
    text = scrub(response.text[:2000])
    if status in (400, 413) and is_range_refusal(text):
        raise _RangeRefused(text)
    if status == 413:
        raise _RangeRefused(f"HTTP 413: {text[:200]}")
    if status == 400 and _is_rpc_error_body(response.content):
        return  # the JSON-RPC error object inside says what went wrong
    if status == 429:
        raise _Retryable("http_429", "HTTP 429", _retry_after(response))
    kind = f"http_{status // 100}xx"
    raise _Retryable(kind, f"HTTP {status}", _retry_after(response) if status == 503 else None)


def _is_rpc_error_body(content: bytes) -> bool:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return False
    items = body if isinstance(body, list) else [body]
    return any(isinstance(item, dict) and "error" in item for item in items)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from RPC providers, and backoff covers it


def _error_fields(error: Any) -> tuple[int, str]:
    if not isinstance(error, dict):
        return 0, str(error)
    code = error.get("code")
    message = str(error.get("message", ""))
    if error.get("data") is not None:
        message = f"{message} ({error['data']})"
    return (code if isinstance(code, int) else 0), message


def _encode(calls: list[_Call]) -> bytes:
    requests = [
        {"jsonrpc": "2.0", "id": i, "method": c.method, "params": c.params} for i, c in enumerate(calls)
    ]
    # A lone call goes unbatched: some providers price or limit batches differently.
    return orjson.dumps(requests[0] if len(requests) == 1 else requests)


def _block_call(number: int) -> _Call:
    return _Call("eth_getBlockByNumber", [hex(number), False])


def _names_a_block(call: _Call) -> bool:
    """A by-number block request for a concrete number: null means the node has not got it yet."""
    if call.method != "eth_getBlockByNumber":
        return False
    tag = call.params[0]
    return isinstance(tag, str) and tag.startswith("0x")


def _logs_and_headers(
    numbers: Sequence[int], results: list[Any]
) -> tuple[list[RawLog], dict[int, BlockHeader]]:
    return _logs(results[0]), _headers(numbers, results[1:])


def _headers(numbers: Sequence[int], blocks: list[Any]) -> dict[int, BlockHeader]:
    return {n: _header(block) for n, block in zip(numbers, blocks, strict=True)}


def _header(block: Any) -> BlockHeader:
    try:
        return BlockHeader.from_rpc(block)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _Retryable("malformed", "block object without number, hash, parentHash or timestamp") from None


def _logs(result: Any) -> list[RawLog]:
    if not isinstance(result, list):
        raise _Retryable("malformed", f"eth_getLogs returned {type(result).__name__}, not a list")
    return result


def _call_results(results: list[Any]) -> list[str]:
    if not all(isinstance(r, str) and r.startswith("0x") for r in results):
        raise _Retryable("malformed", "eth_call returned something other than hex data")
    return results


def _hex_int(value: Any, method: str) -> int:
    try:
        return int(value, 16)
    except (TypeError, ValueError):
        raise RpcResponseError(0, f"expected a hex quantity, got {value!r}", method) from None
