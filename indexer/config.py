"""What to index, as data: chains (RPC URLs, finality, ranges) and contracts (address, start, events)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def normalise_address(value: str) -> str:
    """Lowercase `0x…` form; raises ValueError naming the expected form."""
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise ValueError(f"expected a 20-byte hex address like 0xabc…(40 hex digits), got {value!r}")
    return value.lower()


class ChainConfig(BaseModel):
    """One chain and how to reach it."""

    model_config = ConfigDict(extra="forbid")

    name: str = "mainnet"
    chain_id: Annotated[int, Field(gt=0)] = 1
    rpc_urls: Annotated[list[str], Field(min_length=1)]
    finality_depth: Annotated[int, Field(ge=0, le=10_000)] = 64
    max_block_range: Annotated[int, Field(ge=1, le=1_000_000)] = 2_000
    poll_interval_s: Annotated[float, Field(gt=0)] = 2.0

    @field_validator("rpc_urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError("expected http:// or https:// URLs")
        return urls


class ContractConfig(BaseModel):
    """A contract to index: its address, its ABI kind, where to start and which events."""

    model_config = ConfigDict(extra="forbid")

    name: str
    chain: str = "mainnet"
    address: str
    abi: str = "auto"
    start_block: Annotated[int, Field(ge=0)] = 0
    events: list[str] = Field(default_factory=list)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return normalise_address(value)


class TokenConfig(BaseModel):
    """A tracked ERC-20: how to value its transfers and from which USD value a transfer is a whale flow.

    The price comes from ``price_feed`` (an aggregator emitting ``AnswerUpdated``) when given, else from
    the asset's source in any indexed AaveOracle; both must be indexed for transfers to get a USD value.
    """

    model_config = ConfigDict(extra="forbid")

    chain: str = "mainnet"
    address: str
    symbol: Annotated[str, Field(min_length=1, max_length=32)]
    decimals: Annotated[int, Field(ge=0, le=77)]
    whale_threshold_usd: Annotated[Decimal, Field(ge=0)] = Decimal(1_000_000)
    price_feed: str | None = None
    price_decimals: Annotated[int, Field(ge=0, le=36)] = 8

    @field_validator("address", "price_feed")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else normalise_address(value)


LabelCategory = Literal["exchange", "protocol", "bridge", "treasury", "fund", "market_maker", "other"]
LABEL_CATEGORIES: tuple[str, ...] = get_args(LabelCategory)


class LabelConfig(BaseModel):
    """A named address (an exchange wallet, a protocol contract, a bridge, a treasury)."""

    model_config = ConfigDict(extra="forbid")

    chain: str = "mainnet"
    address: str
    label: Annotated[str, Field(min_length=1, max_length=100)]
    category: LabelCategory

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return normalise_address(value)


class IndexConfig(BaseModel):
    """The `[[chains]]`, `[[contracts]]`, `[[tokens]]` and `[[labels]]` tables of chainrisk.toml."""

    model_config = ConfigDict(extra="forbid")

    chains: list[ChainConfig] = Field(default_factory=list)
    contracts: list[ContractConfig] = Field(default_factory=list)
    tokens: list[TokenConfig] = Field(default_factory=list)
    labels: list[LabelConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _entries_name_known_chains(self) -> IndexConfig:
        known = {c.name for c in self.chains}
        named = [
            *((f"contract {c.name!r}", c.chain) for c in self.contracts),
            *((f"token {t.symbol!r}", t.chain) for t in self.tokens),
            *((f"label {lb.label!r}", lb.chain) for lb in self.labels),
        ]
        for what, chain in named:
            if self.chains and chain not in known:
                raise ValueError(f"{what} names chain {chain!r}; known chains: {sorted(known)}")
        seen: set[tuple[str, str]] = set()
        for token in self.tokens:
            if (token.chain, token.address) in seen:
                raise ValueError(f"token {token.address} is listed twice for chain {token.chain!r}")
            seen.add((token.chain, token.address))
        return self

    def chain(self, name: str) -> ChainConfig:
        for chain in self.chains:
            if chain.name == name:
                return chain
        raise KeyError(f"no chain named {name!r} in the config; known: {[c.name for c in self.chains]}")
