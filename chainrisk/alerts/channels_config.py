"""The `[[channels]]` entries of chainrisk.toml: where alerts are delivered.

    [[channels]]
    name = "risk-discord"
    kind = "discord"

Secrets (webhook URLs, bot tokens, SMTP passwords) are never written here in clear: see docs/ALERTS.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ChannelKind = Literal["discord", "slack", "telegram", "webhook", "email"]


class ChannelConfig(BaseModel):
    """One delivery channel."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    kind: ChannelKind
