"""Uniswap v3 on the devnet, from the published npm artifacts, with pools priced like the oracles.

    uniswap = deploy_uniswap(deployment, home)
    uniswap.swap_exact_input(wallet, "WETH", "USDC", 100 * 10**18, mint=True)
    uniswap.price("WETH", "USDC")  # USDC per WETH in the pool, after the swap

UniswapV3Factory comes from ``@uniswap/v3-core``, SwapRouter and NonfungiblePositionManager from
``@uniswap/v3-periphery`` (their pool-address code hash matches the core pool's bytecode), with QuoterV2, the
periphery's own off-chain quote. The devnet's WETH is a plain mintable ERC-20, passed as WETH9: only the
ETH-wrapping helpers would need a real WETH9, and they are not used. The position manager gets no token
descriptor (only ``tokenURI`` would call it). Each pool is created at the price the markets' oracle reports
and gets full-range liquidity from the deployer, plus concentrated positions on ranges drawn from ``seed``
(some around the price, some beside it, as real pools have), so that swaps cross initialised ticks.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from devnet.aave import USD, Contract, Deployment
from devnet.deploy import SupportsRpc, deploy_contract
from devnet.errors import DevnetError
from devnet.npm import ensure_node_modules
from devnet.solc import CompiledContract

ZERO_ADDRESS = "0x" + "00" * 20
MAX_UINT = 2**256 - 1
DEADLINE = 2**64  # far in the future for any devnet timestamp
DEPLOY_GAS = 15_000_000
POOL_GAS = 6_000_000
MINT_GAS = 2_000_000
SWAP_GAS = 1_000_000
MIN_TICK, MAX_TICK = -887_272, 887_272
TICK_SPACING = {100: 1, 500: 10, 3_000: 60, 10_000: 200}
Q96 = 2**96
SWAP_TOPIC = "0xc42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67"

_ARTIFACTS = {
    "UniswapV3Factory": "v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json",
    "UniswapV3Pool": "v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json",
    "SwapRouter": "v3-periphery/artifacts/contracts/SwapRouter.sol/SwapRouter.json",
    "NonfungiblePositionManager": (
        "v3-periphery/artifacts/contracts/NonfungiblePositionManager.sol/NonfungiblePositionManager.json"
    ),
    "QuoterV2": "v3-periphery/artifacts/contracts/lens/QuoterV2.sol/QuoterV2.json",
}
RANGES_PER_POOL = 6
# A concentrated position's half-width and centre offset, in tick spacings (60 ticks ~ 0.6% in price), and
# its liquidity as a share of the pool's full-range liquidity.
RANGE_HALF_WIDTH = (1, 40)
RANGE_OFFSET = (-30, 30)
RANGE_LIQUIDITY = (0.1, 1.0)


class UniswapError(DevnetError, RuntimeError):
    """Bad pool or swap request (unknown pair, fee tier or asset)."""


@dataclass(frozen=True)
class PairSpec:
    """A pool to create: ``base`` priced in ``quote`` at fee tier ``fee`` (hundredths of a basis point)."""

    base: str
    quote: str
    fee: int
    liquidity_usd: float = 10_000_000.0  # per side, full range
    ranges: int = RANGES_PER_POOL  # concentrated positions beside the full-range one


PAIRS: tuple[PairSpec, ...] = (
    PairSpec("WETH", "USDC", 3_000, 20_000_000.0),
    PairSpec("WBTC", "USDC", 3_000),
    PairSpec("wstETH", "WETH", 500),
    PairSpec("WBTC", "WETH", 3_000),
)


@dataclass(frozen=True)
class PoolDeployment:
    """One pool: its address, its tokens in pool order and fee tier."""

    name: str
    address: str
    token0: str
    token1: str
    symbol0: str
    symbol1: str
    fee: int


@dataclass(frozen=True)
class SwapResult:
    """What one exact-input swap paid and got, with its receipt."""

    token_in: str
    token_out: str
    amount_in: int
    amount_out: int
    receipt: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class PoolState:
    """A pool's swap state as its views report it; ``ticks``: tick → (liquidityGross, liquidityNet)."""

    fee: int
    tick_spacing: int
    sqrt_price: int
    tick: int
    liquidity: int
    ticks: dict[int, tuple[int, int]]
    bitmap: dict[int, int]


