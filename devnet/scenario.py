"""A seeded market scenario on the two Aave markets (and Morpho Blue when deployed): prices, borrowers,
loopers, whales and liquidation bots.

    result = simulate(deployment, days=30, wallets=500, seed=1)

Simulated time moves in hourly steps. Each step the oracles publish the price path where it moved past the
feeds' deviation thresholds (or on the 24 h heartbeat), liquidation bots call ``liquidationCall`` on every
position whose health factor fell under 1, and a few wallets act. Automining is off while it runs: each
phase's transactions are mined together, in submission order, into one block, and block timestamps are set
explicitly (12 s apart, jumping to each step's hour). So a given seed on a given deployment always makes the
same blocks; start anvil with a fixed ``--timestamp`` and deploy with ``anvil_setBlockTimestampInterval(12)``
to get the very same chain, hashes included, on every run.

The price path is a regime-switching random walk (calm / volatile / crash) with Student-t shocks and one
crash forced into the middle third, or a real hourly CSV for ETH (``unix``/``date`` and ``close`` columns)
from which the other assets follow.
"""

from __future__ import annotations

import csv
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_utils.crypto import keccak

from devnet.aave import USD, Contract, Deployment
from devnet.errors import DevnetError
from devnet.governance import Governance
from devnet.governance_agent import Chain, GovernanceAgent, ProposalOutcome
from devnet.morpho import (
    ORACLE_PRICE_SCALE,
    MarketState,
    Morpho,
    MorphoPosition,
    liquidation_incentive_factor,
    max_borrow,
    to_assets_up,
)
from devnet.uniswap import DEADLINE, SWAP_GAS, Uniswap, input_to_move, sqrt_price_x96

STEP_S = 3_600
BLOCK_S = 12
HEARTBEAT_S = 86_400
MAX_UINT = 2**256 - 1
LIQUIDATION_TOPIC = (
    "0x" + keccak(text="LiquidationCall(address,address,address,uint256,uint256,address,bool)").hex()
)
WAD = 10**18
VARIABLE_RATE = 2
WALLET_GAS_ETH = 10**20
# Chainlink-like deviation thresholds: volatile assets 0.5 %, stablecoins 0.1 %.
DEVIATION = {"WETH": 0.005, "WBTC": 0.005, "wstETH": 0.005, "USDC": 0.001, "DAI": 0.001}
EXCHANGES = ("binance-hot-14", "coinbase-prime-1", "kraken-4", "okx-hot-2")
LIQUIDATORS = ("liquidator-1", "liquidator-2", "liquidator-3")
ARBITRAGEUR = "arbitrageur-1"
ARB_SHARE = 0.5  # share of the (log) gap between a pool and the market an arbitrageur closes each hour
ARB_MIN_GAP = 0.001
_REGIMES = {  # hourly drift and volatility of ETH log-returns
    "calm": (0.0, 0.006),
    "volatile": (-0.0005, 0.016),
    "crash": (-0.02, 0.025),
}
_SWITCH = {"calm": ("volatile", 0.01), "volatile": ("calm", 0.04)}


class ScenarioError(DevnetError, ValueError):
    """Bad scenario input (days, wallets, price CSV); raised before anything is sent."""

    exit_code = 2


# ------------------------------------------------------------------------------------------- prices


@dataclass(frozen=True)
class PricePath:
    """USD prices (8 decimals) per hourly step and asset, with the regime of each step."""

    prices: dict[str, list[int]]
    regimes: list[str]
    source: str

    @property
    def steps(self) -> int:
        return len(self.regimes)

    def at(self, step: int) -> dict[str, int]:
        return {symbol: series[step] for symbol, series in self.prices.items()}


def price_path(days: int, seed: int, start: Mapping[str, int], csv_path: Path | None = None) -> PricePath:
    """A seeded path of ``days * 24`` hourly prices for every asset in ``start`` (8-decimal USD).

    Without ``csv_path`` ETH follows a regime-switching walk with fat tails and one crash; with it, ETH
    replays the CSV's first ``days * 24`` hourly closes. BTC, wstETH and the stablecoins follow ETH.
    """
    _check_days(days)
    steps = days * 24
    rng = random.Random(seed)
    if csv_path is None:
        eth, regimes = _regime_walk(steps, rng)
        source, base_eth = "regime-switching", start.get("WETH", 3_000 * USD)
    else:
        closes = read_price_csv(csv_path)
        if len(closes) < steps:
            raise ScenarioError(f"{csv_path} has {len(closes)} hourly closes; {days} days need {steps}")
        eth = [c / closes[0] for c in closes[:steps]]
        regimes = ["replay"] * steps
        source, base_eth = str(csv_path), round(closes[0] * USD)
    return PricePath(_follow(eth, regimes, start, base_eth, rng), regimes, source)


def read_price_csv(path: Path) -> list[float]:
    """Hourly closes, oldest first, from a CSV with a ``unix`` (or ``timestamp``) and a ``close`` column.

    A banner line before the header (as in CryptoDataDownload files) is skipped.
    """
    if not path.is_file():
        raise ScenarioError(f"price CSV {path} does not exist")
    lines = path.read_text().splitlines()
    header = next((i for i, line in enumerate(lines[:5]) if "close" in line.lower().split(",")), None)
    if header is None:
        raise ScenarioError(
            f"{path}: expected a header with a 'close' column and a 'unix' or 'timestamp' column"
        )
    rows = list(csv.DictReader(lines[header:]))
    fields = {name.lower(): name for name in (rows[0].keys() if rows else [])}
    stamp = fields.get("unix") or fields.get("timestamp")
    if stamp is None or "close" not in fields:
        raise ScenarioError(
            f"{path}: expected columns 'close' and 'unix' (or 'timestamp'), got {sorted(fields)}"
        )
    try:
        points = sorted((float(r[stamp]), float(r[fields["close"]])) for r in rows)
    except ValueError as exc:
        raise ScenarioError(f"{path}: a 'close' or time value is not a number ({exc})") from None
    if any(close <= 0 for _, close in points):
        raise ScenarioError(f"{path}: close prices must be positive")
    return [close for _, close in points]


