"""Contagion runs in PostgreSQL: the run, every scenario and its bad debt, wallets and liquidations.

    run_id = save_run(conn, inputs=inputs, kind="var", seed=request.seed, method="student_t",
                      inputs_record=document["inputs"], summary=document, assets=assets, factors=factors,
                      outcomes=outcomes)
    stored = load_run(conn, run_id)

One run is one transaction: a run is stored whole or not at all. The scenario rows go in by COPY, since a
run of 10,000 scenarios holds hundreds of thousands of them. The tables are in
:mod:`chainrisk.contagion.tables`, the reader views over them in :mod:`chainrisk.contagion.views`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from chainrisk.contagion.inputs import Conn, Inputs
from chainrisk.contagion.var import Outcome, WalletLiquidation
from chainrisk.errors import ChainriskError

if TYPE_CHECKING:
    from numpy.typing import NDArray

MAX_SEED = 2**63 - 1

_SCENARIO_COLUMNS = "run_id, scenario, bad_debt_usd, liquidated_usd, depth, factors"
_LIQUIDATION_COLUMNS = (
    "run_id, scenario, seq, round, market, wallet, collateral_asset, debt_asset, debt_repaid_usd,"
    " collateral_seized_usd"
)
# The columns' types, as binary COPY needs them.
_SCENARIO_TYPES = ("int8", "int4", "float8", "float8", "int2", "float8[]")
_KEYED_TYPES = ("int8", "int4", "text", "text", "float8")
_LIQUIDATION_TYPES = ("int8", "int4", "int4", "int2", "text", "text", "text", "text", "float8", "float8")


class ContagionStoreError(ChainriskError, ValueError):
    """A run that cannot be stored or loaded as asked: nothing to store, mismatched parts, no such run."""


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A stored run as :func:`save_run` received it. ``outcomes[i].by_market`` is summed again from the
    stored bad debt per asset, so it can differ from the original in the last bits of a float."""

    run_id: int
    created_at: datetime
    chain_id: int
    block: int
    kind: str
    seed: int
    method: str
    assets: list[str]
    markets: list[str]
    inputs_record: dict[str, Any]
    summary: dict[str, Any]
    factors: NDArray[Any]
    outcomes: list[Outcome]


def save_run(
    conn: Conn,
    *,
    inputs: Inputs,
    kind: str,
    seed: int,
    method: str,
    inputs_record: Mapping[str, Any],
    summary: Mapping[str, Any],
    assets: Sequence[str],
    factors: NDArray[Any],
    outcomes: Sequence[Outcome],
) -> int:
    """Store one run in one transaction and return its id (``contagion_runs.id``).

    ``factors[i]`` are scenario i's price factors in the order of ``assets``; ``outcomes[i]`` its cascade.
    Raises :class:`ContagionStoreError` when the parts do not fit together or the tables are missing."""
    _check(kind, seed, method, assets, factors, outcomes)
    record, document = _json("inputs_record", inputs_record), _json("summary", summary)
    markets = inputs.market_names
    try:
        with conn.transaction(), conn.cursor() as cur:
            row = cur.execute(
                "INSERT INTO contagion_runs (chain_id, block, kind, seed, scenarios, method, assets, markets,"
                " inputs, summary) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (inputs.chain_id, inputs.block, kind, seed, len(outcomes), method, list(assets), markets,
                 Jsonb(record), Jsonb(document)),
            ).fetchone()  # fmt: skip
            assert row is not None
            run_id = int(str(row[0]))
            _copy(
                cur,
                "contagion_scenarios",
                _SCENARIO_COLUMNS,
                _SCENARIO_TYPES,
                _scenario_rows(run_id, factors, outcomes),
            )
            _copy(
                cur,
                "contagion_bad_debt",
                "run_id, scenario, market, asset, usd",
                _KEYED_TYPES,
                _by_key(run_id, outcomes, True),
            )
            _copy(
                cur,
                "contagion_wallet_bad_debt",
                "run_id, scenario, market, wallet, usd",
                _KEYED_TYPES,
                _by_key(run_id, outcomes, False),
            )
            _copy(cur, "contagion_liquidations", _LIQUIDATION_COLUMNS, _LIQUIDATION_TYPES,
                  _liquidation_rows(run_id, outcomes))  # fmt: skip
    except psycopg.errors.UndefinedTable:
        raise ContagionStoreError(
            "table contagion_runs does not exist in this database: run `chainrisk migrate` first"
        ) from None
    return run_id


def _check(
    kind: str,
    seed: int,
    method: str,
    assets: Sequence[str],
    factors: NDArray[Any],
    outcomes: Sequence[Outcome],
) -> None:
    if not kind or not method:
        raise ContagionStoreError(
            f"kind {kind!r}, method {method!r}: expected both named, e.g. var, student_t"
        )
    if not 0 <= seed <= MAX_SEED:
        raise ContagionStoreError(f"seed {seed}: expected 0 to {MAX_SEED}")
    if not outcomes:
        raise ContagionStoreError("nothing to store: the run has no scenarios")
    if factors.ndim != 2 or factors.shape != (len(outcomes), len(assets)):
        raise ContagionStoreError(
            f"factors of shape {factors.shape}: expected one row per scenario and one column per asset,"
            f" ({len(outcomes)}, {len(assets)})"
        )


