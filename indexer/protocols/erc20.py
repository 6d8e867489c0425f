"""ERC-20 token events."""

from indexer.events import event

TRANSFER = event("Transfer(address indexed from, address indexed to, uint256 value)", "erc20_transfers")
APPROVAL = event("Approval(address indexed owner, address indexed spender, uint256 value)", "erc20_approvals")

EVENTS = (TRANSFER, APPROVAL)
