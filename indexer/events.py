"""Events as data: a human-readable signature becomes a spec, a table and a decoder.

`Transfer(address indexed from, address indexed to, uint256 value)` gives topic0, the typed table's columns
and a decoder. Events whose parameters are all static words are decoded by slicing the RPC hex (the hot
path); events with dynamic parameters go through eth_abi.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from eth_utils.crypto import keccak

_PARAM = re.compile(r"^\s*(?P<type>[\w\[\]]+)(?P<indexed>\s+indexed)?\s+(?P<name>\w+)\s*$")
# SQL reserved words and names of the common log columns get a name an analyst can type unquoted.
_RESERVED = {
    "from": "from_address",
    "to": "to_address",
    "user": "user_address",
    "values": "call_values",
    "address": "arg_address",
    "data": "arg_data",
}
_STATIC = re.compile(r"^(address|bool|u?int(\d{1,3})?|bytes([1-9]|[12]\d|3[0-2]))$")


@dataclass(frozen=True, slots=True)
class Param:
    type: str
    name: str
    indexed: bool

    @property
    def is_static(self) -> bool:
        return bool(_STATIC.match(self.type))

    @property
    def column(self) -> str:
        name = snake_case(self.name)
        return _RESERVED.get(name, name)


@dataclass(frozen=True)
class EventSpec:
    """One event of one ABI kind, stored in `table`."""

    name: str
    params: tuple[Param, ...]
    table: str

    @cached_property
    def signature(self) -> str:
        return f"{self.name}({','.join(p.type for p in self.params)})"

    @cached_property
    def topic0(self) -> str:
        return "0x" + keccak(text=self.signature).hex()

    @property
    def indexed(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.indexed)

    @property
    def unindexed(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if not p.indexed)

    @property
    def topic_count(self) -> int:
        return 1 + len(self.indexed)

    @property
    def is_static(self) -> bool:
        return all(p.is_static for p in self.unindexed)


def event(declaration: str, table: str) -> EventSpec:
    """Parse `Name(type [indexed] name, ...)` into an EventSpec stored in `table`."""
    match = re.fullmatch(r"\s*(\w+)\s*\((.*)\)\s*", declaration, flags=re.S)
    if not match:
        raise ValueError(f"not an event declaration: {declaration!r}")
    name, body = match.groups()
    params = tuple(_param(part) for part in body.split(",")) if body.strip() else ()
    return EventSpec(name=name, params=params, table=table)


def _param(text: str) -> Param:
    match = _PARAM.match(text)
    if not match or match["name"] == "indexed":
        raise ValueError(f"not an event parameter: {text!r} (expected 'type [indexed] name')")
    return Param(type=_canonical(match["type"]), name=match["name"], indexed=bool(match["indexed"]))


def _canonical(type_: str) -> str:
    if type_ in ("uint", "int"):
        return type_ + "256"
    return type_


def snake_case(name: str) -> str:
    name = name.lstrip("_")
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
