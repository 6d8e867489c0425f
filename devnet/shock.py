"""A price shock through the devnet's feeds, and the liquidation bots left to act on it, round by round.

    outcome = apply_shock(deployment, uniswap, {"WETH": Fraction(13, 20)}, feeds={"WETH": FeedRule("USDC")})
    outcome.depth, outcome.rounds[0].liquidations, outcome.pool_prices, outcome.bad_debt

What happens on chain, in order (the policy :func:`graph.cascade.run_cascade` models):

1. The shock: each shocked asset's feed publishes its answer times the factor (rounded down), and an
   arbitrageur swaps every pool holding a shocked asset to the shocked relative price (an exact-input swap
   stopped at that ``sqrtPriceX96``), so the pools agree with the feeds again.
2. A round: the bots read every borrower's ``getUserAccountData`` (borrowers are found from the markets'
   ``Borrow`` events) and take each one under health factor 1 once, largest total debt first (ties by market
   address, then user). For each: the largest collateral and the largest debt at the oracle prices (ties by
   token address), ``liquidationCall(collateral, debt, user, type(uint256).max, false)``, then QuoterV2's
   price for selling the collateral received on the pool between the two assets. If the sale does not beat
   the debt repaid plus ``gas_cost`` by more than ``min_profit`` (both in base currency, USD with 8
   decimals) the liquidation is rolled back (``evm_revert``, as a bot that simulates before sending would
   never send it); otherwise the collateral is sold at once, before the next account.
3. After the round each rule in ``feeds`` reads its pool and, Chainlink-style, publishes the price the pool
   implies (the quote asset valued at its own feed's answer) when it deviates from the feed's answer by more
   than ``deviation_bps``, or when ``heartbeat_s`` has passed since the feed's last update; or, with a
   ``feedback`` weight, publishes what the scenario's ``--feedback`` feeds would (see :class:`FeedRule`).
4. Repeat until a round liquidates nobody, or ``max_rounds``.

With ``morpho`` the bots also watch Morpho Blue: its borrowers (from ``Borrow`` events) join each round's
queue, a position being unhealthy when ``wMulDown(mulDivDown(collateral, price, 1e36), lltv)`` falls below
``toAssetsUp(borrowShares)`` at its oracle's price (the ratio of the two PriceFeeds the shock moves) and the
market's stored totals, and its place in the queue being that debt at the loan token's feed answer (ties by
market id). The bot sends the largest ``liquidate`` (every borrow share, or all the collateral when the
shares would seize more than there is; the rest is then Morpho's bad debt), quotes the sale of the
collateral it received on the pool between the two tokens and keeps it under the same profit test, then
sells at once. Interest is not accrued first: set the markets' ``lastUpdate`` to the shock's second (any
accruing call in the last block) for the bots to read the totals the contract will use.

Every transaction is mined in its own block, and by default every block has the timestamp of the block
before the shock: the cascade plays out within one second of chain time, so no interest accrues while it
runs (the simulator holds indices and rates fixed); ``BotPolicy(block_seconds=12)`` spaces the blocks 12 s
apart instead. For the heartbeat each round counts ``round_seconds``.

``BotPolicy(mode="batched")`` runs the scenario's bots instead (:mod:`devnet.scenario`): each round's
liquidations all in one block, ordered by user then market, none checked for profit, and every sale in the
block after, in the same order. Each account's liquidation is then what it is one by one (no time passes,
the feeds do not move within a round), but the pool sees the sales in another order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from eth_utils.crypto import keccak

from devnet.aave import AaveDeployError, Deployment
from devnet.errors import DevnetError
from devnet.morpho import Morpho, MorphoMarket
from devnet.scenario import (
    ARBITRAGEUR,
    LIQUIDATION_TOPIC,
    LIQUIDATORS,
    MAX_UINT,
    WALLET_GAS_ETH,
    deviates,
    label_address,
    mixed_price,
)
from devnet.uniswap import DEADLINE, SWAP_GAS, SWAP_TOPIC, PoolDeployment, Uniswap

BORROW_TOPIC = "0x" + keccak(text="Borrow(address,address,address,uint256,uint8,uint256,uint16)").hex()
MORPHO_BORROW_TOPIC = "0x" + keccak(text="Borrow(bytes32,address,address,address,uint256,uint256)").hex()
MORPHO_LIQUIDATE_TOPIC = (
    "0x" + keccak(text="Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)").hex()
)
WAD = 10**18
ORACLE_PRICE_SCALE = 10**36
VIRTUAL_SHARES = 10**6
HF_ONE = 10**18
Q192 = 1 << 192
MIN_SQRT_RATIO, MAX_SQRT_RATIO = (
    4_295_128_739,
    1_461_446_703_485_210_103_287_273_052_203_988_822_378_723_970_342,
)
# An input no pool can absorb: an arbitrage swap always stops at its price limit.
UNBOUNDED_IN = 1 << 200
LIQUIDATION_GAS = 1_500_000


class ShockError(DevnetError, ValueError):
    """A shock or feed rule that does not fit the deployment (unknown asset, no pool, bad factor)."""

    exit_code = 2


@dataclass(frozen=True)
class FeedRule:
    """A feed that follows the pool between its asset and ``quote``.

    Without ``feedback``, Chainlink-style: it publishes the pool's price (:func:`implied_price`) when that
    deviates from its answer by more than ``deviation_bps``. With ``feedback`` (a weight in [0, 1]), as the
    scenario's feeds do (``--feedback``): it publishes :func:`devnet.scenario.mixed_price` of the market's
    price (its answer right after the shock) and the pool's (``Uniswap.price`` times the quote's answer)
    when that moved by ``deviation_bps`` or more (:func:`devnet.scenario.deviates`). Either publishes at
    the heartbeat too.
    """

    quote: str
    deviation_bps: int = 50
    heartbeat_s: int = 3_600
    feedback: float | None = None


@dataclass(frozen=True)
class ChainLiquidation:
    """One ``LiquidationCall`` the bots made and the sale of what it gave them.

    ``market`` is the market's name, ``pool`` its Pool address; assets are symbols; ``collateral_seized`` is
    what the liquidator received (the protocol fee excluded), ``proceeds`` what its sale brought. For
    Morpho Blue (``protocol``): ``market`` is the market's name (``collateral/loan``), ``pool`` its id,
    ``debt_repaid`` the ``Liquidate`` event's ``repaidAssets`` and ``bad_debt`` its ``badDebtAssets``."""

    round: int
    block: int
    market: str
    pool: str
    user: str
    collateral: str
    debt: str
    debt_repaid: int
    collateral_seized: int
    proceeds: int
    protocol: str = "aave_v3"
    bad_debt: int = 0


