"""What to index, as data: chains (RPC URLs, finality, ranges) and contracts (address, start, events)."""

from __future__ import annotations

import re
from typing import Annotated

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


class IndexConfig(BaseModel):
    """The `[[chains]]` and `[[contracts]]` tables of chainrisk.toml."""

    model_config = ConfigDict(extra="forbid")

    chains: list[ChainConfig] = Field(default_factory=list)
    contracts: list[ContractConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _contracts_name_known_chains(self) -> IndexConfig:
        known = {c.name for c in self.chains}
        for contract in self.contracts:
            if self.chains and contract.chain not in known:
                raise ValueError(
                    f"contract {contract.name!r} names chain {contract.chain!r};"
                    f" known chains: {sorted(known)}"
                )
        return self

    def chain(self, name: str) -> ChainConfig:
        for chain in self.chains:
            if chain.name == name:
                return chain
        raise KeyError(f"no chain named {name!r} in the config; known: {[c.name for c in self.chains]}")
