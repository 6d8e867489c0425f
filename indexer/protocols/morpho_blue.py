"""Morpho Blue 1.0.0: its events and its maths in exact integers, as ``Morpho.sol`` computes them.

Events are those of ``src/libraries/EventsLib.sol`` (``@morpho-org/morpho-blue`` 1.0.0). A market id is a
``bytes32`` (``Id``); ``CreateMarket`` carries the ``MarketParams`` struct, a static tuple whose ABI
encoding is its five words in a row, so its table has one column per field.

The maths follows ``MathLib``, ``SharesMathLib``, ``UtilsLib`` and ``Morpho.sol``:

- shares ↔ assets with ``VIRTUAL_SHARES = 1e6`` and ``VIRTUAL_ASSETS = 1``, rounding as named;
- a position is healthy iff ``wMulDown(mulDivDown(collateral, price, 1e36), lltv)`` is at least
  ``toAssetsUp(borrowShares)`` (``Morpho._isHealthy``; a position without borrow shares always is);
- the liquidation incentive factor is ``min(1.15e18, wDivDown(1e18, 1e18 − wMulDown(0.3e18, 1e18 − lltv)))``.

`Ledger` replays a market's events into its stored state (``Morpho.market(id)`` and ``position(id, user)``),
in log order: the totals cannot be summed independently because ``repay`` and ``liquidate`` floor the
total borrow at zero (``zeroFloorSub``). Every operation raises ``OverflowError`` where the contract would
revert on a uint256 (or uint128 storage) overflow and ``ZeroDivisionError`` where it would divide by zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from indexer.events import EventSpec, event

UINT256_MAX = 2**256 - 1
UINT128_MAX = 2**128 - 1
WAD = 10**18
ORACLE_PRICE_SCALE = 10**36
VIRTUAL_SHARES = 10**6
VIRTUAL_ASSETS = 1
LIQUIDATION_CURSOR = 3 * 10**17
MAX_LIQUIDATION_INCENTIVE_FACTOR = 115 * 10**16
MAX_FEE = 25 * 10**16
NO_DEBT_HEALTH_FACTOR = UINT256_MAX
ZERO_ADDRESS = "0x" + "00" * 20


class _StructEventSpec(EventSpec):
    """An event whose last parameter is a struct of static fields, stored one column per field.

    The fields are declared flat (their data words are the same); the signature, and so topic0, spells the
    struct as the tuple of its field types, as Solidity does.
    """

    struct_fields: int = 0

    @cached_property
    def signature(self) -> str:
        n = self.struct_fields
        head = [p.type for p in self.params[: len(self.params) - n]]
        tail = "(" + ",".join(p.type for p in self.params[len(self.params) - n :]) + ")"
        return f"{self.name}({','.join([*head, tail])})"


def _struct_event(declaration: str, table: str, struct_fields: int) -> EventSpec:
    flat = event(declaration, table)
    spec = _StructEventSpec(name=flat.name, params=flat.params, table=flat.table)
    object.__setattr__(spec, "struct_fields", struct_fields)
    return spec


CREATE_MARKET = _struct_event(
    "CreateMarket(bytes32 indexed id, address loanToken, address collateralToken, address oracle,"
    " address irm, uint256 lltv)",
    "morpho_blue_create_market",
    struct_fields=5,
)
SUPPLY = event(
    "Supply(bytes32 indexed id, address indexed caller, address indexed onBehalf, uint256 assets,"
    " uint256 shares)",
    "morpho_blue_supply",
)
WITHDRAW = event(
    "Withdraw(bytes32 indexed id, address caller, address indexed onBehalf, address indexed receiver,"
    " uint256 assets, uint256 shares)",
    "morpho_blue_withdraw",
)
BORROW = event(
    "Borrow(bytes32 indexed id, address caller, address indexed onBehalf, address indexed receiver,"
    " uint256 assets, uint256 shares)",
    "morpho_blue_borrow",
)
REPAY = event(
    "Repay(bytes32 indexed id, address indexed caller, address indexed onBehalf, uint256 assets,"
    " uint256 shares)",
    "morpho_blue_repay",
)
SUPPLY_COLLATERAL = event(
    "SupplyCollateral(bytes32 indexed id, address indexed caller, address indexed onBehalf, uint256 assets)",
    "morpho_blue_supply_collateral",
)
WITHDRAW_COLLATERAL = event(
    "WithdrawCollateral(bytes32 indexed id, address caller, address indexed onBehalf,"
    " address indexed receiver, uint256 assets)",
    "morpho_blue_withdraw_collateral",
)
LIQUIDATE = event(
    "Liquidate(bytes32 indexed id, address indexed caller, address indexed borrower, uint256 repaidAssets,"
    " uint256 repaidShares, uint256 seizedAssets, uint256 badDebtAssets, uint256 badDebtShares)",
    "morpho_blue_liquidate",
)
ACCRUE_INTEREST = event(
    "AccrueInterest(bytes32 indexed id, uint256 prevBorrowRate, uint256 interest, uint256 feeShares)",
    "morpho_blue_accrue_interest",
)
SET_FEE = event("SetFee(bytes32 indexed id, uint256 newFee)", "morpho_blue_set_fee")
SET_FEE_RECIPIENT = event("SetFeeRecipient(address indexed newFeeRecipient)", "morpho_blue_set_fee_recipient")
SET_OWNER = event("SetOwner(address indexed newOwner)", "morpho_blue_set_owner")
ENABLE_IRM = event("EnableIrm(address indexed irm)", "morpho_blue_enable_irm")
ENABLE_LLTV = event("EnableLltv(uint256 lltv)", "morpho_blue_enable_lltv")
FLASH_LOAN = event(
    "FlashLoan(address indexed caller, address indexed token, uint256 assets)", "morpho_blue_flash_loan"
)
SET_AUTHORIZATION = event(
    "SetAuthorization(address indexed caller, address indexed authorizer, address indexed authorized,"
    " bool newIsAuthorized)",
    "morpho_blue_set_authorization",
)
INCREMENT_NONCE = event(
    "IncrementNonce(address indexed caller, address indexed authorizer, uint256 usedNonce)",
    "morpho_blue_increment_nonce",
)

EVENTS = (
    CREATE_MARKET,
    SUPPLY,
    WITHDRAW,
    BORROW,
    REPAY,
    SUPPLY_COLLATERAL,
    WITHDRAW_COLLATERAL,
    LIQUIDATE,
    ACCRUE_INTEREST,
    SET_FEE,
    SET_FEE_RECIPIENT,
    SET_OWNER,
    ENABLE_IRM,
    ENABLE_LLTV,
    FLASH_LOAN,
    SET_AUTHORIZATION,
    INCREMENT_NONCE,
)

# Events after which the market's lastUpdate is the block's timestamp: each runs _accrueInterest first
# (which returns early only when lastUpdate already is the block's timestamp), createMarket sets it.
ACCRUING_EVENTS = (CREATE_MARKET, SUPPLY, WITHDRAW, BORROW, REPAY, WITHDRAW_COLLATERAL, LIQUIDATE, SET_FEE)


# ----------------------------------------------------------------------------------------- MathLib


def _u256(value: int) -> int:
    if value > UINT256_MAX:
        raise OverflowError("uint256 overflow")
    return value


def _u128(value: int) -> int:
    # UtilsLib.toUint128 reverts above 2^128 - 1 (MAX_UINT128_EXCEEDED); storage fields are uint128.
    if not 0 <= value <= UINT128_MAX:
        raise OverflowError("uint128 overflow or underflow")
    return value


def mul_div_down(x: int, y: int, d: int) -> int:
    """``MathLib.mulDivDown``: x·y / d rounded down."""
    return _u256(x * y) // d


def mul_div_up(x: int, y: int, d: int) -> int:
    """``MathLib.mulDivUp``: (x·y + d − 1) / d."""
    return _u256(_u256(x * y) + (d - 1)) // d


def w_mul_down(x: int, y: int) -> int:
    """``MathLib.wMulDown``: x·y / 1e18 rounded down."""
    return mul_div_down(x, y, WAD)


def w_div_down(x: int, y: int) -> int:
    """``MathLib.wDivDown``: x·1e18 / y rounded down."""
    return mul_div_down(x, WAD, y)


def w_div_up(x: int, y: int) -> int:
    """``MathLib.wDivUp``: x·1e18 / y rounded up."""
    return mul_div_up(x, WAD, y)


def w_taylor_compounded(x: int, n: int) -> int:
    """``MathLib.wTaylorCompounded``: the first three terms of e^(x·n) − 1, in wad."""
    first = _u256(x * n)
    second = mul_div_down(first, first, 2 * WAD)
    third = mul_div_down(second, first, 3 * WAD)
    return _u256(first + second + third)


def zero_floor_sub(x: int, y: int) -> int:
    """``UtilsLib.zeroFloorSub``: max(0, x − y)."""
    return x - y if x > y else 0


# ----------------------------------------------------------------------------------- SharesMathLib


def to_shares_down(assets: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toSharesDown``."""
    return mul_div_down(assets, total_shares + VIRTUAL_SHARES, total_assets + VIRTUAL_ASSETS)


