"""The lending layer: positions and health factors rebuilt exactly from indexed events.

It reads what the indexer proper writes and never the other way round. `read` is the small API that
`graph/`, `analytics/` and the service call instead of writing SQL against the lending tables:

- `read.reserve_positions`: each wallet's collateral and debt per reserve, as indexed (current);
- `read.positions_at`: the same rebuilt from events at any past block, with each account's health;
- `read.pool_labels`: the address book's names for the pools.

`positions` rebuilds market state from events (Aave's own maths in `indexer.protocols.aave_math`),
`health` writes `account_health` and `position_reserves`, `reconcile` compares both with the chain.
"""
