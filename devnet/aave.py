"""Two real Aave v3 markets ('aave' and a fork-style 'spark') on anvil, from the published npm artifacts.

    with Anvil(home) as anvil:
        deployment = deploy_markets(anvil, home)
        deployment.set_price("WETH", 2_500 * 10**8)
        deployment.pool("spark").call("getUserAccountData", wallet)

Both markets list the same five MintableERC20 tokens (WETH, WBTC, wstETH, USDC, DAI), so one wallet can hold
positions in both. The Pool's logic libraries are deployed once and linked into both Pool implementations;
everything else (addresses provider, ACL, oracle, token implementations, rate strategies) is per market.
Prices come from :file:`contracts/PriceFeed.sol`, a settable Chainlink-style feed per asset shared by both
oracles: Aave's own MockAggregator has no setter, and each update here emits ``AnswerUpdated``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.crypto import keccak

from devnet.deploy import (
    DeployError,
    SupportsRpc,
    deploy_contract,
    rpc_for,
    send_transaction,
    wait_receipt,
)
from devnet.errors import DevnetError
from devnet.npm import ensure_node_modules
from devnet.solc import CompiledContract, compile_sources

RAY = 10**27
ZERO_ADDRESS = "0x" + "00" * 20
USD = 10**8  # oracle base currency unit: USD with 8 decimals, as on Ethereum mainnet
EMODE_ETH = 1
DEPLOY_GAS = 15_000_000
CALL_GAS = 3_000_000
INIT_RESERVES_GAS = 40_000_000
PRICE_FEED_SOURCE = Path(__file__).resolve().parent / "contracts" / "PriceFeed.sol"

# Deployment order: FlashLoanLogic links BorrowLogic, so BorrowLogic comes first.
LIBRARIES = (
    "BorrowLogic",
    "BridgeLogic",
    "ConfiguratorLogic",
    "EModeLogic",
    "FlashLoanLogic",
    "LiquidationLogic",
    "PoolLogic",
    "SupplyLogic",
)
_ARTIFACTS = {
    "PoolAddressesProvider": "protocol/configuration/PoolAddressesProvider.sol",
    "ACLManager": "protocol/configuration/ACLManager.sol",
    "Pool": "protocol/pool/Pool.sol",
    "PoolConfigurator": "protocol/pool/PoolConfigurator.sol",
    "DefaultReserveInterestRateStrategy": "protocol/pool/DefaultReserveInterestRateStrategy.sol",
    "AToken": "protocol/tokenization/AToken.sol",
    "VariableDebtToken": "protocol/tokenization/VariableDebtToken.sol",
    "StableDebtToken": "protocol/tokenization/StableDebtToken.sol",
    "AaveOracle": "misc/AaveOracle.sol",
    "AaveProtocolDataProvider": "misc/AaveProtocolDataProvider.sol",
    "MintableERC20": "mocks/tokens/MintableERC20.sol",
    **{lib: f"protocol/libraries/logic/{lib}.sol" for lib in LIBRARIES},
}


class AaveDeployError(DevnetError, RuntimeError):
    """A deployment or market transaction failed; ``reason`` is the decoded revert reason, if any."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message if reason is None else f"{message}: {reason}")
        self.reason = reason


# ---------------------------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class AssetSpec:
    """A listed token: ERC-20 metadata, starting USD price (8 decimals) and rate-strategy class."""

    symbol: str
    name: str
    decimals: int
    price: int
    rates: str


@dataclass(frozen=True)
class ReserveParams:
    """Risk parameters of one reserve; percentages in basis points, caps in whole tokens (0 = none)."""

    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    reserve_factor: int
    supply_cap: int
    borrow_cap: int
    borrowing: bool = True
    liquidation_protocol_fee: int = 1_000


@dataclass(frozen=True)
class EModeSpec:
    """An efficiency-mode category: its own LTV, threshold and bonus for correlated assets."""

    category_id: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    label: str
    assets: tuple[str, ...]


@dataclass(frozen=True)
class RateSpec:
    """DefaultReserveInterestRateStrategy parameters as fractions of one (converted to ray on deploy)."""

    optimal_usage: float
    base: float
    slope1: float
    slope2: float

    def constructor_args(self, provider: str) -> list[Any]:
        ray = [_ray(x) for x in (self.optimal_usage, self.base, self.slope1, self.slope2)]
        # Stable-rate borrowing stays disabled; its parameters only need to be valid.
        return [provider, *ray, 0, 0, _ray(0.02), _ray(0.05), _ray(0.2)]


