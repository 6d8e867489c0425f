"""Aave v3 positions at any indexed block, rebuilt from the typed event tables, and their account data.

    state = market_state(conn, chain_id, pool, block, decimals)
    state.account_data(user)          # == Pool.getUserAccountData(user) at that block, to the wei

Everything is read as of block ``B`` (events at or before it, latest by ``(block_number, log_index)``):

- **Scaled balances** per user and reserve: the sum of the aToken / variableDebtToken events
  (``ScaledBalanceTokenBase``): ``Mint(value, balanceIncrease, index)`` adds ``rayDiv(value −
  balanceIncrease, index)``; a ``Mint`` with ``value < balanceIncrease`` comes from a burn smaller than the
  accrued interest and removes ``rayDiv(balanceIncrease − value, index)``; ``Burn`` removes
  ``rayDiv(value + balanceIncrease, index)``; ``BalanceTransfer`` moves its (already scaled) value.
  Supplies, borrows, repayments, liquidations and treasury mints all show up as these events.
- **Collateral flags** (``ReserveUsedAsCollateralEnabled/Disabled``) and the user's **eMode category**
  (``UserEModeSet``), from the Pool.
- **Reserve state**: the latest ``ReserveDataUpdated`` (indexes and rates), its block's timestamp being
  the reserve's ``lastUpdateTimestamp`` (every ``updateState`` of the v3 logic is followed by the event).
- **Risk parameters** from the market's PoolConfigurator: ``CollateralConfigurationChanged`` (LTV,
  threshold, bonus), ``EModeAssetCategoryChanged`` and ``EModeCategoryAdded``.
- **Prices**: the asset's source in the AaveOracle (``AssetSourceUpdated``), then that feed's latest
  ``AnswerUpdated``. A ``price_feed`` in ``tracked_tokens`` replaces the source: a Chainlink proxy emits
  no ``AnswerUpdated`` (its aggregator does), so on mainnet the aggregator is configured there.

Which tokens and configurator belong to a Pool is read from the tokens' ``Initialized`` logs (the pool is
their second topic; they also carry the decimals) and the configurator's ``ReserveInitialized``; when those
were not indexed, pass ``configurator=``. The oracle may be passed as ``oracle=``; without it, every
indexed AaveOracle must agree on the asset's source. No event carries a reserve's decimals once it is
initialised, so a ``{asset: decimals}`` mapping can supply (and overrides) them.

The borrowing flag of the user configuration has no event: it is set exactly while the scaled debt is
non-zero (a full repayment or liquidation burns ``rayDiv(rayMul(s, I), I) == s`` for ``I >= RAY``), which
is how :mod:`indexer.protocols.aave_math` reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg

from indexer.config import normalise_address
from indexer.errors import InputError
from indexer.events import event
from indexer.protocols.aave_math import (
    RAY,
    AccountData,
    EModeCategory,
    UserReserve,
    Version,
    ray_div,
    user_account_data,
)

ZERO_ADDRESS = "0x" + "00" * 20

A_TOKEN_INITIALIZED = event(
    "Initialized(address indexed underlyingAsset, address indexed pool, address treasury,"
    " address incentivesController, uint8 aTokenDecimals, string aTokenName, string aTokenSymbol,"
    " bytes params)",
    "aave_v3_atoken_initialized",
).topic0
DEBT_TOKEN_INITIALIZED = event(
    "Initialized(address indexed underlyingAsset, address indexed pool, address incentivesController,"
    " uint8 debtTokenDecimals, string debtTokenName, string debtTokenSymbol, bytes params)",
    "aave_v3_debt_token_initialized",
).topic0
# Word of the (non-indexed) data that holds the decimals in each Initialized event.
_DECIMALS_WORD = {A_TOKEN_INITIALIZED: 2, DEBT_TOKEN_INITIALIZED: 1}

Conn = psycopg.Connection[Any]


class PositionsError(InputError):
    """The indexed data cannot answer the question (missing tokens, prices, timestamps, ambiguity)."""


# --------------------------------------------------------------------------------------- pure parts


def mint_delta(value: int, balance_increase: int, index: int) -> int:
    """Scaled-balance change of a ``Mint(value, balanceIncrease, index)`` event (negative from a burn)."""
    if value >= balance_increase:
        return ray_div(value - balance_increase, index)
    return -ray_div(balance_increase - value, index)


def burn_delta(value: int, balance_increase: int, index: int) -> int:
    """Scaled-balance change of a ``Burn(value, balanceIncrease, index)`` event (always a decrease)."""
    return -ray_div(value + balance_increase, index)


def topic_address(address: str) -> str:
    """An address as the 32-byte topic the node returns for an indexed address."""
    return "0x" + "00" * 12 + normalise_address(address)[2:]


@dataclass(frozen=True, slots=True)
class ReserveTokens:
    """A reserve of one Pool: its underlying, aToken and variable debt token, decimals when known."""

    asset: str
    a_token: str
    v_token: str
    decimals: int | None = None


@dataclass(frozen=True, slots=True)
class ReserveState:
    """A reserve's indexes and rates (ray) as of its latest ``ReserveDataUpdated`` and that block's time."""

    liquidity_index: int = RAY
    variable_borrow_index: int = RAY
    liquidity_rate: int = 0
    variable_borrow_rate: int = 0
    last_update_timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class ReserveConfig:
    """Risk parameters of a reserve (bps) and the eMode category it belongs to (0: none)."""

    ltv_bps: int = 0
    liquidation_threshold_bps: int = 0
    liquidation_bonus_bps: int = 0
    emode_category: int = 0


@dataclass(frozen=True, slots=True)
class EModeConfig:
    """An eMode category as last configured; ``price_source`` is the v3.0 category price source."""

    category_id: int
    ltv_bps: int
    liquidation_threshold_bps: int
    liquidation_bonus_bps: int
    price_source: str = ZERO_ADDRESS


@dataclass(frozen=True, slots=True)
class Balance:
    """Scaled aToken and variable-debt balances of one user in one reserve."""

    scaled_atoken: int = 0
    scaled_vdebt: int = 0


@dataclass
class MarketState:
    """One Pool at one block: reserves, parameters, prices and every (or the selected) user's positions."""

    chain_id: int
    pool: str
    block: int
    timestamp: int
    reserves: dict[str, ReserveTokens]
    decimals: dict[str, int]
    states: dict[str, ReserveState]
    configs: dict[str, ReserveConfig]
    emode_categories: dict[int, EModeConfig]
    prices: dict[str, int]
    balances: dict[str, dict[str, Balance]] = field(default_factory=dict)
    collateral: dict[str, dict[str, bool]] = field(default_factory=dict)
    user_emode: dict[str, int] = field(default_factory=dict)

    @property
    def users(self) -> list[str]:
        """Users with a non-zero scaled balance or an enabled collateral flag, sorted."""
        found = {
            u
            for u, by in self.balances.items()
            if any(b.scaled_atoken or b.scaled_vdebt for b in by.values())
        }
        found |= {u for u, by in self.collateral.items() if any(by.values())}
        return sorted(found)

    def user_reserves(self, user: str) -> list[UserReserve]:
        """The user's reserves (those with a balance or a collateral flag) as aave_math inputs."""
        user = normalise_address(user)
        balances = self.balances.get(user, {})
        flags = self.collateral.get(user, {})
        out = []
        for asset in sorted(set(balances) | {a for a, on in flags.items() if on}):
            if asset not in self.reserves:
                continue
            balance = balances.get(asset, Balance())
            state = self.states.get(asset, ReserveState())
            config = self.configs.get(asset, ReserveConfig())
            out.append(
                UserReserve(
                    asset=asset,
                    decimals=self._decimals(asset),
                    price=self._price(asset),
                    scaled_atoken_balance=balance.scaled_atoken,
                    scaled_vdebt_balance=balance.scaled_vdebt,
                    liquidity_index=state.liquidity_index,
                    variable_borrow_index=state.variable_borrow_index,
                    liquidity_rate=state.liquidity_rate,
                    variable_borrow_rate=state.variable_borrow_rate,
                    last_update_timestamp=(
                        self.timestamp if state.last_update_timestamp is None else state.last_update_timestamp
                    ),
                    now_timestamp=self.timestamp,
                    ltv_bps=config.ltv_bps,
                    liquidation_threshold_bps=config.liquidation_threshold_bps,
                    usage_as_collateral_enabled=flags.get(asset, False),
                    emode_category=config.emode_category,
                )
            )
        return out

    def emode(self, user: str) -> EModeCategory | None:
        """The user's eMode category with its parameters (and v3.0 price), None outside eMode."""
        category = self.user_emode.get(normalise_address(user), 0)
        if category == 0:
            return None
        config = self.emode_categories.get(category)
        if config is None:
            raise PositionsError(f"user is in eMode category {category}, which no indexed event configures")
        price = 0 if config.price_source == ZERO_ADDRESS else self._price(config.price_source)
        return EModeCategory(category, config.ltv_bps, config.liquidation_threshold_bps, price)

    def account_data(self, user: str, version: Version = "3.0") -> AccountData:
        """``Pool.getUserAccountData(user)`` at this block, computed with ``version``'s rounding."""
        return user_account_data(self.user_reserves(user), version, self.emode(user))

    def _decimals(self, asset: str) -> int:
        if asset not in self.decimals:
            raise PositionsError(f"no decimals for reserve {asset}: pass them in the decimals mapping")
        return self.decimals[asset]

    def _price(self, asset: str) -> int:
        price = self.prices.get(asset)
        if price is None or price <= 0:
            raise PositionsError(
                f"no positive oracle price for {asset} at block {self.block} (no source or no answer indexed)"
            )
        return price