def to_assets_down(shares: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toAssetsDown``."""
    return mul_div_down(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


def to_shares_up(assets: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toSharesUp``."""
    return mul_div_up(assets, total_shares + VIRTUAL_SHARES, total_assets + VIRTUAL_ASSETS)


def to_assets_up(shares: int, total_assets: int, total_shares: int) -> int:
    """``SharesMathLib.toAssetsUp``."""
    return mul_div_up(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


# ------------------------------------------------------------------------------------ market state


@dataclass(slots=True)
class MarketTotals:
    """``Morpho.market(id)``: stored totals (interest accrued up to ``last_update`` only) and the fee."""

    total_supply_assets: int = 0
    total_supply_shares: int = 0
    total_borrow_assets: int = 0
    total_borrow_shares: int = 0
    last_update: int = 0
    fee: int = 0

    def borrowed(self, borrow_shares: int) -> int:
        """Assets owed for ``borrow_shares`` (``toAssetsUp`` on the borrow side, as ``_isHealthy``)."""
        return to_assets_up(borrow_shares, self.total_borrow_assets, self.total_borrow_shares)

    def supplied(self, supply_shares: int) -> int:
        """Assets withdrawable for ``supply_shares`` (``toAssetsDown`` on the supply side)."""
        return to_assets_down(supply_shares, self.total_supply_assets, self.total_supply_shares)


@dataclass(slots=True)
class Position:
    """``Morpho.position(id, user)``: supply shares, borrow shares and collateral (collateral token units)."""

    supply_shares: int = 0
    borrow_shares: int = 0
    collateral: int = 0

    @property
    def empty(self) -> bool:
        return not (self.supply_shares or self.borrow_shares or self.collateral)


@dataclass(frozen=True, slots=True)
class MarketParams:
    """``MarketParams`` of a market, as its ``CreateMarket`` announced them (addresses lowercase)."""

    loan_token: str
    collateral_token: str
    oracle: str
    irm: str
    lltv: int


@dataclass
class Ledger:
    """One market's stored state, advanced event by event in log order (``Morpho.sol``'s own updates)."""

    totals: MarketTotals = field(default_factory=MarketTotals)
    positions: dict[str, Position] = field(default_factory=dict)

    def position(self, user: str) -> Position:
        """The user's position (created empty on first use)."""
        found = self.positions.get(user)
        if found is None:
            found = self.positions[user] = Position()
        return found

    def touch(self, timestamp: int) -> None:
        """An accruing call ran in a block of this timestamp: ``lastUpdate`` is now that timestamp."""
        self.totals.last_update = timestamp

    def supply(self, on_behalf: str, assets: int, shares: int) -> None:
        """``Supply``: shares to the position, assets and shares to the supply totals."""
        self.position(on_behalf).supply_shares = _u256(self.position(on_behalf).supply_shares + shares)
        t = self.totals
        t.total_supply_shares = _u128(t.total_supply_shares + shares)
        t.total_supply_assets = _u128(t.total_supply_assets + assets)

    def withdraw(self, on_behalf: str, assets: int, shares: int) -> None:
        """``Withdraw``: the reverse of a supply."""
        position = self.position(on_behalf)
        position.supply_shares = _nonneg(position.supply_shares - shares)
        t = self.totals
        t.total_supply_shares = _u128(t.total_supply_shares - shares)
        t.total_supply_assets = _u128(t.total_supply_assets - assets)

    def borrow(self, on_behalf: str, assets: int, shares: int) -> None:
        """``Borrow``: borrow shares to the position, assets and shares to the borrow totals."""
        position = self.position(on_behalf)
        position.borrow_shares = _u128(position.borrow_shares + shares)
        t = self.totals
        t.total_borrow_shares = _u128(t.total_borrow_shares + shares)
        t.total_borrow_assets = _u128(t.total_borrow_assets + assets)

    def repay(self, on_behalf: str, assets: int, shares: int) -> None:
        """``Repay``: the total borrow is floored at zero (``assets`` may exceed it by one)."""
        position = self.position(on_behalf)
        position.borrow_shares = _u128(position.borrow_shares - shares)
        t = self.totals
        t.total_borrow_shares = _u128(t.total_borrow_shares - shares)
        t.total_borrow_assets = zero_floor_sub(t.total_borrow_assets, assets)

    def supply_collateral(self, on_behalf: str, assets: int) -> None:
        """``SupplyCollateral``."""
        position = self.position(on_behalf)
        position.collateral = _u128(position.collateral + assets)

    def withdraw_collateral(self, on_behalf: str, assets: int) -> None:
        """``WithdrawCollateral``."""
        position = self.position(on_behalf)
        position.collateral = _u128(position.collateral - assets)

    def accrue_interest(self, interest: int, fee_shares: int, fee_recipient: str) -> None:
        """``AccrueInterest``: interest to both asset totals, fee shares minted to the fee recipient."""
        t = self.totals
        t.total_borrow_assets = _u128(t.total_borrow_assets + interest)
        t.total_supply_assets = _u128(t.total_supply_assets + interest)
        if fee_shares:
            recipient = self.position(fee_recipient)
            recipient.supply_shares = _u256(recipient.supply_shares + fee_shares)
            t.total_supply_shares = _u128(t.total_supply_shares + fee_shares)

    def liquidate(self, borrower: str, event: LiquidateAmounts) -> None:
        """``Liquidate``, in ``Morpho.liquidate``'s order: repay, seize, then realise any bad debt."""
        position = self.position(borrower)
        t = self.totals
        position.borrow_shares = _u128(position.borrow_shares - event.repaid_shares)
        t.total_borrow_shares = _u128(t.total_borrow_shares - event.repaid_shares)
        t.total_borrow_assets = zero_floor_sub(t.total_borrow_assets, event.repaid_assets)
        position.collateral = _u128(position.collateral - event.seized_assets)
        t.total_borrow_assets = _u128(t.total_borrow_assets - event.bad_debt_assets)
        t.total_supply_assets = _u128(t.total_supply_assets - event.bad_debt_assets)
        t.total_borrow_shares = _u128(t.total_borrow_shares - event.bad_debt_shares)
        position.borrow_shares = _u128(position.borrow_shares - event.bad_debt_shares)

    def set_fee(self, fee: int) -> None:
        """``SetFee`` (interest before it accrued at the old fee, in its own event)."""
        self.totals.fee = fee


@dataclass(frozen=True, slots=True)
class LiquidateAmounts:
    """The amounts of a ``Liquidate`` event."""

    repaid_assets: int
    repaid_shares: int
    seized_assets: int
    bad_debt_assets: int = 0
    bad_debt_shares: int = 0


def _nonneg(value: int) -> int:
    if not 0 <= value <= UINT256_MAX:
        raise OverflowError("uint256 underflow or overflow")
    return value


# --------------------------------------------------------------------------- health and liquidation


def max_borrow(collateral: int, price: int, lltv: int) -> int:
    """``wMulDown(mulDivDown(collateral, price, ORACLE_PRICE_SCALE), lltv)``, in loan-token units."""
    return w_mul_down(mul_div_down(collateral, price, ORACLE_PRICE_SCALE), lltv)


def is_healthy(position: Position, totals: MarketTotals, price: int, lltv: int) -> bool:
    """``Morpho._isHealthy`` on stored state: no borrow shares, or max borrow at least what is owed."""
    if position.borrow_shares == 0:
        return True
    return max_borrow(position.collateral, price, lltv) >= totals.borrowed(position.borrow_shares)


def health_factor(position: Position, totals: MarketTotals, price: int, lltv: int) -> int:
    """``maxBorrow · 1e18 // borrowed`` (wad): below 1e18 exactly when liquidatable; 2^256 − 1 if no debt."""
    borrowed = totals.borrowed(position.borrow_shares)
    if borrowed == 0:
        return NO_DEBT_HEALTH_FACTOR
    return max_borrow(position.collateral, price, lltv) * WAD // borrowed


def liquidation_incentive_factor(lltv: int) -> int:
    """``min(1.15e18, wDivDown(1e18, 1e18 − wMulDown(0.3e18, 1e18 − lltv)))``."""
    return min(
        MAX_LIQUIDATION_INCENTIVE_FACTOR, w_div_down(WAD, WAD - w_mul_down(LIQUIDATION_CURSOR, WAD - lltv))
    )


def liquidation_price(collateral: int, borrowed: int, lltv: int) -> int | None:
    """The lowest oracle price (scale 1e36) at which the position is healthy; below it, it is liquidatable.

    0 without debt (healthy at any price); None when no price makes it healthy (no collateral, or an lltv
    of 0). Exact: ``max_borrow(collateral, p, lltv) >= borrowed`` iff ``p >= liquidation_price``.
    """
    if borrowed == 0:
        return 0
    if collateral == 0 or lltv == 0:
        return None
    quoted = -(-borrowed * WAD // lltv)  # smallest mulDivDown(collateral, p, 1e36) that is enough
    return -(-quoted * ORACLE_PRICE_SCALE // collateral)


def seized_for_repaid_shares(repaid_shares: int, totals: MarketTotals, price: int, lltv: int) -> int:
    """Collateral seized by ``liquidate(…, seizedAssets=0, repaidShares)`` (``Morpho.liquidate``)."""
    repaid = to_assets_down(repaid_shares, totals.total_borrow_assets, totals.total_borrow_shares)
    return mul_div_down(w_mul_down(repaid, liquidation_incentive_factor(lltv)), ORACLE_PRICE_SCALE, price)


def repaid_shares_for_seized(seized_assets: int, totals: MarketTotals, price: int, lltv: int) -> int:
    """Borrow shares repaid by ``liquidate(…, seizedAssets, repaidShares=0)`` (``Morpho.liquidate``)."""
    quoted = mul_div_up(seized_assets, price, ORACLE_PRICE_SCALE)
    return to_shares_up(
        w_div_up(quoted, liquidation_incentive_factor(lltv)),
        totals.total_borrow_assets,
        totals.total_borrow_shares,
    )


def oracle_price(scale_factor: int, base_answer: int | None, quote_answer: int | None) -> int:
    """A MorphoChainlinkOracleV2-shaped price: ``SCALE_FACTOR · base / quote`` (no feed: 1), rounded down.

    Negative answers revert on chain (``ChainlinkDataFeedLib`` requires ``answer >= 0``): ValueError here.
    """
    base = 1 if base_answer is None else base_answer
    quote = 1 if quote_answer is None else quote_answer
    if base < 0 or quote < 0:
        raise ValueError("negative feed answer")
    # The oracle's mulDiv keeps the full product: only the quotient must fit.
    return _u256(scale_factor * base // quote)
