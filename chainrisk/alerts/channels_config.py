"""The `[[channels]]` entries of chainrisk.toml: where alerts are delivered, and how.

    [[channels]]
    name = "risk-discord"
    kind = "discord"
    url_env = "DISCORD_WEBHOOK_URL"      # the webhook URL carries its token: only by reference

    [[channels]]
    name = "dao-telegram"
    kind = "telegram"
    token_env = "TELEGRAM_BOT_TOKEN"
    chat_id = "-1001234567890"

    [[channels]]
    name = "ops-hook"
    kind = "webhook"                      # Standard Webhooks 1.0, signed
    url = "https://ops.example.org/hooks/chainrisk"
    secret_env = "OPS_WEBHOOK_SECRET"     # whsec_...

    [[channels]]
    name = "risk-mail"
    kind = "email"
    host = "smtp.example.org"
    username = "alerts@example.org"
    password_env = "SMTP_PASSWORD"
    from_addr = "alerts@example.org"
    to = ["risk@example.org"]

Secrets (webhook URLs, bot tokens, signing secrets, SMTP passwords) are named, never written here: each is
an environment variable (`*_env`) or a file (`*_file`) read when a message is sent. A missing variable
is reported by its name when delivering or in `chainrisk alerts test`, never with a value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chainrisk.errors import ChainriskError

ChannelKind = Literal["discord", "slack", "telegram", "webhook", "email"]
SecretName = Literal["url", "token", "secret", "password"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The fields each kind takes beyond the common ones; anything else set on it is a mistake worth naming.
_KIND_FIELDS: dict[str, frozenset[str]] = {
    "discord": frozenset({"url_env", "url_file"}),
    "slack": frozenset({"url_env", "url_file"}),
    "telegram": frozenset({"token_env", "token_file", "chat_id", "api_url"}),
    "webhook": frozenset({"url", "url_env", "url_file", "secret_env", "secret_file"}),
    "email": frozenset(
        {"host", "port", "security", "username", "password_env", "password_file", "from_addr", "to"}
    ),
}
_COMMON = frozenset(
    {"name", "kind", "timeout_s", "max_attempts", "backoff_s", "backoff_max_s", "resend_unknown", "lease_s"}
)
# Chat channels and email have no idempotency key: a resend after a timeout may show the message twice.
_RESENDS_UNKNOWN = {"discord": False, "slack": False, "telegram": False, "webhook": True, "email": False}


class ChannelSecretError(ChainriskError):
    """A channel's secret cannot be read: the message names the variable or file, never a value."""

    exit_code = 1