@dataclass(frozen=True)
class Quote:
    """QuoterV2's answer: input and output (one of them the amount asked about), price after, initialised
    ticks crossed, gas."""

    amount_in: int
    amount_out: int
    sqrt_price_after: int
    ticks_crossed: int
    gas_estimate: int


def uniswap_artifact(home: Path, name: str) -> CompiledContract:
    """A contract from the installed ``@uniswap/v3-core`` / ``v3-periphery`` artifacts."""
    raw = _raw_artifact(str(ensure_node_modules(home)), name)
    return CompiledContract(name, raw["sourceName"], raw["abi"], raw["bytecode"], raw["deployedBytecode"])


@cache
def _raw_artifact(modules: str, name: str) -> dict[str, Any]:
    if name not in _ARTIFACTS:
        raise KeyError(f"unknown Uniswap artifact {name!r}; known: {', '.join(sorted(_ARTIFACTS))}")
    data: dict[str, Any] = json.loads((Path(modules) / "@uniswap" / _ARTIFACTS[name]).read_text())
    return data


def sqrt_price_x96(price0_usd: int, price1_usd: int, decimals0: int, decimals1: int) -> int:
    """``sqrtPriceX96`` of a pool whose token0 is worth ``price0_usd`` and token1 ``price1_usd``."""
    # Raw price: token1 base units per token0 base unit.
    numerator = price0_usd * 10**decimals1 * Q96 * Q96
    return math.isqrt(numerator // (price1_usd * 10**decimals0))


def input_to_move(liquidity: int, sqrt_from: int, sqrt_to: int, fee: int) -> tuple[bool, int]:
    """``(zero_for_one, amount_in)`` that moves a pool with in-range ``liquidity`` from one price to another.

    Prices are ``sqrtPriceX96``; the amount includes the pool fee (hundredths of a basis point). With
    full-range liquidity the liquidity is the same all the way.
    """
    if sqrt_to <= 0 or sqrt_from <= 0:
        raise UniswapError("sqrt prices must be positive")
    if sqrt_to < sqrt_from:  # token0 gets cheaper: sell token0
        net = liquidity * Q96 * (sqrt_from - sqrt_to) // (sqrt_from * sqrt_to)
        zero_for_one = True
    else:
        net = liquidity * (sqrt_to - sqrt_from) // Q96
        zero_for_one = False
    return zero_for_one, net * 1_000_000 // (1_000_000 - fee) + 1


@dataclass
class Uniswap:
    """Deployed factory, router, position manager and pools; :meth:`to_manifest` gives its JSON form."""

    factory: str
    router: str
    position_manager: str
    quoter: str
    weth9: str
    pools: dict[str, PoolDeployment]
    start_block: int
    end_block: int
    rpc: SupportsRpc = field(repr=False, compare=False)
    home: Path = field(repr=False, compare=False)
    deployment: Deployment = field(repr=False, compare=False)

    def contract(self, address: str, artifact: str) -> Contract:
        return Contract(self.rpc, address, uniswap_artifact(self.home, artifact).abi)

    def pool(self, base: str, quote: str) -> PoolDeployment:
        """The pool trading ``base`` against ``quote`` (either order)."""
        for pool in self.pools.values():
            if {pool.symbol0, pool.symbol1} == {base, quote}:
                return pool
        raise UniswapError(f"no {base}/{quote} pool; deployed: {', '.join(self.pools)}")

    def price(self, base: str, quote: str) -> float:
        """Units of ``quote`` per unit of ``base`` at the pool's current price (decimals applied)."""
        pool = self.pool(base, quote)
        sqrt_price = int(self.contract(pool.address, "UniswapV3Pool").call("slot0")[0])
        raw = sqrt_price * sqrt_price / (Q96 * Q96)  # token1 base units per token0 base unit
        decimals0 = self.deployment.assets[pool.symbol0].decimals
        decimals1 = self.deployment.assets[pool.symbol1].decimals
        price01 = float(raw * 10 ** (decimals0 - decimals1))
        return price01 if pool.symbol0 == base else 1 / price01

    def pool_state(self, name: str, block: str | int = "latest") -> PoolState:
        """What a swap reads from pool ``name`` at ``block``, through the pool's own view functions: slot0,
        liquidity, every tick bitmap word a tick can live in, and the liquidity of each initialised tick."""
        pool = self.contract(self.pools[name].address, "UniswapV3Pool")
        sqrt_price, tick = (int(v) for v in pool.call("slot0", block=block)[:2])
        spacing = int(pool.call("tickSpacing", block=block))
        bitmap: dict[int, int] = {}
        ticks: dict[int, tuple[int, int]] = {}
        for word in range((MIN_TICK // spacing) >> 8, ((MAX_TICK // spacing) >> 8) + 1):
            bits = int(pool.call("tickBitmap", word, block=block))
            if bits:
                bitmap[word] = bits
            for bit in (b for b in range(256) if bits >> b & 1):
                initialised = (word * 256 + bit) * spacing
                gross, net = pool.call("ticks", initialised, block=block)[:2]
                ticks[initialised] = (int(gross), int(net))
        liquidity = int(pool.call("liquidity", block=block))
        return PoolState(
            int(pool.call("fee", block=block)), spacing, sqrt_price, tick, liquidity, ticks, bitmap
        )

    def quote_exact_input(
        self, token_in: str, token_out: str, amount_in: int, sqrt_price_limit: int = 0
    ) -> Quote:
        """QuoterV2.quoteExactInputSingle through ``eth_call``: what selling ``amount_in`` would give now."""
        pool = self.pool(token_in, token_out)
        source, target = self.deployment.token(token_in), self.deployment.token(token_out)
        params = (source.address, target.address, amount_in, pool.fee, sqrt_price_limit)
        out, sqrt_after, crossed, gas = self.contract(self.quoter, "QuoterV2").call(
            "quoteExactInputSingle", params
        )
        return Quote(amount_in, int(out), int(sqrt_after), int(crossed), int(gas))

    def quote_exact_output(
        self, token_in: str, token_out: str, amount_out: int, sqrt_price_limit: int = 0
    ) -> Quote:
        """QuoterV2.quoteExactOutputSingle: what getting ``amount_out`` would cost now (without a limit the
        quoter reverts when the pool cannot deliver all of it)."""
        pool = self.pool(token_in, token_out)
        source, target = self.deployment.token(token_in), self.deployment.token(token_out)
        params = (source.address, target.address, amount_out, pool.fee, sqrt_price_limit)
        paid, sqrt_after, crossed, gas = self.contract(self.quoter, "QuoterV2").call(
            "quoteExactOutputSingle", params
        )
        return Quote(int(paid), amount_out, int(sqrt_after), int(crossed), int(gas))

    def swap_exact_input(
        self,
        sender: str,
        token_in: str,
        token_out: str,
        amount_in: int,
        *,
        min_out: int = 0,
        recipient: str | None = None,
        mint: bool = False,
        sqrt_price_limit: int = 0,
    ) -> SwapResult:
        """Sell ``amount_in`` base units of ``token_in`` for ``token_out`` through the router.

        ``sender`` must be unlocked (or impersonated); ``mint`` first mints the input to it (the devnet's
        tokens are openly mintable). The router is approved for ``token_in`` once, without limit.
        """
        if amount_in <= 0:
            raise UniswapError(f"amount_in must be positive, got {amount_in}")
        pool = self.pool(token_in, token_out)
        source, target = self.deployment.token(token_in), self.deployment.token(token_out)
        to = (recipient or sender).lower()
        if mint:
            source.transact(sender, "mint", sender, amount_in, gas=200_000)
        if int(source.call("allowance", sender, self.router)) < amount_in:
            source.transact(sender, "approve", self.router, MAX_UINT, gas=100_000)
        before = int(target.call("balanceOf", to))
        params = (
            source.address,
            target.address,
            pool.fee,
            to,
            DEADLINE,
            amount_in,
            min_out,
            sqrt_price_limit,
        )
        router = self.contract(self.router, "SwapRouter")
        receipt = router.transact(sender, "exactInputSingle", params, gas=SWAP_GAS)
        amount_out = int(target.call("balanceOf", to)) - before
        return SwapResult(token_in, token_out, amount_in, amount_out, receipt)

    def to_manifest(self) -> dict[str, Any]:
        """The ``uniswap`` section of the devnet manifest."""
        return {
            "factory": self.factory,
            "router": self.router,
            "position_manager": self.position_manager,
            "quoter": self.quoter,
            "weth9": self.weth9,
            "pools": {name: asdict(pool) for name, pool in self.pools.items()},
            "start_block": self.start_block,
            "end_block": self.end_block,
        }

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], deployment: Deployment) -> Uniswap | None:
        """The Uniswap deployment of a full devnet manifest, or None when it has no ``uniswap`` section."""
        body = manifest.get("uniswap")
        if not body:
            return None
        return cls(
            factory=str(body["factory"]),
            router=str(body["router"]),
            position_manager=str(body["position_manager"]),
            quoter=str(body.get("quoter", ZERO_ADDRESS)),  # manifests written before the quoter was deployed
            weth9=str(body["weth9"]),
            pools={name: PoolDeployment(**pool) for name, pool in body["pools"].items()},
            start_block=int(body["start_block"]),
            end_block=int(body["end_block"]),
            rpc=deployment.rpc,
            home=deployment.home,
            deployment=deployment,
        )


def manifest_with_uniswap(manifest: Mapping[str, Any], uniswap: Uniswap) -> dict[str, Any]:
    """The manifest plus its ``uniswap`` section, ``end_block`` moved to the last Uniswap block."""
    end = max(int(manifest["end_block"]), uniswap.end_block)
    return {**manifest, "end_block": end, "uniswap": uniswap.to_manifest()}


def deploy_uniswap(
    deployment: Deployment,
    home: Path,
    *,
    pairs: Sequence[PairSpec] = PAIRS,
    provider: str | None = None,
    seed: int = 0,
) -> Uniswap:
    """Deploy factory, router, position manager and quoter; create each pair's pool at the oracle price.

    ``provider`` (default: the deployer) mints the tokens and holds the liquidity positions: one full range
    and ``pair.ranges`` concentrated ones per pool, their ranges and sizes drawn from ``seed``.
    """
    for pair in pairs:
        unknown = [s for s in (pair.base, pair.quote) if s not in deployment.assets]
        if unknown or pair.base == pair.quote:
            raise UniswapError(
                f"bad pair {pair.base}/{pair.quote}; listed assets: {', '.join(deployment.assets)}"
            )
        if pair.fee not in TICK_SPACING:
            raise UniswapError(f"fee tier {pair.fee} is not enabled; use one of {sorted(TICK_SPACING)}")
    rpc = deployment.rpc
    owner = deployment.deployer
    lp = (provider or owner).lower()
    start = int(rpc.rpc("eth_blockNumber"), 16) + 1
    weth = deployment.assets["WETH"].token if "WETH" in deployment.assets else ZERO_ADDRESS
    factory = deploy_contract(rpc, uniswap_artifact(home, "UniswapV3Factory"), [], owner, gas=DEPLOY_GAS)
    factory_contract = Contract(rpc, factory, uniswap_artifact(home, "UniswapV3Factory").abi)
    if int(factory_contract.call("feeAmountTickSpacing", 100)) == 0:
        factory_contract.transact(owner, "enableFeeAmount", 100, 1)
    router = deploy_contract(
        rpc, uniswap_artifact(home, "SwapRouter"), [factory, weth], owner, gas=DEPLOY_GAS
    )
    manager_artifact = uniswap_artifact(home, "NonfungiblePositionManager")
    manager = deploy_contract(rpc, manager_artifact, [factory, weth, ZERO_ADDRESS], owner, gas=DEPLOY_GAS)
    quoter = deploy_contract(rpc, uniswap_artifact(home, "QuoterV2"), [factory, weth], owner, gas=DEPLOY_GAS)
    positions = Contract(rpc, manager, manager_artifact.abi)
    draw = random.Random(seed)
    approved: set[str] = set()
    pools: dict[str, PoolDeployment] = {}
    for pair in pairs:
        pool = _create_pool(deployment, factory_contract, positions, pair)
        for symbol in (pool.symbol0, pool.symbol1):
            if symbol not in approved:
                deployment.token(symbol).transact(lp, "approve", manager, MAX_UINT, gas=100_000)
                approved.add(symbol)
        _add_full_range(deployment, positions, pool, pair.liquidity_usd, lp)
        _add_ranges(deployment, positions, pool, pair.ranges, draw, lp)
        pools[pool.name] = pool
    return Uniswap(
        factory=factory,
        router=router,
        position_manager=manager,
        quoter=quoter,
        weth9=weth,
        pools=pools,
        start_block=start,
        end_block=int(rpc.rpc("eth_blockNumber"), 16),
        rpc=rpc,
        home=home,
        deployment=deployment,
    )


def _create_pool(
    deployment: Deployment, factory: Contract, positions: Contract, pair: PairSpec
) -> PoolDeployment:
    base, quote = deployment.assets[pair.base], deployment.assets[pair.quote]
    first, second = (base, quote) if base.token < quote.token else (quote, base)
    sqrt_price = sqrt_price_x96(
        deployment.price(first.symbol), deployment.price(second.symbol), first.decimals, second.decimals
    )
    owner = deployment.deployer
    positions.transact(
        owner,
        "createAndInitializePoolIfNecessary",
        first.token,
        second.token,
        pair.fee,
        sqrt_price,
        gas=POOL_GAS,
    )
    address = str(factory.call("getPool", first.token, second.token, pair.fee)).lower()
    return PoolDeployment(
        name=f"{pair.base}/{pair.quote}",
        address=address,
        token0=first.token,
        token1=second.token,
        symbol0=first.symbol,
        symbol1=second.symbol,
        fee=pair.fee,
    )


def _add_full_range(
    deployment: Deployment, positions: Contract, pool: PoolDeployment, usd: float, provider: str
) -> None:
    spacing = TICK_SPACING[pool.fee]
    lower, upper = -(-MIN_TICK // spacing) * spacing, (MAX_TICK // spacing) * spacing
    amounts = []
    for symbol in (pool.symbol0, pool.symbol1):
        asset = deployment.assets[symbol]
        amount = int(usd * USD * 10**asset.decimals // deployment.price(symbol))
        deployment.token(symbol).transact(provider, "mint", provider, amount, gas=200_000)
        amounts.append(amount)
    params = (pool.token0, pool.token1, pool.fee, lower, upper, *amounts, 0, 0, provider, DEADLINE)
    positions.transact(provider, "mint", params, gas=MINT_GAS)


def _add_ranges(
    deployment: Deployment,
    positions: Contract,
    pool: PoolDeployment,
    count: int,
    draw: random.Random,
    lp: str,
) -> None:
    """``count`` concentrated positions around and beside the current price, each a random share of the
    full-range liquidity (the amounts are estimated in floats; the chain keeps what the manager computes)."""
    contract = Contract(positions.rpc, pool.address, uniswap_artifact(deployment.home, "UniswapV3Pool").abi)
    sqrt_price, tick = (int(v) for v in contract.call("slot0")[:2])
    full = int(contract.call("liquidity"))
    spacing = TICK_SPACING[pool.fee]
    for _ in range(count):
        centre = (tick // spacing + draw.randint(*RANGE_OFFSET)) * spacing
        half = draw.randint(*RANGE_HALF_WIDTH) * spacing
        lower = max(centre - half, -(MAX_TICK // spacing) * spacing)
        upper = min(centre + half, MAX_TICK // spacing * spacing)
        liquidity = int(full * draw.uniform(*RANGE_LIQUIDITY))
        amounts = _amounts_for(liquidity, sqrt_price / Q96, lower, upper)
        for symbol, amount in zip((pool.symbol0, pool.symbol1), amounts, strict=True):
            deployment.token(symbol).transact(lp, "mint", lp, amount, gas=200_000)
        params = (pool.token0, pool.token1, pool.fee, lower, upper, *amounts, 0, 0, lp, DEADLINE)
        positions.transact(lp, "mint", params, gas=MINT_GAS)


def _amounts_for(liquidity: int, sqrt_price: float, lower: int, upper: int) -> tuple[int, int]:
    """Token amounts (with a 1% margin) that hold ``liquidity`` on [lower, upper) at ``sqrt_price``."""
    sqrt_lower, sqrt_upper = 1.0001 ** (lower / 2), 1.0001 ** (upper / 2)
    inside = min(max(sqrt_price, sqrt_lower), sqrt_upper)
    amount0 = liquidity * (1 / inside - 1 / sqrt_upper)
    amount1 = liquidity * (inside - sqrt_lower)
    return int(amount0 * 1.01) + 1, int(amount1 * 1.01) + 1