# ------------------------------------------------------------------------------------------ readers


def _int(value: Decimal | int) -> int:
    return int(value)


def block_timestamp(conn: Conn, chain_id: int, block: int) -> int:
    """The timestamp of an indexed block, from its logs or from the stored headers."""
    row = conn.execute(
        """
        SELECT block_timestamp FROM logs
         WHERE chain_id = %(c)s AND block_number = %(b)s AND block_timestamp IS NOT NULL
        UNION ALL
        SELECT timestamp FROM blocks WHERE chain_id = %(c)s AND number = %(b)s
        LIMIT 1
        """,
        {"c": chain_id, "b": block},
    ).fetchone()
    if row is None:
        raise PositionsError(
            f"no timestamp for block {block} of chain {chain_id}: it has no log with block_timestamp"
            " and no stored header; pass timestamp="
        )
    return _int(row[0])


def reserve_tokens(
    conn: Conn, chain_id: int, pool: str, block: int, configurator: str | None = None
) -> tuple[dict[str, ReserveTokens], list[str]]:
    """The Pool's reserves (by underlying) and its configurator(s), as of ``block``.

    Tokens come from their ``Initialized`` logs naming the pool, and from ``ReserveInitialized`` of the
    given configurator; configurators are those whose ``ReserveInitialized`` names one of the pool's
    aTokens, plus the given one.
    """
    pool = normalise_address(pool)
    a_tokens: dict[str, tuple[str, int]] = {}
    v_tokens: dict[str, tuple[str, int]] = {}
    rows = conn.execute(
        """
        SELECT address, topic1, topic0, data FROM logs
         WHERE chain_id = %(c)s AND topic0 = ANY(%(t)s) AND topic2 = %(p)s AND block_number <= %(b)s
         ORDER BY block_number, log_index
        """,
        {"c": chain_id, "t": list(_DECIMALS_WORD), "p": topic_address(pool), "b": block},
    ).fetchall()
    for address, topic1, topic0, data in rows:
        word = _DECIMALS_WORD[topic0]
        decimals = int(data[2 + 64 * word : 2 + 64 * (word + 1)], 16)
        target = a_tokens if topic0 == A_TOKEN_INITIALIZED else v_tokens
        target["0x" + topic1[-40:]] = (address, decimals)
    configurators = {normalise_address(configurator)} if configurator else set()
    by_a_token = {token: asset for asset, (token, _) in a_tokens.items()}
    initialized = conn.execute(
        """
        SELECT DISTINCT ON (address, asset) address, asset, a_token, variable_debt_token
          FROM aave_v3_reserve_initialized
         WHERE chain_id = %(c)s AND block_number <= %(b)s
         ORDER BY address, asset, block_number DESC, log_index DESC
        """,
        {"c": chain_id, "b": block},
    ).fetchall()
    for emitter, asset, a_token, _v_token in initialized:
        if by_a_token.get(a_token) == asset:
            configurators.add(emitter)
    for emitter, asset, a_token, v_token in initialized:
        if emitter in configurators:
            a_tokens.setdefault(asset, (a_token, -1))
            v_tokens.setdefault(asset, (v_token, -1))
    reserves = {}
    for asset, (a_token, a_decimals) in a_tokens.items():
        if asset not in v_tokens:
            continue
        v_token, v_decimals = v_tokens[asset]
        known = a_decimals if a_decimals >= 0 else v_decimals
        reserves[asset] = ReserveTokens(asset, a_token, v_token, known if known >= 0 else None)
    return reserves, sorted(configurators)