@dataclass(frozen=True)
class MarketSpec:
    """One Aave v3 market: its id, reserve parameters by symbol and eMode categories."""

    name: str
    market_id: str
    reserves: Mapping[str, ReserveParams]
    emodes: tuple[EModeSpec, ...]
    rates: Mapping[str, RateSpec]


ASSETS: tuple[AssetSpec, ...] = (
    AssetSpec("WETH", "Wrapped Ether", 18, 3_000 * USD, "eth"),
    AssetSpec("WBTC", "Wrapped BTC", 8, 60_000 * USD, "btc"),
    AssetSpec("wstETH", "Wrapped liquid staked Ether 2.0", 18, 3_500 * USD, "eth"),
    AssetSpec("USDC", "USD Coin", 6, 1 * USD, "stable"),
    AssetSpec("DAI", "Dai Stablecoin", 18, 1 * USD, "stable"),
)

_RATES = {
    "eth": RateSpec(optimal_usage=0.80, base=0.0, slope1=0.033, slope2=0.80),
    "btc": RateSpec(optimal_usage=0.45, base=0.0, slope1=0.04, slope2=3.00),
    "stable": RateSpec(optimal_usage=0.90, base=0.0, slope1=0.04, slope2=0.60),
}

AAVE_MARKET = MarketSpec(
    name="aave",
    market_id="Aave Ethereum Devnet",
    reserves={
        "WETH": ReserveParams(8_000, 8_250, 10_500, 1_500, 1_800_000, 1_400_000),
        "WBTC": ReserveParams(7_300, 7_800, 10_500, 2_000, 43_000, 28_000),
        "wstETH": ReserveParams(7_850, 8_100, 10_600, 1_500, 1_200_000, 12_000),
        "USDC": ReserveParams(7_700, 8_000, 10_450, 1_000, 1_760_000_000, 1_580_000_000),
        "DAI": ReserveParams(6_300, 7_700, 10_500, 1_000, 338_000_000, 271_000_000),
    },
    emodes=(EModeSpec(EMODE_ETH, 9_300, 9_500, 10_100, "ETH correlated", ("WETH", "wstETH")),),
    rates=_RATES,
)

SPARK_MARKET = MarketSpec(
    name="spark",
    market_id="Spark Devnet",
    reserves={
        "WETH": ReserveParams(8_200, 8_300, 10_500, 500, 2_000_000, 1_000_000),
        "WBTC": ReserveParams(7_000, 7_500, 10_700, 2_000, 10_000, 5_000),
        "wstETH": ReserveParams(7_900, 8_000, 10_700, 1_500, 1_000_000, 5_000),
        "USDC": ReserveParams(7_500, 7_800, 10_500, 500, 1_000_000_000, 950_000_000),
        "DAI": ReserveParams(7_700, 8_000, 10_450, 0, 2_000_000_000, 1_800_000_000),
    },
    emodes=(EModeSpec(EMODE_ETH, 9_000, 9_300, 10_200, "ETH correlated", ("WETH", "wstETH")),),
    rates={
        **_RATES,
        "stable": RateSpec(optimal_usage=0.95, base=0.05, slope1=0.0, slope2=0.75),
    },
)

MARKETS: tuple[MarketSpec, ...] = (AAVE_MARKET, SPARK_MARKET)


# ------------------------------------------------------------------------------------ artifacts & calls


def aave_artifact(home: Path, name: str, libraries: Mapping[str, str] | None = None) -> CompiledContract:
    """A contract from the installed ``@aave/core-v3`` artifacts, its library placeholders linked.

    ``libraries`` maps library names (``"BorrowLogic"``) to deployed addresses; linking uses the artifact's
    ``linkReferences`` (byte offsets), and a needed library missing from the map is an error.
    """
    raw = _raw_artifact(str(ensure_node_modules(home)), name)
    bytecode = _link(raw["bytecode"], raw.get("linkReferences", {}), libraries or {}, name)
    deployed = _link(raw["deployedBytecode"], raw.get("deployedLinkReferences", {}), libraries or {}, name)
    return CompiledContract(name, raw["sourceName"], raw["abi"], bytecode, deployed)


