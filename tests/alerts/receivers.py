"""Local receivers that behave as the alert channels' APIs do, for delivery tests.

Each is a real threaded HTTP server on 127.0.0.1 (indexer.replay.BackgroundHTTPServer) that checks what the
API checks (its path and token, its size limits), answers as the API answers (Discord's message id with
?wait=true, Slack's `ok`, Telegram's `result.message_id`), and can be told to fail: `plan(...)` queues
answers for the next requests (a 429 with the API's own Retry-After form, a 5xx, or a reply held back
for some seconds so that a client's read timeout fires after the request was written). Everything a
receiver accepts lands in `accepted`; every request, accepted or not, in `requests`.

`WebhookReceiver` verifies Standard Webhooks signatures with the reference `standardwebhooks` package and
remembers webhook-ids: a repeated id is answered 200 and not accepted again (`duplicates` counts them).
`SmtpReceiver` is an aiosmtpd server; `plan_stall` holds the answer to the next message data back (the
message is kept, as a server that stored it and then hung would have).
"""

from __future__ import annotations

import asyncio
import email.utils
import html
import json
import random
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from indexer.replay import BackgroundHTTPServer


@dataclass
class Planned:
    """One scripted answer: an HTTP status (429, 5xx, …) or a delay before the normal answer."""

    status: int | None = None
    retry_after: float | None = None
    delay_s: float = 0.0
    http_date: bool = False  # a 429's Retry-After as an HTTP date (whole seconds) instead of seconds


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    at: float = field(default_factory=time.time)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class Receiver:
    """Base of the HTTP receivers: serve, record, play the plan, else `answer`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.accepted: list[Any] = []
        self._plan: deque[Planned] = deque()
        self.pace: tuple[float, float] | None = None  # answer each request this many seconds late
        self._rng = random.Random(0)
        self._http = BackgroundHTTPServer(_Handler, self, "127.0.0.1", 0)

    def __enter__(self) -> Self:
        self._http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.stop()

    @property
    def base(self) -> str:
        return self._http.url.rstrip("/")

    def reset(self) -> None:
        """Forget what was received and planned (a receiver shared by several tests)."""
        with self.lock:
            self.requests.clear()
            self.accepted.clear()
            self._plan.clear()

    def slow_down(self, low: float, high: float, seed: int) -> None:
        """Answer every request between `low` and `high` seconds after accepting it (seeded)."""
        with self.lock:
            self.pace, self._rng = (low, high), random.Random(seed)

    def plan(self, *answers: Planned) -> None:
        with self.lock:
            self._plan.extend(answers)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        request = Request(path, headers, body)
        with self.lock:
            self.requests.append(request)
            planned = self._plan.popleft() if self._plan else None
        if planned is not None and planned.status is not None:
            status, out_headers, out = self.refuse(planned)
        else:
            status, out_headers, out = self.answer(path, headers, body)
            if planned is not None and planned.delay_s:
                time.sleep(planned.delay_s)  # it was accepted; the answer comes too late
            elif self.pace is not None:
                with self.lock:
                    wait = self._rng.uniform(*self.pace)
                time.sleep(wait)
        request.status = status
        return status, out_headers, out

    def refuse(self, planned: Planned) -> tuple[int, dict[str, str], bytes]:
        if planned.status == 429 and planned.http_date:
            until = email.utils.formatdate(time.time() + (planned.retry_after or 1.0), usegmt=True)
            return 429, {"retry-after": until}, b"rate limited"
        if planned.status == 429:
            return self.rate_limited(planned.retry_after or 1.0)
        return planned.status or 500, {"content-type": "text/plain"}, b"upstream trouble"

    def rate_limited(self, wait: float) -> tuple[int, dict[str, str], bytes]:
        return 429, {"retry-after": _seconds(wait)}, b"rate limited"

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    def accept(self, item: Any) -> None:
        with self.lock:
            self.accepted.append(item)


def _seconds(wait: float) -> str:
    return str(int(wait)) if float(wait).is_integer() else f"{wait:g}"


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json", **(headers or {})}, json.dumps(body).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        if len(body) < length:  # the client died mid-request: as for a real API, nothing arrived
            self.close_connection = True
            return
        receiver: Receiver = self.server.app  # type: ignore[attr-defined]
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, out_headers, out = receiver.handle(self.path, headers, body)
        try:
            self.send_response(status)
            for key, value in out_headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        except OSError:
            pass  # the client gave up waiting

    def log_message(self, format: str, *args: Any) -> None:
        pass


# ------------------------------------------------------------------------------------------ Discord


class DiscordReceiver(Receiver):
    """POST /api/webhooks/{id}/{token}[?wait=true]; Discord's limits; 429 with retry_after in JSON."""

    def __init__(self, token: str = "discord-token-0123456789") -> None:
        super().__init__()
        self.token = token
        self.next_id = 1_100_000_000_000_000_000

    @property
    def url(self) -> str:
        return f"{self.base}/api/webhooks/4242/{self.token}"

    def reset(self) -> None:
        super().reset()
        self.next_id = 1_100_000_000_000_000_000

    def rate_limited(self, wait: float) -> tuple[int, dict[str, str], bytes]:
        body = {"message": "You are being rate limited.", "retry_after": wait, "global": False}
        headers = {
            "retry-after": str(int(wait) or 1) if wait >= 1 else "1",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset-after": f"{wait:g}",
        }
        return _json(429, body, headers)

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(path)
        if parts.path != f"/api/webhooks/4242/{self.token}":
            return _json(401, {"message": "Invalid Webhook Token", "code": 50027})
        data = json.loads(body)
        problem = discord_problem(data)
        if problem:
            return _json(400, {"message": "Invalid Form Body", "code": 50035, "errors": problem})
        with self.lock:
            self.next_id += 1
            message_id = str(self.next_id)
        self.accept(data)
        if parse_qs(parts.query).get("wait") == ["true"]:
            return _json(200, {"id": message_id, "content": data.get("content", "")})
        return 204, {}, b""