def scaled_balances(
    conn: Conn,
    chain_id: int,
    reserves: Mapping[str, ReserveTokens],
    block: int,
    users: Sequence[str] | None = None,
) -> dict[str, dict[str, Balance]]:
    """``{user: {asset: Balance}}`` summed over the reserves' token events at or before ``block``."""
    token_of = {r.a_token: (r.asset, 0) for r in reserves.values()} | {
        r.v_token: (r.asset, 1) for r in reserves.values()
    }
    user_filter = "" if users is None else "WHERE holder = ANY(%(u)s)"
    rows = conn.execute(
        f"""
        WITH deltas AS (
            SELECT address AS token, on_behalf_of AS holder,
                   CASE WHEN value >= balance_increase
                        THEN div((value - balance_increase) * %(ray)s + div("index", 2), "index")
                        ELSE -div((balance_increase - value) * %(ray)s + div("index", 2), "index")
                   END AS delta
              FROM aave_v3_token_mint
             WHERE chain_id = %(c)s AND address = ANY(%(t)s) AND block_number <= %(b)s
            UNION ALL
            SELECT address, from_address,
                   -div((value + balance_increase) * %(ray)s + div("index", 2), "index")
              FROM aave_v3_token_burn
             WHERE chain_id = %(c)s AND address = ANY(%(t)s) AND block_number <= %(b)s
            UNION ALL
            SELECT address, from_address, -value
              FROM aave_v3_token_balance_transfer
             WHERE chain_id = %(c)s AND address = ANY(%(t)s) AND block_number <= %(b)s
            UNION ALL
            SELECT address, to_address, value
              FROM aave_v3_token_balance_transfer
             WHERE chain_id = %(c)s AND address = ANY(%(t)s) AND block_number <= %(b)s
        )
        SELECT token, holder, sum(delta) FROM deltas {user_filter} GROUP BY token, holder
        """,
        {
            "c": chain_id,
            "t": list(token_of),
            "b": block,
            "ray": Decimal(RAY),
            "u": [normalise_address(u) for u in users or ()],
        },
    ).fetchall()
    out: dict[str, dict[str, Balance]] = {}
    for token, holder, total in rows:
        asset, kind = token_of[token]
        amount = _int(total)
        if amount < 0:
            raise PositionsError(
                f"negative scaled balance of {holder} in {token} at block {block}: missing events"
            )
        current = out.setdefault(holder, {}).get(asset, Balance())
        updated = (
            Balance(amount, current.scaled_vdebt) if kind == 0 else Balance(current.scaled_atoken, amount)
        )
        out[holder][asset] = updated
    return out


