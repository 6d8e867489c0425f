"""ABI kinds: which events a contract of each kind emits, and how a log finds its decoder.

A configured contract names its kind, so logs are decoded by address first; logs of unconfigured contracts
fall back to the `auto` set, chosen by topic0 among events whose topic0 is unambiguous enough to trust.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from indexer.decode import LogDecoder, make_decoder
from indexer.events import EventSpec
from indexer.fastdecode import LineDecoder, compile_static
from indexer.protocols import aave_v3, compound_v3, erc20, governance, morpho_blue, uniswap_v3

KINDS: dict[str, tuple[EventSpec, ...]] = {
    "erc20": erc20.EVENTS,
    "aave_v3_pool": aave_v3.POOL_EVENTS,
    "aave_v3_token": aave_v3.TOKEN_EVENTS,
    "aave_v3_configurator": aave_v3.CONFIGURATOR_EVENTS,
    "aave_oracle": aave_v3.ORACLE_EVENTS,
    "price_aggregator": aave_v3.AGGREGATOR_EVENTS,
    "governor": governance.BRAVO_EVENTS,
    "governor_alpha": governance.ALPHA_EVENTS,
    "aave_governance_v2": governance.AAVE_V2_EVENTS,
    "aave_governance_v3": governance.AAVE_V3_EVENTS,
    "aave_voting_machine": governance.AAVE_V3_VOTING_EVENTS,
    "timelock": governance.TIMELOCK_EVENTS,
    "aave_payloads_controller": governance.AAVE_PAYLOADS_EVENTS,
    "compound_v3": compound_v3.EVENTS,
    "uniswap_v3_factory": uniswap_v3.FACTORY_EVENTS,
    "uniswap_v3_pool": uniswap_v3.POOL_EVENTS,
    # Not in AUTO_KINDS: one contract per chain, configured by address; SetOwner, FlashLoan and
    # SetAuthorization have topics that other contracts share.
    "morpho_blue": morpho_blue.EVENTS,
}

AUTO_KINDS = (
    "erc20",
    "aave_v3_pool",
    "aave_v3_token",
    "aave_v3_configurator",
    "aave_oracle",
    "price_aggregator",
    "governor",
    "governor_alpha",
    "compound_v3",
)


@dataclass(frozen=True)
class Decoder:
    """An event's decoders: values as a tuple, and for static events also as a COPY text fragment."""

    spec: EventSpec
    decode: LogDecoder
    line: LineDecoder | None = None


def build_decoder(spec: EventSpec) -> Decoder:
    """Generated slicing decoders for static events; eth_abi for events with dynamic fields."""
    if spec.table in governance.HAND_DECODERS:  # arrays of structs: decoded into JSON objects
        return Decoder(spec, governance.HAND_DECODERS[spec.table])
    if spec.is_static and all(p.is_static for p in spec.indexed):
        decode, line = compile_static(spec)
        return Decoder(spec, decode, line)
    return Decoder(spec, make_decoder(spec))


def all_specs() -> list[EventSpec]:
    """Every event spec once per table (tables shared by kinds hold identical columns)."""
    by_table: dict[str, EventSpec] = {}
    for specs in KINDS.values():
        for spec in specs:
            by_table.setdefault(spec.table, spec)
    return list(by_table.values())


def _decoders(specs: Iterable[EventSpec]) -> dict[str, Decoder]:
    return {s.topic0: build_decoder(s) for s in specs}


class DecoderRegistry:
    """Looks up the decoder for a log: by (address, topic0) for configured contracts, else by topic0."""

    def __init__(self, contracts: dict[str, str] | None = None, events: dict[str, list[str]] | None = None):
        self._auto = _decoders(s for kind in AUTO_KINDS for s in KINDS[kind])
        self._by_address: dict[str, dict[str, Decoder]] = {}
        for address, kind in (contracts or {}).items():
            self._by_address[address.lower()] = self._kind_decoders(kind, (events or {}).get(address))

    def _kind_decoders(self, kind: str, names: list[str] | None) -> dict[str, Decoder]:
        if kind == "auto":
            return self._auto
        if kind not in KINDS:
            raise ValueError(f"unknown ABI kind {kind!r}; expected one of: auto, {', '.join(sorted(KINDS))}")
        specs = KINDS[kind]
        if names:
            unknown = set(names) - {s.name for s in specs}
            if unknown:
                raise ValueError(f"ABI kind {kind!r} has no events {sorted(unknown)}")
            specs = tuple(s for s in specs if s.name in names)
        return _decoders(specs)

    def lookup(self, address: str, topic0: str) -> Decoder | None:
        table = self._by_address.get(address)
        if table is None:
            table = self._auto
        return table.get(topic0)
