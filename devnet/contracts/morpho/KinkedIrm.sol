// SPDX-License-Identifier: GPL-2.0-or-later
pragma solidity ^0.8.19;

import {IIrm} from "@morpho-org/morpho-blue/src/interfaces/IIrm.sol";
import {MarketParams, Market} from "@morpho-org/morpho-blue/src/interfaces/IMorpho.sol";

/// @title KinkedIrm
/// @notice A stateless utilisation-based interest rate model for Morpho Blue: the borrow rate grows linearly
/// from `baseRate` to `baseRate + slope1` at the `kink` utilisation, then by `slope2` more up to full
/// utilisation (the shape of Aave's DefaultReserveInterestRateStrategy). Rates are per second, WAD-scaled, as
/// IIrm requires; the constructor takes yearly rates so the parameters read like Aave's.
contract KinkedIrm is IIrm {
    uint256 private constant WAD = 1e18;
    uint256 private constant YEAR = 365 days;

    uint256 public immutable baseRate;
    uint256 public immutable slope1;
    uint256 public immutable slope2;
    uint256 public immutable kink;

    error KinkOutOfRange(uint256 kink);

    /// @param baseRatePerYear_ Borrow rate at zero utilisation (WAD per year).
    /// @param slope1PerYear_ Added from zero to `kink_` utilisation (WAD per year).
    /// @param slope2PerYear_ Added from `kink_` to full utilisation (WAD per year).
    /// @param kink_ Utilisation where the second slope starts (WAD, strictly between 0 and 1).
    constructor(uint256 baseRatePerYear_, uint256 slope1PerYear_, uint256 slope2PerYear_, uint256 kink_) {
        if (kink_ == 0 || kink_ >= WAD) revert KinkOutOfRange(kink_);
        baseRate = baseRatePerYear_ / YEAR;
        slope1 = slope1PerYear_ / YEAR;
        slope2 = slope2PerYear_ / YEAR;
        kink = kink_;
    }

    /// @inheritdoc IIrm
    function borrowRate(MarketParams memory, Market memory market) external view returns (uint256) {
        return _rate(market);
    }

    /// @inheritdoc IIrm
    function borrowRateView(MarketParams memory, Market memory market) external view returns (uint256) {
        return _rate(market);
    }

    /// @notice Borrowed share of the supplied assets (WAD); 0 for an empty market.
    function utilization(Market memory market) public pure returns (uint256) {
        if (market.totalSupplyAssets == 0) return 0;
        uint256 used = uint256(market.totalBorrowAssets) * WAD / market.totalSupplyAssets;
        return used > WAD ? WAD : used;
    }

    function _rate(Market memory market) private view returns (uint256) {
        uint256 used = utilization(market);
        if (used <= kink) return baseRate + slope1 * used / kink;
        return baseRate + slope1 + slope2 * (used - kink) / (WAD - kink);
    }
}