def aave_abi(home: Path, name: str) -> list[dict[str, Any]]:
    """The ABI of an ``@aave/core-v3`` artifact (no linking needed)."""
    abi: list[dict[str, Any]] = _raw_artifact(str(ensure_node_modules(home)), name)["abi"]
    return abi


def link_references(home: Path, name: str) -> list[str]:
    """Names of the libraries an Aave artifact must be linked against."""
    raw = _raw_artifact(str(ensure_node_modules(home)), name)
    return sorted({lib for refs in raw.get("linkReferences", {}).values() for lib in refs})


def price_feed_contract(home: Path) -> CompiledContract:
    """The project's settable price feed, compiled (and cached) with the pinned solc-js."""
    sources = {"contracts/PriceFeed.sol": PRICE_FEED_SOURCE.read_text()}
    return compile_sources(home, sources)["PriceFeed"]


@cache
def _raw_artifact(modules: str, name: str) -> dict[str, Any]:
    if name not in _ARTIFACTS:
        raise KeyError(f"unknown Aave artifact {name!r}; known: {', '.join(sorted(_ARTIFACTS))}")
    path = Path(modules) / "@aave" / "core-v3" / "artifacts" / "contracts" / _ARTIFACTS[name] / f"{name}.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _link(bytecode: str, references: Mapping[str, Any], libraries: Mapping[str, str], name: str) -> str:
    code = bytecode.removeprefix("0x")
    for refs in references.values():
        for library, spots in refs.items():
            if library not in libraries:
                raise AaveDeployError(f"{name} needs library {library} deployed and linked first")
            address = libraries[library].removeprefix("0x").lower()
            for spot in spots:
                start, end = 2 * int(spot["start"]), 2 * (int(spot["start"]) + int(spot["length"]))
                code = code[:start] + address + code[end:]
    if "__$" in code:
        raise AaveDeployError(f"{name} still has unlinked library placeholders after linking")
    return "0x" + code


@dataclass(frozen=True)
class Contract:
    """A deployed contract over JSON-RPC: ``call`` decodes views, ``transact`` waits for the receipt."""

    rpc: SupportsRpc = field(repr=False, compare=False)
    address: str
    abi: Sequence[dict[str, Any]] = field(repr=False, compare=False)

    def call(self, function: str, *args: Any, block: str | int = "latest", sender: str | None = None) -> Any:
        """Result of a view (or simulated) call; one output is returned bare, several as a tuple."""
        entry = _function(self.abi, function, len(args))
        tx = {"to": self.address, "data": _calldata(entry, args)}
        if sender:
            tx["from"] = sender
        tag = hex(block) if isinstance(block, int) else block
        raw = self.rpc.rpc("eth_call", [tx, tag])
        types = [_abi_type(o) for o in entry["outputs"]]
        values = decode(types, bytes.fromhex(str(raw).removeprefix("0x")))
        return values[0] if len(values) == 1 else tuple(values)

    def send(self, sender: str, function: str, *args: Any, gas: int = CALL_GAS) -> str:
        """Submit ``function(args)`` from ``sender`` without waiting; returns the transaction hash."""
        data = _calldata(_function(self.abi, function, len(args)), args)
        return send_transaction(self.rpc, sender, self.address, data, gas)

    def transact(self, sender: str, function: str, *args: Any, gas: int = CALL_GAS) -> dict[str, Any]:
        """Send ``function(args)`` from an unlocked (or impersonated) ``sender``; returns the receipt."""
        data = _calldata(_function(self.abi, function, len(args)), args)
        return transact(self.rpc, sender, self.address, data, gas)


def transact(rpc: SupportsRpc, sender: str, to: str | None, data: str, gas: int) -> dict[str, Any]:
    """One transaction, waited for; a revert raises :class:`AaveDeployError` with the decoded reason."""
    tx_hash = send_transaction(rpc, sender, to, data, gas)
    try:
        return wait_receipt(rpc, tx_hash)
    except DeployError as exc:
        raise AaveDeployError(str(exc), _revert_reason(rpc, sender, to, data, gas)) from exc


def revert_reason(data: str) -> str:
    """Readable form of revert data: ``Error(string)`` text (Aave's numeric codes), or the raw selector."""
    raw = bytes.fromhex(data.removeprefix("0x"))
    if raw[:4] == bytes.fromhex("08c379a0"):
        return str(decode(["string"], raw[4:])[0])
    return "0x" + raw.hex() if raw else "(no revert data)"


