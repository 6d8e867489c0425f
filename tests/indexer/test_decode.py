"""Hand decoders against eth_abi, bad logs, and the real Aave logs of mainnet block 18,000,000."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.decode import DecodeError
from indexer.events import EventSpec, event
from indexer.protocols import aave_v3, erc20, governance
from indexer.registry import KINDS, DecoderRegistry, all_specs, build_decoder
from tests.conftest import data_file

STATIC_SPECS = [s for s in all_specs() if s.is_static and all(p.is_static for p in s.indexed)]


def _value(type_: str) -> st.SearchStrategy[Any]:
    if type_ == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if type_ == "bool":
        return st.booleans()
    if type_.startswith("uint"):
        return st.integers(0, 2 ** int(type_[4:]) - 1)
    if type_.startswith("int"):
        bits = int(type_[3:])
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if type_.startswith("bytes") and type_[5:].isdigit():
        n = int(type_[5:])
        return st.binary(min_size=n, max_size=n)
    raise AssertionError(type_)


def _expected(type_: str, value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value


def _encode_log(spec: EventSpec, values: list[Any]) -> tuple[list[str], str]:
    topics = [spec.topic0]
    data_types, data_values = [], []
    for param, value in zip(spec.params, values, strict=True):
        if param.indexed:
            topics.append("0x" + abi_encode([param.type], [value]).hex())
        else:
            data_types.append(param.type)
            data_values.append(value)
    return topics, "0x" + abi_encode(data_types, data_values).hex()


@pytest.mark.parametrize("spec", STATIC_SPECS, ids=lambda s: f"{s.table}")
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_hand_decoder_matches_eth_abi_encoding(spec: EventSpec, data: st.DataObject) -> None:
    values = [data.draw(_value(p.type), label=p.name) for p in spec.params]
    topics, hexdata = _encode_log(spec, values)
    decoder = build_decoder(spec)
    decoded = decoder.decode(topics, hexdata)
    assert decoded == tuple(_expected(p.type, v) for p, v in zip(spec.params, values, strict=True))
    assert decoder.line is not None
    assert decoder.line(topics, hexdata) == "\t".join(map(str, decoded))


@pytest.mark.parametrize("spec", STATIC_SPECS, ids=lambda s: f"{s.table}")
@settings(max_examples=60, deadline=None)
@given(words=st.data())
def test_hand_decoder_agrees_with_eth_abi_on_arbitrary_words(spec: EventSpec, words: st.DataObject) -> None:
    """Random words (bad padding, out-of-range small ints, non-0/1 bools): accept and reject alike."""
    types = [p.type for p in spec.unindexed]
    raw = words.draw(st.lists(_word(), min_size=len(types), max_size=len(types)))
    hexdata = "0x" + b"".join(raw).hex()
    topics = [spec.topic0] + ["0x" + abi_encode([p.type], [_zero(p.type)]).hex() for p in spec.indexed]
    try:
        reference = abi_decode(types, b"".join(raw), strict=True)
    except DecodingError:
        with pytest.raises(DecodeError):
            build_decoder(spec).decode(topics, hexdata)
        return
    decoded = build_decoder(spec).decode(topics, hexdata)
    unindexed = [v for p, v in zip(spec.params, decoded, strict=True) if not p.indexed]
    assert unindexed == [_normalise(t, v) for t, v in zip(types, reference, strict=True)]


def _word() -> st.SearchStrategy[bytes]:
    small = st.integers(0, 300).map(lambda n: n.to_bytes(32, "big"))
    return st.one_of(st.binary(min_size=32, max_size=32), small)


def _zero(type_: str) -> Any:
    if type_.startswith("bytes") and type_[5:].isdigit():  # a bytes32 topic: an operation id
        return b"\0" * int(type_[5:])
    return {"address": "0x" + "00" * 20, "bool": False}.get(type_, 0)


def _normalise(type_: str, value: Any) -> Any:
    if type_ == "address":
        return str(value).lower()
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value


@settings(max_examples=40, deadline=None)
@given(
    voter=_value("address"),
    proposal=st.integers(0, 2**256 - 1),
    support=st.integers(0, 2),
    weight=st.integers(0, 2**256 - 1),
    reason=st.text(max_size=80),
)
def test_dynamic_event_decodes_through_eth_abi(
    voter: str, proposal: int, support: int, weight: int, reason: str
) -> None:
    spec = governance.BRAVO_EVENTS[1]
    topics, hexdata = _encode_log(spec, [voter, proposal, support, weight, reason])
    assert build_decoder(spec).decode(topics, hexdata) == (voter, proposal, support, weight, reason)


def test_erc721_transfer_with_four_topics_is_rejected() -> None:
    topics = [erc20.TRANSFER.topic0, "0x" + "00" * 32, "0x" + "00" * 31 + "01", "0x" + "00" * 31 + "07"]
    with pytest.raises(DecodeError, match="expected 3 topics, got 4"):
        build_decoder(erc20.TRANSFER).decode(topics, "0x")


def test_wrong_data_length_is_rejected() -> None:
    topics = [erc20.TRANSFER.topic0, "0x" + "00" * 32, "0x" + "00" * 32]
    with pytest.raises(DecodeError, match="expected 32 data bytes, got 31"):
        build_decoder(erc20.TRANSFER).decode(topics, "0x" + "00" * 31)


def test_topic0_of_every_spec_is_keccak_of_its_signature() -> None:
    transfer = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
    borrow = "0xb3d084820fb1a9decffb176436bd02558d15fac9b0ddfed8c465bc7359d7dce0"
    assert erc20.TRANSFER.topic0 == transfer
    assert {s.name: s.topic0 for s in aave_v3.POOL_EVENTS}["Borrow"] == borrow
    assert all(len(s.topic0) == 66 for specs in KINDS.values() for s in specs)


def test_bad_declarations_name_the_problem() -> None:
    with pytest.raises(ValueError, match="not an event parameter"):
        event("Transfer(address indexed, uint256 value)", "t")
    with pytest.raises(ValueError, match="unknown ABI kind 'nope'"):
        DecoderRegistry(contracts={"0x" + "11" * 20: "nope"})


def _block_18m_logs() -> list[dict[str, Any]]:
    responses = json.loads(data_file("chain/mainnet-block-18000000-logs.json").read_text())
    logs: list[dict[str, Any]] = next(r["result"] for r in responses if isinstance(r["result"], list))
    return logs


def _decode_at(log_index: int) -> tuple[str, tuple[Any, ...]]:
    log = next(x for x in _block_18m_logs() if int(x["logIndex"], 16) == log_index)
    decoder = DecoderRegistry().lookup(log["address"].lower(), log["topics"][0])
    assert decoder is not None
    return decoder.spec.table, decoder.decode(log["topics"], log["data"])


USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"


def test_real_aave_borrow_decodes_exactly() -> None:
    table, values = _decode_at(0x43)
    user = "0xdf455882303fa4fa16bd96da7f0ae3b13983cc4c"
    assert table == "aave_v3_borrow"
    assert values == (USDC, user, user, 8_000_000_000, 2, 33644872836996289678670063, 0)


def test_real_aave_reserve_data_updated_decodes_exactly() -> None:
    table, values = _decode_at(0x41)
    assert table == "aave_v3_reserve_data_updated"
    assert values == (
        USDC,
        26197192835894203348918996,
        49806410405285184239810009,
        33644872836996289678670063,
        1015494049517220113165116742,
        1021518098419305908812071208,
    )


ARTIFACTS = {
    "aave_v3_pool": "contracts/protocol/pool/Pool.sol/Pool.json",
    "aave_v3_configurator": "contracts/protocol/pool/PoolConfigurator.sol/PoolConfigurator.json",
    "aave_oracle": "contracts/misc/AaveOracle.sol/AaveOracle.json",
    "price_aggregator": "contracts/mocks/oracle/CLAggregators/MockAggregator.sol/MockAggregator.json",
    "aave_v3_token": "contracts/protocol/tokenization/AToken.sol/AToken.json",
}


@pytest.mark.parametrize("kind", sorted(ARTIFACTS))
def test_specs_match_the_published_aave_artifacts(kind: str, node_home) -> None:
    """Names, types and indexed flags equal the events in @aave/core-v3's compiled ABIs."""
    path = node_home / "npm" / "node_modules" / "@aave" / "core-v3" / "artifacts" / ARTIFACTS[kind]
    abi = json.loads(path.read_text())["abi"]
    published = {
        e["name"] + "(" + ",".join(i["type"] for i in e["inputs"]) + ")": [i["indexed"] for i in e["inputs"]]
        for e in abi
        if e["type"] == "event"
    }
    # v3.0 artifacts predate DeficitCreated (v3.3); everything else must be there exactly.
    for spec in KINDS[kind]:
        if spec.name == "DeficitCreated":
            continue
        assert spec.signature in published, spec.signature
        assert [p.indexed for p in spec.params] == published[spec.signature], spec.signature
