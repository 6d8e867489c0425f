"""Morpho Blue on the devnet next to the Aave markets, with the project's own interest rate model and oracles.

    morpho = deploy_morpho(deployment, home)
    morpho.supply("WETH/USDC", lender, 1_000_000 * 10**6)
    morpho.supply_collateral("WETH/USDC", wallet, 10 * 10**18)
    morpho.borrow("WETH/USDC", wallet, 20_000 * 10**6)
    morpho.position("WETH/USDC", wallet)  # supply shares, borrow shares, collateral

Morpho itself is compiled at install time from the published ``@morpho-org/morpho-blue`` 1.0.0 sources with
solc-js 0.8.19 (its exact pragma). Markets are isolated: one collateral and one loan token each, keyed by
``keccak256(abi.encode(MarketParams))``. :file:`contracts/morpho/KinkedIrm.sol` is the rate model (one,
shared by every market) and :file:`contracts/morpho/FeedRatioOracle.sol` prices each market's collateral from
the same PriceFeed contracts the Aave oracles read, so one price update moves both protocols. Markets are
named ``collateral/loan``; some charge a fee, paid to ``fee_recipient`` as supply shares on interest accrual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from devnet.aave import Contract, Deployment
from devnet.deploy import SupportsRpc, deploy_contract
from devnet.errors import DevnetError
from devnet.npm import ensure_node_modules
from devnet.solc import CompiledContract, compile_sources

WAD = 10**18
ORACLE_PRICE_SCALE = 10**36
VIRTUAL_SHARES = 10**6
VIRTUAL_ASSETS = 1
LIQUIDATION_CURSOR = 3 * 10**17
MAX_LIQUIDATION_INCENTIVE_FACTOR = 115 * 10**16
MAX_UINT = 2**256 - 1
COMPILER = "solc-0.8.19"  # Morpho Blue pins `pragma solidity 0.8.19` exactly
EVM_VERSION = "paris"  # the newest target solc 0.8.19 knows
MORPHO_SOURCE = "@morpho-org/morpho-blue/src/Morpho.sol"
CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts" / "morpho"
DEPLOY_GAS = 8_000_000
CALL_GAS = 1_000_000
FEE_RECIPIENT_LABEL = "chainrisk-devnet:morpho-fee-recipient"


class MorphoError(DevnetError, RuntimeError):
    """Bad Morpho request (unknown market or asset) or a market spec that cannot be deployed."""


@dataclass(frozen=True)
class MorphoMarketSpec:
    """A market to create: collateral and loan symbols, LLTV and fee (both WAD)."""

    collateral: str
    loan: str
    lltv: int
    fee: int = 0

    @property
    def name(self) -> str:
        return f"{self.collateral}/{self.loan}"


@dataclass(frozen=True)
class IrmSpec:
    """KinkedIrm parameters: yearly rates and the kink utilisation, all WAD."""

    base: int = 0
    slope1: int = 4 * 10**16
    slope2: int = 75 * 10**16
    kink: int = 90 * 10**16


MARKETS: tuple[MorphoMarketSpec, ...] = (
    MorphoMarketSpec("wstETH", "WETH", 945 * 10**15),
    MorphoMarketSpec("WETH", "USDC", 860 * 10**15, fee=10**17),
    MorphoMarketSpec("WBTC", "USDC", 860 * 10**15, fee=10**17),
)


# ------------------------------------------------------------------------------------------------ math


def market_id(params: Sequence[Any]) -> str:
    """``keccak256(abi.encode(loanToken, collateralToken, oracle, irm, lltv))`` as 0x-prefixed hex."""
    encoded = encode(["address", "address", "address", "address", "uint256"], list(params))
    return "0x" + keccak(encoded).hex()


def to_assets_up(shares: int, total_assets: int, total_shares: int) -> int:
    """SharesMathLib.toAssetsUp: what ``shares`` of borrow are worth, rounded up (as health checks do)."""
    numerator, denominator = shares * (total_assets + VIRTUAL_ASSETS), total_shares + VIRTUAL_SHARES
    return -(-numerator // denominator)


def to_assets_down(shares: int, total_assets: int, total_shares: int) -> int:
    """SharesMathLib.toAssetsDown."""
    return shares * (total_assets + VIRTUAL_ASSETS) // (total_shares + VIRTUAL_SHARES)


def liquidation_incentive_factor(lltv: int) -> int:
    """``min(1.15, 1 / (1 - 0.3 * (1 - lltv)))`` in WAD, rounded as Morpho rounds it."""
    cursor = LIQUIDATION_CURSOR * (WAD - lltv) // WAD
    return min(MAX_LIQUIDATION_INCENTIVE_FACTOR, WAD * WAD // (WAD - cursor))


def max_borrow(collateral: int, price: int, lltv: int) -> int:
    """The most a position with ``collateral`` may owe at oracle ``price`` (loan-token base units)."""
    return collateral * price // ORACLE_PRICE_SCALE * lltv // WAD


def oracle_scale_factor(collateral_decimals: int, loan_decimals: int) -> int:
    """``10^(36 + loan decimals - collateral decimals)``: the oracle's factor with two 8-decimal feeds."""
    factor: int = 10 ** (36 + loan_decimals - collateral_decimals)
    return factor


