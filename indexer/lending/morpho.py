"""Morpho Blue markets and positions at any indexed block, rebuilt exactly from the contract's events.

    markets = morpho_markets(conn, chain_id, block)      # every market of every indexed Morpho Blue
    m = markets[0]
    m.totals                # == Morpho.market(id) at that block (stored totals, lastUpdate, fee)
    m.positions[user]       # == Morpho.position(id, user): supply shares, borrow shares, collateral
    m.oracle_price          # == the oracle's price() when its feeds are configured ([[morpho_oracles]])
    m.health_factor(user)   # maxBorrow · 1e18 // borrowed: below 1e18 exactly when liquidatable

How (``indexer.protocols.morpho_blue`` holds the maths):

- **Market parameters** come from ``CreateMarket``; the **totals and positions** from replaying the market's
  ``Supply``, ``Withdraw``, ``Borrow``, ``Repay``, ``SupplyCollateral``, ``WithdrawCollateral``,
  ``Liquidate``, ``AccrueInterest`` and ``SetFee`` events in log order. ``AccrueInterest`` adds its interest
  to both asset totals and mints its ``feeShares`` to the fee recipient in force at that log (the latest
  ``SetFeeRecipient`` before it; no ``Supply`` is emitted for them). ``lastUpdate`` is the timestamp of the
  block of the market's latest accruing event (every one runs ``_accrueInterest`` first); an
  ``accrueInterest()`` call on a market without an IRM emits nothing and is not seen.
- **Oracle prices**: Morpho oracles emit nothing, so their shape is configured (``[[morpho_oracles]]``,
  table ``morpho_oracles``): ``price = scale_factor · base / quote`` from the latest ``AnswerUpdated`` of each
  feed at the block (a missing feed counts as 1), as ``MorphoChainlinkOracleV2`` computes it.
- **USD values** (8 decimals, the lending tables' base): each token's feed is its ``[[tokens]]``
  ``price_feed``, else its source in an indexed AaveOracle, else the configured oracle's base feed (the
  collateral) or quote feed (the loan token); the answer is rescaled from the token's ``price_decimals``
  (8 unless configured) to 8. Decimals come from ``[[tokens]]``, else from an indexed Aave aToken's
  ``Initialized``. Collateral and supplied assets round down, debt rounds up (so a borrower never shows
  0 debt).

`snapshot` gives a market's rows for the shared lending tables (`pool` = the market id, `protocol` =
morpho_blue); `MorphoReplay` advances one contract's state block by block for the keeper and the checks.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg

from indexer.config import ChainConfig, MorphoOracleConfig, normalise_address
from indexer.lending.positions import A_TOKEN_INITIALIZED, PositionsError, topic_address
from indexer.protocols import morpho_blue as mb

Conn = psycopg.Connection[Any]
PROTOCOL = "morpho_blue"
BASE_DECIMALS = 8
BPS_PER_WAD = 10**14
Row = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class OracleSource:
    """A configured oracle: ``price = scale_factor · base / quote`` (None: that feed is absent)."""

    address: str
    base_feed: str | None
    quote_feed: str | None
    scale_factor: int


@dataclass
class MorphoMarketState:
    """One market of one Morpho Blue contract at one block (the state ``Morpho.sol`` stores)."""

    chain_id: int
    morpho: str
    id: str
    block: int
    params: mb.MarketParams
    totals: mb.MarketTotals
    fee_recipient: str
    oracle_price: int | None
    positions: dict[str, mb.Position] = field(default_factory=dict)

    @property
    def users(self) -> list[str]:
        """Users with a non-empty position, sorted."""
        return sorted(u for u, p in self.positions.items() if not p.empty)

    def position(self, user: str) -> mb.Position:
        """The user's position (empty when it has none)."""
        return self.positions.get(normalise_address(user), mb.Position())

    def borrowed(self, user: str) -> int:
        """Loan-token units owed (``toAssetsUp`` of the borrow shares)."""
        return self.totals.borrowed(self.position(user).borrow_shares)

    def supplied(self, user: str) -> int:
        """Loan-token units the supply shares are worth (``toAssetsDown``)."""
        return self.totals.supplied(self.position(user).supply_shares)

    def price(self) -> int:
        """The oracle price; PositionsError when the oracle is not configured or its feeds have no answer."""
        if self.oracle_price is None:
            raise PositionsError(
                f"no price for oracle {self.params.oracle} of Morpho market {self.id} at block {self.block}:"
                " configure it under [[morpho_oracles]] and index its feeds"
            )
        return self.oracle_price

    def health_factor(self, user: str) -> int:
        """``maxBorrow · 1e18 // borrowed`` (wad); 2^256 − 1 without debt."""
        return mb.health_factor(self.position(user), self.totals, self.price(), self.params.lltv)

    def liquidatable(self, user: str) -> bool:
        """Whether ``liquidate`` passes its health check on the stored state (``!_isHealthy``)."""
        return not mb.is_healthy(self.position(user), self.totals, self.price(), self.params.lltv)

    def liquidation_price(self, user: str) -> int | None:
        """The lowest oracle price (1e36 scale) at which the position stays healthy (see morpho_blue)."""
        position = self.position(user)
        return mb.liquidation_price(position.collateral, self.borrowed(user), self.params.lltv)


