"""The `[[alerts]]` entries of chainrisk.toml: what to watch and whom to tell.

[[alerts]]
name = "whale-hf"
kind = "health_factor"
channels = ["risk-discord"]
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from chainrisk.alerts.model import Severity


class AlertRuleConfig(BaseModel):
    """One alert rule."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    kind: str
    channels: list[str] = Field(default_factory=list)
    severity: Severity = "medium"
