"""The replay server against the real mainnet recordings in data/."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import typer
from typer.testing import CliRunner

from indexer.replay import Recording, RecordingError, ReplayServer, load_recording, placeholder_hash
from tests.conftest import data_file

BLOCK_FILE = "chain/mainnet-block-18000000-logs.json"
AAVE_FILE = "chain/mainnet-aave-v3-window-25290309-logs.json"
BLOCK_HASH = "0x95b198e154acbfc64109dfd22d8224fe927fd8dfdedfae01587674482ba4baf3"
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
AAVE_BORROW = "0xb3d084820fb1a9decffb176436bd02558d15fac9b0ddfed8c465bc7359d7dce0"
RESERVE_DATA_UPDATED = "0x804c9b842b2748a22bb64b345453a3de7ca54a6ca45ce00d415894979e22897a"
AAVE_POOL = "0x87870bca3f3fd6335c3f4ce8392d69350b4fa4e2"


def _responses() -> list[dict[str, Any]]:
    responses: list[dict[str, Any]] = json.loads(data_file(BLOCK_FILE).read_text())
    return responses


def _block_and_logs() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    first, second = (r["result"] for r in _responses())
    return (first, second) if isinstance(first, dict) else (second, first)


class Rpc:
    """A bare JSON-RPC caller, so the server is checked without the chain client's help."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(timeout=10)

    def post(self, payload: Any) -> Any:
        response = self.http.post(self.url, content=orjson.dumps(payload))
        assert response.status_code == 200
        return orjson.loads(response.content)

    def call(self, method: str, *params: Any) -> Any:
        reply = self.post({"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)})
        assert reply["id"] == 7
        assert "error" not in reply, reply
        return reply["result"]

    def logs(self, **query: Any) -> list[dict[str, Any]]:
        return self.call("eth_getLogs", query)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def block_rpc() -> Iterator[Rpc]:
    with ReplayServer(load_recording([data_file(BLOCK_FILE)])) as server:
        rpc = Rpc(server.url)
        yield rpc
        rpc.http.close()


@pytest.fixture(scope="module")
def aave_rpc() -> Iterator[Rpc]:
    with ReplayServer(load_recording(data_file(AAVE_FILE))) as server:
        rpc = Rpc(server.url)
        yield rpc
        rpc.http.close()


# --- loading -------------------------------------------------------------------------------------------


def test_loads_jsonrpc_responses() -> None:
    recording = load_recording([data_file(BLOCK_FILE)])
    assert (recording.first, recording.last, len(recording.logs)) == (18_000_000, 18_000_000, 291)
    assert recording.chain_id == 1
    assert recording.block(18_000_000) == _block_and_logs()[0]


def test_loads_plain_log_list_and_synthesizes_headers() -> None:
    recording = load_recording(data_file(AAVE_FILE))
    logs = json.loads(data_file(AAVE_FILE).read_text())
    first = min(int(log["blockNumber"], 16) for log in logs)
    assert (recording.first, recording.last, len(recording.logs)) == (first, 25_290_309, 163)
    sample = logs[0]
    block = recording.block(int(sample["blockNumber"], 16))
    assert block is not None
    assert block["hash"] == sample["blockHash"].lower()
    assert block["timestamp"] == hex(int(sample["blockTimestamp"], 16))


def test_synthesized_chain_is_consistent(tmp_path: Path) -> None:
    recording = load_recording(data_file(AAVE_FILE))
    blocks = [recording.block(n) for n in range(recording.first, recording.last + 1)]
    assert all(b is not None for b in blocks)
    for parent, child in itertools.pairwise(blocks):
        assert parent is not None and child is not None
        assert child["parentHash"] == parent["hash"]
        assert int(child["timestamp"], 16) >= int(parent["timestamp"], 16)
    assert recording.block(recording.last + 1) is None
    before = recording.block(recording.first - 1)
    first = blocks[0]
    assert before is not None and first is not None and before["hash"] == first["parentHash"]
    assert recording.logs_between(0, recording.first - 1) == []


def test_gap_before_a_real_block_takes_its_parent_hash(tmp_path: Path) -> None:
    block, _logs = _block_and_logs()
    later = {**block, "number": hex(18_000_003), "hash": "0x" + "ab" * 32, "parentHash": "0x" + "cd" * 32}
    path = tmp_path / "blocks.json"
    path.write_bytes(orjson.dumps([block, later]))
    recording = load_recording([path])
    assert recording.hash_of(18_000_002) == "0x" + "cd" * 32
    assert recording.hash_of(18_000_001) == placeholder_hash(18_000_001)
    middle = recording.block(18_000_002)
    assert middle is not None and middle["parentHash"] == placeholder_hash(18_000_001)
    assert recording.block_by_hash("0x" + "CD" * 32) == middle


def test_loads_block_list_and_jsonl(tmp_path: Path) -> None:
    block, logs = _block_and_logs()
    blocks_file = tmp_path / "blocks.json"
    blocks_file.write_bytes(orjson.dumps([block]))
    lines_file = tmp_path / "logs.jsonl"
    lines_file.write_bytes(b"\n".join(orjson.dumps(log) for log in logs) + b"\n\n")
    recording = load_recording([blocks_file, lines_file])
    assert len(recording.logs) == 291
    assert recording.block(18_000_000) == block


def test_jsonl_of_responses_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "responses.txt"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in _responses() * 2))
    recording = load_recording([path])
    assert len(recording.logs) == 291


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "is empty"),
        (b'{"a": 1}', "neither a block, a log nor a JSON-RPC response"),
        (b"[1, 2]", "item 0 is a JSON int"),
        (b'{"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "x"}}', "JSON-RPC error"),
        (b'{"jsonrpc": "2.0", "id": 1, "result": null}', "null result"),
        (b'{"ok": true}\n{not json', "nor JSON lines \\(line 2 is not valid JSON"),
        (b'[{"ok": true}', "is not valid JSON"),
        (b'[{"logIndex": "0x1", "topics": [], "blockNumber": 12}]', "bad field"),
    ],
)
def test_bad_file_names_file_and_problem(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(RecordingError, match=fragment) as caught:
        load_recording([path])
    assert str(path) in str(caught.value)
    assert caught.value.path == str(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="cannot be read"):
        load_recording([tmp_path / "absent.json"])


def test_conflicting_hashes_are_refused(tmp_path: Path) -> None:
    block, logs = _block_and_logs()
    path = tmp_path / "conflict.json"
    path.write_bytes(orjson.dumps([block, {**logs[0], "blockHash": "0x" + "00" * 32}]))
    with pytest.raises(RecordingError, match="names hash"):
        load_recording([path])


def test_empty_recording_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one block"):
        Recording({}, [])


# --- serving block 18,000,000 --------------------------------------------------------------------------


def test_all_logs_of_the_block(block_rpc: Rpc) -> None:
    logs = block_rpc.logs(fromBlock=hex(18_000_000), toBlock=hex(18_000_000))
    assert len(logs) == 291
    keys = [(int(log["blockNumber"], 16), int(log["logIndex"], 16)) for log in logs]
    assert keys == sorted(keys)


def test_address_filter(block_rpc: Rpc) -> None:
    assert len(block_rpc.logs(fromBlock="earliest", toBlock="latest", address=USDC)) == 13
    assert len(block_rpc.logs(fromBlock="0x112a880", address=["0x" + USDC[2:].upper()])) == 13


def test_topic_filters(block_rpc: Rpc) -> None:
    everything = block_rpc.logs(fromBlock="0x112a880", toBlock="0x112a880")
    transfers = block_rpc.logs(fromBlock="0x112a880", toBlock="0x112a880", topics=[TRANSFER])
    assert transfers and all(log["topics"][0] == TRANSFER for log in transfers)
    either = block_rpc.logs(
        fromBlock="0x112a880", topics=[[TRANSFER, AAVE_BORROW.upper().replace("0X", "0x")]]
    )
    expected = [log for log in everything if log["topics"] and log["topics"][0] in (TRANSFER, AAVE_BORROW)]
    assert either == expected and len(either) > len(transfers)
    usdc_topic = "0x" + "0" * 24 + USDC[2:]
    by_reserve = block_rpc.logs(fromBlock="0x112a880", topics=[None, usdc_topic])
    expected_reserve = [
        log for log in everything if len(log["topics"]) > 1 and log["topics"][1] == usdc_topic
    ]
    assert by_reserve == expected_reserve
    assert {log["topics"][0] for log in by_reserve} >= {AAVE_BORROW, RESERVE_DATA_UPDATED}
    wildcard_four = block_rpc.logs(fromBlock="0x112a880", topics=[None, None, None, None])
    assert wildcard_four == [log for log in everything if len(log["topics"]) >= 4]


def test_block_hash_filter(block_rpc: Rpc) -> None:
    assert len(block_rpc.logs(blockHash=BLOCK_HASH)) == 291
    reply = block_rpc.post(
        {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [{"blockHash": "0x1"}]}
    )
    assert reply["error"]["code"] == -32000


def test_heads_and_headers(block_rpc: Rpc) -> None:
    assert block_rpc.call("eth_blockNumber") == hex(18_000_000)
    assert block_rpc.call("eth_chainId") == "0x1"
    assert block_rpc.call("net_version") == "1"
    for tag in ("latest", "finalized", "safe", "earliest", hex(18_000_000)):
        assert block_rpc.call("eth_getBlockByNumber", tag, False)["hash"] == BLOCK_HASH
    assert block_rpc.call("eth_getBlockByHash", BLOCK_HASH, False)["number"] == hex(18_000_000)
    assert block_rpc.call("eth_getBlockByNumber", hex(18_000_001), False) is None


def test_batches_and_errors(block_rpc: Rpc) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_sendRawTransaction", "params": ["0x00"]},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "eth_getLogs",
            "params": [{"fromBlock": "0x2", "toBlock": "0x1"}],
        },
        {"jsonrpc": "2.0", "id": 4, "method": "eth_getBlockByNumber", "params": []},
        {"jsonrpc": "2.0", "id": 5, "method": "eth_getBlockByNumber", "params": ["nonsense", False]},
    ]
    replies = {r["id"]: r for r in block_rpc.post(batch)}
    assert replies[1]["result"] == hex(18_000_000)
    assert replies[2]["error"]["code"] == -32601
    assert [replies[i]["error"]["code"] for i in (3, 4, 5)] == [-32602] * 3
    assert block_rpc.post([])["error"]["code"] == -32600
    response = block_rpc.http.post(block_rpc.url, content=b"{oops")
    assert orjson.loads(response.content)["error"]["code"] == -32700