def collateral_flags(
    conn: Conn, chain_id: int, pool: str, block: int, users: Sequence[str] | None = None
) -> dict[str, dict[str, bool]]:
    """``{user: {asset: enabled}}``: the latest collateral enabled/disabled event at or before ``block``."""
    user_filter = "" if users is None else "AND user_address = ANY(%(u)s)"
    rows = conn.execute(
        f"""
        SELECT DISTINCT ON (user_address, reserve) user_address, reserve, enabled FROM (
            SELECT user_address, reserve, block_number, log_index, true AS enabled
              FROM aave_v3_collateral_enabled
             WHERE chain_id = %(c)s AND address = %(p)s AND block_number <= %(b)s {user_filter}
            UNION ALL
            SELECT user_address, reserve, block_number, log_index, false
              FROM aave_v3_collateral_disabled
             WHERE chain_id = %(c)s AND address = %(p)s AND block_number <= %(b)s {user_filter}
        ) flags
        ORDER BY user_address, reserve, block_number DESC, log_index DESC
        """,
        _params(chain_id, pool, block, users),
    ).fetchall()
    out: dict[str, dict[str, bool]] = {}
    for user, reserve, enabled in rows:
        out.setdefault(user, {})[reserve] = bool(enabled)
    return out


def user_emodes(
    conn: Conn, chain_id: int, pool: str, block: int, users: Sequence[str] | None = None
) -> dict[str, int]:
    """``{user: eMode category}`` from the latest ``UserEModeSet`` at or before ``block`` (0 left out)."""
    user_filter = "" if users is None else "AND user_address = ANY(%(u)s)"
    rows = conn.execute(
        f"""
        SELECT DISTINCT ON (user_address) user_address, category_id FROM aave_v3_user_emode_set
         WHERE chain_id = %(c)s AND address = %(p)s AND block_number <= %(b)s {user_filter}
         ORDER BY user_address, block_number DESC, log_index DESC
        """,
        _params(chain_id, pool, block, users),
    ).fetchall()
    return {user: int(category) for user, category in rows if category}