# ------------------------------------------------------------------------------------------ replay

# (kind, table, the address it moves, its amounts in Ledger order)
_SOURCES = (
    ("create", "morpho_blue_create_market", "NULL", ()),
    ("supply", "morpho_blue_supply", "on_behalf", ("assets", "shares")),
    ("withdraw", "morpho_blue_withdraw", "on_behalf", ("assets", "shares")),
    ("borrow", "morpho_blue_borrow", "on_behalf", ("assets", "shares")),
    ("repay", "morpho_blue_repay", "on_behalf", ("assets", "shares")),
    ("supply_collateral", "morpho_blue_supply_collateral", "on_behalf", ("assets",)),
    ("withdraw_collateral", "morpho_blue_withdraw_collateral", "on_behalf", ("assets",)),
    (
        "liquidate",
        "morpho_blue_liquidate",
        "borrower",
        ("repaid_assets", "repaid_shares", "seized_assets", "bad_debt_assets", "bad_debt_shares"),
    ),
    ("accrue", "morpho_blue_accrue_interest", "NULL", ("interest", "fee_shares")),
    ("set_fee", "morpho_blue_set_fee", "NULL", ("new_fee",)),
    ("set_fee_recipient", "morpho_blue_set_fee_recipient", "new_fee_recipient", ()),
)
_WHERE = "chain_id = %(c)s AND address = %(m)s AND block_number > %(after)s AND block_number <= %(through)s"


def _events_sql() -> str:
    parts = []
    for kind, table, who, amounts in _SOURCES:
        market = "NULL" if kind == "set_fee_recipient" else "id"
        values = ", ".join(f"{c}::numeric" for c in [*amounts, *["NULL"] * (5 - len(amounts))])
        parts.append(
            f"SELECT chain_id, block_number, log_index, '{kind}' AS kind, {market}::text AS id,"
            f" {who}::text AS who, {values} FROM {table} WHERE {_WHERE}"
        )
    union = "\n    UNION ALL ".join(parts)
    return f"""
SELECT e.*, coalesce(l.block_timestamp, h.timestamp)
  FROM ({union}) e
  LEFT JOIN logs l
    ON l.chain_id = e.chain_id AND l.block_number = e.block_number AND l.log_index = e.log_index
  LEFT JOIN blocks h ON h.chain_id = e.chain_id AND h.number = e.block_number
 ORDER BY e.block_number, e.log_index
"""


_EVENTS_SQL = _events_sql()
_ACCRUING = {"create", "supply", "withdraw", "borrow", "repay", "withdraw_collateral", "liquidate", "set_fee"}


