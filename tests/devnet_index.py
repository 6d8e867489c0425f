"""Index a devnet with Aave v3 markets and Uniswap v3 pools after a short market scenario: the book the
contagion commands, the surrogates and the alert rules read."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import psycopg

from chainrisk.db import to_libpq_url


def index_devnet_with_pools(db: str, node: Any, home: Path, days: int, wallets: int, seed: int) -> Any:
    """Deploy the markets and pools on ``node``, simulate ``days`` of ``wallets`` agents (``seed``), index
    the chain into ``db``; returns the index config."""
    from devnet.aave import deploy_markets
    from devnet.scenario import simulate
    from devnet.serve import indexer_toml
    from devnet.uniswap import deploy_uniswap, manifest_with_uniswap
    from indexer.catalog import sync_config
    from indexer.config import IndexConfig
    from indexer.runner import config_plan, run_plan

    deployment = deploy_markets(node, home)
    uniswap = deploy_uniswap(deployment, home)
    simulate(deployment, days, wallets, seed, uniswap=uniswap)
    manifest = manifest_with_uniswap(deployment.to_manifest(), uniswap)
    config = IndexConfig(**tomllib.loads(indexer_toml({**manifest, "rpc_url": node.url})))
    conninfo = to_libpq_url(db)
    with psycopg.connect(conninfo) as conn:
        sync_config(conn, config.chains, config.tokens, config.labels)
    run_plan(config_plan(config.chains[0], config.contracts, None, False), conninfo)
    return config
