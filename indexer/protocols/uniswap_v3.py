"""Uniswap v3 events: pools announced by the factory, and what changes a pool's swap state.

A pool's price, tick, active liquidity and per-tick liquidity follow from these alone (rebuilt exactly by
``graph.univ3_state``): Initialize sets the first price, Mint and Burn add and remove liquidity on a tick
range, and each Swap reports the state it left. Collect moves owed tokens only; it is kept for flows.
The pools are not in the `auto` set: their Swap topic is everywhere on mainnet, so pools are indexed
when configured (``abi = "uniswap_v3_pool"``).
"""

from indexer.events import event

POOL_CREATED = event(
    "PoolCreated(address indexed token0, address indexed token1, uint24 indexed fee, int24 tickSpacing,"
    " address pool)",
    "uniswap_v3_pool_created",
)
INITIALIZE = event("Initialize(uint160 sqrtPriceX96, int24 tick)", "uniswap_v3_initialize")
MINT = event(
    "Mint(address sender, address indexed owner, int24 indexed tickLower, int24 indexed tickUpper,"
    " uint128 amount, uint256 amount0, uint256 amount1)",
    "uniswap_v3_mint",
)
BURN = event(
    "Burn(address indexed owner, int24 indexed tickLower, int24 indexed tickUpper, uint128 amount,"
    " uint256 amount0, uint256 amount1)",
    "uniswap_v3_burn",
)
SWAP = event(
    "Swap(address indexed sender, address indexed recipient, int256 amount0, int256 amount1,"
    " uint160 sqrtPriceX96, uint128 liquidity, int24 tick)",
    "uniswap_v3_swap",
)
COLLECT = event(
    "Collect(address indexed owner, address recipient, int24 indexed tickLower, int24 indexed tickUpper,"
    " uint128 amount0, uint128 amount1)",
    "uniswap_v3_collect",
)

FACTORY_EVENTS = (POOL_CREATED,)
POOL_EVENTS = (INITIALIZE, MINT, BURN, SWAP, COLLECT)