class ChannelConfig(BaseModel):
    """One delivery channel: its kind, where it sends (secrets by reference) and its retry policy."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    kind: ChannelKind
    # Secrets by reference: an environment variable's name, or a file holding the value.
    url: str | None = None
    url_env: str | None = None
    url_file: Path | None = None
    token_env: str | None = None
    token_file: Path | None = None
    secret_env: str | None = None
    secret_file: Path | None = None
    password_env: str | None = None
    password_file: Path | None = None
    # telegram
    chat_id: str | int | None = None
    api_url: str = "https://api.telegram.org"
    # email
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    from_addr: str | None = None
    to: list[str] = Field(default_factory=list)
    # delivery policy
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_attempts: int = Field(default=10, ge=1, le=100)
    backoff_s: float = Field(default=5.0, gt=0, le=3600)
    backoff_max_s: float = Field(default=900.0, gt=0, le=86400)
    resend_unknown: bool | None = None
    lease_s: float | None = Field(default=None, gt=0, le=3600)

    @model_validator(mode="after")
    def _fits_kind(self) -> ChannelConfig:
        extra = sorted(self.model_fields_set - _COMMON - _KIND_FIELDS[self.kind])
        if "url" in extra and self.kind in ("discord", "slack"):
            raise ValueError(
                f"channel {self.name!r}: a {self.kind} webhook URL carries its token; put it in an"
                " environment variable and give url_env (or a file and url_file), not url"
            )
        if extra:
            takes = ", ".join(sorted(_KIND_FIELDS[self.kind]))
            raise ValueError(
                f"channel {self.name!r}: {', '.join(extra)} does not apply to a {self.kind} channel"
                f" (it takes {takes})"
            )
        _check_env_names(self)
        if self.lease_s is not None and self.lease_s <= self.timeout_s:
            raise ValueError(
                f"channel {self.name!r}: lease_s {self.lease_s:g} must exceed timeout_s {self.timeout_s:g}"
                " (a send still waiting for its answer must keep its lease)"
            )
        _REQUIRED[self.kind](self)
        return self

    @property
    def resends_unknown(self) -> bool:
        """Whether a send that got no answer is sent again (the webhook's receivers dedup on its id)."""
        if self.resend_unknown is not None:
            return self.resend_unknown
        return _RESENDS_UNKNOWN[self.kind]

    @property
    def lease_seconds(self) -> float:
        """How long a dispatcher holds a delivery it is sending: longer than any send can take (connect,
        write and read each have timeout_s), so only a dispatcher that died loses its lease."""
        return self.lease_s if self.lease_s is not None else 4 * self.timeout_s + 30

    def secret(self, which: SecretName) -> str | None:
        """The secret's value, read now from its variable or file; None when the channel has none."""
        env: str | None = getattr(self, f"{which}_env", None)
        path: Path | None = getattr(self, f"{which}_file", None)
        if env is not None:
            value = os.environ.get(env, "")
            if not value.strip():
                raise ChannelSecretError(
                    f"channel {self.name!r}: environment variable {env} is not set (it holds the {which})"
                )
            return value.strip()
        if path is not None:
            return _read_secret_file(self.name, which, path)
        return None

    def secret_values(self) -> list[str]:
        """Every secret this channel can read now, to scrub from errors; unreadable ones are skipped."""
        values = []
        names: tuple[SecretName, ...] = ("url", "token", "secret", "password")
        for which in names:
            try:
                value = self.secret(which)
            except ChannelSecretError:
                continue
            if value:
                values.append(value)
        return values


def _read_secret_file(channel: str, which: str, path: Path) -> str:
    try:
        value = path.expanduser().read_text().strip()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ChannelSecretError(
            f"channel {channel!r}: cannot read {which}_file {str(path)!r}: {reason}"
        ) from None
    if not value:
        raise ChannelSecretError(f"channel {channel!r}: {which}_file {str(path)!r} is empty")
    return value


def _check_env_names(channel: ChannelConfig) -> None:
    for which in ("url", "token", "secret", "password"):
        name = getattr(channel, f"{which}_env")
        if name is not None and not _ENV_NAME.match(name):
            raise ValueError(
                f"channel {channel.name!r}: {which}_env {name!r} is not an environment variable name"
                " (letters, digits and _; the variable holds the value, the config only names it)"
            )


def _one_of(channel: ChannelConfig, what: str, *fields: str) -> None:
    given = [f for f in fields if getattr(channel, f) is not None]
    if len(given) != 1:
        listed = " or ".join(fields)
        problem = "needs" if not given else "takes only one of"
        raise ValueError(f"channel {channel.name!r} ({channel.kind}) {problem} {listed} for its {what}")


def _require_chat(channel: ChannelConfig) -> None:
    _one_of(channel, "webhook URL", "url_env", "url_file")


def _require_telegram(channel: ChannelConfig) -> None:
    _one_of(channel, "bot token", "token_env", "token_file")
    if channel.chat_id is None or str(channel.chat_id).strip() == "":
        raise ValueError(f"channel {channel.name!r} (telegram) needs chat_id (a chat id or @channelname)")
    if not channel.api_url.startswith(("http://", "https://")):
        raise ValueError(
            f"channel {channel.name!r}: api_url {channel.api_url!r}: expected http:// or https://"
        )


def _require_webhook(channel: ChannelConfig) -> None:
    _one_of(channel, "URL", "url", "url_env", "url_file")
    if channel.url is not None and not channel.url.startswith(("http://", "https://")):
        raise ValueError(f"channel {channel.name!r}: url {channel.url!r}: expected http:// or https://")
    _one_of(channel, "signing secret (whsec_...)", "secret_env", "secret_file")


def _require_email(channel: ChannelConfig) -> None:
    missing = [f for f in ("host", "from_addr") if getattr(channel, f) in (None, "")]
    if not channel.to:
        missing.append("to")
    if missing:
        raise ValueError(f"channel {channel.name!r} (email) needs {', '.join(missing)}")
    if channel.password_env is not None and channel.password_file is not None:
        raise ValueError(f"channel {channel.name!r} (email) takes only one of password_env or password_file")
    has_password = channel.password_env is not None or channel.password_file is not None
    if has_password != (channel.username is not None):
        raise ValueError(
            f"channel {channel.name!r} (email): username and password_env (or password_file) go together"
        )


_REQUIRED = {
    "discord": _require_chat,
    "slack": _require_chat,
    "telegram": _require_telegram,
    "webhook": _require_webhook,
    "email": _require_email,
}
