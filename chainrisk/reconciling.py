"""Reconciliation as the app runs it: our Aave v3 account data against the chain's getUserAccountData,
and our Morpho Blue positions against Morpho's own views (every indexed market unless pools are named).

`reconcile` is what `chainrisk reconcile` and the demo call: it checks the node serves the chain asked
for, picks the pools and the block from what is indexed, rebuilds our side from the database and asks the
node, in JSON-RPC batches, with a progress bar when asked. The comparison itself is
`indexer.lending.reconcile`; this module adds the settings, the database and the answers a user reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chainrisk.context import AppContext, console, fail
from chainrisk.inputs import OptionError

if TYPE_CHECKING:
    from chainrisk.settings import Settings
    from indexer.chain import HttpChainClient
    from indexer.lending.positions import Conn
    from indexer.lending.reconcile import Report
    from indexer.protocols.aave_math import Version

# An interactive check fails fast instead of riding out a long outage as the indexer does.
MAX_RETRIES = 4


@dataclass(frozen=True)
class Target:
    """The chain to reconcile: its config name and id when configured, and the URLs to ask."""

    name: str | None
    chain_id: int | None
    urls: list[str]


@dataclass(frozen=True)
class Request:
    """What to compare: a sample of wallets, in some pools (default: every indexed one), at a block
    (default: the indexed head), rounded as an Aave version rounds, within a tolerance."""

    sample: int
    pools: Sequence[str] = field(default_factory=list)
    block: int | None = None
    seed: int = 0
    version: Version = "3.0"
    tolerance_wei: int = 0


def target(settings: Settings, name: str | None, rpc_url: str | None) -> Target:
    """The configured chain named `name` (or the only one), asked at `rpc_url` when given."""
    from indexer.config import check_rpc_url
    from indexer.errors import InputError

    chains = settings.chains
    names = [c.name for c in chains]
    if name is not None and name not in names:
        raise OptionError(f"--chain: no chain named {name!r} in the config; known: {names}")
    if name is None and len(chains) > 1:
        raise OptionError(f"several chains are configured ({', '.join(names)}): pass --chain NAME")
    if rpc_url is not None:
        try:
            check_rpc_url(rpc_url)
        except InputError as exc:
            raise OptionError(f"--rpc-url: {exc}") from None
    chosen = next((c for c in chains if c.name == name), None) if name else (chains[0] if chains else None)
    if chosen is None:
        if rpc_url is None:
            raise OptionError("no RPC URL: pass --rpc-url URL, or configure [[chains]] in chainrisk.toml")
        return Target(None, None, [rpc_url])
    return Target(chosen.name, chosen.chain_id, [rpc_url] if rpc_url else list(chosen.rpc_urls))


def reconcile(
    app: AppContext, chain: Target, request: Request, *, show_progress: bool = False
) -> tuple[Report, dict[str, Any]]:
    """The report, and what it is about: the chain's name and id, the pools compared, the seed.

    Exit 1 means drift to `chainrisk reconcile`, so a node or a database that fails is answered as 2,
    like the other refusals.
    """
    from indexer.chain import HttpChainClient

    with _answered():
        client = HttpChainClient(chain.urls, max_retries=MAX_RETRIES)
        try:
            report, context = _run(app, chain, client, request, show_progress)
        finally:
            client.close()
    return report, {**context, "seed": request.seed}


@contextmanager
def _answered() -> Iterator[None]:
    import psycopg

    from indexer.chain import ChainError, RpcTransportError

    try:
        yield
    except RpcTransportError as exc:
        raise fail(f"the node does not answer: {exc}") from None
    except ChainError as exc:
        raise fail(str(exc)) from None
    except psycopg.errors.UndefinedTable:
        raise fail(
            "the database has no chainrisk tables: run `chainrisk migrate`, then `chainrisk index`"
        ) from None
    except psycopg.OperationalError as exc:
        raise fail(f"cannot reach the database: {str(exc).strip()}") from None


def _run(
    app: AppContext, chain: Target, client: HttpChainClient, request: Request, show_progress: bool
) -> tuple[Report, dict[str, Any]]:
    """Check the node, rebuild our side from the database, then ask the chain."""
    import psycopg

    from indexer.lending.reconcile import chain_values, compare, plan_at

    chain_id = _chain_id(client, chain)
    decimals = {t.address: t.decimals for t in app.settings.tokens if t.chain == chain.name}
    with psycopg.connect(app.conninfo()) as conn:
        morpho = not request.pools and _morpho_indexed(conn, chain_id)
        chosen = _pools(conn, chain_id, list(request.pools), morpho)
        at = _block(conn, chain_id, request.block)
        plan = plan_at(
            conn, client, chain_id, chosen, at, sample=request.sample, seed=request.seed,
            version=request.version, decimals=decimals, morpho=morpho,
        )  # fmt: skip
    with _progress(show_progress, len(plan.wallets)) as advance:
        chain_data = chain_values(client, plan, advance)
    context = {"chain": chain.name, "chain_id": chain_id, "pools": chosen + sorted(plan.morpho)}
    return compare(plan, chain_data, request.tolerance_wei), context


def _chain_id(client: HttpChainClient, chain: Target) -> int:
    actual = client.chain_id()
    if chain.chain_id is not None and actual != chain.chain_id:
        raise OptionError(
            f"chain {chain.name!r}: the config says chain_id {chain.chain_id}, the node serves {actual}"
        )
    return actual


def _morpho_indexed(conn: Conn, chain_id: int) -> bool:
    from indexer.lending.morpho import morpho_contracts

    return bool(morpho_contracts(conn, chain_id))


def _pools(conn: Conn, chain_id: int, wanted: list[str], morpho: bool) -> list[str]:
    from indexer.lending.health import pools

    indexed = pools(conn, chain_id)
    if not indexed and morpho:
        return []
    if not indexed:
        raise OptionError(
            f"no Aave v3 pool is indexed on chain {chain_id}: index one first (a [[contracts]] entry with"
            ' abi = "aave_v3_pool" for that chain in chainrisk.toml, then `chainrisk index`)'
        )
    for address in wanted:
        if address not in indexed:
            raise OptionError(
                f"--pool {address} is not an indexed pool of chain {chain_id}; indexed: {indexed}"
            )
    return sorted(set(wanted)) or indexed


def _block(conn: Conn, chain_id: int, wanted: int | None) -> int:
    from indexer.lending.health import indexed_head

    head = indexed_head(conn, chain_id)
    if head is None:
        raise OptionError(
            f"nothing is indexed on chain {chain_id}: configure it in chainrisk.toml ([[chains]] and"
            " [[contracts]]), then run `chainrisk index`"
        )
    if wanted is not None and wanted > head:
        raise OptionError(
            f"--block {wanted} is above the indexed head {head}; expected a block at or below it"
        )
    return head if wanted is None else wanted


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr advanced per JSON-RPC batch; a no-op when disabled."""
    if not enabled:
        yield lambda _n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("eth_call"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console(stderr=True), transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("eth_call", total=total)
        yield lambda n: bar.advance(task, n)
