"""Compound v3 (Comet) events."""

from indexer.events import event

EVENTS = (
    event("Supply(address indexed from, address indexed dst, uint256 amount)", "comet_supply"),
    event("Withdraw(address indexed src, address indexed to, uint256 amount)", "comet_withdraw"),
    event(
        "SupplyCollateral(address indexed from, address indexed dst, address indexed asset, uint256 amount)",
        "comet_supply_collateral",
    ),
    event(
        "WithdrawCollateral(address indexed src, address indexed to, address indexed asset, uint256 amount)",
        "comet_withdraw_collateral",
    ),
    event(
        "TransferCollateral(address indexed from, address indexed to, address indexed asset, uint256 amount)",
        "comet_transfer_collateral",
    ),
    event(
        "AbsorbDebt(address indexed absorber, address indexed borrower, uint256 basePaidOut,"
        " uint256 usdValue)",
        "comet_absorb_debt",
    ),
    event(
        "AbsorbCollateral(address indexed absorber, address indexed borrower, address indexed asset,"
        " uint256 collateralAbsorbed, uint256 usdValue)",
        "comet_absorb_collateral",
    ),
    event(
        "BuyCollateral(address indexed buyer, address indexed asset, uint256 baseAmount,"
        " uint256 collateralAmount)",
        "comet_buy_collateral",
    ),
)
