"""A fetched batch → rows for the raw, typed and quarantine tables. Pure: no I/O.

Rows of the raw `logs` table and of events with only static parameters are produced directly as lines of
PostgreSQL's COPY text format: their values are integers, booleans and 0x-hex strings, which need no
escaping, and building one line per log is several times cheaper than handing tuples to the driver.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from indexer.decode import DecodeError
from indexer.registry import DecoderRegistry
from indexer.types import RawLog

Row = tuple[Any, ...]
NULL = "\\N"


@dataclass(slots=True)
class Rows:
    """COPY lines for `logs` and static event tables; tuples for events with strings, bytes or arrays."""

    logs: list[str] = field(default_factory=list)
    lines: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    typed: dict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    quarantine: list[Row] = field(default_factory=list)


def project(chain_id: int, raw_logs: list[RawLog], registry: DecoderRegistry) -> Rows:
    """Turn RPC logs into rows; a log that fails its ABI goes to quarantine with the reason."""
    rows = Rows()
    chain = str(chain_id)
    for log in raw_logs:
        _project_one(chain_id, chain, log, registry, rows)
    return rows


def _project_one(chain_id: int, chain: str, log: RawLog, registry: DecoderRegistry, rows: Rows) -> None:
    topics: list[str] = [t.lower() for t in log["topics"]]
    address = log["address"].lower()
    data = log["data"].lower()
    number = int(log["blockNumber"], 16)
    index = int(log["logIndex"], 16)
    position = (
        f"{chain}\t{number}\t{index}\t{log['blockHash'].lower()}\t{log['transactionHash'].lower()}\t{address}"
    )
    padded = [*topics, NULL, NULL, NULL, NULL]
    timestamp = log.get("blockTimestamp")
    rows.logs.append(
        f"{position}\t{int(log['transactionIndex'], 16)}\t{padded[0]}\t{padded[1]}\t{padded[2]}\t{padded[3]}"
        f"\t{data}\t{int(timestamp, 16) if timestamp else NULL}\n"
    )
    if not topics:
        return
    decoder = registry.lookup(address, topics[0])
    if decoder is None:
        return
    try:
        if decoder.line is not None:
            rows.lines[decoder.spec.table].append(f"{position}\t{decoder.line(topics, data)}\n")
            return
        values = decoder.decode(topics, data)
    except DecodeError as exc:
        fields = position.split("\t")
        rows.quarantine.append(
            (chain_id, number, index, *fields[3:], topics, data, decoder.spec.signature, exc.reason)
        )
        return
    fields = position.split("\t")
    rows.typed[decoder.spec.table].append((chain_id, number, index, *fields[3:], *values))
