"""Deploy compiled contracts and drive BulkToken through plain JSON-RPC (anvil's unlocked accounts).

``bulk_token(anvil, home).spray(500_000, seed=7)`` leaves 500,000 real ERC-20 Transfer logs on the chain
and returns the blocks they are in; :func:`spray_transfer` says what each of them contains.
"""

from __future__ import annotations

import itertools
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import httpx
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from devnet.anvil import RpcError
from devnet.errors import DevnetError
from devnet.solc import CompiledContract, compile_project

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
RECEIPT_TIMEOUT_S = 600.0
SPRAY_CHUNK = 20_000
# Upper bounds per event, from the opcodes: a fresh recipient costs a cold SSTORE (22.1k) plus a LOG3.
SPRAY_GAS_PER_TRANSFER = 26_000
SPRAY_GAS_PER_NFT_LIKE = 2_600
BASE_GAS = 150_000
_ADDRESS_MASK = (1 << 160) - 1
_WORD = 1 << 256


class SupportsRpc(Protocol):
    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any: ...


class DeployError(DevnetError, RuntimeError):
    """A transaction reverted or never got a receipt."""


class BlockRange(NamedTuple):
    """Inclusive range of block numbers."""

    first: int
    last: int


class HttpRpc:
    """Minimal JSON-RPC client for a URL (what :class:`Anvil` offers, for any node)."""

    def __init__(self, url: str, *, timeout: float = 300.0) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout)
        self._ids = itertools.count(1)
        weakref.finalize(self, self._client.close)

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        body = self._client.post(self.url, json=request).raise_for_status().json()
        if "error" in body:
            error = body["error"]
            raise RpcError(method, int(error.get("code", 0)), str(error.get("message")), error.get("data"))
        return body["result"]


class _Web3Rpc:
    def __init__(self, w3: Any) -> None:
        self._provider = w3.provider

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        body = self._provider.make_request(method, list(params))
        if body.get("error"):
            error = body["error"]
            raise RpcError(method, int(error.get("code", 0)), str(error.get("message")), error.get("data"))
        return body["result"]


def rpc_for(target: SupportsRpc | str | Any) -> SupportsRpc:
    """An RPC caller for an :class:`Anvil` (or anything with ``rpc``), a URL, or a ``web3.Web3``."""
    if isinstance(target, str):
        return HttpRpc(target)
    if hasattr(target, "rpc"):
        return target
    if hasattr(target, "provider"):
        return _Web3Rpc(target)
    raise TypeError(f"expected Anvil, URL or Web3, got {type(target).__name__}")


def deploy_contract(
    target: SupportsRpc | str | Any,
    compiled: CompiledContract,
    args: Sequence[Any] = (),
    sender: str | None = None,
    *,
    gas: int = 15_000_000,
) -> str:
    """Deploy ``compiled`` with constructor ``args`` from an unlocked ``sender``; returns the address."""
    rpc = rpc_for(target)
    data = compiled.bytecode + _encode_args(_constructor_inputs(compiled.abi), args)
    receipt = wait_receipt(rpc, send_transaction(rpc, sender or _first_account(rpc), None, data, gas))
    return str(receipt["contractAddress"]).lower()


def send_transaction(rpc: SupportsRpc, sender: str, to: str | None, data: str, gas: int) -> str:
    """``eth_sendTransaction`` from an unlocked account; returns the transaction hash."""
    tx = {"from": sender, "data": data, "gas": hex(gas), **({"to": to} if to else {})}
    return str(rpc.rpc("eth_sendTransaction", [tx]))


def wait_receipt(rpc: SupportsRpc, tx_hash: str, timeout: float = RECEIPT_TIMEOUT_S) -> dict[str, Any]:
    """Poll for the receipt; raises :class:`DeployError` on revert or timeout."""
    deadline, pause = time.monotonic() + timeout, 0.001
    while (receipt := rpc.rpc("eth_getTransactionReceipt", [tx_hash])) is None:
        if time.monotonic() > deadline:
            raise DeployError(f"no receipt for {tx_hash} after {timeout} s (is the node mining?)")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    if receipt.get("status") != "0x1":
        raise DeployError(f"transaction {tx_hash} reverted in block {int(receipt['blockNumber'], 16)}")
    return dict(receipt)


def encode_call(abi: Sequence[dict[str, Any]], function: str, args: Sequence[Any] = ()) -> str:
    """Calldata for ``function(args)``, by name (the first ABI entry with that name)."""
    entry = next((e for e in abi if e.get("type") == "function" and e.get("name") == function), None)
    if entry is None:
        raise KeyError(f"no function {function!r} in the ABI")
    types = [_abi_type(p) for p in entry["inputs"]]
    selector = keccak(text=f"{function}({','.join(types)})")[:4].hex()
    return "0x" + selector + _encode_args(entry["inputs"], args)


def spray_transfer(seed: int, index: int) -> tuple[str, int]:
    """``(recipient, amount)`` of transfer ``index`` of ``BulkToken.spray(n, seed)``, as the contract does."""
    digest = int.from_bytes(keccak(((seed + index) % _WORD).to_bytes(32, "big")), "big")
    return f"0x{digest & _ADDRESS_MASK:040x}", (digest >> 200) + 1


def nft_like_recipient(token_id: int) -> str:
    """Recipient of token id ``token_id`` in ``BulkToken.sprayErc721Like``."""
    return f"0x{int.from_bytes(keccak(token_id.to_bytes(32, 'big')), 'big') & _ADDRESS_MASK:040x}"