def reserve_states(conn: Conn, chain_id: int, pool: str, block: int) -> dict[str, ReserveState]:
    """``{asset: ReserveState}`` from the latest ``ReserveDataUpdated`` at or before ``block``."""
    rows = conn.execute(
        """
        SELECT DISTINCT ON (r.reserve) r.reserve, r.liquidity_index, r.variable_borrow_index,
               r.liquidity_rate, r.variable_borrow_rate, coalesce(l.block_timestamp, h.timestamp)
          FROM aave_v3_reserve_data_updated r
          LEFT JOIN logs l
            ON l.chain_id = r.chain_id AND l.block_number = r.block_number AND l.log_index = r.log_index
          LEFT JOIN blocks h ON h.chain_id = r.chain_id AND h.number = r.block_number
         WHERE r.chain_id = %(c)s AND r.address = %(p)s AND r.block_number <= %(b)s
         ORDER BY r.reserve, r.block_number DESC, r.log_index DESC
        """,
        _params(chain_id, pool, block, None),
    ).fetchall()
    out = {}
    for reserve, li, vi, lr, vr, stamp in rows:
        if stamp is None:
            raise PositionsError(f"no block timestamp for the last ReserveDataUpdated of {reserve}")
        out[reserve] = ReserveState(_int(li), _int(vi), _int(lr), _int(vr), _int(stamp))
    return out


