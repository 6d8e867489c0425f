"""The `[[alerts]]` entries of chainrisk.toml: what to watch and whom to tell.

    [[alerts]]
    name = "whale-hf"
    kind = "health_factor"            # see docs/ALERTS.md "Rules" for every kind
    channels = ["risk-discord"]       # [[channels]] names
    severity = "high"                 # info | low | medium | high | critical
    cooldown = "1h"                   # a persisting condition fires at most once per cooldown per subject
    chain = "mainnet"                 # scope: a [[chains]] name or a chain id (default: every indexed chain)
    wallets = ["0x…"]                 #        watched wallets, markets, assets, exchanges (per kind)
    below = 1.1                       # the kind's own parameters (thresholds), checked by its model

Keys that are not common to every rule are the kind's parameters: they are gathered into `params` and
validated by the model the kind registered (chainrisk.alerts.rules), so a misspelt threshold is an error
naming the kind's known parameters, not a silently ignored key.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from chainrisk.alerts.model import Severity
from chainrisk.serve.config import interval_seconds

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class AlertRuleConfig(BaseModel):
    """One alert rule: its kind, scope, parameters, channels, cooldown and severity."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    kind: str
    enabled: bool = True
    channels: list[str] = Field(default_factory=list)
    severity: Severity = "medium"
    cooldown: str = "1h"
    # Scope: which chain, markets (pool addresses), wallets, assets (token symbols or addresses) and
    # exchanges (label names) the rule looks at; empty means all (where the kind has such a scope).
    chain: str | None = None
    markets: list[str] = Field(default_factory=list)
    wallets: list[str] = Field(default_factory=list)
    assets: list[str] = Field(default_factory=list)
    exchanges: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)

    _typed: BaseModel | None = PrivateAttr(default=None)
    _chain_id: int | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _gather_params(cls, data: Any) -> Any:
        # The kind's thresholds are written beside the common keys; they belong to `params`.
        if not isinstance(data, dict):
            return data
        common = set(cls.model_fields)
        extra = {k: v for k, v in data.items() if k not in common}
        if not extra:
            return data
        kept = {k: v for k, v in data.items() if k in common}
        kept["params"] = {**dict(data.get("params") or {}), **extra}
        return kept

    @field_validator("cooldown", mode="before")
    @classmethod
    def _cooldown(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("expected a duration such as '15m', '1h' or '1d'")
        if isinstance(value, int | str):
            interval_seconds(value)
            return str(value).strip()
        return value

    @field_validator("chain", mode="before")
    @classmethod
    def _chain(cls, value: object) -> object:
        # `chain = 1` names the chain by its id, as `chain = "mainnet"` does by its [[chains]] name.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("markets", "wallets")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _ADDRESS.match(value):
                raise ValueError(f"{value!r} is not an address; expected 0x and 40 hex digits")
        return [v.lower() for v in values]

    @field_validator("channels")
    @classmethod
    def _channels(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("a channel is named twice")
        return values

    @model_validator(mode="after")
    def _kind_params(self) -> AlertRuleConfig:
        from chainrisk.alerts.rules import kinds

        known = kinds()
        if self.kind not in known:
            raise ValueError(
                f"rule {self.name!r}: unknown kind {self.kind!r}; known kinds: {', '.join(sorted(known))}"
            )
        model = known[self.kind].params
        try:
            self._typed = model.model_validate(self.params)
        except ValidationError as exc:
            raise ValueError(_params_error(self.name, self.kind, model, exc)) from None
        # A kind may need part of the common scope (e.g. the assets a shock applies to).
        check = getattr(model, "check_rule", None)
        if check is not None:
            check(self)
        return self

    @property
    def cooldown_s(self) -> int:
        """The cooldown in seconds."""
        return interval_seconds(self.cooldown)

    @property
    def typed_params(self) -> BaseModel:
        """The parameters as the kind's model validated them."""
        assert self._typed is not None, "validated when the rule was built"
        return self._typed

    @property
    def chain_id(self) -> int | None:
        """The chain id of `chain`, once Settings resolved its name (or `chain` written as an id)."""
        if self._chain_id is not None:
            return self._chain_id
        return int(self.chain) if self.chain is not None and self.chain.isdigit() else None

    def resolve_chain(self, chain_id: int) -> None:
        """Record the id of the [[chains]] entry `chain` names (done by Settings)."""
        self._chain_id = chain_id


def _params_error(rule: str, kind: str, model: type[BaseModel], exc: ValidationError) -> str:
    """One line naming the rule, the parameter, what is wrong and the kind's known parameters."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "params"
    known = ", ".join(sorted(model.model_fields)) or "none"
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(key, [*model.model_fields, *AlertRuleConfig.model_fields], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        what = f"unknown key {key!r} for kind {kind!r}{hint}"
    elif err["type"] == "missing":
        what = f"{key}: missing; kind {kind!r} requires it"
    else:
        what = f"{key} = {err['input']!r}: {err['msg'].removeprefix('Value error, ')}"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"rule {rule!r}: {what}{more} (parameters of {kind!r}: {known})"
