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
