"""Real decoded event exports (CSV) encoded back into JSON-RPC logs, so the replay can serve them.

The exports carry decoded values; re-encoding them with eth_abi gives the exact logs the chain emitted
(same topics and data), with the recorded block, transaction and log positions where the export has them.
"""

from __future__ import annotations

import ast
import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

from eth_abi.abi import encode

from indexer.events import EventSpec
from indexer.protocols import erc20, governance
from indexer.replay import placeholder_hash


def _topic(type_: str, value: Any) -> str:
    return "0x" + encode([type_], [value]).hex()


def _log(spec: EventSpec, values: list[Any], address: str, block: int, block_hash: str, tx: str, index: int):
    topics = [spec.topic0]
    data_types, data_values = [], []
    for param, value in zip(spec.params, values, strict=True):
        if param.indexed:
            topics.append(_topic(param.type, value))
        else:
            data_types.append(param.type)
            data_values.append(value)
    return {
        "address": address.lower(),
        "topics": topics,
        "data": "0x" + encode(data_types, data_values).hex(),
        "blockNumber": hex(block),
        "blockHash": block_hash,
        "transactionHash": tx,
        "transactionIndex": "0x0",
        "logIndex": hex(index),
        "removed": False,
    }


def reth_transfer_logs(path: Path) -> list[dict[str, Any]]:
    """rETH Transfer rows → logs; the export lacks log indexes, so rows number them per block in order."""
    next_index: dict[int, int] = defaultdict(int)
    logs = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            block = int(row["block_number"])
            index = next_index[block]
            next_index[block] += 1
            values = [row["from"], row["to"], int(row["value"])]
            logs.append(
                _log(
                    erc20.TRANSFER,
                    values,
                    row["contract_address"],
                    block,
                    row["block_hash"],
                    row["tx_hash"],
                    index,
                )
            )
    return logs


ALPHA = {s.name: s for s in governance.ALPHA_EVENTS}


def governor_alpha_logs(path: Path) -> list[dict[str, Any]]:
    """GovernorAlpha events → logs.

    The export has no block hashes (deterministic stand-ins are used) and no `values` column, so
    ProposalCreated encodes 0 wei per call; tallies, ids, voters and calldata are as recorded.
    """
    logs = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            name = row["event_name"]
            block = int(row["block_number"])
            values = _alpha_values(name, row)
            logs.append(
                _log(
                    ALPHA[name],
                    values,
                    row["contract_address"],
                    block,
                    placeholder_hash(block),
                    row["txhash"],
                    int(row["log_index"]),
                )
            )
    return logs


def _int(text: str) -> int:
    """Integers as exported, including pandas float artefacts such as '43.0'."""
    whole, _, fraction = text.partition(".")
    if fraction.strip("0"):
        raise ValueError(f"not an integer: {text!r}")
    return int(whole)


def _alpha_values(name: str, row: dict[str, str]) -> list[Any]:
    if name == "VoteCast":
        return [row["voter"], _int(row["proposalId"]), row["support"] == "True", _int(row["votes"])]
    if name == "ProposalQueued":
        return [_int(row["id"]), _int(row["eta"])]
    if name in ("ProposalExecuted", "ProposalCanceled"):
        return [_int(row["id"])]
    targets = ast.literal_eval(row["targets"])
    return [
        _int(row["id"]),
        row["proposer"],
        targets,
        [0] * len(targets),
        ast.literal_eval(row["signatures"]),
        ast.literal_eval(row["calldatas"]),
        _int(row["startBlock"]),
        _int(row["endBlock"]),
        row["description"],
    ]