def _revert_reason(rpc: SupportsRpc, sender: str, to: str | None, data: str, gas: int) -> str | None:
    # A reverted transaction changes only the nonce and balance, so replaying it as a call reproduces it.
    tx = {"from": sender, "data": data, "gas": hex(gas), **({"to": to} if to else {})}
    try:
        rpc.rpc("eth_call", [tx, "latest"])
    except Exception as exc:  # the node reports the revert as a JSON-RPC error with the data attached
        payload = getattr(exc, "data", None)
        return revert_reason(payload) if isinstance(payload, str) else str(exc)
    return None


def _function(abi: Sequence[dict[str, Any]], name: str, arity: int) -> dict[str, Any]:
    """The ABI entry of ``name`` taking ``arity`` arguments (overloads such as ``mint`` differ by arity)."""
    named = [e for e in abi if e.get("type") == "function" and e.get("name") == name]
    for entry in named:
        if len(entry["inputs"]) == arity:
            return entry
    if named:
        counts = " or ".join(str(n) for n in sorted({len(e["inputs"]) for e in named}))
        raise TypeError(f"{name} takes {counts} arguments, got {arity}")
    raise KeyError(f"no function {name!r} in the ABI")


def _calldata(entry: Mapping[str, Any], args: Sequence[Any]) -> str:
    types = [_abi_type(p) for p in entry["inputs"]]
    selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
    return "0x" + (selector + encode(types, list(args))).hex()