class MorphoReplay:
    """One Morpho Blue contract's markets, advanced event by event; `block` is the last block applied."""

    def __init__(self, chain_id: int, morpho: str) -> None:
        self.chain_id, self.morpho = chain_id, normalise_address(morpho)
        self.block = -1
        self.fee_recipient = mb.ZERO_ADDRESS
        self.params: dict[str, mb.MarketParams] = {}
        self.ledgers: dict[str, mb.Ledger] = {}

    def advance(self, conn: Conn, through: int) -> None:
        """Apply every event of the contract in (block, through]; a block before `block` is refused."""
        if through < self.block:
            raise PositionsError(
                f"Morpho replay is at block {self.block}; start a new one for block {through}"
            )
        args = {"c": self.chain_id, "m": self.morpho, "after": self.block, "through": through}
        rows = conn.execute(_EVENTS_SQL, args).fetchall()
        created = [r[4] for r in rows if r[3] == "create"]
        if created:
            self.params.update(market_params(conn, self.chain_id, self.morpho, created))
        for row in rows:
            self._apply(row)
        self.block = through

    def _apply(self, row: Sequence[Any]) -> None:
        _chain, block, log_index, kind, market, who, a, b, c, d, e, stamp = row
        if kind == "set_fee_recipient":
            self.fee_recipient = str(who)
            return
        ledger = self.ledgers.setdefault(str(market), mb.Ledger())
        if kind in _ACCRUING:
            if stamp is None:
                raise PositionsError(f"no timestamp for block {block} (Morpho event at log {log_index})")
            ledger.touch(int(stamp))
        _APPLY[kind](ledger, self.fee_recipient, who, _ints(a, b, c, d, e))

    def markets(self, conn: Conn, ids: Iterable[str] | None = None) -> list[MorphoMarketState]:
        """Copies of the markets' states at `block`, with their oracle prices (all markets by default)."""
        chosen = sorted(self.params) if ids is None else [i for i in ids if i in self.params]
        sources = oracle_sources(conn, self.chain_id, [self.params[i].oracle for i in chosen])
        out = []
        for market in chosen:
            params = self.params[market]
            ledger = self.ledgers.get(market, mb.Ledger())
            source = sources.get(params.oracle)
            out.append(
                MorphoMarketState(
                    chain_id=self.chain_id,
                    morpho=self.morpho,
                    id=market,
                    block=self.block,
                    params=params,
                    totals=copy.copy(ledger.totals),
                    fee_recipient=self.fee_recipient,
                    oracle_price=None
                    if source is None
                    else rebuilt_price(conn, self.chain_id, source, self.block),
                    positions={u: copy.copy(p) for u, p in ledger.positions.items() if not p.empty},
                )
            )
        return out


def _ints(*values: Decimal | None) -> tuple[int, ...]:
    return tuple(0 if v is None else int(v) for v in values)


def _liquidate(ledger: mb.Ledger, who: str, n: tuple[int, ...]) -> None:
    ledger.liquidate(who, mb.LiquidateAmounts(*n))


_APPLY: dict[str, Any] = {
    "create": lambda ledger, fee_to, who, n: None,
    "supply": lambda ledger, fee_to, who, n: ledger.supply(who, n[0], n[1]),
    "withdraw": lambda ledger, fee_to, who, n: ledger.withdraw(who, n[0], n[1]),
    "borrow": lambda ledger, fee_to, who, n: ledger.borrow(who, n[0], n[1]),
    "repay": lambda ledger, fee_to, who, n: ledger.repay(who, n[0], n[1]),
    "supply_collateral": lambda ledger, fee_to, who, n: ledger.supply_collateral(who, n[0]),
    "withdraw_collateral": lambda ledger, fee_to, who, n: ledger.withdraw_collateral(who, n[0]),
    "liquidate": lambda ledger, fee_to, who, n: _liquidate(ledger, who, n),
    "accrue": lambda ledger, fee_to, who, n: ledger.accrue_interest(n[0], n[1], fee_to),
    "set_fee": lambda ledger, fee_to, who, n: ledger.set_fee(n[0]),
}


# ----------------------------------------------------------------------------------------- readers


def morpho_contracts(conn: Conn, chain_id: int) -> list[str]:
    """Morpho Blue contracts with an indexed ``CreateMarket`` on a chain."""
    rows = conn.execute(
        "SELECT DISTINCT address FROM morpho_blue_create_market WHERE chain_id = %s ORDER BY 1", (chain_id,)
    ).fetchall()
    return [str(r[0]) for r in rows]


def market_params(conn: Conn, chain_id: int, morpho: str, ids: Sequence[str]) -> dict[str, mb.MarketParams]:
    """``{id: MarketParams}`` from the markets' ``CreateMarket`` events."""
    rows = conn.execute(
        "SELECT id, loan_token, collateral_token, oracle, irm, lltv FROM morpho_blue_create_market"
        " WHERE chain_id = %s AND address = %s AND id = ANY(%s)",
        (chain_id, normalise_address(morpho), list(ids)),
    ).fetchall()
    return {
        str(i): mb.MarketParams(str(lt), str(ct), str(o), str(irm), int(lltv))
        for i, lt, ct, o, irm, lltv in rows
    }


