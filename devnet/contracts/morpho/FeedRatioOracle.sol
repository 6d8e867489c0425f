// SPDX-License-Identifier: GPL-2.0-or-later
pragma solidity ^0.8.19;

import {IOracle} from "@morpho-org/morpho-blue/src/interfaces/IOracle.sol";

/// @notice The part of a Chainlink-style feed the oracle reads.
interface ILatestAnswer {
    function latestAnswer() external view returns (int256);
}

/// @title FeedRatioOracle
/// @notice A Morpho Blue oracle built like MorphoChainlinkOracleV2 with one feed on each side: the collateral's
/// USD feed over the loan token's USD feed, so the devnet's PriceFeed contracts move Aave and Morpho at once.
/// `price()` is `scaleFactor * baseFeed.latestAnswer() / quoteFeed.latestAnswer()`: one collateral unit in
/// loan-token units, scaled by 1e36, as IOracle specifies.
contract FeedRatioOracle is IOracle {
    ILatestAnswer public immutable baseFeed;
    ILatestAnswer public immutable quoteFeed;
    uint256 public immutable scaleFactor;

    error NonPositiveAnswer(address feed, int256 answer);

    /// @param baseFeed_ USD feed of the collateral token.
    /// @param quoteFeed_ USD feed of the loan token (same number of decimals as the base feed).
    /// @param collateralDecimals Decimals of the collateral token.
    /// @param loanDecimals Decimals of the loan token.
    constructor(ILatestAnswer baseFeed_, ILatestAnswer quoteFeed_, uint8 collateralDecimals, uint8 loanDecimals) {
        baseFeed = baseFeed_;
        quoteFeed = quoteFeed_;
        scaleFactor = 10 ** (36 + uint256(loanDecimals) - uint256(collateralDecimals));
    }

    /// @inheritdoc IOracle
    function price() external view returns (uint256) {
        return scaleFactor * _answer(baseFeed) / _answer(quoteFeed);
    }

    function _answer(ILatestAnswer feed) private view returns (uint256) {
        int256 answer = feed.latestAnswer();
        if (answer <= 0) revert NonPositiveAnswer(address(feed), answer);
        return uint256(answer);
    }
}
