"""Morpho Blue decoders against eth_abi, and the specs against the published EventsLib.sol."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.decode import DecodeError
from indexer.events import EventSpec
from indexer.protocols import morpho_blue
from indexer.registry import AUTO_KINDS, KINDS, DecoderRegistry, build_decoder

MARKET_PARAMS = "(address,address,address,address,uint256)"


def _value(type_: str) -> st.SearchStrategy[Any]:
    if type_ == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if type_ == "bool":
        return st.booleans()
    if type_ == "bytes32":
        return st.binary(min_size=32, max_size=32)
    assert type_ == "uint256", type_
    return st.one_of(st.integers(0, 2**256 - 1), st.integers(0, 10**30))


def _encode(spec: EventSpec, values: list[Any]) -> tuple[list[str], str]:
    """The log Solidity emits, with CreateMarket's struct encoded as the tuple it is."""
    topics = [spec.topic0]
    data_types: list[str] = []
    data_values: list[Any] = []
    for param, value in zip(spec.params, values, strict=True):
        if param.indexed:
            topics.append("0x" + abi_encode([param.type], [value]).hex())
        else:
            data_types.append(param.type)
            data_values.append(value)
    if spec is morpho_blue.CREATE_MARKET:
        return topics, "0x" + abi_encode([MARKET_PARAMS], [tuple(data_values)]).hex()
    return topics, "0x" + abi_encode(data_types, data_values).hex()


@pytest.mark.parametrize("spec", morpho_blue.EVENTS, ids=lambda s: s.table)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_morpho_decoders_match_eth_abi(spec: EventSpec, data: st.DataObject) -> None:
    values = [data.draw(_value(p.type), label=p.name) for p in spec.params]
    topics, hexdata = _encode(spec, values)
    decoder = build_decoder(spec)
    expected = tuple("0x" + v.hex() if isinstance(v, bytes) else v for v in values)
    assert decoder.decode(topics, hexdata) == expected
    assert decoder.line is not None
    assert decoder.line(topics, hexdata) == "\t".join(map(str, expected))


def test_create_market_topic_spells_the_struct_as_a_tuple() -> None:
    spec = morpho_blue.CREATE_MARKET
    assert spec.signature == f"CreateMarket(bytes32,{MARKET_PARAMS})"
    assert spec.topic0 == "0x" + keccak(text=spec.signature).hex()
    # Mainnet Morpho Blue's CreateMarket topic, as block explorers show it.
    assert spec.topic0 == "0xac4b2400f169220b0c0afdde7a0b32e775ba727ea1cb30b35f935cdaab8683ac"
    assert [p.column for p in spec.params] == [
        "id",
        "loan_token",
        "collateral_token",
        "oracle",
        "irm",
        "lltv",
    ]


def test_a_short_create_market_log_is_rejected() -> None:
    spec = morpho_blue.CREATE_MARKET
    topics, hexdata = _encode(spec, [b"\x01" * 32, *["0x" + "11" * 20] * 4, 86 * 10**16])
    with pytest.raises(DecodeError, match="expected 160 data bytes"):
        build_decoder(spec).decode(topics, hexdata[:-64])


def test_morpho_is_decoded_only_where_configured() -> None:
    assert "morpho_blue" in KINDS and "morpho_blue" not in AUTO_KINDS
    morpho = "0x" + "ab" * 20
    registry = DecoderRegistry({morpho: "morpho_blue"})
    for spec in morpho_blue.EVENTS:
        found = registry.lookup(morpho, spec.topic0)
        assert found is not None and found.spec is spec
    assert registry.lookup("0x" + "cd" * 20, morpho_blue.SUPPLY.topic0) is None


def _published_events(source: str) -> dict[str, list[bool]]:
    """``{Name(types): [indexed, ...]}`` of every event declared in a Solidity source, ``Id`` as bytes32."""
    text = re.sub(r"//[^\n]*", "", source)
    found = {}
    for name, body in re.findall(r"event\s+(\w+)\s*\(([^)]*)\)\s*;", text, flags=re.S):
        types, indexed = [], []
        for part in (p.split() for p in body.split(",") if p.strip()):
            types.append({"Id": "bytes32", "MarketParams": MARKET_PARAMS}.get(part[0], part[0]))
            indexed.append(len(part) == 3 and part[1] == "indexed")
        found[f"{name}({','.join(types)})"] = indexed
    return found


def test_specs_match_the_published_events_lib(node_home: Path) -> None:
    """Every event of @morpho-org/morpho-blue 1.0.0's EventsLib.sol, with the same indexed flags."""
    path = node_home / "npm" / "node_modules" / "@morpho-org" / "morpho-blue" / "src" / "libraries"
    published = _published_events((path / "EventsLib.sol").read_text())
    ours = {s.signature: [p.indexed for p in s.params] for s in morpho_blue.EVENTS}
    create = morpho_blue.CREATE_MARKET.signature
    assert ours.pop(create) == [True] + [False] * 5 and published.pop(create) == [True, False]
    assert ours == published
