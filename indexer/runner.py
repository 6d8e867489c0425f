"""Build sync jobs from config or ad-hoc flags and run them against a database URL."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg

from indexer.chain import ChainClient, HttpChainClient
from indexer.config import ChainConfig, ContractConfig, normalise_address
from indexer.errors import InputError
from indexer.metrics import IndexerMetrics
from indexer.registry import DecoderRegistry
from indexer.store import Cursor, Store
from indexer.sync import BatchListener, Progress, SourceBusyError, Syncer, SyncJob
from indexer.types import LogFilter


@dataclass
class Plan:
    """A job with the decoder registry that matches its contracts."""

    job: SyncJob
    registry: DecoderRegistry


def adhoc_plan(
    chain: ChainConfig,
    addresses: Sequence[str],
    start: int,
    stop: int | None,
    follow: bool,
    name: str | None = None,
    use_finalized_tag: bool = True,
) -> Plan:
    """A job from `--rpc/--address/--from/--to`: with no address, every log in the range."""
    normalised = tuple(sorted({normalise_address(a) for a in addresses}))
    job = SyncJob(
        name=name or _adhoc_name(chain.chain_id, normalised),
        chain=chain,
        filter=LogFilter(addresses=normalised),
        start_block=start,
        stop_block=stop,
        follow=follow,
        use_finalized_tag=use_finalized_tag,
        addresses=normalised,
    )
    return Plan(job, DecoderRegistry())


def _adhoc_name(chain_id: int, addresses: Sequence[str]) -> str:
    digest = hashlib.sha256(",".join(addresses).encode()).hexdigest()[:10] if addresses else "all"
    return f"adhoc:{chain_id}:{digest}"


def config_plan(
    chain: ChainConfig, contracts: Sequence[ContractConfig], stop: int | None, follow: bool
) -> Plan:
    """One job per chain covering its configured contracts, decoded by each contract's ABI kind."""
    mine = [c for c in contracts if c.chain == chain.name]
    if not mine:
        raise InputError(
            f"chain {chain.name!r} has no [[contracts]] entry in the config: add one with"
            f" chain = {chain.name!r}, or remove the chain"
        )
    addresses = tuple(sorted({c.address for c in mine}))
    registry = DecoderRegistry(
        contracts={c.address: c.abi for c in mine},
        events={c.address: c.events for c in mine if c.events},
    )
    job = SyncJob(
        name=f"config:{chain.name}",
        chain=chain,
        filter=LogFilter(addresses=addresses),
        start_block=min(c.start_block for c in mine),
        stop_block=stop,
        follow=follow,
        addresses=addresses,
    )
    return Plan(job, registry)


def make_client(chain: ChainConfig, metrics: IndexerMetrics) -> HttpChainClient:
    return HttpChainClient(
        chain.rpc_urls,
        max_block_range=chain.max_block_range,
        timeout_s=chain.rpc_timeout_s,
        on_error=metrics.rpc_error,
    )


def run_plan(
    plan: Plan,
    conninfo: str,
    metrics: IndexerMetrics | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_start: Callable[[Syncer], None] | None = None,
    client: ChainClient | None = None,
    listener: BatchListener | None = None,
) -> Cursor:
    """Index the plan's job to its end (or forever with follow) and return the final cursor.

    `conninfo` is a libpq URL (postgresql://…); `client` replaces the HTTP client (tests, benchmarks);
    `listener` hears of every committed batch and rollback (e.g. the lending PositionKeeper).
    """
    metrics = metrics or IndexerMetrics()
    chain_client = client or make_client(plan.job.chain, metrics)
    try:
        with psycopg.connect(conninfo) as conn:
            store = Store(conn)
            # One writer per cursor; the lock ends with the connection, however the process ends.
            if not store.try_lock_source(plan.job.name):
                raise SourceBusyError(plan.job.name)
            syncer = Syncer(
                plan.job, chain_client, store, plan.registry, metrics, on_progress, listener=listener
            )
            if on_start is not None:
                on_start(syncer)
            return syncer.run()
    finally:
        if client is None:
            chain_client.close()


def check_chain_id(client: ChainClient, chain: ChainConfig) -> None:
    """Refuse to index when the node serves another chain than the config says."""
    actual = client.chain_id()
    if actual != chain.chain_id:
        raise InputError(
            f"chain {chain.name!r}: the config says chain_id {chain.chain_id} but the node serves chain"
            f" {actual}; fix chain_id or point rpc_urls (or --rpc) at a node of chain {chain.chain_id}"
        )


def rewind(conninfo: str, chain_id: int, block: int) -> Cursor:
    """Delete indexed rows above `block` on a chain and move its cursors back (manual recovery)."""
    with psycopg.connect(conninfo) as conn:
        store = Store(conn)
        return store.rollback(chain_id, block + 1, depth=0, old_hash="manual", new_hash="manual")
