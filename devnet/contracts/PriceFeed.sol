// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title PriceFeed
/// @notice A Chainlink-style USD price feed (8 decimals) whose answer its owner sets. AaveOracle reads
/// `latestAnswer()`; every update emits the standard `AnswerUpdated` event, so an indexer sees each price
/// the markets used. Only for local chains: the owner is trusted completely.
contract PriceFeed {
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
    event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);

    address public immutable owner;
    string public description;
    uint8 public constant decimals = 8;
    uint256 public constant version = 4;

    int256 public latestAnswer;
    uint256 public latestRound;
    uint256 public latestTimestamp;

    error NotOwner(address caller);
    error NonPositiveAnswer(int256 answer);

    constructor(string memory description_, int256 initialAnswer) {
        owner = msg.sender;
        description = description_;
        _update(initialAnswer);
    }

    /// @notice Publish a new answer (USD with 8 decimals) as the next round.
    function setAnswer(int256 answer) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _update(answer);
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return (uint80(latestRound), latestAnswer, latestTimestamp, latestTimestamp, uint80(latestRound));
    }

    function _update(int256 answer) private {
        if (answer <= 0) revert NonPositiveAnswer(answer);
        uint256 round = latestRound + 1;
        latestAnswer = answer;
        latestRound = round;
        latestTimestamp = block.timestamp;
        emit NewRound(round, msg.sender, block.timestamp);
        emit AnswerUpdated(answer, round, block.timestamp);
    }
}