def _abi_type(param: Mapping[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + kind[len("tuple") :]
    return kind


def _ray(fraction: float) -> int:
    return round(fraction * 10**6) * 10**21


# -------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class AssetDeployment:
    """A token both markets list, with its price feed and starting price (USD, 8 decimals)."""

    symbol: str
    name: str
    decimals: int
    token: str
    price_feed: str
    initial_price: int


@dataclass(frozen=True)
class ReserveDeployment:
    """One reserve of one market: its tokens, rate strategy and risk parameters."""

    symbol: str
    underlying: str
    a_token: str
    v_token: str
    s_token: str
    rate_strategy: str
    params: ReserveParams


@dataclass(frozen=True)
class MarketDeployment:
    """Addresses of one market's contracts (proxies where Aave uses proxies) and its reserves."""

    name: str
    market_id: str
    addresses_provider: str
    acl_manager: str
    pool: str
    pool_impl: str
    pool_configurator: str
    pool_configurator_impl: str
    oracle: str
    data_provider: str
    a_token_impl: str
    v_token_impl: str
    s_token_impl: str
    rate_strategies: dict[str, str]
    reserves: dict[str, ReserveDeployment]
    emodes: tuple[EModeSpec, ...]


@dataclass
class Deployment:
    """Everything :func:`deploy_markets` put on chain; :meth:`to_manifest` gives its JSON form."""

    chain_id: int
    deployer: str
    start_block: int
    end_block: int
    libraries: dict[str, str]
    assets: dict[str, AssetDeployment]
    markets: dict[str, MarketDeployment]
    rpc: SupportsRpc = field(repr=False, compare=False)
    home: Path = field(repr=False, compare=False)

    def pool(self, market: str) -> Contract:
        """The market's Pool (proxy) with the Pool ABI."""
        return self.contract(self._market(market).pool, "Pool")

    def configurator(self, market: str) -> Contract:
        """The market's PoolConfigurator (proxy)."""
        return self.contract(self._market(market).pool_configurator, "PoolConfigurator")

    def oracle(self, market: str) -> Contract:
        """The market's AaveOracle."""
        return self.contract(self._market(market).oracle, "AaveOracle")

    def token(self, symbol: str) -> Contract:
        """An underlying ERC-20 (MintableERC20: ``mint(address,uint256)`` is open to anyone)."""
        return self.contract(self._asset(symbol).token, "MintableERC20")

    def a_token(self, market: str, symbol: str) -> Contract:
        return self.contract(self._reserve(market, symbol).a_token, "AToken")

    def v_token(self, market: str, symbol: str) -> Contract:
        return self.contract(self._reserve(market, symbol).v_token, "VariableDebtToken")

    def price_feed(self, symbol: str) -> Contract:
        return Contract(self.rpc, self._asset(symbol).price_feed, price_feed_contract(self.home).abi)

    def contract(self, address: str, artifact: str) -> Contract:
        """Any address with the ABI of a named Aave artifact."""
        return Contract(self.rpc, address, aave_abi(self.home, artifact))

    def set_price(self, symbol: str, usd_8_decimals: int) -> dict[str, Any]:
        """Publish a new USD price (8 decimals) on the asset's feed, which both markets' oracles read."""
        if usd_8_decimals <= 0:
            raise ValueError(f"price of {symbol} must be positive, got {usd_8_decimals}")
        return self.price_feed(symbol).transact(self.deployer, "setAnswer", usd_8_decimals, gas=200_000)

    def price(self, symbol: str, market: str = "aave") -> int:
        """The price the market's AaveOracle reports now (USD, 8 decimals)."""
        return int(self.oracle(market).call("getAssetPrice", self._asset(symbol).token))

    def symbol_of(self, address: str) -> str:
        """The symbol of an underlying token address."""
        for asset in self.assets.values():
            if asset.token == address.lower():
                return asset.symbol
        raise KeyError(f"{address} is not a listed asset")

    def to_manifest(self) -> dict[str, Any]:
        """A JSON-serialisable description (addresses lowercase, amounts as integers)."""
        markets = {}
        for name, market in self.markets.items():
            body = asdict(market)
            body["emodes"] = [asdict(e) | {"assets": list(e.assets)} for e in market.emodes]
            markets[name] = body
        return {
            "version": 1,
            "chain_id": self.chain_id,
            "deployer": self.deployer,
            "start_block": self.start_block,
            "end_block": self.end_block,
            "libraries": dict(self.libraries),
            "assets": {s: asdict(a) for s, a in self.assets.items()},
            "markets": markets,
        }

    @classmethod
    def from_manifest(
        cls, manifest: Mapping[str, Any], target: SupportsRpc | str | Any, home: Path
    ) -> Deployment:
        """Rebuild a deployment from :meth:`to_manifest` output, bound to a node (Anvil, URL or Web3)."""
        markets = {}
        for name, body in manifest["markets"].items():
            reserves = {
                s: ReserveDeployment(**{**r, "params": ReserveParams(**r["params"])})
                for s, r in body["reserves"].items()
            }
            emodes = tuple(EModeSpec(**{**e, "assets": tuple(e["assets"])}) for e in body["emodes"])
            markets[name] = MarketDeployment(**{**body, "reserves": reserves, "emodes": emodes})
        return cls(
            chain_id=int(manifest["chain_id"]),
            deployer=str(manifest["deployer"]),
            start_block=int(manifest["start_block"]),
            end_block=int(manifest["end_block"]),
            libraries=dict(manifest["libraries"]),
            assets={s: AssetDeployment(**a) for s, a in manifest["assets"].items()},
            markets=markets,
            rpc=rpc_for(target),
            home=home,
        )

    def _market(self, market: str) -> MarketDeployment:
        if market not in self.markets:
            raise KeyError(f"unknown market {market!r}; deployed: {', '.join(self.markets)}")
        return self.markets[market]

    def _asset(self, symbol: str) -> AssetDeployment:
        if symbol not in self.assets:
            raise KeyError(f"unknown asset {symbol!r}; listed: {', '.join(self.assets)}")
        return self.assets[symbol]

    def _reserve(self, market: str, symbol: str) -> ReserveDeployment:
        self._asset(symbol)
        return self._market(market).reserves[symbol]


# ----------------------------------------------------------------------------------------- deployment


def deploy_markets(
    target: SupportsRpc | str | Any,
    home: Path,
    *,
    deployer: str | None = None,
    assets: Sequence[AssetSpec] = ASSETS,
    markets: Sequence[MarketSpec] = MARKETS,
) -> Deployment:
    """Deploy the tokens, price feeds, shared Aave libraries and every market; returns what was deployed.

    ``target`` is an :class:`~devnet.anvil.Anvil`, an RPC URL or a ``web3.Web3``; ``deployer`` (default: the
    node's first unlocked account) becomes the owner, ACL admin, pool admin and price publisher.
    """
    _check_specs(assets, markets)
    rpc = rpc_for(target)
    owner = (deployer or str(rpc.rpc("eth_accounts")[0])).lower()
    start = int(rpc.rpc("eth_blockNumber"), 16) + 1
    feed = price_feed_contract(home)
    erc20 = aave_artifact(home, "MintableERC20")
    listed: dict[str, AssetDeployment] = {}
    for spec in assets:
        token = deploy_contract(rpc, erc20, [spec.name, spec.symbol, spec.decimals], owner, gas=DEPLOY_GAS)
        source = deploy_contract(rpc, feed, [f"{spec.symbol} / USD", spec.price], owner, gas=DEPLOY_GAS)
        listed[spec.symbol] = AssetDeployment(
            spec.symbol, spec.name, spec.decimals, token, source, spec.price
        )
    libraries = _deploy_libraries(rpc, home, owner)
    both = {a.symbol: (a, listed[a.symbol]) for a in assets}
    deployed = {m.name: _deploy_market(rpc, home, owner, m, both, libraries) for m in markets}
    return Deployment(
        chain_id=int(rpc.rpc("eth_chainId"), 16),
        deployer=owner,
        start_block=start,
        end_block=int(rpc.rpc("eth_blockNumber"), 16),
        libraries=libraries,
        assets=listed,
        markets=deployed,
        rpc=rpc,
        home=home,
    )


def _check_specs(assets: Sequence[AssetSpec], markets: Sequence[MarketSpec]) -> None:
    symbols = [a.symbol for a in assets]
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"asset symbols must be unique, got {symbols}")
    for market in markets:
        unknown = sorted(set(market.reserves) - set(symbols))
        if unknown:
            raise ValueError(f"market {market.name!r} lists unknown assets {unknown}; known: {symbols}")
        missing = sorted({a.rates for a in assets if a.symbol in market.reserves} - set(market.rates))
        if missing:
            raise ValueError(f"market {market.name!r} has no rate strategy for {missing}")
        for emode in market.emodes:
            if not set(emode.assets) <= set(market.reserves):
                raise ValueError(
                    f"eMode {emode.label!r} of {market.name!r} names unlisted assets {emode.assets}"
                )


def _deploy_libraries(rpc: SupportsRpc, home: Path, owner: str) -> dict[str, str]:
    libraries: dict[str, str] = {}
    for name in LIBRARIES:
        libraries[name] = deploy_contract(
            rpc, aave_artifact(home, name, libraries), [], owner, gas=DEPLOY_GAS
        )
    return libraries


def _deploy_market(
    rpc: SupportsRpc,
    home: Path,
    owner: str,
    spec: MarketSpec,
    assets: Mapping[str, tuple[AssetSpec, AssetDeployment]],
    libraries: Mapping[str, str],
) -> MarketDeployment:
    def deploy(name: str, *args: Any) -> str:
        return deploy_contract(rpc, aave_artifact(home, name, libraries), list(args), owner, gas=DEPLOY_GAS)

    def bind(address: str, name: str) -> Contract:
        return Contract(rpc, address, aave_abi(home, name))

    provider = bind(deploy("PoolAddressesProvider", spec.market_id, owner), "PoolAddressesProvider")
    provider.transact(owner, "setACLAdmin", owner)
    acl = deploy("ACLManager", provider.address)
    provider.transact(owner, "setACLManager", acl)
    bind(acl, "ACLManager").transact(owner, "addPoolAdmin", owner)
    pool_impl = deploy("Pool", provider.address)
    provider.transact(owner, "setPoolImpl", pool_impl, gas=DEPLOY_GAS)
    configurator_impl = deploy("PoolConfigurator")
    provider.transact(owner, "setPoolConfiguratorImpl", configurator_impl, gas=DEPLOY_GAS)
    listed = [assets[s][1] for s in spec.reserves]
    sources = ([a.token for a in listed], [a.price_feed for a in listed])
    oracle = deploy("AaveOracle", provider.address, *sources, ZERO_ADDRESS, ZERO_ADDRESS, USD)
    provider.transact(owner, "setPriceOracle", oracle)
    data_provider = deploy("AaveProtocolDataProvider", provider.address)
    provider.transact(owner, "setPoolDataProvider", data_provider)
    pool = bind(str(provider.call("getPool")).lower(), "Pool")
    configurator = bind(str(provider.call("getPoolConfigurator")).lower(), "PoolConfigurator")
    impls = {name: deploy(name, pool.address) for name in ("AToken", "VariableDebtToken", "StableDebtToken")}
    classes = sorted({assets[s][0].rates for s in spec.reserves})
    strategies = {
        c: deploy("DefaultReserveInterestRateStrategy", *spec.rates[c].constructor_args(provider.address))
        for c in classes
    }
    inputs = [
        _init_reserve_input(spec, assets[s][0], assets[s][1], impls, strategies[assets[s][0].rates], owner)
        for s in spec.reserves
    ]
    configurator.transact(owner, "initReserves", inputs, gas=INIT_RESERVES_GAS)
    for symbol, params in spec.reserves.items():
        _configure_reserve(configurator, owner, assets[symbol][1].token, params)
    for emode in spec.emodes:
        _configure_emode(configurator, owner, emode, assets)
    reserves = {
        s: _reserve_deployment(pool, s, assets[s][1].token, params) for s, params in spec.reserves.items()
    }
    return MarketDeployment(
        name=spec.name,
        market_id=spec.market_id,
        addresses_provider=provider.address,
        acl_manager=acl,
        pool=pool.address,
        pool_impl=pool_impl,
        pool_configurator=configurator.address,
        pool_configurator_impl=configurator_impl,
        oracle=oracle,
        data_provider=data_provider,
        a_token_impl=impls["AToken"],
        v_token_impl=impls["VariableDebtToken"],
        s_token_impl=impls["StableDebtToken"],
        rate_strategies=strategies,
        reserves=reserves,
        emodes=spec.emodes,
    )


def _init_reserve_input(
    market: MarketSpec,
    spec: AssetSpec,
    asset: AssetDeployment,
    impls: Mapping[str, str],
    strategy: str,
    treasury: str,
) -> tuple[Any, ...]:
    prefix = "Aave Ethereum" if market.name == "aave" else market.name.capitalize()
    short = "aEth" if market.name == "aave" else market.name[:2]
    return (
        impls["AToken"],
        impls["StableDebtToken"],
        impls["VariableDebtToken"],
        spec.decimals,
        strategy,
        asset.token,
        treasury,
        ZERO_ADDRESS,  # no incentives controller
        f"{prefix} {spec.symbol}",
        f"{short}{spec.symbol}",
        f"{prefix} Variable Debt {spec.symbol}",
        f"variableDebt{short.capitalize()}{spec.symbol}",
        f"{prefix} Stable Debt {spec.symbol}",
        f"stableDebt{short.capitalize()}{spec.symbol}",
        b"",
    )


def _configure_reserve(configurator: Contract, owner: str, token: str, params: ReserveParams) -> None:
    configurator.transact(
        owner,
        "configureReserveAsCollateral",
        token,
        params.ltv,
        params.liquidation_threshold,
        params.liquidation_bonus,
    )
    configurator.transact(owner, "setReserveBorrowing", token, params.borrowing)
    configurator.transact(owner, "setReserveFactor", token, params.reserve_factor)
    configurator.transact(owner, "setSupplyCap", token, params.supply_cap)
    configurator.transact(owner, "setBorrowCap", token, params.borrow_cap)
    configurator.transact(owner, "setLiquidationProtocolFee", token, params.liquidation_protocol_fee)


def _configure_emode(
    configurator: Contract,
    owner: str,
    emode: EModeSpec,
    assets: Mapping[str, tuple[AssetSpec, AssetDeployment]],
) -> None:
    configurator.transact(
        owner,
        "setEModeCategory",
        emode.category_id,
        emode.ltv,
        emode.liquidation_threshold,
        emode.liquidation_bonus,
        ZERO_ADDRESS,
        emode.label,
    )
    for symbol in emode.assets:
        configurator.transact(owner, "setAssetEModeCategory", assets[symbol][1].token, emode.category_id)


def _reserve_deployment(pool: Contract, symbol: str, token: str, params: ReserveParams) -> ReserveDeployment:
    # ReserveData (v3.0): configuration, liquidityIndex, currentLiquidityRate, variableBorrowIndex,
    # currentVariableBorrowRate, currentStableBorrowRate, lastUpdateTimestamp, id, aToken, stableDebtToken,
    # variableDebtToken, interestRateStrategy, accruedToTreasury, unbacked, isolationModeTotalDebt.
    data = pool.call("getReserveData", token)
    return ReserveDeployment(
        symbol=symbol,
        underlying=token,
        a_token=str(data[8]).lower(),
        s_token=str(data[9]).lower(),
        v_token=str(data[10]).lower(),
        rate_strategy=str(data[11]).lower(),
        params=params,
    )
