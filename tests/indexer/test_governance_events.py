"""TimelockController and Aave Governance v3 PayloadsController events: the specs equal the published
sources, and the decoders agree with eth_abi's encoding (PayloadCreated's array of structs by hand)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.decode import DecodeError
from indexer.events import EventSpec
from indexer.protocols import governance
from indexer.registry import KINDS, DecoderRegistry, build_decoder

ADDRESS = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
WORD = st.binary(min_size=32, max_size=32)
# IPayloadsControllerCore.sol (bgd-labs/aave-governance-v3), the events as declared there, with the
# AccessControl enum as its ABI type uint8.
PAYLOADS_SOURCE = {
    "ExecutorSet": "ExecutorSet(uint8,address,uint40)",
    "PayloadCreated": "PayloadCreated(uint40,address,(address,bool,uint8,uint256,string,bytes)[],uint8)",
    "PayloadQueued": "PayloadQueued(uint40)",
    "PayloadExecuted": "PayloadExecuted(uint40)",
    "PayloadCancelled": "PayloadCancelled(uint40)",
}
# topic0 of PayloadCreated in the logs of Aave's mainnet PayloadsController.
PAYLOAD_CREATED_TOPIC = "0x1e4588da4731f84a598f061ee45829a6450aa00aa28962657b6835641afbbac5"


def _topic(type_: str, value: Any) -> str:
    return "0x" + abi_encode([type_], [value]).hex()


def _log(spec: EventSpec, values: list[Any]) -> tuple[list[str], str]:
    topics = [spec.topic0] + [
        _topic(p.type, v) for p, v in zip(spec.params, values, strict=True) if p.indexed
    ]
    unindexed = [(p.type, v) for p, v in zip(spec.params, values, strict=True) if not p.indexed]
    data = abi_encode([t for t, _ in unindexed], [v for _, v in unindexed])
    return topics, "0x" + data.hex()


def test_timelock_specs_equal_the_openzeppelin_5_abi(node_home: Path) -> None:
    package = node_home / "npm" / "node_modules" / "@openzeppelin" / "contracts"
    assert json.loads((package / "package.json").read_text())["version"].startswith("5.")
    abi = json.loads((package / "build" / "contracts" / "TimelockController.json").read_text())["abi"]
    published = {
        e["name"]: [(i["type"], i["name"], i["indexed"]) for i in e["inputs"]]
        for e in abi
        if e["type"] == "event"
    }
    assert {s.name for s in governance.TIMELOCK_EVENTS} <= set(published)
    for spec in governance.TIMELOCK_EVENTS:
        assert [(p.type, p.name, p.indexed) for p in spec.params] == published[spec.name]
    assert KINDS["timelock"] == governance.TIMELOCK_EVENTS


def test_payloads_controller_specs_equal_the_source() -> None:
    specs = {s.name: s for s in governance.AAVE_PAYLOADS_EVENTS}
    assert {name: s.signature for name, s in specs.items()} == PAYLOADS_SOURCE
    assert specs["PayloadCreated"].topic0 == PAYLOAD_CREATED_TOPIC
    # payloadId, creator and the access level are indexed; the actions are the data.
    assert [p.indexed for p in specs["PayloadCreated"].params] == [True, True, False, True]
    assert [p.indexed for p in specs["ExecutorSet"].params] == [True, True, False]
    assert KINDS["aave_payloads_controller"] == governance.AAVE_PAYLOADS_EVENTS


ACTION = st.tuples(
    ADDRESS,
    st.booleans(),
    st.integers(0, 2),
    st.integers(0, 2**256 - 1),
    st.sampled_from(["", "execute()", "configureReserveAsCollateral(address,uint256,uint256,uint256)"]),
    st.binary(max_size=300),
)


@settings(max_examples=60, deadline=None)
@given(
    payload_id=st.integers(0, 2**40 - 1),
    creator=ADDRESS,
    actions=st.lists(ACTION, max_size=5),
    level=st.integers(0, 255),
)
def test_payload_created_decodes_as_eth_abi_encodes_it(
    payload_id: int, creator: str, actions: list[tuple[Any, ...]], level: int
) -> None:
    spec = governance.PAYLOAD_CREATED
    topics, data = _log(spec, [payload_id, creator, actions, level])
    decoded = build_decoder(spec).decode(topics, data)
    expected = [
        {
            "target": target,
            "with_delegate_call": delegate,
            "access_level": access,
            "value": str(value),
            "signature": signature,
            "call_data": "0x" + call_data.hex(),
        }
        for target, delegate, access, value, signature, call_data in actions
    ]
    assert decoded == (payload_id, creator, expected, level)
    json.dumps(decoded)  # the actions column is JSONB: every value must be JSON


@settings(max_examples=60, deadline=None)
@given(
    op_id=WORD,
    index=st.integers(0, 2**256 - 1),
    target=ADDRESS,
    value=st.integers(0, 2**256 - 1),
    data=st.binary(max_size=200),
    predecessor=WORD,
    delay=st.integers(0, 2**256 - 1),
)
def test_timelock_calls_decode_as_eth_abi_encodes_them(
    op_id: bytes, index: int, target: str, value: int, data: bytes, predecessor: bytes, delay: int
) -> None:
    scheduled, executed, cancelled, _ = governance.TIMELOCK_EVENTS
    topics, hexdata = _log(scheduled, [op_id, index, target, value, data, predecessor, delay])
    assert build_decoder(scheduled).decode(topics, hexdata) == (
        "0x" + op_id.hex(),
        index,
        target,
        value,
        "0x" + data.hex(),
        "0x" + predecessor.hex(),
        delay,
    )
    topics, hexdata = _log(executed, [op_id, index, target, value, data])
    assert build_decoder(executed).decode(topics, hexdata) == (
        "0x" + op_id.hex(),
        index,
        target,
        value,
        "0x" + data.hex(),
    )
    topics, hexdata = _log(cancelled, [op_id])
    assert build_decoder(cancelled).decode(topics, hexdata) == ("0x" + op_id.hex(),)


def test_bad_payload_logs_are_rejected() -> None:
    spec = governance.PAYLOAD_CREATED
    action = ("0x" + "11" * 20, True, 1, 0, "execute()", b"")
    topics, data = _log(spec, [7, "0x" + "22" * 20, [action], 1])
    decode = build_decoder(spec).decode
    with pytest.raises(DecodeError, match="expected 4 topics"):
        decode(topics[:3], data)
    with pytest.raises(DecodeError, match="does not decode"):
        decode(topics, data[:-64])
    with pytest.raises(DecodeError, match="not a uint40"):
        decode([topics[0], _topic("uint256", 2**40), *topics[2:]], data)
    with pytest.raises(DecodeError, match="non-zero padding"):
        decode([topics[0], topics[1], "0x" + "ff" * 32, topics[3]], data)


def test_configured_contracts_find_their_decoders() -> None:
    timelock, controller = "0x" + "aa" * 20, "0x" + "bb" * 20
    registry = DecoderRegistry({timelock: "timelock", controller: "aave_payloads_controller"})
    found = registry.lookup(controller, PAYLOAD_CREATED_TOPIC)
    assert found is not None and found.spec.table == "aave_payload_created"
    scheduled = governance.TIMELOCK_EVENTS[0]
    assert registry.lookup(timelock, scheduled.topic0) is not None
    # Not among the topics trusted on any contract: an unconfigured address decodes neither.
    assert registry.lookup("0x" + "cc" * 20, scheduled.topic0) is None
    assert registry.lookup("0x" + "cc" * 20, PAYLOAD_CREATED_TOPIC) is None