def _regime_walk(steps: int, rng: random.Random) -> tuple[list[float], list[str]]:
    crash_at = rng.randrange(steps // 3, max(steps // 3 + 1, 2 * steps // 3))
    crash_len = rng.randint(10, 24)  # about -20 % to -50 % over half a day to a day
    level, regime, path, regimes = 1.0, "calm", [], []
    for step in range(steps):
        if crash_at <= step < crash_at + crash_len:
            regime = "crash"
        elif regime == "crash":
            regime = "volatile"
        else:
            other, chance = _SWITCH[regime]
            regime = other if rng.random() < chance else regime
        drift, vol = _REGIMES[regime]
        level *= math.exp(drift + vol * _student_t(rng, 4))
        path.append(level)
        regimes.append(regime)
    return path, regimes


def _student_t(rng: random.Random, df: int) -> float:
    """A unit-variance Student-t draw (fat tails)."""
    chi2 = rng.gammavariate(df / 2, 2)
    return rng.gauss(0, 1) / math.sqrt(chi2 / df) * math.sqrt((df - 2) / df)


def _follow(
    eth: Sequence[float], regimes: Sequence[str], start: Mapping[str, int], base_eth: int, rng: random.Random
) -> dict[str, list[int]]:
    ratio = start.get("wstETH", 3_500 * USD) / start.get("WETH", 3_000 * USD)
    prices: dict[str, list[int]] = {s: [] for s in start}
    btc, peg, previous = 1.0, 1.0, 1.0
    for level, regime in zip(eth, regimes, strict=True):
        move = math.log(level / previous)
        previous = level
        btc *= math.exp(0.7 * move + 0.004 * rng.gauss(0, 1))
        # wstETH trades at a discount in a crash (the 2022 stETH depeg) and recovers afterwards.
        peg = max(0.94, peg - 0.002 * rng.random()) if regime == "crash" else min(1.0, peg + 0.0005)
        quotes = {
            "WETH": base_eth * level,
            "WBTC": start.get("WBTC", 60_000 * USD) * btc,
            "wstETH": base_eth * level * ratio * peg,
            "USDC": USD * (1 + 0.0003 * rng.gauss(0, 1)),
            "DAI": USD * (1 + 0.0008 * rng.gauss(0, 1)),
        }
        for symbol in prices:
            prices[symbol].append(max(1, round(quotes.get(symbol, start[symbol]))))
    return prices


def _check_days(days: int) -> None:
    if days <= 0:
        raise ScenarioError(f"days must be positive, got {days}")


# ----------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Liquidation:
    """One ``liquidationCall`` the bots made."""

    block: int
    timestamp: int
    market: str
    user: str
    collateral: str
    debt: str
    liquidator: str
    health_factor: float


@dataclass
class ScenarioResult:
    """What :func:`simulate` did: blocks, counts, liquidations and the address labels it used."""

    seed: int
    days: int
    wallets: int
    first_block: int
    last_block: int
    transactions: int
    reverted: int
    blocks: int
    price_updates: int
    actions: int
    positions: dict[str, int]
    liquidations: list[Liquidation]
    labels: dict[str, str]
    eth_low: int
    eth_high: int
    start_timestamp: int
    wall_s: float = 0.0
    proposals: list[ProposalOutcome] = field(default_factory=list)
    swaps: int = 0
    arbitrage_swaps: int = 0
    morpho_positions: dict[str, int] = field(default_factory=dict)
    morpho_liquidations: list[MorphoLiquidation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Position:
    market: str
    collateral: dict[str, int] = field(default_factory=dict)
    debt: dict[str, int] = field(default_factory=dict)
    emode: bool = False
    calibration: float = 1.0  # chain HF / estimated HF when last checked (interest, rounding)


# -------------------------------------------------------------------------------------------- agents


def label_address(label: str) -> str:
    """A fixed address for a labelled actor (exchange, bot, wallet)."""
    return "0x" + keccak(text=f"chainrisk-devnet:{label}")[-20:].hex()


def simulate(
    deployment: Deployment,
    days: int,
    wallets: int,
    seed: int,
    prices: Path | PricePath | None = None,
    *,
    activity: float = 0.005,
    progress: Callable[[str], None] | None = None,
    governance: Governance | None = None,
    uniswap: Uniswap | None = None,
    feedback: float = 0.0,
    morpho: Morpho | None = None,
) -> ScenarioResult:
    """Run the scenario on a deployed devnet (anvil: it uses time travel and impersonation).

    ``wallets`` borrowers and lenders act over ``days`` of hourly steps; ``activity`` is the chance per
    wallet and hour of an extra action (repay, borrow more, add collateral). ``prices`` is a CSV path, a
    ready :class:`PricePath`, or None for the seeded regime-switching path. With ``governance`` the
    delegates also pass risk-parameter proposals (see :mod:`devnet.governance_agent`) during the run; with
    ``uniswap`` the liquidation bots sell the collateral they seize on its pools (for USDC, else WETH) and
    an arbitrageur moves each pool half way to the price path every hour. ``feedback`` (0 to 1, needs
    ``uniswap``) is the weight of the pool price in what the oracles publish (a geometric mix with the
    path), so liquidation selling moves the oracle price and cascades can build up. With ``morpho`` lenders
    supply its markets, some borrowers also borrow there (against the collateral they post on Aave, or
    looping wstETH/WETH), and the same bots liquidate its unhealthy positions; those decisions draw on a
    stream of their own, so the Aave agents choose as they would without Morpho.
    """
    _check_days(days)
    if wallets < 2:
        raise ScenarioError(f"wallets must be at least 2 (a lender and a borrower), got {wallets}")
    if not 0 <= activity <= 1:
        raise ScenarioError(f"activity is a probability per wallet and hour, got {activity}")
    if not 0 <= feedback <= 1 or (feedback > 0 and uniswap is None):
        raise ScenarioError(f"feedback is a weight in [0, 1] and needs the Uniswap pools, got {feedback}")
    start_prices = {s: a.initial_price for s, a in deployment.assets.items()}
    path = prices if isinstance(prices, PricePath) else price_path(days, seed, start_prices, prices)
    unknown = sorted(set(path.prices) - set(deployment.assets))
    if unknown or path.steps < days * 24:
        raise ScenarioError(f"price path does not fit the deployment (unknown {unknown}, {path.steps} steps)")
    started = time.perf_counter()
    say = progress or (lambda _: None)
    simulation = _Simulation(
        deployment, path, days, wallets, seed, activity, say, governance, uniswap, morpho
    )
    simulation.feedback = feedback
    result = simulation.run()
    result.wall_s = round(time.perf_counter() - started, 3)
    return result


Receipt = dict[str, Any]
OnSuccess = Callable[[Receipt], None]


class _Simulation:
    """The agents. Transactions queue in anvil's pool and are mined together, several blocks per hour."""

    def __init__(
        self,
        deployment: Deployment,
        path: PricePath,
        days: int,
        wallets: int,
        seed: int,
        activity: float,
        progress: Callable[[str], None],
        governance: Governance | None = None,
        uniswap: Uniswap | None = None,
        morpho: Morpho | None = None,
    ) -> None:
        self.d, self.path, self.days, self.seed = deployment, path, days, seed
        self.rng = random.Random(f"agents:{seed}")
        self.activity, self.progress = activity, progress
        self.rpc = deployment.rpc
        self.wallets = [label_address(f"wallet-{seed}-{i}") for i in range(wallets)]
        lenders = max(1, wallets // 20)
        self.lenders, self.borrowers = self.wallets[:lenders], self.wallets[lenders:]
        self.exchanges = {label_address(name): name for name in EXCHANGES}
        self.liquidators = [label_address(name) for name in LIQUIDATORS]
        self.positions: dict[tuple[str, str], _Position] = {}
        self.published: dict[str, tuple[int, int]] = {}  # symbol -> (price, timestamp)
        self.prices = {s: deployment.price(s) for s in deployment.assets}
        self.approved: set[tuple[str, str, str]] = set()
        self.tokens = {s: deployment.token(s) for s in deployment.assets}
        self.feeds = {s: deployment.price_feed(s) for s in deployment.assets}
        self.reserve_tokens = {
            (m, s, kind): deployment.a_token(m, s) if kind == "a" else deployment.v_token(m, s)
            for m in deployment.markets
            for s in deployment.markets[m].reserves
            for kind in ("a", "v")
        }
        self.pools = {m: deployment.pool(m) for m in deployment.markets}
        self.counts = {"transactions": 0, "reverted": 0, "blocks": 0, "price_updates": 0, "actions": 0}
        self.liquidations: list[Liquidation] = []
        self.pending: list[tuple[str, OnSuccess | None]] = []
        self.now = self.origin = 0
        self.agent = GovernanceAgent(governance, days * 24, seed) if governance is not None else None
        self.uniswap = uniswap
        self.router = uniswap.contract(uniswap.router, "SwapRouter") if uniswap is not None else None
        self.seized: list[tuple[str, str, int]] = []  # (bot, collateral symbol, amount) not yet sold
        self.feedback = 0.0
        self.arbitrageur = label_address(ARBITRAGEUR)
        self.chain = Chain(
            send=self._send, mine=self._mine, mine_empty=self._mine_empty, now=lambda: self.now
        )
        self.morpho = _MorphoAgents(self, morpho) if morpho is not None else None

    # -- driver

    def run(self) -> ScenarioResult:
        first = int(self.rpc.rpc("eth_blockNumber"), 16) + 1
        automine = bool(self.rpc.rpc("anvil_getAutomine"))
        self._prepare_node()
        try:
            self._publish(0, force=True)
            self._seed_liquidity()
            self._open_positions()
            if self.morpho is not None:
                self.morpho.open()
            self.progress(f"opened {self._opened()} positions for {len(self.borrowers)} borrowers")
            for step in range(self.days * 24):
                self._step(step)
                if step % 24 == 23:
                    self.progress(
                        f"day {step // 24 + 1}/{self.days}: {len(self.liquidations)} liquidations so far"
                    )
        finally:
            self.rpc.rpc("evm_setAutomine", [automine])
        return self._result(first)

    def _step(self, step: int) -> None:
        self.rpc.rpc("evm_setNextBlockTimestamp", [max(self.origin + step * STEP_S, self.now + BLOCK_S)])
        self._publish(step)
        self._mine()
        self._liquidate()
        self._act()
        if step % 24 == 23:
            self._whales_move()
        if self.morpho is not None:  # queued after the Aave agents' transactions, into the same block
            self.morpho.liquidate()
            self.morpho.act()
            if step % 24 == 23:
                self.morpho.lenders_move()
        self._mine()
        if self.agent is not None:
            self.agent.act(step, self.chain)
        if self.uniswap is not None:
            if self.seized:  # what the bots took on Morpho this hour, sold before the arbitrageur looks
                self._sell_seized()
                self._mine()
            self._arbitrage(step)

    def _result(self, first: int) -> ScenarioResult:
        eth = self.path.prices.get("WETH", [0])[: self.days * 24]
        return ScenarioResult(
            seed=self.seed,
            days=self.days,
            wallets=len(self.wallets),
            first_block=first,
            last_block=int(self.rpc.rpc("eth_blockNumber"), 16),
            transactions=self.counts["transactions"],
            reverted=self.counts["reverted"],
            blocks=self.counts["blocks"],
            price_updates=self.counts["price_updates"],
            actions=self.counts["actions"],
            positions={m: sum(1 for p in self.positions.values() if p.market == m) for m in self.pools},
            liquidations=self.liquidations,
            labels=self._labels(),
            eth_low=min(eth),
            eth_high=max(eth),
            start_timestamp=self.origin,
            proposals=self.agent.outcomes() if self.agent is not None else [],
            swaps=self.counts.get("swaps", 0),
            arbitrage_swaps=self.counts.get("arbitrage", 0),
            morpho_positions=self.morpho.counts() if self.morpho is not None else {},
            morpho_liquidations=self.morpho.liquidations if self.morpho is not None else [],
        )

    def _opened(self) -> str:
        if self.morpho is None:
            return str(len(self.positions))
        return f"{len(self.positions)} Aave and {len(self.morpho.positions)} Morpho"

    def _prepare_node(self) -> None:
        self.rpc.rpc("evm_setAutomine", [False])
        self.rpc.rpc("anvil_autoImpersonateAccount", [True])
        self.rpc.rpc("anvil_setBlockTimestampInterval", [BLOCK_S])
        voters = self.agent.holders_to_fund() if self.agent is not None else []
        voters += [self.arbitrageur] if self.uniswap is not None else []
        for address in [*self.wallets, *self.exchanges, *self.liquidators, *voters]:
            self.rpc.rpc("anvil_setBalance", [address, hex(WALLET_GAS_ETH)])
        latest = self.rpc.rpc("eth_getBlockByNumber", ["latest", False])
        self.now = int(latest["timestamp"], 16)
        self.origin = self.now + BLOCK_S

    # -- transactions

    def _send(
        self,
        contract: Contract,
        sender: str,
        function: str,
        *args: Any,
        gas: int = 1_500_000,
        then: OnSuccess | None = None,
    ) -> None:
        """Queue a transaction; ``then(receipt)`` runs after it is mined, if it succeeded."""
        self.pending.append((contract.send(sender, function, *args, gas=gas), then))

    def _mine(self) -> None:
        """Mine every queued transaction (in submission order); run the callbacks of those that succeeded."""
        while self.pending:
            self.rpc.rpc("evm_mine")
            self.counts["blocks"] += 1
            block = self.rpc.rpc("eth_getBlockByNumber", ["latest", False])
            self.now = int(block["timestamp"], 16)
            receipts = {
                r["transactionHash"]: r for r in self.rpc.rpc("eth_getBlockReceipts", [block["hash"]])
            }
            waiting = []
            for tx_hash, then in self.pending:
                receipt = receipts.get(tx_hash)
                if receipt is None:  # did not fit in the block's gas: goes into the next one
                    waiting.append((tx_hash, then))
                    continue
                self.counts["transactions"] += 1
                if receipt["status"] != "0x1":
                    self.counts["reverted"] += 1
                elif then is not None:
                    then(receipt)
            if len(waiting) == len(self.pending):
                raise RuntimeError(
                    f"anvil mined none of {len(waiting)} queued transactions into {block['hash']}"
                )
            self.pending = waiting

    def _mine_empty(self, blocks: int) -> None:
        """Mine ``blocks`` empty blocks (12 s apart), e.g. to let a voting period pass."""
        for _ in range(blocks):
            self.rpc.rpc("evm_mine")
            self.counts["blocks"] += 1
        if blocks > 0:
            self.now = int(self.rpc.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    # -- oracles

    def _publish(self, step: int, *, force: bool = False) -> None:
        for symbol, price in self._oracle_prices(step).items():
            last = self.published.get(symbol)
            moved = last is None or deviates(price, last[0], DEVIATION.get(symbol, 0.005))
            stale = last is not None and self.now - last[1] >= HEARTBEAT_S
            if force or moved or stale:
                self._send(self.feeds[symbol], self.d.deployer, "setAnswer", price, gas=200_000)
                self.published[symbol] = (price, self.now)
                self.prices[symbol] = price
                self.counts["price_updates"] += 1

    # -- positions

    def _seed_liquidity(self) -> None:
        tokens_each = {"USDC": 400_000, "DAI": 300_000, "WETH": 150, "WBTC": 6, "wstETH": 50}
        scale = max(1.0, len(self.borrowers) / len(self.lenders) / 4)
        for lender in self.lenders:
            for market in self.pools:
                for symbol, units in tokens_each.items():
                    self._supply(lender, market, symbol, self._amount(symbol, units * scale))
        self._mine()

    def _open_positions(self) -> None:
        for wallet in self.borrowers:
            roll = self.rng.random()
            markets = ["aave"] if roll < 0.6 else ["spark"] if roll < 0.85 else ["aave", "spark"]
            looper = self.rng.random() < 0.12
            size = min(5_000_000.0, 30_000 * math.exp(1.1 * self.rng.gauss(0, 1)))
            for market in markets:
                if looper:
                    self._open_loop(wallet, market, size / len(markets))
                else:
                    self._open_borrow(wallet, market, size / len(markets))
        self._mine()

    def _open_borrow(self, wallet: str, market: str, usd: float) -> None:
        collateral = self.rng.choices(["WETH", "WBTC", "wstETH"], weights=[0.5, 0.3, 0.2])[0]
        debt = self.rng.choices(["USDC", "DAI"], weights=[0.6, 0.4])[0]
        target_hf = 1.03 + math.exp(math.log(0.45) + 0.6 * self.rng.gauss(0, 1))
        self._supply(wallet, market, collateral, self._amount_usd(collateral, usd))
        params = self.d.markets[market].reserves[collateral].params
        borrow_usd = usd * min(params.liquidation_threshold / 10_000 / target_hf, params.ltv / 10_000 * 0.99)
        self._borrow(wallet, market, debt, self._amount_usd(debt, borrow_usd))

    def _open_loop(self, wallet: str, market: str, usd: float) -> None:
        """eMode: wstETH collateral, WETH debt at a thin margin; the WETH goes to the other market."""
        emode = self.d.markets[market].emodes[0]
        self._supply(wallet, market, "wstETH", self._amount_usd("wstETH", usd))
        position = self.positions.setdefault((wallet, market), _Position(market))

        def entered(_: Receipt) -> None:
            position.emode = True

        self._send(self.pools[market], wallet, "setUserEMode", emode.category_id, then=entered)
        target_hf = 1.02 + 0.1 * self.rng.random()
        ratio = min(emode.liquidation_threshold / 10_000 / target_hf, emode.ltv / 10_000 * 0.99)
        amount = self._amount_usd("WETH", usd * ratio)
        self._borrow(wallet, market, "WETH", amount)
        other = next((m for m in self.pools if m != market), market)
        self._supply(wallet, other, "WETH", amount, mint=False)  # reverts harmlessly if the borrow did

    def _supply(self, wallet: str, market: str, symbol: str, amount: int, *, mint: bool = True) -> None:
        if amount <= 0:
            return
        token, pool = self.tokens[symbol], self.pools[market]
        if mint:
            self._send(token, wallet, "mint", wallet, amount, gas=120_000)
        self._approve(wallet, symbol, market)
        position = self.positions.setdefault((wallet, market), _Position(market))

        def supplied(_: Receipt) -> None:
            position.collateral[symbol] = position.collateral.get(symbol, 0) + amount

        self._send(pool, wallet, "supply", token.address, amount, wallet, 0, then=supplied)

    def _borrow(self, wallet: str, market: str, symbol: str, amount: int) -> None:
        if amount <= 0:
            return
        position = self.positions.setdefault((wallet, market), _Position(market))

        def borrowed(_: Receipt) -> None:
            position.debt[symbol] = position.debt.get(symbol, 0) + amount

        token = self.tokens[symbol].address
        self._send(
            self.pools[market], wallet, "borrow", token, amount, VARIABLE_RATE, 0, wallet, then=borrowed
        )

    def _approve(self, wallet: str, symbol: str, market: str) -> None:
        key = (wallet, symbol, market)
        if key not in self.approved:
            self._send(
                self.tokens[symbol], wallet, "approve", self.pools[market].address, MAX_UINT, gas=80_000
            )
            self.approved.add(key)

    # -- everyday activity

    def _act(self) -> None:
        actions = {"repay": self._do_repay, "borrow": self._do_borrow, "supply": self._do_supply}
        count = _poisson(self.rng, self.activity * len(self.borrowers))
        keys = sorted(k for k, p in self.positions.items() if p.debt) if count else []
        busy: set[tuple[str, str]] = set()
        for _ in range(count if keys else 0):
            key = self.rng.choice(keys)
            action = self.rng.choices(list(actions), weights=[0.4, 0.35, 0.25])[0]
            if key in busy:  # one action per position and block keeps the bookkeeping exact
                continue
            busy.add(key)
            actions[action](key[0], key[1], self.positions[key])
            self.counts["actions"] += 1

    def _do_repay(self, wallet: str, market: str, position: _Position) -> None:
        symbol = self.rng.choice(sorted(position.debt))
        amount = int(position.debt[symbol] * self.rng.uniform(0.2, 0.6))
        self._send(self.tokens[symbol], wallet, "mint", wallet, amount, gas=120_000)  # income from elsewhere
        self._approve(wallet, symbol, market)

        def repaid(_: Receipt) -> None:
            position.debt[symbol] = max(0, position.debt.get(symbol, 0) - amount)

        token = self.tokens[symbol].address
        self._send(self.pools[market], wallet, "repay", token, amount, VARIABLE_RATE, wallet, then=repaid)

    def _do_borrow(self, wallet: str, market: str, position: _Position) -> None:
        if self._estimate_hf(position) >= 1.5:
            symbol = sorted(position.debt)[0]
            self._borrow(wallet, market, symbol, int(position.debt[symbol] * self.rng.uniform(0.1, 0.3)))

    def _do_supply(self, wallet: str, market: str, position: _Position) -> None:
        if position.collateral:
            symbol = sorted(position.collateral)[0]
            self._supply(
                wallet, market, symbol, int(position.collateral[symbol] * self.rng.uniform(0.05, 0.25))
            )

    def _whales_move(self) -> None:
        """Large transfers between lenders (whales) and labelled exchange addresses."""
        exchanges = sorted(self.exchanges)
        for _ in range(self.rng.randint(1, 3)):
            symbol = self.rng.choice(["WETH", "USDC", "WBTC"])
            whale, exchange = self.rng.choice(self.lenders), self.rng.choice(exchanges)
            amount = self._amount_usd(symbol, self.rng.uniform(1e6, 2e7))
            self._send(self.tokens[symbol], whale, "mint", whale, amount, gas=120_000)
            self._send(self.tokens[symbol], whale, "transfer", exchange, amount, gas=120_000)
            if self.rng.random() < 0.5:
                back = self.rng.choice(self.lenders)
                self._send(self.tokens[symbol], exchange, "transfer", back, amount // 2, gas=120_000)

    # -- liquidations

    def _liquidate(self) -> None:
        """Bots liquidate every position under 1, up to three rounds (one block each) per hour."""
        suspects = [k for k, p in sorted(self.positions.items()) if p.debt and self._estimate_hf(p) < 1.01]
        for _ in range(3):
            unhealthy = [(k, hf) for k in suspects if (hf := self._health(k)) < WAD]
            if not unhealthy:
                return
            for key, hf in unhealthy:
                self._refresh(key)
                self._queue_liquidation(key, hf)
            self._mine()
            self._sell_seized()
            for key, _hf in unhealthy:
                self._refresh(key)
            suspects = [k for k, _ in unhealthy]

    def _health(self, key: tuple[str, str]) -> int:
        """The chain's health factor (wad); also recalibrates the position's estimate."""
        hf = int(self.pools[key[1]].call("getUserAccountData", key[0])[5])
        position = self.positions[key]
        position.calibration = 1.0
        estimate = self._estimate_hf(position)
        if 0 < estimate < math.inf and hf < MAX_UINT:
            position.calibration = hf / WAD / estimate
        return hf

    def _queue_liquidation(self, key: tuple[str, str], hf: int) -> None:
        user, market = key
        position = self.positions[key]
        if not position.debt or not position.collateral:
            return
        debt = max(position.debt, key=lambda s: self._usd(s, position.debt[s]))
        collateral = max(position.collateral, key=lambda s: self._usd(s, position.collateral[s]))
        bot = self.rng.choice(self.liquidators)
        self._send(self.tokens[debt], bot, "mint", bot, position.debt[debt], gas=120_000)
        self._approve(bot, debt, market)

        def liquidated(receipt: Receipt) -> None:
            record = Liquidation(
                block=int(receipt["blockNumber"], 16),
                timestamp=self.now,
                market=market,
                user=user,
                collateral=collateral,
                debt=debt,
                liquidator=bot,
                health_factor=hf / WAD,
            )
            self.liquidations.append(record)
            if self.router is not None:
                self.seized.append((bot, collateral, _seized_amount(receipt, self.pools[market].address)))

        assets = (self.tokens[collateral].address, self.tokens[debt].address)
        self._send(
            self.pools[market], bot, "liquidationCall", *assets, user, MAX_UINT, False, then=liquidated
        )

    def _oracle_prices(self, step: int) -> dict[str, int]:
        """The path's prices, mixed with the pools' (weight ``feedback``) where there is a pool."""
        market = self.path.at(step)
        if self.uniswap is None or self.feedback <= 0:
            return market
        pools = self._pool_usd(market)
        return {s: mixed_price(p, pools[s], self.feedback) if s in pools else p for s, p in market.items()}

    def _pool_usd(self, market: Mapping[str, int]) -> dict[str, float]:
        """USD prices (8 decimals) the pools imply, starting from the stablecoins' path prices."""
        assert self.uniswap is not None
        usd: dict[str, float] = {s: float(market[s]) for s in ("USDC", "DAI") if s in market}
        for name in self.uniswap.pools:
            base, quote = name.split("/")
            if base not in usd and quote in usd:
                usd[base] = self.uniswap.price(base, quote) * usd[quote]
        return usd

    def _arbitrage(self, step: int) -> None:
        """Move every pool part of the way to the path's price (the wider market), one swap each."""
        assert self.uniswap is not None and self.router is not None
        market = self.path.at(step)
        for pool in self.uniswap.pools.values():
            contract = self.uniswap.contract(pool.address, "UniswapV3Pool")
            current = int(contract.call("slot0")[0])
            a0, a1 = self.d.assets[pool.symbol0], self.d.assets[pool.symbol1]
            target = sqrt_price_x96(market[pool.symbol0], market[pool.symbol1], a0.decimals, a1.decimals)
            goal = round(current * (target / current) ** ARB_SHARE)
            if abs(goal / current - 1) < ARB_MIN_GAP / 2:
                continue
            zero_for_one, amount = input_to_move(int(contract.call("liquidity")), current, goal, pool.fee)
            sell = a0.symbol if zero_for_one else a1.symbol
            buy = a1.symbol if zero_for_one else a0.symbol
            token = self.tokens[sell]
            self._send(token, self.arbitrageur, "mint", self.arbitrageur, amount, gas=120_000)
            if (self.arbitrageur, sell, "uniswap") not in self.approved:
                self._send(token, self.arbitrageur, "approve", self.router.address, MAX_UINT, gas=80_000)
                self.approved.add((self.arbitrageur, sell, "uniswap"))
            params = (
                token.address,
                self.tokens[buy].address,
                pool.fee,
                self.arbitrageur,
                DEADLINE,
                amount,
                0,
                goal,
            )
            self._send(
                self.router, self.arbitrageur, "exactInputSingle", params, gas=SWAP_GAS, then=self._arbitraged
            )
        self._mine()

    def _arbitraged(self, _: Receipt) -> None:
        self.counts["arbitrage"] = self.counts.get("arbitrage", 0) + 1

    def _sell_seized(self) -> None:
        """Bots sell the collateral they just seized on Uniswap (mined with the next batch)."""
        if self.uniswap is None or self.router is None:
            return
        for bot, symbol, amount in self.seized:
            target = next((t for t in ("USDC", "WETH") if t != symbol and self._has_pool(symbol, t)), None)
            if target is None or amount <= 0:
                continue
            token = self.tokens[symbol]
            if (bot, symbol, "uniswap") not in self.approved:
                self._send(token, bot, "approve", self.router.address, MAX_UINT, gas=80_000)
                self.approved.add((bot, symbol, "uniswap"))
            fee = self.uniswap.pool(symbol, target).fee
            params = (token.address, self.tokens[target].address, fee, bot, DEADLINE, amount, 0, 0)
            self._send(self.router, bot, "exactInputSingle", params, gas=SWAP_GAS, then=self._sold)
        self.seized = []

    def _sold(self, _: Receipt) -> None:
        self.counts["swaps"] = self.counts.get("swaps", 0) + 1

    def _has_pool(self, base: str, quote: str) -> bool:
        assert self.uniswap is not None
        return any({p.symbol0, p.symbol1} == {base, quote} for p in self.uniswap.pools.values())

    def _refresh(self, key: tuple[str, str]) -> None:
        """Re-read the position's balances (interest and liquidations change them)."""
        user, market = key
        position = self.positions[key]
        for symbol in sorted({*position.collateral, *position.debt}):
            supplied = self.reserve_tokens[(market, symbol, "a")].call("balanceOf", user)
            position.collateral[symbol] = int(supplied)
            position.debt[symbol] = int(self.reserve_tokens[(market, symbol, "v")].call("balanceOf", user))
        position.collateral = {s: v for s, v in position.collateral.items() if v > 0}
        position.debt = {s: v for s, v in position.debt.items() if v > 0}

    def _estimate_hf(self, position: _Position) -> float:
        reserves = self.d.markets[position.market].reserves
        emode = self.d.markets[position.market].emodes[0] if position.emode else None
        weighted = 0.0
        for symbol, amount in position.collateral.items():
            threshold = reserves[symbol].params.liquidation_threshold
            if self.agent is not None:  # executed proposals change thresholds
                threshold = self.agent.overrides.get((position.market, symbol), (0, threshold))[1]
            if emode is not None and symbol in emode.assets:
                threshold = emode.liquidation_threshold
                if self.agent is not None:  # and eMode categories
                    key = (position.market, emode.category_id)
                    threshold = self.agent.emode_thresholds.get(key, threshold)
            weighted += self._usd(symbol, amount) * threshold / 10_000
        debt = sum(self._usd(s, a) for s, a in position.debt.items())
        return math.inf if debt <= 0 else weighted / debt * position.calibration

    # -- units

    def _scale(self, symbol: str) -> int:
        scale: int = 10 ** self.d.assets[symbol].decimals
        return scale

    def _usd(self, symbol: str, amount: int) -> float:
        return amount * self.prices[symbol] / USD / self._scale(symbol)

    def _amount_usd(self, symbol: str, usd: float) -> int:
        return int(usd * USD / self.prices[symbol] * self._scale(symbol))

    def _amount(self, symbol: str, units: float) -> int:
        return int(units * self._scale(symbol))

    def _labels(self) -> dict[str, str]:
        labels = {a: f"lender-{i}" for i, a in enumerate(self.lenders)}
        labels |= {a: f"borrower-{i}" for i, a in enumerate(self.borrowers)}
        labels |= dict(self.exchanges)
        labels |= dict(zip(self.liquidators, LIQUIDATORS, strict=True))
        return labels


def mixed_price(market: int, pool: float, feedback: float) -> int:
    """What a feed publishes with ``feedback``: the geometric mix of the market's price and the pool's."""
    mixed: float = market ** (1 - feedback) * pool**feedback
    return round(mixed)


def deviates(price: int, last: int, threshold: float) -> bool:
    """Whether a feed publishes ``price`` after ``last``: it moved by the threshold (a fraction) or more."""
    return abs(price / last - 1) >= threshold


def _seized_amount(receipt: Receipt, pool: str) -> int:
    """``liquidatedCollateralAmount`` of the receipt's LiquidationCall event (0 if there is none)."""
    for log in receipt["logs"]:
        if log["address"].lower() == pool and log["topics"][0] == LIQUIDATION_TOPIC:
            return int(log["data"][2 + 64 : 2 + 128], 16)
    return 0


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; the means here are small."""
    if mean <= 0:
        return 0
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


# ---------------------------------------------------------------------------------------------- Morpho

MORPHO_COLLATERAL_MARKET = {"WETH": "WETH/USDC", "WBTC": "WBTC/USDC", "wstETH": "wstETH/WETH"}
LOOP_MARKET = "wstETH/WETH"
MORPHO_BOTH = 0.2  # share of borrowers that borrow on Morpho against the collateral they use on Aave
MORPHO_LOOPERS = 0.1  # share that loops wstETH/WETH on Morpho
MORPHO_OTHERS = 0.1  # share that borrows on a random Morpho market
MORPHO_LOOP_ROUNDS = 3
MORPHO_SUSPECT = 1.01  # estimated health under which a bot reads the position from the chain
LIQUIDATE_TOPIC = (
    "0x" + keccak(text="Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)").hex()
)


@dataclass(frozen=True)
class MorphoLiquidation:
    """One Morpho ``liquidate`` the bots made, with the amounts of its Liquidate event."""

    block: int
    timestamp: int
    market: str
    user: str
    liquidator: str
    health: float  # max borrow / borrowed, below 1
    repaid_assets: int
    seized_assets: int
    bad_debt_assets: int


@dataclass
class _MorphoPosition:
    market: str
    collateral: int = 0  # collateral-token units
    borrowed: int = 0  # loan-token units, as of the last refresh
    calibration: float = 1.0  # chain health / estimated health when last checked


class _MorphoAgents:
    """Morpho activity inside a :class:`_Simulation`: lenders, borrowers (some also on Aave), wstETH/WETH
    loopers and the same liquidation bots. Its decisions come from their own random stream, so adding Morpho
    leaves the Aave agents' choices as they were."""

    def __init__(self, sim: _Simulation, morpho: Morpho) -> None:
        self.sim, self.morpho = sim, morpho
        self.rng = random.Random(f"morpho:{sim.seed}")
        self.contract = morpho.contract()
        self.positions: dict[tuple[str, str], _MorphoPosition] = {}
        self.supplied: dict[tuple[str, str], int] = {}  # (lender, market) -> assets supplied
        self.liquidations: list[MorphoLiquidation] = []
        self.liquidating: set[tuple[str, str]] = set()  # positions liquidated in the block being filled

    # -- opening

    def open(self) -> None:
        """Lenders supply what the borrowers will take (at 75-90 % utilisation), then borrowers open their
        positions; all mined together."""
        plans = [plan for wallet in self.sim.borrowers if (plan := self._plan(wallet)) is not None]
        demand: dict[str, float] = {}
        for _, name, usd, health, rounds in plans:
            ratio = self._lltv(name) / health
            demand[name] = demand.get(name, 0.0) + usd * ratio * sum(ratio**i for i in range(rounds))
        for name in self.morpho.markets:
            usd = max(demand.get(name, 0.0), 100_000.0) / self.rng.uniform(0.75, 0.9)
            for lender in self.sim.lenders:
                self._supply(
                    lender, name, self.sim._amount_usd(self._loan(name), usd / len(self.sim.lenders))
                )
        for wallet, name, usd, health, rounds in plans:
            self._open(wallet, name, usd, health, rounds)
        self.sim._mine()

    def _plan(self, wallet: str) -> tuple[str, str, float, float, int] | None:
        """``(wallet, market, collateral USD, health, loop rounds)`` for a borrower, or None for none."""
        roll, usd = self.rng.random(), min(2_000_000.0, 25_000 * math.exp(self.rng.gauss(0, 1)))
        health = 1.03 + math.exp(math.log(0.3) + 0.6 * self.rng.gauss(0, 1))
        if roll < MORPHO_BOTH:
            markets = self._aave_collateral_markets(wallet)
            return (wallet, self.rng.choice(markets), usd, health, 1) if markets else None
        if roll < MORPHO_BOTH + MORPHO_LOOPERS and LOOP_MARKET in self.morpho.markets:
            return wallet, LOOP_MARKET, usd, 1.012 + 0.05 * self.rng.random(), MORPHO_LOOP_ROUNDS
        if roll < MORPHO_BOTH + MORPHO_LOOPERS + MORPHO_OTHERS:
            return wallet, self.rng.choice(sorted(self.morpho.markets)), usd, health, 1
        return None

    def _aave_collateral_markets(self, wallet: str) -> list[str]:
        """The Morpho markets whose collateral the wallet posts on Aave (where it also borrows)."""
        posted = sorted(
            {s for (w, _), p in self.sim.positions.items() if w == wallet and p.debt for s in p.collateral}
        )
        return [m for s in posted if (m := MORPHO_COLLATERAL_MARKET.get(s)) and m in self.morpho.markets]

    def _open(self, wallet: str, name: str, usd: float, health: float, rounds: int) -> None:
        """Post collateral and borrow; a loop puts what it borrowed back in as collateral (as if swapped) and
        borrows again, ``rounds`` times at the same health."""
        ratio = self._lltv(name) / health
        for _ in range(rounds):
            self._supply_collateral(wallet, name, self.sim._amount_usd(self._collateral(name), usd))
            self._borrow(wallet, name, self._loan_for(name, usd, health))
            usd *= ratio

    def _loan_for(self, name: str, collateral_usd: float, health: float) -> int:
        return self.sim._amount_usd(self._loan(name), collateral_usd * self._lltv(name) / health)

    # -- transactions

    def _approve(self, wallet: str, symbol: str) -> None:
        key = (wallet, symbol, "morpho")
        if key not in self.sim.approved:
            token = self.sim.tokens[symbol]
            self.sim._send(token, wallet, "approve", self.morpho.address, MAX_UINT, gas=80_000)
            self.sim.approved.add(key)

    def _supply(self, lender: str, name: str, amount: int) -> None:
        if amount <= 0:
            return
        loan = self._loan(name)
        self.sim._send(self.sim.tokens[loan], lender, "mint", lender, amount, gas=120_000)
        self._approve(lender, loan)
        key = (lender, name)

        def supplied(_: Receipt) -> None:
            self.supplied[key] = self.supplied.get(key, 0) + amount

        params = self.morpho.market(name).params
        self.sim._send(self.contract, lender, "supply", params, amount, 0, lender, b"", then=supplied)

    def _supply_collateral(self, wallet: str, name: str, amount: int) -> None:
        if amount <= 0:
            return
        symbol = self._collateral(name)
        self.sim._send(self.sim.tokens[symbol], wallet, "mint", wallet, amount, gas=120_000)
        self._approve(wallet, symbol)
        position = self.positions.setdefault((wallet, name), _MorphoPosition(name))

        def posted(_: Receipt) -> None:
            position.collateral += amount

        params = self.morpho.market(name).params
        self.sim._send(self.contract, wallet, "supplyCollateral", params, amount, wallet, b"", then=posted)

    def _borrow(self, wallet: str, name: str, amount: int) -> None:
        if amount <= 0:
            return
        position = self.positions.setdefault((wallet, name), _MorphoPosition(name))

        def borrowed(_: Receipt) -> None:
            position.borrowed += amount

        params = self.morpho.market(name).params
        self.sim._send(self.contract, wallet, "borrow", params, amount, 0, wallet, wallet, then=borrowed)

    def _repay(self, wallet: str, name: str, amount: int) -> None:
        loan = self._loan(name)
        self.sim._send(self.sim.tokens[loan], wallet, "mint", wallet, amount, gas=120_000)
        self._approve(wallet, loan)
        position = self.positions[(wallet, name)]

        def repaid(_: Receipt) -> None:
            position.borrowed = max(0, position.borrowed - amount)

        params = self.morpho.market(name).params
        self.sim._send(self.contract, wallet, "repay", params, amount, 0, wallet, b"", then=repaid)

    # -- everyday activity

    def act(self) -> None:
        """A few borrowers repay, borrow more or add collateral (each call accrues the market's interest)."""
        keys = sorted(k for k, p in self.positions.items() if p.borrowed > 0 and k not in self.liquidating)
        count = _poisson(self.rng, self.sim.activity * 2 * len(keys)) if keys else 0
        busy: set[tuple[str, str]] = set()
        for _ in range(count):
            key = self.rng.choice(keys)
            action = self.rng.choices(("repay", "borrow", "collateral"), weights=[0.4, 0.35, 0.25])[0]
            if key in busy:
                continue
            busy.add(key)
            self._do(action, key, self.positions[key])
            self.sim.counts["actions"] += 1

    def _do(self, action: str, key: tuple[str, str], position: _MorphoPosition) -> None:
        wallet, name = key
        if action == "repay":
            self._repay(wallet, name, int(position.borrowed * self.rng.uniform(0.2, 0.6)))
        elif action == "borrow" and self._estimate(position) >= 1.5:
            self._borrow(wallet, name, int(position.borrowed * self.rng.uniform(0.1, 0.3)))
        elif action == "collateral":
            self._supply_collateral(wallet, name, int(position.collateral * self.rng.uniform(0.05, 0.25)))

    def lenders_move(self) -> None:
        """Once a day one lender per market adds to or takes from its supply (accruing the market)."""
        for name in sorted(self.morpho.markets):
            lender = self.rng.choice(self.sim.lenders)
            supplied = self.supplied.get((lender, name), 0)
            if self.rng.random() < 0.7 or supplied <= 0:
                self._supply(lender, name, int(max(supplied, 10**6) * self.rng.uniform(0.01, 0.05)))
                continue
            state = self.morpho.market_state(name)
            amount = int(supplied * self.rng.uniform(0.01, 0.03))
            if 0 < amount < (state.total_supply_assets - state.total_borrow_assets) // 2:
                self._withdraw(lender, name, amount)

    def _withdraw(self, lender: str, name: str, amount: int) -> None:
        key = (lender, name)

        def withdrawn(_: Receipt) -> None:
            self.supplied[key] = max(0, self.supplied.get(key, 0) - amount)

        params = self.morpho.market(name).params
        self.sim._send(self.contract, lender, "withdraw", params, amount, 0, lender, lender, then=withdrawn)

    # -- liquidations

    def liquidate(self) -> None:
        """Bots liquidate every Morpho position the chain finds unhealthy (queued with the hour's actions)."""
        suspects = [
            k for k, p in sorted(self.positions.items()) if p.borrowed and self._estimate(p) < MORPHO_SUSPECT
        ]
        self.liquidating = set()
        for key in suspects:
            chain = self._read(key)
            if chain is not None:
                self._queue_liquidation(key, *chain)

    def _read(self, key: tuple[str, str]) -> tuple[MorphoPosition, MarketState, int, float] | None:
        """The position as the chain has it (refreshing the estimate); None while it is healthy."""
        wallet, name = key
        position, state, price = (
            self.morpho.position(name, wallet),
            self.morpho.market_state(name),
            self.morpho.price(name),
        )
        tracked = self.positions[key]
        tracked.collateral = position.collateral
        tracked.borrowed = to_assets_up(
            position.borrow_shares, state.total_borrow_assets, state.total_borrow_shares
        )
        tracked.calibration = 1.0
        if tracked.borrowed <= 0:
            return None
        health = max_borrow(position.collateral, price, self._lltv_wad(name)) / tracked.borrowed
        estimate = self._estimate(tracked)
        if 0 < estimate < math.inf:
            tracked.calibration = health / estimate
        return (position, state, price, health) if health < 1 else None

    def _queue_liquidation(
        self, key: tuple[str, str], position: MorphoPosition, state: MarketState, price: int, health: float
    ) -> None:
        wallet, name = key
        self.liquidating.add(key)  # its owner does nothing else in that block
        tracked, lif = self.positions[key], liquidation_incentive_factor(self._lltv_wad(name))
        seize, shares = _liquidation_sizes(position, tracked.borrowed, price, lif)
        bot, loan = self.rng.choice(self.sim.liquidators), self._loan(name)
        self.sim._send(self.sim.tokens[loan], bot, "mint", bot, 2 * tracked.borrowed + 10, gas=120_000)
        self._approve(bot, loan)

        def liquidated(receipt: Receipt) -> None:
            repaid, _shares, seized, bad_debt = _liquidate_amounts(receipt, self.morpho.address)
            block = int(receipt["blockNumber"], 16)
            record = MorphoLiquidation(
                block, self.sim.now, name, wallet, bot, health, repaid, seized, bad_debt
            )
            self.liquidations.append(record)
            tracked.collateral = max(0, tracked.collateral - seized)
            tracked.borrowed = max(0, tracked.borrowed - repaid - bad_debt)
            if self.sim.router is not None:
                self.sim.seized.append((bot, self._collateral(name), seized))

        params = self.morpho.market(name).params
        self.sim._send(self.contract, bot, "liquidate", params, wallet, seize, shares, b"", then=liquidated)

    # -- estimates and units

    def _estimate(self, position: _MorphoPosition) -> float:
        if position.borrowed <= 0:
            return math.inf
        name = position.market
        limit = self.sim._usd(self._collateral(name), position.collateral) * self._lltv(name)
        return limit / self.sim._usd(self._loan(name), position.borrowed) * position.calibration

    def _collateral(self, name: str) -> str:
        return self.sim.d.symbol_of(self.morpho.market(name).collateral_token)

    def _loan(self, name: str) -> str:
        return self.sim.d.symbol_of(self.morpho.market(name).loan_token)

    def _lltv_wad(self, name: str) -> int:
        return self.morpho.market(name).lltv

    def _lltv(self, name: str) -> float:
        return self._lltv_wad(name) / WAD

    def counts(self) -> dict[str, int]:
        """Positions opened per Morpho market."""
        return {
            name: sum(1 for p in self.positions.values() if p.market == name) for name in self.morpho.markets
        }


def _liquidation_sizes(position: MorphoPosition, borrowed: int, price: int, lif: int) -> tuple[int, int]:
    """``(seizedAssets, repaidShares)`` for a liquidation that closes the position: all the collateral
    when it cannot cover the debt with the incentive (the rest becomes bad debt), else all the shares.
    Next to the boundary, where interest accrued in the liquidation's block could make either overshoot,
    half the collateral."""
    covers = position.collateral * price // ORACLE_PRICE_SCALE * WAD // lif  # debt all collateral repays
    if covers * 1000 <= borrowed * 999:
        return position.collateral, 0
    if covers * 1000 >= borrowed * 1002:
        return 0, position.borrow_shares
    return position.collateral // 2, 0


def _liquidate_amounts(receipt: Receipt, morpho: str) -> tuple[int, int, int, int]:
    """``(repaidAssets, repaidShares, seizedAssets, badDebtAssets)`` of the receipt's Liquidate event."""
    for log in receipt["logs"]:
        if log["address"].lower() == morpho and log["topics"][0] == LIQUIDATE_TOPIC:
            words = [int(log["data"][2 + 64 * i : 66 + 64 * i], 16) for i in range(4)]
            return words[0], words[1], words[2], words[3]
    return 0, 0, 0, 0
