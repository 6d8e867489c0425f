"""A fetched batch → rows for the raw, typed and quarantine tables. Pure: no I/O."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from indexer.decode import DecodeError
from indexer.registry import DecoderRegistry
from indexer.types import RawLog

Row = tuple[Any, ...]


@dataclass(slots=True)
class Rows:
    logs: list[Row] = field(default_factory=list)
    typed: dict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    quarantine: list[Row] = field(default_factory=list)

    @property
    def decoded_count(self) -> int:
        return sum(len(rows) for rows in self.typed.values())


def project(chain_id: int, raw_logs: list[RawLog], registry: DecoderRegistry) -> Rows:
    """Turn RPC logs into rows; a log that fails its ABI goes to quarantine with the reason."""
    rows = Rows()
    for log in raw_logs:
        _project_one(chain_id, log, registry, rows)
    return rows


def _project_one(chain_id: int, log: RawLog, registry: DecoderRegistry, rows: Rows) -> None:
    topics: list[str] = [t.lower() for t in log["topics"]]
    address = log["address"].lower()
    data = log["data"].lower()
    block_hash = log["blockHash"].lower()
    position = (
        chain_id,
        int(log["blockNumber"], 16),
        int(log["logIndex"], 16),
        block_hash,
        log["transactionHash"].lower(),
        address,
    )
    padded = [*topics, None, None, None, None]
    timestamp = log.get("blockTimestamp")
    rows.logs.append(
        (
            *position,
            int(log["transactionIndex"], 16),
            padded[0],
            padded[1],
            padded[2],
            padded[3],
            data,
            int(timestamp, 16) if timestamp else None,
        )
    )
    if not topics:
        return
    decoder = registry.lookup(address, topics[0])
    if decoder is None:
        return
    try:
        values = decoder.decode(topics, data)
    except DecodeError as exc:
        rows.quarantine.append((*position, topics, data, decoder.spec.signature, exc.reason))
        return
    rows.typed[decoder.spec.table].append((*position, *values))
