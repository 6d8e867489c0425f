"""Liquidation-at-risk from the position_reserves table, checked against hand-computed health factors."""

from __future__ import annotations

import psycopg
import pytest

from chainrisk.db import to_libpq_url
from graph.at_risk import at_risk

WETH, USDC = "0x" + "11" * 20, "0x" + "22" * 20
POOL = "0x" + "aa" * 20
E8 = 10**8


def _insert(
    conn: psycopg.Connection[tuple[object, ...]], user: str, asset: str, coll: int, debt: int, lt: int
):
    conn.execute(
        "INSERT INTO position_reserves VALUES (1, %s, %s, %s, 100, %s, %s, true, %s, 100000000)",
        (POOL, user, asset, coll * E8, debt * E8, lt),
    )


def test_accounts_become_liquidatable_as_eth_falls(db_url: str) -> None:
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        # HF = 1000 * 0.825 / 700 = 1.18: liquidatable once ETH falls more than about 15.2%.
        _insert(conn, "0x01", WETH, 1000, 0, 8250)
        _insert(conn, "0x01", USDC, 0, 700, 8000)
        # HF = 1000 * 0.825 / 500 = 1.65: survives -30% (HF 1.155).
        _insert(conn, "0x02", WETH, 1000, 0, 8250)
        _insert(conn, "0x02", USDC, 0, 500, 8000)
        # Stablecoin collateral only: never moves with ETH; HF = 1000 * 0.8 / 900 = 0.89 already under 1.
        _insert(conn, "0x03", USDC, 1000, 900, 8000)
        conn.commit()
        rows = at_risk(conn, 1, [WETH], [0.0, -0.1, -0.2, -0.3])
    assert [r.liquidatable_accounts for r in rows] == [1, 1, 2, 2]
    assert rows[2].collateral_at_risk_usd == pytest.approx(1000 + 800)
    assert rows[2].debt_at_risk_usd == pytest.approx(900 + 700)


def test_no_positions_no_risk(db_url: str) -> None:
    with psycopg.connect(to_libpq_url(db_url)) as conn:
        assert at_risk(conn, 1, [WETH], [-0.2])[0].liquidatable_accounts == 0