# -------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class MorphoMarket:
    """One created market: its id and MarketParams, and where its oracle reads its prices."""

    name: str
    id: str
    loan_token: str
    collateral_token: str
    oracle: str
    irm: str
    lltv: int
    oracle_base_feed: str
    oracle_quote_feed: str
    oracle_scale_factor: int

    @property
    def params(self) -> tuple[str, str, str, str, int]:
        """MarketParams as the ABI tuple ``(loanToken, collateralToken, oracle, irm, lltv)``."""
        return (self.loan_token, self.collateral_token, self.oracle, self.irm, self.lltv)

    def to_manifest(self) -> dict[str, str]:
        body = {k: v for k, v in self.__dict__.items() if k != "name"}
        return {k: str(v) for k, v in body.items()}

    @classmethod
    def from_manifest(cls, name: str, body: Mapping[str, Any]) -> MorphoMarket:
        return cls(
            name=name,
            id=str(body["id"]),
            loan_token=str(body["loan_token"]),
            collateral_token=str(body["collateral_token"]),
            oracle=str(body["oracle"]),
            irm=str(body["irm"]),
            lltv=int(body["lltv"]),
            oracle_base_feed=str(body["oracle_base_feed"]),
            oracle_quote_feed=str(body["oracle_quote_feed"]),
            oracle_scale_factor=int(body["oracle_scale_factor"]),
        )


@dataclass(frozen=True)
class MorphoPosition:
    """``position(id, user)``: supply shares, borrow shares and collateral (collateral-token units)."""

    supply_shares: int
    borrow_shares: int
    collateral: int


@dataclass(frozen=True)
class MarketState:
    """``market(id)``: totals, the last accrual's timestamp and the fee (WAD)."""

    total_supply_assets: int
    total_supply_shares: int
    total_borrow_assets: int
    total_borrow_shares: int
    last_update: int
    fee: int