@dataclass(frozen=True)
class ChainRound:
    """A round: its liquidations in order, the accounts under 1 left alone, feed answers after the round."""

    index: int
    liquidations: tuple[ChainLiquidation, ...]
    left_alone: tuple[tuple[str, str], ...]
    oracle_prices: dict[str, int]


@dataclass(frozen=True)
class Holding:
    """An account after the cascade: scaled aToken and debt balances by symbol, health factor (wad)."""

    scaled_collateral: dict[str, int]
    scaled_debt: dict[str, int]
    health_factor: int


@dataclass(frozen=True)
class ShockOutcome:
    """What happened on chain: rounds with a liquidation, final pool prices (``sqrtPriceX96`` by pool
    name), feed answers by symbol, every borrower's holding by (market, user), and bad debt by (market,
    symbol): the debt of accounts left with no collateral."""

    timestamp: int
    elapsed_s: int  # chain time from the block before the shock to the last block
    rounds: tuple[ChainRound, ...]
    pool_prices: dict[str, int]
    oracle_prices: dict[str, int]
    positions: dict[tuple[str, str], Holding]
    bad_debt: dict[tuple[str, str], int]
    # Morpho Blue, by (market name, user): (borrow shares, collateral) after the cascade
    morpho_positions: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return len(self.rounds)


@dataclass(frozen=True)
class BotPolicy:
    """How the bots act. ``one_by_one`` (the default): the order and checks the module docstring gives,
    one transaction per block, each sale before the next liquidation; ``gas_cost`` and ``min_profit`` in
    base currency (USD, 8 decimals). ``batched`` (the scenario's bots): every liquidation of a round in one
    block, by user then market, with no profit check, then every sale in the next block in the same order.
    With ``block_seconds`` the blocks are that far apart, so interest accrues while the cascade runs.
    """

    mode: Literal["one_by_one", "batched"] = "one_by_one"
    gas_cost: int = 0
    min_profit: int = 0
    block_seconds: int = 0  # 0: every block in the shock's second; else blocks this far apart