def reserve_configs(
    conn: Conn, chain_id: int, configurators: Sequence[str], block: int
) -> dict[str, ReserveConfig]:
    """``{asset: ReserveConfig}``: the latest collateral configuration and eMode category at ``block``."""
    args = {"c": chain_id, "a": list(configurators), "b": block}
    params = conn.execute(
        """
        SELECT DISTINCT ON (asset) asset, ltv, liquidation_threshold, liquidation_bonus
          FROM aave_v3_collateral_configuration_changed
         WHERE chain_id = %(c)s AND address = ANY(%(a)s) AND block_number <= %(b)s
         ORDER BY asset, block_number DESC, log_index DESC
        """,
        args,
    ).fetchall()
    categories = conn.execute(
        """
        SELECT DISTINCT ON (asset) asset, new_category_id FROM aave_v3_emode_asset_category_changed
         WHERE chain_id = %(c)s AND address = ANY(%(a)s) AND block_number <= %(b)s
         ORDER BY asset, block_number DESC, log_index DESC
        """,
        args,
    ).fetchall()
    emode = {asset: int(category) for asset, category in categories}
    out = {
        asset: ReserveConfig(_int(ltv), _int(lt), _int(bonus), emode.get(asset, 0))
        for asset, ltv, lt, bonus in params
    }
    for asset, category in emode.items():
        out.setdefault(asset, ReserveConfig(emode_category=category))
    return out


def emode_categories(
    conn: Conn, chain_id: int, configurators: Sequence[str], block: int
) -> dict[int, EModeConfig]:
    """``{category: EModeConfig}`` from the latest ``EModeCategoryAdded`` of each category."""
    rows = conn.execute(
        """
        SELECT DISTINCT ON (category_id) category_id, ltv, liquidation_threshold, liquidation_bonus, oracle
          FROM aave_v3_emode_category_added
         WHERE chain_id = %(c)s AND address = ANY(%(a)s) AND block_number <= %(b)s
         ORDER BY category_id, block_number DESC, log_index DESC
        """,
        {"c": chain_id, "a": list(configurators), "b": block},
    ).fetchall()
    return {
        int(c): EModeConfig(int(c), _int(ltv), _int(lt), _int(bonus), oracle)
        for c, ltv, lt, bonus, oracle in rows
    }


def asset_prices(
    conn: Conn, chain_id: int, assets: Iterable[str], block: int, oracle: str | None = None
) -> dict[str, int]:
    """``{asset: price}``: the latest ``AnswerUpdated`` of the asset's oracle source (or of the token's
    configured ``price_feed``) at or before ``block``.

    Without ``oracle`` every indexed AaveOracle that has a source for the asset must give the same price;
    an asset without a source or an answer is left out.
    """
    oracle_filter = "" if oracle is None else "AND address = %(o)s"
    rows = conn.execute(
        f"""
        WITH latest AS (
            SELECT DISTINCT ON (address, asset) address, asset, source
              FROM aave_oracle_asset_source_updated
             WHERE chain_id = %(c)s AND asset = ANY(%(a)s) AND block_number <= %(b)s {oracle_filter}
             ORDER BY address, asset, block_number DESC, log_index DESC
        ), sources AS (
            SELECT l.address, l.asset, coalesce(k.price_feed, l.source) AS source
              FROM latest l
              LEFT JOIN tracked_tokens k ON k.chain_id = %(c)s AND k.token = l.asset
        )
        SELECT s.address, s.asset, s.source, p.current
          FROM sources s
          LEFT JOIN LATERAL (
                SELECT current FROM price_answer_updated a
                 WHERE a.chain_id = %(c)s AND a.address = s.source AND a.block_number <= %(b)s
                 ORDER BY a.block_number DESC, a.log_index DESC
                 LIMIT 1
          ) p ON true
        """,
        {
            "c": chain_id,
            "a": [normalise_address(a) for a in assets],
            "b": block,
            "o": normalise_address(oracle) if oracle else None,
        },
    ).fetchall()
    found: dict[str, set[int]] = {}
    for _oracle, asset, _source, price in rows:
        if price is not None:
            found.setdefault(asset, set()).add(_int(price))
    out = {}
    for asset, prices in found.items():
        if len(prices) > 1:
            raise PositionsError(
                f"oracles disagree on the price of {asset} at block {block} ({sorted(prices)}): pass oracle="
            )
        out[asset] = prices.pop()
    return out