# --- serving the Aave window ---------------------------------------------------------------------------


def test_aave_window_ranges(aave_rpc: Rpc) -> None:
    logs = json.loads(data_file(AAVE_FILE).read_text())
    numbers = [int(log["blockNumber"], 16) for log in logs]
    assert len(aave_rpc.logs(fromBlock="earliest", toBlock="latest")) == 163
    low, high = 25_290_280, 25_290_299
    served = aave_rpc.logs(fromBlock=hex(low), toBlock=hex(high))
    assert len(served) == sum(low <= n <= high for n in numbers) > 0
    assert all(low <= int(log["blockNumber"], 16) <= high for log in served)
    assert aave_rpc.logs(fromBlock=hex(25_290_310), toBlock=hex(25_290_400)) == []
    pool = aave_rpc.logs(fromBlock="earliest", address=AAVE_POOL, topics=[RESERVE_DATA_UPDATED])
    expected = [x for x in logs if x["address"] == AAVE_POOL and x["topics"][0] == RESERVE_DATA_UPDATED]
    assert len(pool) == len(expected) > 0


def test_aave_window_headers(aave_rpc: Rpc) -> None:
    assert aave_rpc.call("eth_getBlockByNumber", "finalized", False)["number"] == hex(25_290_309)
    assert aave_rpc.call("eth_blockNumber") == hex(25_290_309)
    log = aave_rpc.logs(fromBlock="latest")[0]
    header = aave_rpc.call("eth_getBlockByHash", log["blockHash"], False)
    assert header["number"] == log["blockNumber"]
    assert int(header["timestamp"], 16) == int(log["blockTimestamp"], 16)


# --- the command ---------------------------------------------------------------------------------------


def _cli() -> typer.Typer:
    from chainrisk.commands.rpc import app

    root = typer.Typer()
    root.add_typer(app, name="rpc")
    return root


def test_replay_command_help() -> None:
    result = CliRunner().invoke(_cli(), ["rpc", "replay", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output and "--chain-id" in result.output


def test_replay_command_serves_and_prints_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from chainrisk.commands import rpc as rpc_commands

    seen: list[str] = []
    monkeypatch.setattr(rpc_commands, "_wait_for_interrupt", lambda: seen.append("waited"))
    result = CliRunner().invoke(_cli(), ["rpc", "replay", str(data_file(BLOCK_FILE)), "--port", "0"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("http://127.0.0.1:")
    assert seen == ["waited"]


def test_replay_command_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}')
    result = CliRunner().invoke(_cli(), ["rpc", "replay", str(bad), "--port", "0"])
    assert result.exit_code == 2
    assert "neither a block" in result.output and str(bad) in result.output
