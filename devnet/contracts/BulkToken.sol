// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title BulkToken
/// @notice A minimal ERC-20 for the devnet that can make many real transfers in one transaction, so a
/// benchmark gets hundreds of thousands of standard Transfer logs in seconds. Balances always agree with
/// the events. Minting is open to anyone: this token exists only on local chains.
contract BulkToken {
    /// keccak256("Transfer(address,address,uint256)"), shared by ERC-20 and ERC-721.
    bytes32 private constant TRANSFER_TOPIC = 0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef;

    string public name;
    string public symbol;
    uint8 public constant decimals = 18;
    uint256 public totalSupply;

    mapping(address account => uint256) private _balances;
    mapping(address owner => mapping(address spender => uint256)) public allowance;
    uint256 private _nextNftLikeId = 1;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    error InsufficientAllowance(address owner, address spender, uint256 allowance, uint256 needed);

    constructor(string memory name_, string memory symbol_, uint256 initialSupply) {
        name = name_;
        symbol = symbol_;
        mint(msg.sender, initialSupply);
    }

    function balanceOf(address account) external view returns (uint256) {
        return _balances[account];
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < value) revert InsufficientAllowance(from, msg.sender, allowed, value);
            unchecked {
                allowance[from][msg.sender] = allowed - value;
            }
        }
        _transfer(from, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function mint(address to, uint256 value) public {
        totalSupply += value;
        unchecked {
            _balances[to] += value;
        }
        emit Transfer(address(0), to, value);
    }

    /// @notice n transfers from the caller. Transfer i goes to the low 160 bits of h = keccak256(seed + i)
    /// (one 32-byte word, wrapping), of amount (h >> 200) + 1. The caller is debited once at the end.
    /// @return total the sum of the amounts sent.
    function spray(uint256 n, uint256 seed) external returns (uint256 total) {
        assembly ("memory-safe") {
            let from := caller()
            let balancesSlot := _balances.slot
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                mstore(0x00, add(seed, i))
                let h := keccak256(0x00, 0x20)
                let to := and(h, 0xffffffffffffffffffffffffffffffffffffffff)
                let amount := add(shr(200, h), 1)
                mstore(0x00, to)
                mstore(0x20, balancesSlot)
                let slot := keccak256(0x00, 0x40)
                sstore(slot, add(sload(slot), amount))
                mstore(0x00, amount)
                log3(0x00, 0x20, TRANSFER_TOPIC, from, to)
                total := add(total, amount)
            }
        }
        uint256 balance = _balances[msg.sender];
        if (balance < total) revert InsufficientBalance(msg.sender, balance, total);
        unchecked {
            _balances[msg.sender] = balance - total;
        }
    }

    /// @notice n ERC-721-style Transfer events (from, to and tokenId all indexed, no data) with the
    /// ERC-20 topic: logs an ERC-20 decoder must refuse. Token ids continue across calls from 1; token id
    /// t goes to the low 160 bits of keccak256(t). No balances change.
    /// @return firstId the token id of the first event.
    function sprayErc721Like(uint256 n) external returns (uint256 firstId) {
        firstId = _nextNftLikeId;
        _nextNftLikeId = firstId + n;
        assembly ("memory-safe") {
            let from := caller()
            for { let id := firstId } lt(id, add(firstId, n)) { id := add(id, 1) } {
                mstore(0x00, id)
                let to := and(keccak256(0x00, 0x20), 0xffffffffffffffffffffffffffffffffffffffff)
                log4(0x00, 0x00, TRANSFER_TOPIC, from, to, id)
            }
        }
    }

    function _transfer(address from, address to, uint256 value) private {
        uint256 balance = _balances[from];
        if (balance < value) revert InsufficientBalance(from, balance, value);
        unchecked {
            _balances[from] = balance - value;
            _balances[to] += value;
        }
        emit Transfer(from, to, value);
    }
}