def _params(chain_id: int, pool: str, block: int, users: Sequence[str] | None) -> dict[str, Any]:
    return {
        "c": chain_id,
        "p": normalise_address(pool),
        "b": block,
        "u": [normalise_address(u) for u in users or ()],
    }


# ------------------------------------------------------------------------------------------ entry points


def market_state(
    conn: Conn,
    chain_id: int,
    pool: str,
    block: int,
    decimals: Mapping[str, int] | None = None,
    *,
    users: Sequence[str] | None = None,
    configurator: str | None = None,
    oracle: str | None = None,
    timestamp: int | None = None,
) -> MarketState:
    """Everything needed for the account data of ``users`` (default: all) of ``pool`` at ``block``."""
    pool = normalise_address(pool)
    reserves, configurators = reserve_tokens(conn, chain_id, pool, block, configurator)
    if not reserves:
        raise PositionsError(
            f"no reserves of pool {pool} indexed on chain {chain_id} up to block {block}:"
            " index its aTokens and debt tokens from their initialisation, or pass configurator="
        )
    known = {a: r.decimals for a, r in reserves.items() if r.decimals is not None}
    overrides = {normalise_address(a): d for a, d in (decimals or {}).items()}
    configs = reserve_configs(conn, chain_id, configurators, block)
    categories = emode_categories(conn, chain_id, configurators, block)
    sources = [c.price_source for c in categories.values() if c.price_source != ZERO_ADDRESS]
    return MarketState(
        chain_id=chain_id,
        pool=pool,
        block=block,
        timestamp=block_timestamp(conn, chain_id, block) if timestamp is None else timestamp,
        reserves=reserves,
        decimals=known | overrides,
        states=reserve_states(conn, chain_id, pool, block),
        configs=configs,
        emode_categories=categories,
        prices=asset_prices(conn, chain_id, [*reserves, *sources], block, oracle),
        balances=scaled_balances(conn, chain_id, reserves, block, users),
        collateral=collateral_flags(conn, chain_id, pool, block, users),
        user_emode=user_emodes(conn, chain_id, pool, block, users),
    )


def accounts_data(
    conn: Conn,
    chain_id: int,
    pool: str,
    block: int,
    decimals: Mapping[str, int] | None = None,
    version: Version = "3.0",
    *,
    users: Sequence[str] | None = None,
    configurator: str | None = None,
    oracle: str | None = None,
) -> dict[str, AccountData]:
    """``{user: AccountData}`` for every user with a position (or the given ``users``) at ``block``."""
    state = market_state(
        conn, chain_id, pool, block, decimals, users=users, configurator=configurator, oracle=oracle
    )
    chosen = state.users if users is None else [normalise_address(u) for u in users]
    return {user: state.account_data(user, version) for user in chosen}


def account_data(
    conn: Conn,
    chain_id: int,
    pool: str,
    user: str,
    block: int,
    decimals: Mapping[str, int] | None = None,
    version: Version = "3.0",
    *,
    configurator: str | None = None,
    oracle: str | None = None,
) -> AccountData:
    """``Pool.getUserAccountData(user)`` as of ``block``, from the indexed events only."""
    user = normalise_address(user)
    state = market_state(
        conn, chain_id, pool, block, decimals, users=[user], configurator=configurator, oracle=oracle
    )
    return state.account_data(user, version)