def _json(name: str, value: Mapping[str, Any]) -> dict[str, Any]:
    """The document as PostgreSQL's jsonb will hold it; NaN and infinities have no JSON form."""
    try:
        parsed: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ContagionStoreError(f"{name}: not storable as JSON ({exc})") from None
    return parsed


def _copy(
    cur: psycopg.Cursor[Any], table: str, columns: str, types: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    # Binary COPY: no float or integer goes through text, about twice as fast as COPY's text form.
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


def _scenario_rows(
    run_id: int, factors: NDArray[Any], outcomes: Sequence[Outcome]
) -> Iterable[tuple[object, ...]]:
    for i, (row, o) in enumerate(zip(factors.tolist(), outcomes, strict=True)):
        yield run_id, i, o.bad_debt, o.liquidated, o.depth, row


def _by_key(run_id: int, outcomes: Sequence[Outcome], by_asset: bool) -> Iterable[tuple[object, ...]]:
    for i, o in enumerate(outcomes):
        for (market, key), usd in (o.by_asset if by_asset else o.by_wallet).items():
            yield run_id, i, market, key, usd


def _liquidation_rows(run_id: int, outcomes: Sequence[Outcome]) -> Iterable[tuple[object, ...]]:
    for i, o in enumerate(outcomes):
        for seq, x in enumerate(o.liquidations):
            yield (run_id, i, seq, x.round, x.market, x.wallet, x.collateral_asset, x.debt_asset,
                   x.debt_repaid_usd, x.collateral_seized_usd)  # fmt: skip


# ------------------------------------------------------------------------------------------- loading


def load_run(conn: Conn, run_id: int) -> StoredRun:
    """The stored run ``run_id``, scenarios in order. Raises :class:`ContagionStoreError` when there is no
    such run."""
    import numpy as np
    from psycopg.rows import tuple_row

    cur = conn.cursor(row_factory=tuple_row)  # rows of Any: the columns' types are the tables'
    run = cur.execute(
        "SELECT created_at, chain_id, block, kind, seed, method, assets, markets, inputs, summary, scenarios"
        " FROM contagion_runs WHERE id = %s",
        (run_id,),
    ).fetchone()
    if run is None:
        raise ContagionStoreError(
            f"contagion run {run_id}: not stored; see contagion_run_results for the ids"
        )
    created_at, chain_id, block, kind, seed, method, assets, markets, record, summary, n = run
    rows = cur.execute(
        "SELECT bad_debt_usd, liquidated_usd, depth, factors FROM contagion_scenarios WHERE run_id = %s"
        " ORDER BY scenario",
        (run_id,),
    ).fetchall()
    by_asset = _keyed(conn, "contagion_bad_debt", "asset", run_id)
    by_wallet = _keyed(conn, "contagion_wallet_bad_debt", "wallet", run_id)
    liquidations = _liquidations(conn, run_id)
    outcomes = []
    for i, (bad_debt, liquidated, depth, _) in enumerate(rows):
        assets_debt = by_asset.get(i, {})
        by_market = dict.fromkeys(markets, 0.0)
        for (market, _asset), usd in assets_debt.items():
            by_market[market] += usd
        outcomes.append(
            Outcome(bad_debt, by_market, assets_debt, by_wallet.get(i, {}), liquidated, depth,
                    tuple(liquidations.get(i, ())))
        )  # fmt: skip
    width = len(assets)
    factors = np.array([r[3] for r in rows], dtype=np.float64).reshape(int(str(n)), width)
    return StoredRun(
        run_id, created_at, chain_id, block, kind, seed, method, list(assets), list(markets), record, summary,
        factors, outcomes,
    )  # fmt: skip


def _keyed(conn: Conn, table: str, column: str, run_id: int) -> dict[int, dict[tuple[str, str], float]]:
    found: dict[int, dict[tuple[str, str], float]] = {}
    query = f"SELECT scenario, market, {column}, usd FROM {table} WHERE run_id = %s ORDER BY 1, 2, 3"
    for scenario, market, key, usd in conn.execute(query, (run_id,)):
        found.setdefault(int(str(scenario)), {})[(str(market), str(key))] = _float(usd)
    return found


def _liquidations(conn: Conn, run_id: int) -> dict[int, list[WalletLiquidation]]:
    found: dict[int, list[WalletLiquidation]] = {}
    rows = conn.execute(
        "SELECT scenario, round, market, wallet, collateral_asset, debt_asset, debt_repaid_usd,"
        " collateral_seized_usd FROM contagion_liquidations WHERE run_id = %s ORDER BY scenario, seq",
        (run_id,),
    )
    for scenario, round_, market, wallet, collateral, debt, repaid, seized in rows:
        found.setdefault(int(str(scenario)), []).append(
            WalletLiquidation(int(str(round_)), str(market), str(wallet), str(collateral), str(debt),
                              _float(repaid), _float(seized))
        )  # fmt: skip
    return found


def _float(value: object) -> float:
    assert isinstance(value, float)  # double precision columns read back as the floats written
    return value
