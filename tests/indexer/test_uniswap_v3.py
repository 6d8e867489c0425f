"""Uniswap v3 event decoders against eth_abi: encoded values, and the real pool logs of mainnet block 18M."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from hypothesis import given, settings
from hypothesis import strategies as st

from devnet.uniswap import SWAP_TOPIC
from graph.univ3 import tick_at_sqrt_ratio
from indexer.events import EventSpec
from indexer.protocols import uniswap_v3
from indexer.registry import KINDS, DecoderRegistry, build_decoder
from tests.conftest import data_file

SPECS = [*uniswap_v3.FACTORY_EVENTS, *uniswap_v3.POOL_EVENTS]
# topic0 of each event as Etherscan shows it on the mainnet factory and pools.
MAINNET_TOPICS = {
    "PoolCreated": "0x783cca1c0412dd0d695e784568c96da2e9c22ff989357a2e8b1d9b2b4e6b7118",
    "Initialize": "0x98636036cb66a9c19a37435efc1e90142190214e8abeb821bdba3f2990dd4c95",
    "Mint": "0x7a53080ba414158be7ec69b987b5fb7d07dee101fe85488f0853ae16239d0bde",
    "Burn": "0x0c396cd989a39f4459b5fa1aed6a9a8dcdbc45908acfd67e028cd568da98982c",
    "Swap": "0xc42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67",
    "Collect": "0x70935338e69775456a85ddef226c395fb668b63fa0115f5f20610b388e6ca9c0",
}


def test_topics_and_kinds() -> None:
    assert {s.name: s.topic0 for s in SPECS} == MAINNET_TOPICS
    assert uniswap_v3.SWAP.topic0 == SWAP_TOPIC
    assert KINDS["uniswap_v3_pool"] == uniswap_v3.POOL_EVENTS
    assert [c.column for c in uniswap_v3.SWAP.params] == [
        "sender", "recipient", "amount0", "amount1", "sqrt_price_x96", "liquidity", "tick"
    ]  # fmt: skip


def _value(type_: str) -> st.SearchStrategy[Any]:
    if type_ == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if type_.startswith("uint"):
        return st.integers(0, 2 ** int(type_[4:]) - 1)
    bits = int(type_[3:])
    return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _encode(spec: EventSpec, values: list[Any]) -> tuple[list[str], str]:
    topics = [spec.topic0]
    types, data = [], []
    for param, value in zip(spec.params, values, strict=True):
        if param.indexed:  # negative int24 ticks are sign-extended to the full topic word
            topics.append("0x" + abi_encode([param.type], [value]).hex())
        else:
            types.append(param.type)
            data.append(value)
    return topics, "0x" + abi_encode(types, data).hex()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_hand_decoders_equal_eth_abi(spec: EventSpec, data: st.DataObject) -> None:
    values = [data.draw(_value(p.type), label=p.name) for p in spec.params]
    topics, hexdata = _encode(spec, values)
    decoder = build_decoder(spec)
    assert decoder.line is not None  # all fields static: the sliced fast path, not eth_abi
    assert decoder.decode(topics, hexdata) == tuple(values)
    assert decoder.line(topics, hexdata) == "\t".join(map(str, values))


def _mainnet_pool_logs() -> list[dict[str, Any]]:
    responses = json.loads(data_file("chain/mainnet-block-18000000-logs.json").read_text())
    logs = next(r["result"] for r in responses if isinstance(r.get("result"), list))
    window = json.loads(data_file("chain/mainnet-aave-v3-window-25290309-logs.json").read_text())
    return [log for log in [*logs, *window] if log["topics"] and log["topics"][0] == SWAP_TOPIC]


def test_real_mainnet_swaps_decode_like_eth_abi_and_report_a_consistent_tick() -> None:
    swaps = _mainnet_pool_logs()
    assert len(swaps) >= 10
    registry = DecoderRegistry({log["address"]: "uniswap_v3_pool" for log in swaps})
    for log in swaps:
        decoder = registry.lookup(log["address"], log["topics"][0])
        assert decoder is not None and decoder.spec is uniswap_v3.SWAP
        sender, recipient, *rest = decoder.decode(log["topics"], log["data"])
        reference = abi_decode(
            ["int256", "int256", "uint160", "uint128", "int24"], bytes.fromhex(log["data"][2:]), strict=True
        )
        assert tuple(rest) == reference
        assert (sender, recipient) == tuple("0x" + t[-40:] for t in log["topics"][1:])
        amount0, amount1, sqrt_price, _, tick = rest
        assert (amount0 > 0) != (amount1 > 0)  # one side in, the other out
        # A pool's tick is its price's tick, unless the swap ended exactly on a tick crossed downwards.
        assert tick_at_sqrt_ratio(sqrt_price) in (tick, tick + 1)