def oracle_sources(conn: Conn, chain_id: int, oracles: Iterable[str]) -> dict[str, OracleSource]:
    """The configured oracles (``morpho_oracles``) among ``oracles``."""
    rows = conn.execute(
        "SELECT address, base_feed, quote_feed, scale_factor FROM morpho_oracles"
        " WHERE chain_id = %s AND address = ANY(%s)",
        (chain_id, sorted(set(oracles))),
    ).fetchall()
    return {str(a): OracleSource(str(a), base, quote, int(scale)) for a, base, quote, scale in rows}


def feed_answer(conn: Conn, chain_id: int, feed: str, block: int) -> int | None:
    """The latest ``AnswerUpdated`` of ``feed`` at or before ``block``."""
    row = conn.execute(
        "SELECT current FROM price_answer_updated WHERE chain_id = %s AND address = %s AND block_number <= %s"
        " ORDER BY block_number DESC, log_index DESC LIMIT 1",
        (chain_id, feed, block),
    ).fetchone()
    return None if row is None else int(str(row[0]))


def rebuilt_price(conn: Conn, chain_id: int, source: OracleSource, block: int) -> int | None:
    """The oracle's ``price()`` at ``block`` from its feeds' answers; None while a feed has none."""
    answers = []
    for feed in (source.base_feed, source.quote_feed):
        answer = None if feed is None else feed_answer(conn, chain_id, feed, block)
        if feed is not None and (answer is None or answer <= 0):
            return None  # the oracle reverts on a non-positive answer
        answers.append(answer)
    return mb.oracle_price(source.scale_factor, answers[0], answers[1])


def morpho_markets(
    conn: Conn, chain_id: int, block: int, morpho: str | None = None
) -> list[MorphoMarketState]:
    """Every market (params, totals, last update, fee, oracle price, positions) of every indexed Morpho Blue
    (or of ``morpho``) on ``chain_id`` as of ``block``, rebuilt from the events at or before it.

    ``totals`` and ``positions`` equal ``Morpho.market(id)`` and ``Morpho.position(id, user)`` at that block
    (stored values: interest accrued up to ``totals.last_update``); ``oracle_price`` equals the oracle's
    ``price()`` when it is configured under ``[[morpho_oracles]]`` (else None). Sorted by contract, then id.
    """
    out: list[MorphoMarketState] = []
    for address in [normalise_address(morpho)] if morpho else morpho_contracts(conn, chain_id):
        replay = MorphoReplay(chain_id, address)
        replay.advance(conn, block)
        out.extend(replay.markets(conn))
    return out


# ------------------------------------------------------------------------------------ USD values