@dataclass
class BulkTokenHandle:
    """A deployed BulkToken and the account that holds its supply."""

    rpc: SupportsRpc
    address: str
    sender: str
    contract: CompiledContract

    def spray(
        self, n: int, seed: int = 0, *, recipients: int | None = None, chunk: int = SPRAY_CHUNK
    ) -> BlockRange:
        """``n`` Transfer logs in as many transactions (one block each) as the block gas limit needs.

        Transfer j is :func:`spray_transfer(seed, j)`, or ``spray_transfer(seed, j % recipients)`` when
        ``recipients`` caps the distinct addresses. Cap them for long runs: anvil recomputes the state
        root over every storage slot at each block, so each new recipient slows every later block.
        """
        if recipients is not None and recipients < 1:
            raise ValueError(f"recipients must be at least 1, got {recipients}")
        cycle = n if recipients is None else recipients
        limit = self._chunk_limit(SPRAY_GAS_PER_TRANSFER, chunk)
        calls = [
            (size, ("spray", [size, (seed + start) % _WORD])) for start, size in _chunks(n, limit, cycle)
        ]
        return self._send_all(calls, SPRAY_GAS_PER_TRANSFER)

    def spray_erc721_like(self, n: int, *, chunk: int = SPRAY_CHUNK) -> BlockRange:
        """``n`` four-topic Transfer logs (ERC-721 shape) from this ERC-20 contract."""
        limit = self._chunk_limit(SPRAY_GAS_PER_NFT_LIKE, chunk)
        calls = [(size, ("sprayErc721Like", [size])) for _, size in _chunks(n, limit)]
        return self._send_all(calls, SPRAY_GAS_PER_NFT_LIKE)

    def transfer(self, to: str, value: int) -> dict[str, Any]:
        """One ordinary ``transfer`` from the sender; returns the receipt."""
        return self._transact("transfer", [to, value], 100_000)

    def mint(self, to: str, value: int) -> dict[str, Any]:
        """Mint ``value`` to ``to`` (open to anyone on this devnet token); returns the receipt."""
        return self._transact("mint", [to, value], 100_000)

    def balance_of(self, account: str) -> int:
        """``balanceOf(account)`` at the latest block."""
        data = encode_call(self.contract.abi, "balanceOf", [account])
        return int(self.rpc.rpc("eth_call", [{"to": self.address, "data": data}, "latest"]), 16)

    def _transact(self, function: str, args: Sequence[Any], gas: int) -> dict[str, Any]:
        data = encode_call(self.contract.abi, function, args)
        return wait_receipt(self.rpc, send_transaction(self.rpc, self.sender, self.address, data, gas))

    def _send_all(self, calls: list[tuple[int, tuple[str, list[int]]]], gas_each: int) -> BlockRange:
        # One at a time: anvil's automine can leave a transaction pending if it arrives mid-block.
        blocks = [
            int(self._transact(fn, args, BASE_GAS + size * gas_each)["blockNumber"], 16)
            for size, (fn, args) in calls
        ]
        if not blocks:
            latest = int(self.rpc.rpc("eth_blockNumber"), 16)
            return BlockRange(latest + 1, latest)
        return BlockRange(min(blocks), max(blocks))

    def _chunk_limit(self, gas_each: int, chunk: int) -> int:
        block_gas = int(self.rpc.rpc("eth_getBlockByNumber", ["latest", False])["gasLimit"], 16)
        fits = (block_gas - BASE_GAS) // gas_each
        if fits < 1:
            raise DeployError(f"block gas limit {block_gas} is too small for even one event")
        return min(chunk, fits)


def bulk_token(
    anvil: SupportsRpc | str | Any,
    home: Path,
    *,
    sender: str | None = None,
    initial_supply: int = 10**9 * 10**18,
) -> BulkTokenHandle:
    """Compile (cached) and deploy a BulkToken; ``sender`` (default: first account) holds the supply."""
    rpc = rpc_for(anvil)
    owner = (sender or _first_account(rpc)).lower()
    compiled = compile_project(home)["BulkToken"]
    address = deploy_contract(rpc, compiled, ["Bulk Token", "BULK", initial_supply], owner)
    return BulkTokenHandle(rpc=rpc, address=address, sender=owner, contract=compiled)


def _chunks(n: int, size: int, cycle: int | None = None) -> Iterator[tuple[int, int]]:
    """``(start modulo cycle, size)`` pieces of ``range(n)``; none crosses a multiple of ``cycle``."""
    cycle = cycle or n
    done = 0
    while done < n:
        start = done % cycle
        piece = min(size, n - done, cycle - start)
        yield start, piece
        done += piece


def _first_account(rpc: SupportsRpc) -> str:
    accounts = rpc.rpc("eth_accounts")
    if not accounts:
        raise DeployError("the node has no unlocked accounts to send from")
    return str(accounts[0]).lower()


def _constructor_inputs(abi: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    entry = next((e for e in abi if e.get("type") == "constructor"), None)
    return list(entry["inputs"]) if entry else []


def _encode_args(inputs: Sequence[dict[str, Any]], args: Sequence[Any]) -> str:
    if len(inputs) != len(args):
        raise ValueError(f"expected {len(inputs)} arguments, got {len(args)}")
    return encode([_abi_type(p) for p in inputs], list(args)).hex() if inputs else ""


def _abi_type(param: dict[str, Any]) -> str:
    """Canonical type string, with tuples spelled out (``(address,uint256)[]``)."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + kind[len("tuple") :]
    return kind
