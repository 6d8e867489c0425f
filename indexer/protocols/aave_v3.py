"""Aave v3 Pool and aToken/variableDebtToken events (v3.0 through v3.5 mainnet interfaces)."""

from indexer.events import event

POOL_EVENTS = (
    event(
        "Supply(address indexed reserve, address user, address indexed onBehalfOf, uint256 amount,"
        " uint16 indexed referralCode)",
        "aave_v3_supply",
    ),
    event(
        "Withdraw(address indexed reserve, address indexed user, address indexed to, uint256 amount)",
        "aave_v3_withdraw",
    ),
    event(
        "Borrow(address indexed reserve, address user, address indexed onBehalfOf, uint256 amount,"
        " uint8 interestRateMode, uint256 borrowRate, uint16 indexed referralCode)",
        "aave_v3_borrow",
    ),
    event(
        "Repay(address indexed reserve, address indexed user, address indexed repayer, uint256 amount,"
        " bool useATokens)",
        "aave_v3_repay",
    ),
    event(
        "LiquidationCall(address indexed collateralAsset, address indexed debtAsset, address indexed user,"
        " uint256 debtToCover, uint256 liquidatedCollateralAmount, address liquidator, bool receiveAToken)",
        "aave_v3_liquidation_call",
    ),
    event(
        "ReserveDataUpdated(address indexed reserve, uint256 liquidityRate, uint256 stableBorrowRate,"
        " uint256 variableBorrowRate, uint256 liquidityIndex, uint256 variableBorrowIndex)",
        "aave_v3_reserve_data_updated",
    ),
    event(
        "FlashLoan(address indexed target, address initiator, address indexed asset, uint256 amount,"
        " uint8 interestRateMode, uint256 premium, uint16 indexed referralCode)",
        "aave_v3_flash_loan",
    ),
    event(
        "ReserveUsedAsCollateralEnabled(address indexed reserve, address indexed user)",
        "aave_v3_collateral_enabled",
    ),
    event(
        "ReserveUsedAsCollateralDisabled(address indexed reserve, address indexed user)",
        "aave_v3_collateral_disabled",
    ),
    event("UserEModeSet(address indexed user, uint8 categoryId)", "aave_v3_user_emode_set"),
    event("MintedToTreasury(address indexed reserve, uint256 amountMinted)", "aave_v3_minted_to_treasury"),
    event(
        "DeficitCreated(address indexed user, address indexed debtAsset, uint256 amountCreated)",
        "aave_v3_deficit_created",
    ),
)

TOKEN_EVENTS = (
    event(
        "Mint(address indexed caller, address indexed onBehalfOf, uint256 value, uint256 balanceIncrease,"
        " uint256 index)",
        "aave_v3_token_mint",
    ),
    event(
        "Burn(address indexed from, address indexed target, uint256 value, uint256 balanceIncrease,"
        " uint256 index)",
        "aave_v3_token_burn",
    ),
    event(
        "BalanceTransfer(address indexed from, address indexed to, uint256 value, uint256 index)",
        "aave_v3_token_balance_transfer",
    ),
)

# PoolConfigurator (v3.0–v3.1 interface, as in @aave/core-v3 1.19): the risk parameters of each reserve.
CONFIGURATOR_EVENTS = (
    event(
        "ReserveInitialized(address indexed asset, address indexed aToken, address stableDebtToken,"
        " address variableDebtToken, address interestRateStrategyAddress)",
        "aave_v3_reserve_initialized",
    ),
    event(
        "CollateralConfigurationChanged(address indexed asset, uint256 ltv, uint256 liquidationThreshold,"
        " uint256 liquidationBonus)",
        "aave_v3_collateral_configuration_changed",
    ),
    event(
        "SupplyCapChanged(address indexed asset, uint256 oldSupplyCap, uint256 newSupplyCap)",
        "aave_v3_supply_cap_changed",
    ),
    event(
        "BorrowCapChanged(address indexed asset, uint256 oldBorrowCap, uint256 newBorrowCap)",
        "aave_v3_borrow_cap_changed",
    ),
    event(
        "DebtCeilingChanged(address indexed asset, uint256 oldDebtCeiling, uint256 newDebtCeiling)",
        "aave_v3_debt_ceiling_changed",
    ),
    event(
        "ReserveFactorChanged(address indexed asset, uint256 oldReserveFactor, uint256 newReserveFactor)",
        "aave_v3_reserve_factor_changed",
    ),
    event(
        "LiquidationProtocolFeeChanged(address indexed asset, uint256 oldFee, uint256 newFee)",
        "aave_v3_liquidation_protocol_fee_changed",
    ),
    event(
        "EModeCategoryAdded(uint8 indexed categoryId, uint256 ltv, uint256 liquidationThreshold,"
        " uint256 liquidationBonus, address oracle, string label)",
        "aave_v3_emode_category_added",
    ),
    event(
        "EModeAssetCategoryChanged(address indexed asset, uint8 oldCategoryId, uint8 newCategoryId)",
        "aave_v3_emode_asset_category_changed",
    ),
    event(
        "ReserveInterestRateStrategyChanged(address indexed asset, address oldStrategy, address newStrategy)",
        "aave_v3_rate_strategy_changed",
    ),
    event("ReserveBorrowing(address indexed asset, bool enabled)", "aave_v3_reserve_borrowing"),
    event("ReserveActive(address indexed asset, bool active)", "aave_v3_reserve_active"),
    event("ReserveFrozen(address indexed asset, bool frozen)", "aave_v3_reserve_frozen"),
    event("ReservePaused(address indexed asset, bool paused)", "aave_v3_reserve_paused"),
)

ORACLE_EVENTS = (
    event(
        "AssetSourceUpdated(address indexed asset, address indexed source)",
        "aave_oracle_asset_source_updated",
    ),
)

# Chainlink-style aggregators (and the mocks the devnet deploys) announce each new price.
AGGREGATOR_EVENTS = (
    event(
        "AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt)",
        "price_answer_updated",
    ),
)