@dataclass
class _Run:
    deployment: Deployment
    uniswap: Uniswap
    feeds: Mapping[str, FeedRule]
    policy: BotPolicy
    round_seconds: int
    morpho: Morpho | None = None
    bot: str = field(default_factory=lambda: label_address(LIQUIDATORS[0]))
    since_update: dict[str, int] = field(default_factory=dict)
    market: dict[str, int] = field(default_factory=dict)  # feed answers right after the shock
    funded: set[tuple[str, str]] = field(default_factory=set)

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        return self.deployment.rpc.rpc(method, params or [])


# ------------------------------------------------------------------------------------------- public


def apply_shock(
    deployment: Deployment,
    uniswap: Uniswap,
    shock: Mapping[str, Fraction],
    *,
    feeds: Mapping[str, FeedRule],
    policy: BotPolicy | None = None,
    max_rounds: int = 20,
    round_seconds: int = 12,
    morpho: Morpho | None = None,
) -> ShockOutcome:
    """Shock the feeds of ``shock`` (symbol → price factor), then let the bots act as the module says
    (on Morpho Blue's markets too with ``morpho``; one by one only).

    Needs anvil (impersonation, snapshots, the block clock); automining is on while it runs and the block
    timestamp interval is left at ``policy.block_seconds``. Raises :class:`ShockError` for inputs that do
    not fit the deployment.
    """
    _check(deployment, uniswap, shock, feeds)
    if max_rounds < 0 or round_seconds < 0 or (policy is not None and policy.block_seconds < 0):
        raise ShockError("max_rounds, round_seconds and block_seconds must not be negative")
    if morpho is not None and policy is not None and policy.mode == "batched":
        raise ShockError("the batched bots liquidate Aave only; use BotPolicy() with morpho")
    run = _Run(deployment, uniswap, feeds, policy or BotPolicy(), round_seconds, morpho)
    latest = run.rpc("eth_getBlockByNumber", ["latest", False])
    timestamp = int(latest["timestamp"], 16)
    run.rpc("evm_setAutomine", [True])
    run.rpc("anvil_autoImpersonateAccount", [True])
    run.rpc("anvil_setBlockTimestampInterval", [run.policy.block_seconds])
    run.rpc("evm_setNextBlockTimestamp", [timestamp + run.policy.block_seconds])
    _shock(run, shock)
    users = _borrowers(run) + _morpho_borrowers(run)
    rounds = []
    for index in range(1, max_rounds + 1):
        done = _round(run, index, users)
        if not done.liquidations:
            break
        rounds.append(done)
    last = run.rpc("eth_getBlockByNumber", ["latest", False])
    return ShockOutcome(
        timestamp=timestamp,
        elapsed_s=int(last["timestamp"], 16) - timestamp,
        rounds=tuple(rounds),
        pool_prices={name: _sqrt_price(run, pool) for name, pool in sorted(uniswap.pools.items())},
        oracle_prices=_answers(run),
        positions={key: _holding(run, *key) for key in users if key[0] in deployment.markets},
        bad_debt=_with_morpho_bad_debt(
            _bad_debt(run, [k for k in users if k[0] in deployment.markets]), rounds
        ),
        morpho_positions=_morpho_holdings(run, users),
    )


def implied_price(
    sqrt_price: int, asset_is_token0: bool, asset_decimals: int, quote_decimals: int, quote_price: int
) -> int:
    """The USD price (8 decimals) a pool at ``sqrt_price`` gives its asset, the quote at ``quote_price``."""
    square = sqrt_price * sqrt_price
    asset_unit: int = 10**asset_decimals
    quote_unit: int = 10**quote_decimals
    if asset_is_token0:
        return square * asset_unit * quote_price // (Q192 * quote_unit)
    return Q192 * asset_unit * quote_price // (square * quote_unit)


# ------------------------------------------------------------------------------------------- checks


