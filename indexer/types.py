"""Plain data passed between the chain client, the decoder and the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A log exactly as JSON-RPC returns it: hex strings, lowercase or not.
RawLog = dict[str, Any]


@dataclass(frozen=True, slots=True)
class BlockHeader:
    number: int
    hash: str
    parent_hash: str
    timestamp: int

    @classmethod
    def from_rpc(cls, block: dict[str, Any]) -> BlockHeader:
        return cls(
            number=int(block["number"], 16),
            hash=block["hash"].lower(),
            parent_hash=block["parentHash"].lower(),
            timestamp=int(block["timestamp"], 16),
        )


@dataclass(frozen=True, slots=True)
class LogFilter:
    """eth_getLogs filter: empty addresses means every log in the range."""

    addresses: tuple[str, ...] = ()
    topics: tuple[tuple[str, ...] | None, ...] = ()

    def to_rpc(self, start: int, end: int) -> dict[str, Any]:
        params: dict[str, Any] = {"fromBlock": hex(start), "toBlock": hex(end)}
        if self.addresses:
            params["address"] = list(self.addresses)
        if self.topics:
            params["topics"] = [list(t) if t is not None else None for t in self.topics]
        return params


@dataclass(slots=True)
class LogBatch:
    """The logs of blocks start..end (inclusive) and the headers fetched with them.

    `headers` always holds the header of `end`; in the unfinalized zone it holds every block of the range,
    so the parent-hash chain can be checked.
    """

    start: int
    end: int
    logs: list[RawLog]
    headers: dict[int, BlockHeader] = field(default_factory=dict)

    @property
    def end_header(self) -> BlockHeader:
        return self.headers[self.end]