def discord_problem(data: dict[str, Any]) -> str | None:
    """What Discord would refuse in a webhook body, or None."""
    embeds = data.get("embeds") or []
    if not data.get("content") and not embeds:
        return "empty message"
    if len(data.get("content") or "") > 2000:
        return "content: must be 2000 or fewer in length"
    if len(embeds) > 10:
        return "embeds: must be 10 or fewer"
    total = 0
    for embed in embeds:
        sizes = {
            "title": (len(embed.get("title", "")), 256),
            "description": (len(embed.get("description", "")), 4096),
            "footer": (len(embed.get("footer", {}).get("text", "")), 2048),
        }
        fields = embed.get("fields", [])
        if len(fields) > 25:
            return "fields: must be 25 or fewer"
        for f in fields:
            if len(f["name"]) > 256 or len(f["value"]) > 1024 or not f["value"]:
                return "field name or value too long or empty"
            total += len(f["name"]) + len(f["value"])
        for name, (size, limit) in sizes.items():
            if size > limit:
                return f"{name}: must be {limit} or fewer in length"
            total += size
    return "embeds: total length over 6000" if total > 6000 else None


# -------------------------------------------------------------------------------------------- Slack


class SlackReceiver(Receiver):
    """POST /services/T…/B…/{token}; ok, or invalid_blocks past Slack's limits; 429 + Retry-After."""

    def __init__(self, token: str = "slack-secret-abcdefghijkl") -> None:
        super().__init__()
        self.token = token

    @property
    def url(self) -> str:
        return f"{self.base}/services/T000/B000/{self.token}"

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if path != f"/services/T000/B000/{self.token}":
            return 404, {"content-type": "text/plain"}, b"no_service"
        data = json.loads(body)
        if slack_problem(data):
            return 400, {"content-type": "text/plain"}, b"invalid_blocks"
        self.accept(data)
        return 200, {"content-type": "text/plain"}, b"ok"


def slack_problem(data: dict[str, Any]) -> str | None:
    blocks = data.get("blocks", [])
    if len(blocks) > 50:
        return "more than 50 blocks"
    for block in blocks:
        if block["type"] == "header" and len(block["text"]["text"]) > 150:
            return "header over 150"
        if block["type"] == "section":
            if "text" in block and not 0 < len(block["text"]["text"]) <= 3000:
                return "section text over 3000"
            fields = block.get("fields", [])
            if len(fields) > 10 or any(len(f["text"]) > 2000 for f in fields):
                return "section fields"
    return None