@dataclass
class Morpho:
    """Morpho Blue on the devnet: the singleton, its rate model, owner, fee recipient and markets."""

    address: str
    irm: str
    owner: str
    fee_recipient: str
    markets: dict[str, MorphoMarket]
    end_block: int
    rpc: SupportsRpc = field(repr=False, compare=False)
    home: Path = field(repr=False, compare=False)
    deployment: Deployment = field(repr=False, compare=False)

    # -- views

    def contract(self) -> Contract:
        """The Morpho singleton with its ABI."""
        return Contract(self.rpc, self.address, morpho_contracts(self.home)["Morpho"].abi)

    def oracle(self, name: str) -> Contract:
        """The market's FeedRatioOracle."""
        return Contract(
            self.rpc, self.market(name).oracle, morpho_contracts(self.home)["FeedRatioOracle"].abi
        )

    def market(self, name: str) -> MorphoMarket:
        """A market by name (``collateral/loan``)."""
        if name not in self.markets:
            raise MorphoError(f"unknown Morpho market {name!r}; created: {', '.join(self.markets)}")
        return self.markets[name]

    def position(self, name: str, user: str, block: str | int = "latest") -> MorphoPosition:
        """``position(id, user)`` of the market."""
        values = self.contract().call("position", _id_bytes(self.market(name).id), user, block=block)
        return MorphoPosition(*(int(v) for v in values))

    def market_state(self, name: str, block: str | int = "latest") -> MarketState:
        """``market(id)``: the totals as of the last accrual."""
        values = self.contract().call("market", _id_bytes(self.market(name).id), block=block)
        return MarketState(*(int(v) for v in values))

    def price(self, name: str, block: str | int = "latest") -> int:
        """The market oracle's ``price()`` (loan-token units per collateral unit, scaled by 1e36)."""
        return int(self.oracle(name).call("price", block=block))

    def borrowed(self, name: str, user: str) -> int:
        """What ``user`` owes as of the last accrual, borrow shares rounded up to assets."""
        state = self.market_state(name)
        shares = self.position(name, user).borrow_shares
        return to_assets_up(shares, state.total_borrow_assets, state.total_borrow_shares)

    def is_healthy(self, name: str, user: str) -> bool:
        """Whether ``borrowed <= collateral * price / 1e36 * lltv`` (not counting interest since the last
        accrual)."""
        collateral = self.position(name, user).collateral
        return self.borrowed(name, user) <= max_borrow(collateral, self.price(name), self.market(name).lltv)

    # -- transactions (sender must be unlocked or impersonated)

    def approve(self, sender: str, token: str) -> None:
        """Let Morpho pull ``token`` (an address) from ``sender``, without limit, once."""
        erc20 = self.deployment.contract(token, "MintableERC20")
        if int(erc20.call("allowance", sender, self.address)) < MAX_UINT // 2:
            erc20.transact(sender, "approve", self.address, MAX_UINT, gas=100_000)

    def supply(self, name: str, sender: str, assets: int) -> dict[str, Any]:
        """Lend ``assets`` of the loan token (approves first)."""
        market = self.market(name)
        self.approve(sender, market.loan_token)
        return self._transact(sender, "supply", market.params, assets, 0, sender, b"")

    def supply_collateral(self, name: str, sender: str, assets: int) -> dict[str, Any]:
        """Post ``assets`` of the collateral token (approves first)."""
        market = self.market(name)
        self.approve(sender, market.collateral_token)
        return self._transact(sender, "supplyCollateral", market.params, assets, sender, b"")

    def borrow(self, name: str, sender: str, assets: int) -> dict[str, Any]:
        """Borrow ``assets`` of the loan token to ``sender``."""
        return self._transact(sender, "borrow", self.market(name).params, assets, 0, sender, sender)

    def repay(self, name: str, sender: str, assets: int = 0, shares: int = 0) -> dict[str, Any]:
        """Repay by assets or by shares (exactly one non-zero; approves first)."""
        market = self.market(name)
        self.approve(sender, market.loan_token)
        return self._transact(sender, "repay", market.params, assets, shares, sender, b"")

    def withdraw(self, name: str, sender: str, assets: int = 0, shares: int = 0) -> dict[str, Any]:
        """Withdraw supplied loan tokens by assets or by shares."""
        return self._transact(sender, "withdraw", self.market(name).params, assets, shares, sender, sender)

    def withdraw_collateral(self, name: str, sender: str, assets: int) -> dict[str, Any]:
        """Take ``assets`` of collateral back (must stay healthy)."""
        return self._transact(sender, "withdrawCollateral", self.market(name).params, assets, sender, sender)

    def liquidate(
        self, name: str, liquidator: str, borrower: str, seized_assets: int = 0, repaid_shares: int = 0
    ) -> dict[str, Any]:
        """Liquidate ``borrower``: seize collateral or repay shares (exactly one non-zero; approves first)."""
        market = self.market(name)
        self.approve(liquidator, market.loan_token)
        args = (market.params, borrower, seized_assets, repaid_shares, b"")
        return self._transact(liquidator, "liquidate", *args)

    def _transact(self, sender: str, function: str, *args: Any) -> dict[str, Any]:
        return self.contract().transact(sender, function, *args, gas=CALL_GAS)

    # -- manifest

    def to_manifest(self) -> dict[str, Any]:
        """The ``morpho`` section of the devnet manifest (addresses lowercase, integers as strings)."""
        return {
            "address": self.address,
            "irm": self.irm,
            "owner": self.owner,
            "fee_recipient": self.fee_recipient,
            "markets": {name: market.to_manifest() for name, market in self.markets.items()},
        }

    @classmethod
    def from_manifest(cls, body: Mapping[str, Any], deployment: Deployment) -> Morpho | None:
        """The Morpho deployment of a full devnet manifest, or None when it has no ``morpho`` section."""
        section = body.get("morpho")
        if not section:
            return None
        return cls(
            address=str(section["address"]),
            irm=str(section["irm"]),
            owner=str(section["owner"]),
            fee_recipient=str(section["fee_recipient"]),
            markets={n: MorphoMarket.from_manifest(n, m) for n, m in section["markets"].items()},
            end_block=int(body["end_block"]),
            rpc=deployment.rpc,
            home=deployment.home,
            deployment=deployment,
        )


def manifest_with_morpho(body: Mapping[str, Any], morpho: Morpho) -> dict[str, Any]:
    """The manifest plus its ``morpho`` section, ``end_block`` moved to Morpho's last deployment block."""
    end = max(int(body["end_block"]), morpho.end_block)
    return {**body, "end_block": end, "morpho": morpho.to_manifest()}


