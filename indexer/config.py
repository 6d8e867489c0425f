"""What to index, as data: chains (RPC URLs, finality, ranges) and contracts (address, start, events)."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from indexer.errors import InputError

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
# Chain ids must survive a round trip through JSON numbers (wallets, explorers): 1 … 2^53 - 1.
MAX_CHAIN_ID = 2**53 - 1
ChainId = Annotated[int, Field(gt=0, le=MAX_CHAIN_ID)]


class ConfigError(InputError):
    """A chain, contract, token or label entry is wrong; the message names the field and the value."""


def normalise_address(value: str) -> str:
    """Lowercase `0x…` form of a 20-byte hex address; raises ConfigError naming the value and the form.

    Mixed case is an EIP-55 checksum and must be right: a wrong one means a mistyped address. All lowercase
    and all uppercase carry no checksum and are taken as they are.
    """
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise ConfigError(f"expected a 20-byte hex address like 0xabc…(40 hex digits), got {value!r}")
    digits = value[2:]
    if digits != digits.lower() and digits != digits.upper() and not _checksum_ok(value):
        raise ConfigError(
            f"{value} fails its EIP-55 checksum (mixed case): check the address for a typo, or give it"
            " all lowercase to skip the check"
        )
    return value.lower()


@lru_cache(maxsize=4096)
def _checksum_ok(value: str) -> bool:
    from eth_utils.address import is_checksum_address  # ~0.1 s to import: only mixed-case input pays it

    return bool(is_checksum_address(value))


def check_rpc_url(url: str) -> str:
    """An http(s) URL with a host and a valid port; the error shows the URL without its secrets."""
    from indexer.chain import redact_url

    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        raise ConfigError(
            f"RPC URL {scheme}://…: not a valid URL (a port must be a number in 1..65535)"
        ) from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"RPC URL {redact_url(url)!r}: expected an http:// or https:// URL, like https://node.example:8545"
        )
    if not parts.hostname:
        raise ConfigError(
            f"RPC URL {redact_url(url)!r} has no host; expected a URL like {parts.scheme}://node.example:8545"
        )
    if port == 0:
        raise ConfigError(f"RPC URL {redact_url(url)!r}: port 0; expected a port in 1..65535")
    return url


class ChainConfig(BaseModel):
    """One chain and how to reach it."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=100)] = "mainnet"
    chain_id: ChainId = 1
    rpc_urls: Annotated[list[str], Field(min_length=1)]
    # Blocks above min(the node's finalized block, head - finality_depth) are tracked for reorgs.
    finality_depth: Annotated[int, Field(ge=0, le=10_000)] = 64
    max_block_range: Annotated[int, Field(ge=1, le=1_000_000)] = 2_000
    poll_interval_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 2.0
    # One JSON-RPC request may take this long before it counts as failed and is retried elsewhere.
    rpc_timeout_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 30.0
    # Lending history: one snapshot per this many seconds of block time (0: at every block that moves a
    # pool, exact at every block but about 20 times the rows of hourly on the devnet; docs/SQL.md).
    history_period_s: Annotated[int, Field(ge=0, le=31_536_000)] = 3600

    @field_validator("rpc_urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        return [check_rpc_url(url) for url in urls]


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


class MorphoOracleConfig(BaseModel):
    """A Morpho Blue oracle of the MorphoChainlinkOracleV2 shape: ``price = scale_factor · base / quote``.

    Oracles emit no events, so their parameters are configured to rebuild ``price()`` from the feeds'
    indexed ``AnswerUpdated``; ``base_feed`` or ``quote_feed`` left out counts as 1. ``scale_factor`` is a
    decimal string (it exceeds TOML's 64-bit integers), as the oracle's ``SCALE_FACTOR``.
    """

    model_config = ConfigDict(extra="forbid")

    chain: str = "mainnet"
    address: str
    base_feed: str | None = None
    quote_feed: str | None = None
    scale_factor: str

    @field_validator("address", "base_feed", "quote_feed")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else normalise_address(value)

    @field_validator("scale_factor", mode="before")
    @classmethod
    def _scale_factor(cls, value: object) -> str:
        text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
        if not text.isdigit() or not 0 < int(text) < 2**256:
            raise ValueError(
                "expected a positive integer below 2^256 as a decimal string, like"
                f' "1000000000000000000000000", got {value!r}'
            )
        return str(int(text))


def check_morpho_oracles(chains: Sequence[ChainConfig], oracles: Sequence[MorphoOracleConfig]) -> None:
    """Each ``[[morpho_oracles]]`` entry names a configured chain, and an oracle is listed once per chain."""
    known = [c.name for c in chains]
    seen: dict[tuple[str, str], int] = {}
    for i, oracle in enumerate(oracles):
        if oracle.chain not in known:
            raise ConfigError(
                f"morpho_oracles.{i}.chain = {oracle.chain!r}: no [[chains]] entry has this name; add one or"
                " fix the name"
            )
        first = seen.setdefault((oracle.chain, oracle.address), i)
        if first != i:
            raise ConfigError(
                f"morpho_oracles.{i}.address = {oracle.address!r}: already listed as morpho_oracles.{first};"
                " keep one entry"
            )


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
    morpho_oracles: list[MorphoOracleConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> IndexConfig:
        check_tables(self.chains, self.contracts, self.tokens, self.labels)
        check_morpho_oracles(self.chains, self.morpho_oracles)
        return self

    def chain(self, name: str) -> ChainConfig:
        for chain in self.chains:
            if chain.name == name:
                return chain
        raise KeyError(f"no chain named {name!r} in the config; known: {[c.name for c in self.chains]}")


def check_tables(
    chains: Sequence[ChainConfig],
    contracts: Iterable[ContractConfig],
    tokens: Sequence[TokenConfig],
    labels: Iterable[LabelConfig],
) -> None:
    """Chains are unique by name and by id, every entry names a configured chain, a token is listed once.

    An entry for an unknown chain would otherwise be skipped without a word (nothing indexed, exit 0).
    """
    _unique("name", [c.name for c in chains])
    _unique("chain_id", [c.chain_id for c in chains])
    known = [c.name for c in chains]
    tables: dict[str, Iterable[ContractConfig | TokenConfig | LabelConfig]] = {
        "contracts": contracts,
        "tokens": tokens,
        "labels": labels,
    }
    for table, entries in tables.items():
        for i, entry in enumerate(entries):
            if entry.chain not in known:
                configured = (
                    f"configured: {', '.join(map(repr, known))}" if known else "no [[chains]] configured"
                )
                raise ConfigError(
                    f"{table}.{i}.chain = {entry.chain!r}: no [[chains]] entry has this name ({configured});"
                    " add one or fix the name"
                )
    seen: dict[tuple[str, str], int] = {}
    for i, token in enumerate(tokens):
        first = seen.setdefault((token.chain, token.address), i)
        if first != i:
            raise ConfigError(
                f"tokens.{i}.address = {token.address!r}: already listed as tokens.{first} for chain"
                f" {token.chain!r}; keep one entry"
            )


def _unique(field: str, values: Sequence[object]) -> None:
    first: dict[object, int] = {}
    for i, value in enumerate(values):
        j = first.setdefault(value, i)
        if j != i:
            raise ConfigError(
                f"chains.{i}.{field} = {value!r}: chains.{j} has the same {field}; each [[chains]] entry"
                f" needs its own {field}"
            )