# ----------------------------------------------------------------------------------------- Telegram


class TelegramReceiver(Receiver):
    """POST /bot{token}/sendMessage; 4,096 visible characters after HTML parsing; parameters.retry_after."""

    def __init__(self, token: str = "123456:telegram-bot-token-XYZ", chat_id: str = "-100777") -> None:
        super().__init__()
        self.token, self.chat_id = token, chat_id
        self.next_id = 500

    def reset(self) -> None:
        super().reset()
        self.next_id = 500

    def rate_limited(self, wait: float) -> tuple[int, dict[str, str], bytes]:
        body = {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {int(wait)}",
            "parameters": {"retry_after": wait},
        }
        return _json(429, body)

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if path != f"/bot{self.token}/sendMessage":
            return _json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        data = json.loads(body)
        if str(data.get("chat_id")) != self.chat_id:
            return _json(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
        visible = visible_text(data.get("text", ""), data.get("parse_mode"))
        if not 1 <= utf16_len(visible) <= 4096:
            return _json(
                400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}
            )
        with self.lock:
            self.next_id += 1
            message_id = self.next_id
        self.accept(data)
        return _json(200, {"ok": True, "result": {"message_id": message_id, "text": visible}})


_TAG = re.compile(r"</?(b|i|code|pre|u|s|a)( [^>]*)?>")


def visible_text(text: str, parse_mode: str | None) -> str:
    """The text a Telegram reader sees: tags gone, entities decoded."""
    if parse_mode != "HTML":
        return text
    if re.search(r"<(?!/?(b|i|code|pre|u|s|a)[ >])", text):
        raise ValueError("unsupported tag")
    return html.unescape(_TAG.sub("", text))


# ------------------------------------------------------------------------------ Standard Webhooks


class WebhookReceiver(Receiver):
    """Verifies each request with `standardwebhooks`; accepts each webhook-id once."""

    def __init__(self, secret: str) -> None:
        from standardwebhooks.webhooks import Webhook

        super().__init__()
        self.verifier = Webhook(secret)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.ids: list[str] = []  # every verified request's id, repeats included
        self.duplicates = 0
        self.rejected = 0

    @property
    def url(self) -> str:
        return f"{self.base}/hooks/chainrisk"

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        from standardwebhooks.webhooks import WebhookVerificationError

        try:
            data = self.verifier.verify(body, headers)
        except WebhookVerificationError:
            with self.lock:
                self.rejected += 1
            return 400, {}, b"bad signature"
        message_id = headers["webhook-id"]
        with self.lock:
            seen = message_id in self.ids
            self.ids.append(message_id)
            if seen:
                self.duplicates += 1
        if not seen:
            self.accept(data)
        return 200, {}, b""


# --------------------------------------------------------------------------------------------- SMTP


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpReceiver:
    """An aiosmtpd server on 127.0.0.1 with AUTH (LOGIN/PLAIN, no TLS needed); `plan_reply` makes the
    next DATA answer a given SMTP reply (e.g. ``451 4.3.0 try later``)."""

    def __init__(self, username: str = "alerts", password: str = "smtp-pass-s3cret") -> None:
        self.username, self.password = username, password
        self.messages: list[Any] = []
        self.replies: deque[str] = deque()
        self.stalls: deque[float] = deque()
        self.data_at: list[float] = []  # when each message's data arrived, answered or not
        self.controller: Any = None

    def __enter__(self) -> SmtpReceiver:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                receiver.data_at.append(time.time())
                if receiver.replies:
                    return receiver.replies.popleft()
                receiver.messages.append(envelope)
                if receiver.stalls:
                    await asyncio.sleep(receiver.stalls.popleft())
                return "250 OK"

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = data.login.decode() == self.username and data.password.decode() == self.password
            return AuthResult(success=ok, handled=False)

        self.port = free_port()
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticate,
            auth_require_tls=False,
        )
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def reset(self) -> None:
        self.messages.clear()
        self.replies.clear()
        self.stalls.clear()
        self.data_at.clear()

    def plan_reply(self, reply: str) -> None:
        self.replies.append(reply)

    def plan_stall(self, seconds: float) -> None:
        """Answer the next message's data only after `seconds` (past a client's read timeout)."""
        self.stalls.append(seconds)
