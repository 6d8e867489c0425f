"""uniswap v3 factory and pool events

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POOL_INDEXED = ("uniswap_v3_initialize", "uniswap_v3_mint", "uniswap_v3_burn", "uniswap_v3_swap")


def upgrade() -> None:
    op.create_table(
        "uniswap_v3_pool_created",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("token0", sa.Text(), nullable=True),
        sa.Column("token1", sa.Text(), nullable=True),
        sa.Column("fee", sa.BigInteger(), nullable=True),
        sa.Column("tick_spacing", sa.BigInteger(), nullable=True),
        sa.Column("pool", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded PoolCreated(address,address,uint24,int24,address) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "uniswap_v3_initialize",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("sqrt_price_x96", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("tick", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded Initialize(uint160,int24) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "uniswap_v3_mint",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("tick_lower", sa.BigInteger(), nullable=True),
        sa.Column("tick_upper", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("amount0", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("amount1", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded Mint(address,address,int24,int24,uint128,uint256,uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "uniswap_v3_burn",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("tick_lower", sa.BigInteger(), nullable=True),
        sa.Column("tick_upper", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("amount0", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("amount1", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded Burn(address,int24,int24,uint128,uint256,uint256) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "uniswap_v3_swap",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.Column("recipient", sa.Text(), nullable=True),
        sa.Column("amount0", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("amount1", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("sqrt_price_x96", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("liquidity", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("tick", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded Swap(address,address,int256,int256,uint160,uint128,int24) events.",
        info={"chain_derived": True},
    )
    op.create_table(
        "uniswap_v3_collect",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("recipient", sa.Text(), nullable=True),
        sa.Column("tick_lower", sa.BigInteger(), nullable=True),
        sa.Column("tick_upper", sa.BigInteger(), nullable=True),
        sa.Column("amount0", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("amount1", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.PrimaryKeyConstraint("chain_id", "block_number", "log_index"),
        comment="Decoded Collect(address,address,int24,int24,uint128,uint128) events.",
        info={"chain_derived": True},
    )
    for name in POOL_INDEXED:
        op.create_index(f"ix_{name}_pool", name, ["chain_id", "address", "block_number", "log_index"])


def downgrade() -> None:
    for name in POOL_INDEXED:
        op.drop_index(f"ix_{name}_pool", table_name=name)
    op.drop_table("uniswap_v3_collect")
    op.drop_table("uniswap_v3_swap")
    op.drop_table("uniswap_v3_burn")
    op.drop_table("uniswap_v3_mint")
    op.drop_table("uniswap_v3_initialize")
    op.drop_table("uniswap_v3_pool_created")