# ----------------------------------------------------------------------------------------- deployment


@cache
def morpho_contracts(home: Path) -> dict[str, CompiledContract]:
    """Morpho (from the installed npm sources), KinkedIrm and FeedRatioOracle, compiled with solc 0.8.19."""
    modules = ensure_node_modules(home)
    sources = {MORPHO_SOURCE: (modules / MORPHO_SOURCE).read_text()}
    for path in sorted(CONTRACTS_DIR.glob("*.sol")):
        sources[f"contracts/morpho/{path.name}"] = path.read_text()
    return compile_sources(home, sources, evm_version=EVM_VERSION, compiler=COMPILER)


def fee_recipient_address() -> str:
    """The fixed address that receives the markets' fees."""
    return "0x" + keccak(text=FEE_RECIPIENT_LABEL)[-20:].hex()


def deploy_morpho(
    deployment: Deployment,
    home: Path,
    *,
    markets: Sequence[MorphoMarketSpec] = MARKETS,
    irm: IrmSpec = IrmSpec(),
) -> Morpho:
    """Deploy Morpho (owned by the deployer), the rate model and one oracle per market; create the markets.

    The owner enables the rate model and each LLTV, sets the fee recipient, then creates every market and
    sets its fee where the spec has one.
    """
    _check_specs(deployment, markets)
    compiled, rpc, owner = morpho_contracts(home), deployment.rpc, deployment.deployer
    address = deploy_contract(rpc, compiled["Morpho"], [owner], owner, gas=DEPLOY_GAS)
    irm_args = [irm.base, irm.slope1, irm.slope2, irm.kink]
    irm_address = deploy_contract(rpc, compiled["KinkedIrm"], irm_args, owner, gas=DEPLOY_GAS)
    singleton = Contract(rpc, address, compiled["Morpho"].abi)
    singleton.transact(owner, "enableIrm", irm_address)
    for lltv in sorted({spec.lltv for spec in markets}):
        singleton.transact(owner, "enableLltv", lltv)
    recipient = fee_recipient_address()
    singleton.transact(owner, "setFeeRecipient", recipient)
    created = {
        spec.name: _create_market(deployment, singleton, compiled, irm_address, spec) for spec in markets
    }
    end = int(rpc.rpc("eth_blockNumber"), 16)
    return Morpho(address, irm_address, owner, recipient, created, end, rpc, home, deployment)


def _check_specs(deployment: Deployment, markets: Sequence[MorphoMarketSpec]) -> None:
    for spec in markets:
        unknown = [s for s in (spec.collateral, spec.loan) if s not in deployment.assets]
        if unknown or spec.collateral == spec.loan:
            raise MorphoError(f"bad market {spec.name}; listed assets: {', '.join(deployment.assets)}")
        if not 0 < spec.lltv < WAD or not 0 <= spec.fee <= WAD // 4:
            raise MorphoError(f"market {spec.name}: lltv must be in (0, 1e18) and fee at most 0.25e18")
    names = [spec.name for spec in markets]
    if len(set(names)) != len(names):
        raise MorphoError(f"market names repeat: {names}")


def _create_market(
    deployment: Deployment,
    singleton: Contract,
    compiled: Mapping[str, CompiledContract],
    irm: str,
    spec: MorphoMarketSpec,
) -> MorphoMarket:
    collateral, loan = deployment.assets[spec.collateral], deployment.assets[spec.loan]
    owner = deployment.deployer
    oracle_args = [collateral.price_feed, loan.price_feed, collateral.decimals, loan.decimals]
    oracle = deploy_contract(deployment.rpc, compiled["FeedRatioOracle"], oracle_args, owner, gas=DEPLOY_GAS)
    params = (loan.token, collateral.token, oracle, irm, spec.lltv)
    singleton.transact(owner, "createMarket", params)
    if spec.fee:
        singleton.transact(owner, "setFee", params, spec.fee)
    return MorphoMarket(
        name=spec.name,
        id=market_id(params),
        loan_token=loan.token,
        collateral_token=collateral.token,
        oracle=oracle,
        irm=irm,
        lltv=spec.lltv,
        oracle_base_feed=collateral.price_feed,
        oracle_quote_feed=loan.price_feed,
        oracle_scale_factor=oracle_scale_factor(collateral.decimals, loan.decimals),
    )


def _id_bytes(market_id_hex: str) -> bytes:
    return bytes.fromhex(market_id_hex.removeprefix("0x"))