@dataclass(frozen=True, slots=True)
class UsdPrice:
    """A token's decimals and its USD price with 8 decimals, at one block."""

    decimals: int
    price: int

    def value(self, amount: int, up: bool = False) -> int:
        """``amount`` (token units) in USD with 8 decimals, rounded down (or up)."""
        numerator, denominator = amount * self.price, int(10**self.decimals)
        return -(-numerator // denominator) if up else numerator // denominator


def usd_prices(conn: Conn, market: MorphoMarketState) -> tuple[UsdPrice, UsdPrice]:
    """(collateral, loan token) prices in USD (8 decimals) at the market's block."""
    source = oracle_sources(conn, market.chain_id, [market.params.oracle]).get(market.params.oracle)
    fallback = {
        market.params.collateral_token: source.base_feed if source else None,
        market.params.loan_token: source.quote_feed if source else None,
    }
    tokens = (market.params.collateral_token, market.params.loan_token)
    return _usd(conn, market, tokens[0], fallback[tokens[0]]), _usd(
        conn, market, tokens[1], fallback[tokens[1]]
    )


def _usd(conn: Conn, market: MorphoMarketState, token: str, oracle_feed: str | None) -> UsdPrice:
    chain_id, block = market.chain_id, market.block
    tracked = conn.execute(
        "SELECT decimals, price_feed, price_decimals FROM tracked_tokens WHERE chain_id = %s AND token = %s",
        (chain_id, token),
    ).fetchone()
    decimals = int(tracked[0]) if tracked else _aave_decimals(conn, chain_id, token)
    feed = (tracked[1] if tracked else None) or _aave_source(conn, chain_id, token, block) or oracle_feed
    answer = None if feed is None else feed_answer(conn, chain_id, feed, block)
    if decimals is None or answer is None or answer <= 0:
        raise PositionsError(
            f"no {'decimals' if decimals is None else 'USD price'} for token {token} of Morpho market"
            f" {market.id} at block {block}: list it under [[tokens]] (with its price_feed), index the feed"
        )
    price_decimals = int(tracked[2]) if tracked else BASE_DECIMALS
    scaled = answer * 10**BASE_DECIMALS // int(10**price_decimals)
    return UsdPrice(decimals, scaled)


def _aave_decimals(conn: Conn, chain_id: int, token: str) -> int | None:
    row = conn.execute(
        "SELECT data FROM logs WHERE chain_id = %s AND topic0 = %s AND topic1 = %s LIMIT 1",
        (chain_id, A_TOKEN_INITIALIZED, topic_address(token)),
    ).fetchone()
    return None if row is None else int(str(row[0])[2 + 128 : 2 + 192], 16)


def _aave_source(conn: Conn, chain_id: int, token: str, block: int) -> str | None:
    rows = conn.execute(
        "SELECT DISTINCT ON (address) source FROM aave_oracle_asset_source_updated"
        " WHERE chain_id = %s AND asset = %s AND block_number <= %s"
        " ORDER BY address, block_number DESC, log_index DESC",
        (chain_id, token, block),
    ).fetchall()
    sources = {str(r[0]) for r in rows}
    return sources.pop() if len(sources) == 1 else None


# ------------------------------------------------------------------------------- lending tables


def snapshot_rows(conn: Conn, market: MorphoMarketState) -> tuple[list[Row], list[Row]]:
    """The market's rows of ``account_health`` and ``position_reserves`` (pool = market id), unwritten.

    Health: collateral and debt in USD (8 decimals), available borrows = (maxBorrow − borrowed) in USD,
    threshold and LTV = lltv in bps, health factor as ``MorphoMarketState.health_factor``, eMode 0.
    Positions: the collateral token (enabled as collateral) and the loan token (supplied assets as
    collateral_base, not enabled; borrowed assets as debt_base, threshold 0).
    """
    users = market.users
    if not users:
        return [], []
    collateral_usd, loan_usd = usd_prices(conn, market)
    price, lltv = market.price(), market.params.lltv
    bps = lltv // BPS_PER_WAD
    health: list[Row] = []
    reserves: list[Row] = []
    for user in users:
        position, borrowed = market.position(user), market.borrowed(user)
        max_borrow = mb.max_borrow(position.collateral, price, lltv)
        collateral_base = collateral_usd.value(position.collateral)
        debt_base = loan_usd.value(borrowed, up=True)
        health.append(
            (
                market.chain_id, market.id, user, market.block, collateral_base, debt_base,
                loan_usd.value(max(max_borrow - borrowed, 0)), bps, bps, market.health_factor(user), 0,
            )
        )  # fmt: skip
        key = (market.chain_id, market.id, user)
        if position.collateral:
            reserves.append(
                (
                    *key,
                    market.params.collateral_token,
                    market.block,
                    collateral_base,
                    0,
                    True,
                    bps,
                    collateral_usd.price,
                )
            )
        if position.supply_shares or position.borrow_shares:
            supplied = loan_usd.value(market.supplied(user))
            reserves.append(
                (*key, market.params.loan_token, market.block, supplied, debt_base, False, 0, loan_usd.price)
            )
    return health, reserves


# ------------------------------------------------------------------------------------- config


def sync_oracles(conn: Conn, chains: Iterable[ChainConfig], oracles: Sequence[MorphoOracleConfig]) -> None:
    """Make ``morpho_oracles`` of the configured chains match ``[[morpho_oracles]]``."""
    ids = {c.name: c.chain_id for c in chains}
    with conn.transaction():
        conn.execute("DELETE FROM morpho_oracles WHERE chain_id = ANY(%s)", (list(ids.values()),))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO morpho_oracles VALUES (%s, %s, %s, %s, %s)",
                [
                    (ids[o.chain], o.address, o.base_feed, o.quote_feed, Decimal(o.scale_factor))
                    for o in oracles
                    if o.chain in ids
                ],
            )
