"""What every channel shares: the message to send, the result of one send, and how an HTTP answer (or
its absence) becomes one of four outcomes.

- ``sent``: a 2xx answer; the provider's message id where it returns one.
- ``retry``: worth sending again later: 429 (not before its Retry-After), 408, 425, 5xx, or a request that
  never left (connection refused, connect timeout).
- ``dead``: sending again will not help: any other 4xx, a redirect, a missing secret, a bad URL.
- ``unknown``: the request was written and no answer came (read timeout, connection dropped): the
  receiver may or may not have the message. The channel's policy decides whether to send it again.

Errors are one line and never carry a secret: every value the channel can read from its variables or
files is replaced by ``***`` before an error leaves this package.
"""

from __future__ import annotations

import email.utils
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import httpx

from chainrisk.alerts.channels_config import ChannelConfig, ChannelSecretError
from chainrisk.alerts.model import Alert

ResultKind = Literal["sent", "retry", "dead", "unknown"]

SEVERITY_MARK = {"info": "ℹ️", "low": "🔵", "medium": "🟡", "high": "🟠", "critical": "🔴"}
_ERROR_CHARS = 300


@dataclass(frozen=True)
class Message:
    """One alert on its way to one channel. `message_id` is the same on every attempt of a delivery."""

    alert: Alert
    message_id: str
    alert_id: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class Result:
    """The outcome of one send. `hold_s`: how long the whole channel should wait before its next send
    (a 429, or a rate-limit bucket the answer says is empty)."""

    kind: ResultKind
    status: int | None = None
    provider_id: str | None = None
    retry_after_s: float | None = None
    hold_s: float | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Sender(Protocol):
    """A channel's way of sending one message."""

    def send(self, message: Message) -> Result: ...


def scrub(text: str, secrets: list[str]) -> str:
    """One line, at most a few hundred characters, with every secret value replaced by ***."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    line = " ".join(text.split())
    return line if len(line) <= _ERROR_CHARS else line[: _ERROR_CHARS - 1] + "…"


def utf16_len(text: str) -> int:
    """Length as the chat APIs count it (UTF-16 code units): never less than the code point count."""
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, limit: int, note: str = "…") -> str:
    """`text` cut to at most `limit` UTF-16 units, ending with `note` when cut."""
    if utf16_len(text) <= limit:
        return text
    room = limit - utf16_len(note)
    out = []
    used = 0
    for char in text:
        size = utf16_len(char)
        if used + size > room:
            break
        out.append(char)
        used += size
    return "".join(out).rstrip() + note


def chunks(text: str, size: int) -> list[str]:
    """`text` in pieces of at most `size` UTF-16 units, cut at line ends where there is one."""
    pieces: list[str] = []
    rest = text
    while utf16_len(rest) > size:
        head = clip(rest, size, "")
        cut = head.rfind("\n")
        if cut > size // 2:
            head = head[:cut]
        pieces.append(head)
        rest = rest[len(head) :].lstrip("\n")
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def fact_lines(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """The alert's facts as (name, value) text pairs, in a stable order."""
    return [(str(key), _fact_value(value)) for key, value in sorted(facts.items())]


def _fact_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        # Amounts read best with separators and cents; ratios and prices with their significant digits.
        if 1e3 <= abs(value) < 1e15:
            return f"{value:,.2f}".rstrip("0").rstrip(".")
        return f"{value:.6g}"
    return json.dumps(value, default=str, sort_keys=True)


def footer(alert: Alert) -> str:
    return f"{alert.rule} · {alert.subject} · {alert.period}"


def headline(alert: Alert) -> str:
    return f"{SEVERITY_MARK.get(alert.severity, '')} [{alert.severity.upper()}] {alert.title}".strip()


def missing_secret(error: ChannelSecretError) -> Result:
    return Result("dead", error=str(error))


# ------------------------------------------------------------------------------------- HTTP answers


def post(
    client: httpx.Client, url: str | httpx.URL, secrets: list[str], **kwargs: Any
) -> httpx.Response | Result:
    """POST, turning a transport failure into the Result it implies; the response otherwise."""
    try:
        return client.post(url, **kwargs)
    except (httpx.ConnectTimeout, httpx.ConnectError, httpx.PoolTimeout) as exc:
        return Result("retry", error=scrub(f"not sent: {_describe(exc)}", secrets))
    except httpx.UnsupportedProtocol as exc:
        return Result("dead", error=scrub(f"bad URL: {_describe(exc)}", secrets))
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        # The request (or part of it) was written: the receiver may have acted on it.
        return Result("unknown", error=scrub(f"no answer: {_describe(exc)}", secrets))
    except httpx.HTTPError as exc:
        return Result("retry", error=scrub(f"not sent: {_describe(exc)}", secrets))


def _describe(exc: Exception) -> str:
    text = str(exc) or "no detail"
    return f"{type(exc).__name__}: {text}"


def classify(
    response: httpx.Response,
    secrets: list[str],
    *,
    provider_id: str | None = None,
    body_retry_after: float | None = None,
    detail: str | None = None,
) -> Result:
    """The Result an HTTP answer means: see the module docstring."""
    status = response.status_code
    hold = rate_limit_hold(response)
    if 200 <= status < 300:
        return Result("sent", status, provider_id=provider_id, hold_s=hold)
    reason = scrub(f"HTTP {status}" + (f": {detail}" if detail else ""), secrets)
    if status == 429:
        wait = max(
            (w for w in (retry_after(response), body_retry_after, hold) if w is not None), default=None
        )
        return Result("retry", status, retry_after_s=wait, hold_s=wait, error=reason)
    if status in (408, 425) or status >= 500:
        return Result("retry", status, retry_after_s=retry_after(response), error=reason)
    if 300 <= status < 400:
        return Result("dead", status, error=scrub(f"HTTP {status}: redirected; check the URL", secrets))
    return Result("dead", status, error=reason)


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def rate_limit_hold(response: httpx.Response) -> float | None:
    """Discord-style buckets: when the answer says none is left, wait until it resets."""
    remaining = response.headers.get("x-ratelimit-remaining")
    reset_after = response.headers.get("x-ratelimit-reset-after")
    if remaining is None or reset_after is None:
        return None
    try:
        return float(reset_after) if int(float(remaining)) <= 0 else None
    except ValueError:
        return None


def json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def as_seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


_SPACE = re.compile(r"\s+")


def short(text: Any, limit: int = 200) -> str | None:
    """A provider's error text, one line and short."""
    if text is None:
        return None
    line = _SPACE.sub(" ", str(text)).strip()
    return line[:limit] or None


def secrets_of(channel: ChannelConfig) -> list[str]:
    return channel.secret_values()
