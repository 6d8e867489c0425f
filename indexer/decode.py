"""Log → typed values. Static words are sliced straight from the RPC hex; the rest goes through eth_abi."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError

from indexer.errors import IndexerError
from indexer.events import EventSpec, Param

Value = Any
WordDecoder = Callable[[str], Value]
LogDecoder = Callable[[Sequence[str], str], tuple[Value, ...]]

_ZERO24 = "0" * 24


class DecodeError(IndexerError, ValueError):
    """A log does not match its event's ABI; `reason` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _address(word: str) -> str:
    if word[:24] != _ZERO24:
        raise DecodeError("address word has non-zero padding")
    return "0x" + word[24:].lower()


def _uint(bits: int) -> WordDecoder:
    limit = 1 << bits

    def decode(word: str) -> int:
        value = int(word, 16)
        if value >= limit:
            raise DecodeError(f"uint{bits} value out of range")
        return value

    return decode


def _int(bits: int) -> WordDecoder:
    half, full = 1 << (bits - 1), 1 << 256

    def decode(word: str) -> int:
        value = int(word, 16)
        if value >= 1 << 255:
            value -= full
        if not -half <= value < half:
            raise DecodeError(f"int{bits} value out of range")
        return value

    return decode


def _bool(word: str) -> bool:
    value = int(word, 16)
    if value > 1:
        raise DecodeError("bool word is neither 0 nor 1")
    return value == 1


def _bytes_n(size: int) -> WordDecoder:
    cut = 2 * size

    def decode(word: str) -> str:
        if word[cut:].strip("0"):
            raise DecodeError(f"bytes{size} has non-zero padding")
        return "0x" + word[:cut].lower()

    return decode


def _topic_hash(word: str) -> str:
    return "0x" + word.lower()


def word_decoder(param: Param) -> WordDecoder:
    """Decoder of one 32-byte word (64 hex chars, no 0x) for a static ABI type."""
    t = param.type
    if t == "address":
        return _address
    if t == "bool":
        return _bool
    if t.startswith("uint"):
        return _uint(int(t[4:] or 256))
    if t.startswith("int"):
        return _int(int(t[3:] or 256))
    if t.startswith("bytes") and t[5:].isdigit():
        return _bytes_n(int(t[5:]))
    # Indexed dynamic values (string, bytes, arrays) appear only as their keccak hash.
    return _topic_hash


def make_decoder(spec: EventSpec) -> LogDecoder:
    """A function (topics, data) → values in declaration order, raising DecodeError on a mismatch."""
    topic_decoders = [word_decoder(p) for p in spec.indexed]
    data_decoder = _abi_data_decoder(spec)
    order = _merge_order(spec)
    n_topics = spec.topic_count

    def decode(topics: Sequence[str], data: str) -> tuple[Value, ...]:
        if len(topics) != n_topics:
            raise DecodeError(f"expected {n_topics} topics, got {len(topics)}")
        indexed = [dec(topics[i + 1][2:]) for i, dec in enumerate(topic_decoders)]
        unindexed = data_decoder(data)
        return tuple(indexed[j] if is_topic else unindexed[j] for is_topic, j in order)

    return decode


def _merge_order(spec: EventSpec) -> list[tuple[bool, int]]:
    order: list[tuple[bool, int]] = []
    n_topic = n_data = 0
    for p in spec.params:
        if p.indexed:
            order.append((True, n_topic))
            n_topic += 1
        else:
            order.append((False, n_data))
            n_data += 1
    return order


def _abi_data_decoder(spec: EventSpec) -> Callable[[str], list[Value]]:
    types = [p.type for p in spec.unindexed]

    def decode(data: str) -> list[Value]:
        try:
            values = abi_decode(types, bytes.fromhex(data[2:]), strict=True)
        except (DecodingError, ValueError, OverflowError) as exc:
            raise DecodeError(f"data does not decode as ({','.join(types)}): {exc}") from None
        return [_plain(v, t) for v, t in zip(values, types, strict=True)]

    return decode


def _plain(value: Value, type_: str) -> Value:
    """eth_abi values → JSON/SQL friendly ones: bytes as 0x-hex, tuples as lists, addresses lowercase."""
    if type_.endswith("]"):
        inner = type_[: type_.rindex("[")]
        return [_plain(v, inner) for v in value]
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if type_ == "address":
        return str(value).lower()
    return value