def _check(
    deployment: Deployment, uniswap: Uniswap, shock: Mapping[str, Fraction], feeds: Mapping[str, FeedRule]
) -> None:
    for symbol, factor in shock.items():
        if symbol not in deployment.assets:
            raise ShockError(
                f"shock for {symbol}: not a devnet asset; expected one of {sorted(deployment.assets)}"
            )
        if factor <= 0:
            raise ShockError(f"shock for {symbol}: expected a positive factor, got {factor}")
    for symbol, rule in feeds.items():
        if symbol not in deployment.assets or rule.quote not in deployment.assets:
            raise ShockError(f"feed {symbol}/{rule.quote}: not devnet assets")
        if rule.feedback is not None and not 0 <= rule.feedback <= 1:
            raise ShockError(f"feed {symbol}: feedback is a weight in [0, 1], got {rule.feedback}")
        if not any({p.symbol0, p.symbol1} == {symbol, rule.quote} for p in uniswap.pools.values()):
            raise ShockError(f"feed {symbol}: no {symbol}/{rule.quote} pool to follow")


# ------------------------------------------------------------------------------------------- the shock


def _shock(run: _Run, shock: Mapping[str, Fraction]) -> None:
    for symbol, factor in sorted(shock.items()):
        answer = int(run.deployment.price_feed(symbol).call("latestAnswer"))
        run.deployment.set_price(symbol, answer * factor.numerator // factor.denominator)
        run.since_update[symbol] = 0
    run.market = {symbol: _answer(run, symbol) for symbol in run.feeds}
    for _, pool in sorted(run.uniswap.pools.items()):
        ratio = shock.get(pool.symbol0, Fraction(1)) / shock.get(pool.symbol1, Fraction(1))
        if ratio != 1:
            _arbitrage(run, pool, ratio)


def _arbitrage(run: _Run, pool: PoolDeployment, ratio: Fraction) -> None:
    """Swap ``pool`` to its price times ``ratio`` (token1 per token0), stopping at exactly that price."""
    current = _sqrt_price(run, pool)
    target = math.isqrt(current * current * ratio.numerator // ratio.denominator)
    target = min(max(target, MIN_SQRT_RATIO + 1), MAX_SQRT_RATIO - 1)
    if target == current:
        return
    sell, buy = (pool.symbol0, pool.symbol1) if target < current else (pool.symbol1, pool.symbol0)
    arbitrageur = label_address(ARBITRAGEUR)
    _gas(run, arbitrageur)
    token = run.deployment.token(sell)
    token.transact(arbitrageur, "mint", arbitrageur, UNBOUNDED_IN, gas=200_000)
    token.transact(arbitrageur, "approve", run.uniswap.router, MAX_UINT, gas=100_000)
    params = (
        token.address,
        run.deployment.token(buy).address,
        pool.fee,
        arbitrageur,
        DEADLINE,
        UNBOUNDED_IN,
        0,
        target,
    )
    run.uniswap.contract(run.uniswap.router, "SwapRouter").transact(
        arbitrageur, "exactInputSingle", params, gas=SWAP_GAS
    )


# ------------------------------------------------------------------------------------------- a round


def _round(run: _Run, index: int, users: list[tuple[str, str]]) -> ChainRound:
    queue = []
    for market, user in users:
        if market not in run.deployment.markets:
            continue
        data = run.deployment.pool(market).call("getUserAccountData", user)
        if int(data[5]) < HF_ONE:
            queue.append((-int(data[1]), run.deployment.markets[market].pool.lower(), market, user))
    queue += _morpho_unhealthy(run, users)
    unhealthy = [(market, user) for _, _, market, user in sorted(queue)]
    if run.policy.mode == "batched":
        done = _batched(run, index, sorted(unhealthy, key=lambda k: (k[1].lower(), k[0])))
    else:
        done = [x for x in (_liquidate_any(run, index, m, u) for m, u in unhealthy) if x is not None]
    taken = {(x.market, x.user) for x in done}
    _update_feeds(run)
    left = tuple(k for k in unhealthy if k not in taken)
    return ChainRound(index, tuple(done), left, _answers(run))


def _pair(run: _Run, market: str, user: str) -> tuple[str, str] | None:
    """Symbols of the largest collateral and the largest debt in base currency (ties by token address)."""
    deployment = run.deployment
    flags = int(deployment.pool(market).call("getUserConfiguration", user)[0])
    collateral, debt = [], []
    for symbol, reserve in deployment.markets[market].reserves.items():
        asset = deployment.assets[symbol]
        price, unit = deployment.price(symbol, market), 10**asset.decimals
        reserve_id = int(deployment.pool(market).call("getReserveData", asset.token)[7])
        supplied = int(deployment.a_token(market, symbol).call("balanceOf", user))
        enabled = flags >> (2 * reserve_id + 1) & 1 and reserve.params.liquidation_threshold
        if supplied and enabled:
            collateral.append((-(supplied * price // unit), asset.token.lower(), symbol))
        owed = int(deployment.v_token(market, symbol).call("balanceOf", user))
        if owed:
            debt.append((-(owed * price // unit), asset.token.lower(), symbol))
    if not collateral or not debt:
        return None
    return min(collateral)[2], min(debt)[2]


def _liquidate(run: _Run, index: int, market: str, user: str) -> ChainLiquidation | None:
    pair = _pair(run, market, user)
    if pair is None:
        return None
    collateral, debt = pair
    deployment, pool = run.deployment, run.deployment.pool(market)
    _fund_bot(run, debt, market)
    snapshot = run.rpc("evm_snapshot")
    assets = (deployment.assets[collateral].token, deployment.assets[debt].token)
    try:
        receipt = pool.transact(
            run.bot, "liquidationCall", *assets, user, MAX_UINT, False, gas=LIQUIDATION_GAS
        )
    except AaveDeployError:
        run.rpc("evm_revert", [snapshot])
        return None
    repaid, seized = _liquidation_event(receipt, pool.address)
    proceeds = run.uniswap.quote_exact_input(collateral, debt, seized).amount_out if seized else 0
    debt_price, unit = deployment.price(debt, market), 10 ** deployment.assets[debt].decimals
    gas, floor = (usd * unit // debt_price for usd in (run.policy.gas_cost, run.policy.min_profit))
    if seized == 0 or proceeds - repaid - gas <= floor:
        run.rpc("evm_revert", [snapshot])
        return None
    sale = run.uniswap.swap_exact_input(run.bot, collateral, debt, seized)
    return ChainLiquidation(
        round=index,
        block=int(sale.receipt["blockNumber"], 16),
        market=market,
        pool=deployment.markets[market].pool.lower(),
        user=user,
        collateral=collateral,
        debt=debt,
        debt_repaid=repaid,
        collateral_seized=seized,
        proceeds=sale.amount_out,
    )


def _batched(run: _Run, index: int, accounts: list[tuple[str, str]]) -> list[ChainLiquidation]:
    """Every liquidation in one block, then every sale in the next, in the order given."""
    deployment, router = run.deployment, run.uniswap.contract(run.uniswap.router, "SwapRouter")
    pairs = {key: pair for key in accounts if (pair := _pair(run, *key)) is not None}
    for (market, _), (collateral, debt) in pairs.items():
        _fund_bot(run, debt, market)
        _approve_router(run, collateral)
    run.rpc("evm_setAutomine", [False])
    try:
        sent = {key: _send_liquidation(run, key, pair) for key, pair in pairs.items()}
        receipts = _mine(run)
        seized = {
            key: _liquidation_event(receipts[tx], deployment.markets[key[0]].pool)
            for key, tx in sent.items()
            if receipts[tx]["status"] == "0x1"
        }
        sales = {}
        for key, (_, amount) in seized.items():
            collateral, debt = (deployment.assets[s].token for s in pairs[key])
            fee = run.uniswap.pool(*pairs[key]).fee
            params = (collateral, debt, fee, run.bot, DEADLINE, amount, 0, 0)
            sales[key] = router.send(run.bot, "exactInputSingle", params, gas=SWAP_GAS)
        receipts = _mine(run)
    finally:
        run.rpc("evm_setAutomine", [True])
    block = int(run.rpc("eth_blockNumber"), 16)
    return [
        ChainLiquidation(
            round=index,
            block=block,
            market=market,
            pool=deployment.markets[market].pool.lower(),
            user=user,
            collateral=pairs[(market, user)][0],
            debt=pairs[(market, user)][1],
            debt_repaid=repaid,
            collateral_seized=amount,
            proceeds=_swap_out(receipts[sales[(market, user)]]),
        )
        for (market, user), (repaid, amount) in seized.items()
    ]


def _send_liquidation(run: _Run, key: tuple[str, str], pair: tuple[str, str]) -> str:
    assets = (run.deployment.assets[s].token for s in pair)
    pool = run.deployment.pool(key[0])
    return pool.send(run.bot, "liquidationCall", *assets, key[1], MAX_UINT, False, gas=LIQUIDATION_GAS)


def _mine(run: _Run) -> dict[str, dict[str, Any]]:
    """Mine what is queued into one block; its receipts by transaction hash."""
    run.rpc("evm_mine")
    block = run.rpc("eth_getBlockByNumber", ["latest", False])
    return {r["transactionHash"]: r for r in run.rpc("eth_getBlockReceipts", [block["hash"]])}


def _swap_out(receipt: Mapping[str, Any]) -> int:
    """What a single-pool swap paid out: minus the negative amount of its Swap event."""
    for log in receipt["logs"]:
        if log["topics"][0] == SWAP_TOPIC:
            words = [int(log["data"][2 + 64 * i : 66 + 64 * i], 16) for i in range(2)]
            return -min(w - (1 << 256) if w >> 255 else w for w in words)
    raise ShockError(f"no Swap in {receipt['transactionHash']}")


def _approve_router(run: _Run, symbol: str) -> None:
    if (symbol, "router") not in run.funded:
        run.deployment.token(symbol).transact(run.bot, "approve", run.uniswap.router, MAX_UINT, gas=100_000)
        run.funded.add((symbol, "router"))


def _liquidation_event(receipt: Mapping[str, Any], pool: str) -> tuple[int, int]:
    """``debtToCover`` and ``liquidatedCollateralAmount`` of the receipt's LiquidationCall."""
    for log in receipt["logs"]:
        if log["address"].lower() == pool.lower() and log["topics"][0] == LIQUIDATION_TOPIC:
            data = log["data"]
            return int(data[2:66], 16), int(data[66:130], 16)
    raise ShockError(f"no LiquidationCall in {receipt['transactionHash']}")


def _fund_bot(run: _Run, symbol: str, market: str) -> None:
    """Enough of the debt asset for any liquidation, approved for the market's Pool, once."""
    if (symbol, market) in run.funded:
        return
    _gas(run, run.bot)
    token = run.deployment.token(symbol)
    token.transact(run.bot, "mint", run.bot, 10**40, gas=200_000)
    token.transact(run.bot, "approve", run.deployment.markets[market].pool, MAX_UINT, gas=100_000)
    run.funded.add((symbol, market))


def _gas(run: _Run, address: str) -> None:
    run.rpc("anvil_setBalance", [address, hex(WALLET_GAS_ETH)])


# ------------------------------------------------------------------------------------------- feeds


def _update_feeds(run: _Run) -> None:
    # Every feed reads the pools before any of them publishes.
    implied = {symbol: _published(run, symbol, rule) for symbol, rule in sorted(run.feeds.items())}
    for symbol, price in implied.items():
        rule, answer = run.feeds[symbol], _answer(run, symbol)
        run.since_update[symbol] = run.since_update.get(symbol, 0) + run.round_seconds
        if rule.feedback is None:
            moved = abs(price - answer) * 10_000 > rule.deviation_bps * answer
        else:
            moved = deviates(price, answer, rule.deviation_bps / 10_000)
        if moved or run.since_update[symbol] >= rule.heartbeat_s:
            run.deployment.set_price(symbol, price)
            run.since_update[symbol] = 0


def _published(run: _Run, symbol: str, rule: FeedRule) -> int:
    """What the feed would publish now."""
    if rule.feedback is not None:
        reading = run.uniswap.price(symbol, rule.quote) * float(_answer(run, rule.quote))
        return mixed_price(run.market[symbol], reading, rule.feedback)
    pool = run.uniswap.pool(symbol, rule.quote)
    assets = run.deployment.assets
    return implied_price(
        _sqrt_price(run, pool),
        pool.symbol0 == symbol,
        assets[symbol].decimals,
        assets[rule.quote].decimals,
        _answer(run, rule.quote),
    )


def _answer(run: _Run, symbol: str) -> int:
    return int(run.deployment.price_feed(symbol).call("latestAnswer"))


def _answers(run: _Run) -> dict[str, int]:
    return {symbol: _answer(run, symbol) for symbol in sorted(run.deployment.assets)}


def _sqrt_price(run: _Run, pool: PoolDeployment) -> int:
    return int(run.uniswap.contract(pool.address, "UniswapV3Pool").call("slot0")[0])


# ------------------------------------------------------------------------------------------- accounts


def _borrowers(run: _Run) -> list[tuple[str, str]]:
    """(market, user) of everyone who ever borrowed, from the Pools' ``Borrow`` events (``onBehalfOf``)."""
    found = set()
    for name, market in run.deployment.markets.items():
        logs = run.rpc(
            "eth_getLogs",
            [
                {
                    "address": market.pool,
                    "topics": [BORROW_TOPIC],
                    "fromBlock": hex(run.deployment.start_block),
                    "toBlock": "latest",
                }
            ],
        )
        found |= {(name, "0x" + log["topics"][2][-40:]) for log in logs}
    return sorted(found)


def _holding(run: _Run, market: str, user: str) -> Holding:
    deployment = run.deployment
    collateral, debt = {}, {}
    for symbol in deployment.markets[market].reserves:
        supplied = int(deployment.a_token(market, symbol).call("scaledBalanceOf", user))
        owed = int(deployment.v_token(market, symbol).call("scaledBalanceOf", user))
        if supplied:
            collateral[symbol] = supplied
        if owed:
            debt[symbol] = owed
    health = int(deployment.pool(market).call("getUserAccountData", user)[5])
    return Holding(collateral, debt, health)


def _bad_debt(run: _Run, users: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Debt (actual balances) of accounts with debt and no collateral left, by (market, symbol)."""
    found: dict[tuple[str, str], int] = {}
    for market, user in users:
        data = run.deployment.pool(market).call("getUserAccountData", user)
        if int(data[0]) or not int(data[1]):
            continue
        for symbol in run.deployment.markets[market].reserves:
            owed = int(run.deployment.v_token(market, symbol).call("balanceOf", user))
            if owed:
                found[(market, symbol)] = found.get((market, symbol), 0) + owed
    return dict(sorted(found.items()))


# ------------------------------------------------------------------------------------------- Morpho Blue


def _liquidate_any(run: _Run, index: int, market: str, user: str) -> ChainLiquidation | None:
    if market in run.deployment.markets:
        return _liquidate(run, index, market, user)
    return _morpho_liquidate(run, index, market, user)


def _morpho_borrowers(run: _Run) -> list[tuple[str, str]]:
    """(market name, user) of everyone who ever borrowed on a Morpho market (``Borrow``'s ``onBehalf``)."""
    if run.morpho is None:
        return []
    names = {m.id.lower(): name for name, m in run.morpho.markets.items()}
    logs = run.rpc(
        "eth_getLogs",
        [
            {
                "address": run.morpho.address,
                "topics": [MORPHO_BORROW_TOPIC],
                "fromBlock": hex(run.deployment.start_block),
                "toBlock": "latest",
            }
        ],
    )
    found = {(names[log["topics"][1].lower()], "0x" + log["topics"][2][-40:]) for log in logs}
    return sorted(k for k in found if k[0] in names.values())


def _symbol(run: _Run, token: str) -> str:
    for symbol, asset in run.deployment.assets.items():
        if asset.token.lower() == token.lower():
            return symbol
    raise ShockError(f"Morpho token {token} is not a devnet asset")


def _morpho_unhealthy(run: _Run, users: list[tuple[str, str]]) -> list[tuple[int, str, str, str]]:
    """Queue entries (minus the debt at the loan token's feed answer, market id, name, user)."""
    if run.morpho is None:
        return []
    found = []
    for name, user in users:
        if name not in run.morpho.markets:
            continue
        market = run.morpho.market(name)
        state, position = run.morpho.market_state(name), run.morpho.position(name, user)
        owed = _up(
            position.borrow_shares, state.total_borrow_assets + 1, state.total_borrow_shares + VIRTUAL_SHARES
        )
        limit = position.collateral * run.morpho.price(name) // ORACLE_PRICE_SCALE * market.lltv // WAD
        if position.borrow_shares and limit < owed:
            loan = run.deployment.assets[_symbol(run, market.loan_token)]
            debt = owed * _answer(run, _symbol(run, market.loan_token)) // 10**loan.decimals
            found.append((-debt, market.id.lower(), name, user))
    return found


def _up(x: int, y: int, d: int) -> int:
    return (x * y + d - 1) // d


def _incentive(lltv: int) -> int:
    return min(115 * 10**16, WAD * WAD // (WAD - 3 * 10**17 * (WAD - lltv) // WAD))


def _morpho_args(morpho: Morpho, market: MorphoMarket, name: str, user: str) -> tuple[int, int]:
    """``(seizedAssets, repaidShares)``: every borrow share when the collateral covers what they seize,
    else all the collateral, else (rounding) the most collateral whose shares the position has."""
    state, position = morpho.market_state(name), morpho.position(name, user)
    price, factor = morpho.price(name), _incentive(market.lltv)
    assets, shares = state.total_borrow_assets + 1, state.total_borrow_shares + VIRTUAL_SHARES
    seized = position.borrow_shares * assets // shares * factor // WAD * ORACLE_PRICE_SCALE // price
    if seized <= position.collateral:
        return 0, position.borrow_shares

    def cost(amount: int) -> int:
        return _up(_up(_up(amount, price, ORACLE_PRICE_SCALE), WAD, factor), shares, assets)

    low, high = 0, position.collateral
    if cost(high) <= position.borrow_shares:
        return high, 0
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if cost(middle) <= position.borrow_shares else (low, middle)
    return low, 0


def _morpho_liquidate(run: _Run, index: int, name: str, user: str) -> ChainLiquidation | None:
    assert run.morpho is not None  # only Morpho names reach here
    market = run.morpho.market(name)
    collateral, debt = _symbol(run, market.collateral_token), _symbol(run, market.loan_token)
    seized_arg, shares_arg = _morpho_args(run.morpho, market, name, user)
    if not seized_arg and not shares_arg:
        return None
    _gas(run, run.bot)
    if (debt, "morpho") not in run.funded:
        run.deployment.token(debt).transact(run.bot, "mint", run.bot, 10**40, gas=200_000)
        run.funded.add((debt, "morpho"))
    snapshot = run.rpc("evm_snapshot")
    try:
        receipt = run.morpho.liquidate(name, run.bot, user, seized_arg, shares_arg)
    except AaveDeployError:
        run.rpc("evm_revert", [snapshot])
        return None
    repaid, seized, bad = _morpho_event(receipt, run.morpho.address)
    proceeds = run.uniswap.quote_exact_input(collateral, debt, seized).amount_out if seized else 0
    debt_price, unit = _answer(run, debt), 10 ** run.deployment.assets[debt].decimals
    gas, floor = (usd * unit // debt_price for usd in (run.policy.gas_cost, run.policy.min_profit))
    if seized == 0 or proceeds - repaid - gas <= floor:
        run.rpc("evm_revert", [snapshot])
        return None
    sale = run.uniswap.swap_exact_input(run.bot, collateral, debt, seized)
    return ChainLiquidation(
        round=index,
        block=int(sale.receipt["blockNumber"], 16),
        market=name,
        pool=market.id.lower(),
        user=user,
        collateral=collateral,
        debt=debt,
        debt_repaid=repaid,
        collateral_seized=seized,
        proceeds=sale.amount_out,
        protocol="morpho_blue",
        bad_debt=bad,
    )


def _morpho_event(receipt: Mapping[str, Any], morpho: str) -> tuple[int, int, int]:
    """``repaidAssets``, ``seizedAssets`` and ``badDebtAssets`` of the receipt's ``Liquidate``."""
    for log in receipt["logs"]:
        if log["address"].lower() == morpho.lower() and log["topics"][0] == MORPHO_LIQUIDATE_TOPIC:
            words = [int(log["data"][2 + 64 * i : 66 + 64 * i], 16) for i in range(5)]
            return words[0], words[2], words[3]
    raise ShockError(f"no Morpho Liquidate in {receipt['transactionHash']}")


def _morpho_holdings(run: _Run, users: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int]]:
    if run.morpho is None:
        return {}
    found = {}
    for name, user in users:
        if name in run.morpho.markets:
            position = run.morpho.position(name, user)
            found[(name, user)] = (position.borrow_shares, position.collateral)
    return found


def _with_morpho_bad_debt(
    found: dict[tuple[str, str], int], rounds: list[ChainRound]
) -> dict[tuple[str, str], int]:
    """Aave's bad debt plus what Morpho realised (``badDebtAssets``), by (market name, loan symbol)."""
    for x in (x for r in rounds for x in r.liquidations if x.protocol == "morpho_blue" and x.bad_debt):
        found[(x.market, x.debt)] = found.get((x.market, x.debt), 0) + x.bad_debt
    return dict(sorted(found.items()))
