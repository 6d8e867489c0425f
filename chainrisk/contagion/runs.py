"""A `contagion var` run from options to stored result: what the command and the service job share.

    options = VarOptions(scenarios=10_000, seed=7)
    request, again = options.check()                 # checked before any database is opened
    with psycopg.connect(conninfo) as conn:
        inputs, request = prepare(conn, options, request, again)
    run = compute(inputs, request, engine="exact", dask=None, progress=advance)
    with psycopg.connect(conninfo) as conn:
        run_id = save(conn, inputs, request, run)

Three engines. ``exact`` runs the integer cascade (:mod:`graph.cascade`) on every scenario, in process
or on a Dask cluster (:mod:`chainrisk.contagion.distributed`). ``fast`` runs the vectorised cascade
(:mod:`graph.fastcascade`: float64 over all scenarios at once, pools as fitted impact curves) on every
scenario, then the exact cascade again on the ``exact_worst`` scenarios with the largest fast-path bad
debt (by default the worst 6 %, which holds the 5 % tail every reported measure reads); their exact
outcomes replace the fast ones, so VaR and ES come from exact cascades whenever the fast path ranks the
tail scenarios into the replayed set, and the document states the fast path's error on them.
``surrogate`` does the same with the latest stored tree surrogate (``chainrisk contagion train``) in
place of the vectorised cascade: it predicts each scenario's bad debt on the book's exposure graph
(:mod:`graph.gnn.features`, :mod:`graph.gnn.baselines`), ranks, and replays the worst exactly; the
others keep the predicted total only (no bad debt per market or asset, no value liquidated, depth 0).

    surrogate = load_surrogate(conn)                 # SurrogateStoreError (exit 2) when none is stored
    run = compute(inputs, request, engine="surrogate", surrogate=surrogate)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from chainrisk.contagion.inputs import Conn, Inputs, load_inputs
from chainrisk.contagion.var import (
    Outcome,
    VarRequest,
    WalletLiquidation,
    draw_factors,
    var_report,
    var_request,
)
from chainrisk.inputs import OptionError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from chainrisk.contagion.scenarios import Replay
    from graph.fastcascade import FastOutcomes
    from graph.gnn.baselines import TreeModel

    FloatArray = NDArray[np.float64]
else:
    FloatArray = Any

Engine = Literal["exact", "fast", "surrogate"]
ENGINES: tuple[Engine, ...] = ("exact", "fast", "surrogate")
# The fast and surrogate engines replay this share of the scenarios exactly (the 5 % tail and a margin
# for their ranking errors), and never fewer than MIN_EXACT_WORST.
EXACT_SHARE = 0.06
MIN_EXACT_WORST = 20
# Scenarios × accounts rows of account features the surrogate holds at once (~15 float64 each: ~120 MB).
SURROGATE_ROWS = 1_000_000


@dataclass(frozen=True)
class VarOptions:
    """The options of one run as given (flags or the service's settings)."""

    scenarios: int = 1_000
    block: int | None = None
    seed: int | None = None
    method: str = "t"
    horizon: str = "1d"
    vols: tuple[str, ...] = ()
    corr: float | None = None
    df: float | None = None
    history_days: int = 3 * 365
    regimes: bool = True
    stress_days: tuple[str, ...] = ()
    replay: Path | None = None
    engine: str = "exact"
    exact_worst: int | None = None
    dask: str | None = None
    chain_id: int | None = None

    def check(self) -> tuple[VarRequest, Replay | None]:
        """The scenario request and, with ``replay``, the earlier run it repeats; every option checked
        before the database is opened (:class:`OptionError`, exit 2)."""
        from chainrisk.contagion import scenarios
        from chainrisk.contagion.distributed import check_address

        if self.engine not in ENGINES:
            raise OptionError(f"--engine {self.engine!r}: expected exact, fast or surrogate")
        if self.exact_worst is not None and not 0 <= self.exact_worst <= self.scenarios:
            raise OptionError(
                f"--exact-worst {self.exact_worst}: expected 0 to --scenarios ({self.scenarios})"
            )
        if self.exact_worst is not None and self.engine not in ("fast", "surrogate"):
            raise OptionError(
                "--exact-worst: only with --engine fast or surrogate (the exact engine replays everything)"
            )
        if self.dask is not None:
            check_address(self.dask)
        if self.replay is not None:
            again = scenarios.read_replay(self.replay, self._scenario_flags())
            return again.request, again
        request = var_request(
            self.scenarios, self.seed, self.vols, self.corr, self.df, method=self.method,
            horizon=self.horizon, stress_days=self.stress_days, history_days=self.history_days,
            regimes=self.regimes,
        )  # fmt: skip
        return request, None

    def _scenario_flags(self) -> list[str]:
        default = VarOptions()
        given = {
            "--scenarios": self.scenarios != default.scenarios, "--seed": self.seed is not None,
            "--method": self.method != default.method, "--horizon": self.horizon != default.horizon,
            "--vol": bool(self.vols), "--corr": self.corr is not None, "--df": self.df is not None,
            "--history-days": self.history_days != default.history_days, "--no-regimes": not self.regimes,
            "--stress-day": bool(self.stress_days),
        }  # fmt: skip
        return [flag for flag, on in given.items() if on]


def prepare(
    conn: Conn, options: VarOptions, request: VarRequest, again: Replay | None = None
) -> tuple[Inputs, VarRequest]:
    """The inputs at the block and the request with its scenario model read (forecasts, regimes, price
    history): everything the run needs from the database."""
    from chainrisk.contagion import scenarios

    if again is not None:
        inputs = load_inputs(conn, again.chain_id, again.block if options.block is None else options.block)
        return inputs, replace(request, model=scenarios.model_from_record(inputs, again.record, conn))
    inputs = load_inputs(conn, options.chain_id, options.block)
    return inputs, replace(request, model=scenarios.scenario_model(inputs, request, conn))


@dataclass(frozen=True)
class VarRun:
    """A computed run: the document, the scenarios and each one's outcome."""

    document: dict[str, Any]
    assets: list[str]
    factors: FloatArray
    outcomes: list[Outcome]
    engine: Engine


@dataclass(frozen=True)
class Surrogate:
    """The stored tree surrogate the ``surrogate`` engine predicts with."""

    version: int
    tree: TreeModel


def load_surrogate(conn: Conn) -> Surrogate:
    """The latest stored tree surrogate, its checksum verified; :class:`SurrogateStoreError` (exit 2,
    naming `chainrisk contagion train`) when none is stored or it reads other scenario features."""
    from chainrisk.contagion.surrogate_store import SurrogateStoreError, load_model, tree_from_weights
    from graph.gnn.baselines import SCENARIO_FEATURES

    stored = load_model(conn, "tree")
    tree = tree_from_weights(stored.weights)
    width = int(getattr(tree.bad_debt, "n_features_in_", len(SCENARIO_FEATURES)))
    if width != len(SCENARIO_FEATURES):
        raise SurrogateStoreError(
            f"tree surrogate version {stored.version}: trained on {width} scenario features, this version"
            f" computes {len(SCENARIO_FEATURES)}; run `chainrisk contagion train` again"
        )
    return Surrogate(stored.version, tree)


def compute(
    inputs: Inputs,
    request: VarRequest,
    *,
    engine: str = "exact",
    exact_worst: int | None = None,
    dask: str | None = None,
    progress: Callable[[int], None] | None = None,
    surrogate: Surrogate | None = None,
) -> VarRun:
    """Draw the scenarios, run them on the engine, summarise; the stress days run exactly, apart. The
    ``surrogate`` engine needs ``surrogate`` (:func:`load_surrogate`)."""
    from chainrisk.contagion.distributed import scenario_outcomes_on
    from chainrisk.contagion.scenarios import stress_results

    if engine == "surrogate" and surrogate is None:
        raise ValueError("engine surrogate: no surrogate given; load one with load_surrogate(conn)")
    assets, factors = draw_factors(inputs, request)
    section: tuple[str, dict[str, Any]] | None = None
    if engine == "fast":
        outcomes, fast_path = _fast(inputs, assets, factors, exact_worst, dask, progress)
        section = ("fast_path", fast_path)
    elif engine == "surrogate":
        assert surrogate is not None
        outcomes, surrogate_path = _surrogate(inputs, assets, factors, surrogate, exact_worst, dask, progress)
        section = ("surrogate_path", surrogate_path)
    else:
        outcomes = scenario_outcomes_on(inputs, assets, factors, address=dask, progress=progress)
    document = var_report(inputs, request, outcomes)
    document["inputs"]["engine"] = engine
    document["stress_days"] = stress_results(inputs, request)
    if section is not None:
        document[section[0]] = section[1]
    used: Engine = "fast" if engine == "fast" else "surrogate" if engine == "surrogate" else "exact"
    return VarRun(document, list(assets), factors, outcomes, used)


def save(conn: Conn, inputs: Inputs, request: VarRequest, run: VarRun) -> int:
    """Save the run (chainrisk.contagion.store) in ``conn``'s transaction; its id."""
    from chainrisk.contagion.store import save_run

    return save_run(
        conn, inputs=inputs, kind="var", seed=request.seed, method=request.method,
        inputs_record=run.document["inputs"], summary=run.document, assets=run.assets,
        factors=run.factors, outcomes=run.outcomes,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------- fast


def default_exact_worst(scenarios: int) -> int:
    """How many of the fast engine's worst scenarios run again exactly when not told."""
    return min(scenarios, max(MIN_EXACT_WORST, math.ceil(EXACT_SHARE * scenarios)))


def _fast(
    inputs: Inputs,
    assets: Sequence[str],
    factors: FloatArray,
    exact_worst: int | None,
    dask: str | None,
    progress: Callable[[int], None] | None,
) -> tuple[list[Outcome], dict[str, Any]]:
    from chainrisk.contagion.distributed import scenario_outcomes_on
    from graph.fastcascade import FastCascade, replay_worst

    fast = FastCascade.build(inputs.books, inputs.pools, inputs.oracles).run(assets, factors)
    if progress is not None:
        progress(len(factors) // 2)  # the fast pass is about half the work of the default replay
    worst = replay_worst(fast, default_exact_worst(len(factors)) if exact_worst is None else exact_worst)
    exact = scenario_outcomes_on(inputs, assets, factors[worst], address=dask)
    if progress is not None:
        progress(len(factors) - len(factors) // 2)
    wallets = _wallet_bad_debt(fast)
    outcomes = [_from_fast(fast, i, wallets[i]) for i in range(len(factors))]
    for i, outcome in zip(worst.tolist(), exact, strict=True):
        outcomes[i] = outcome
    return outcomes, _fast_error(fast, worst.tolist(), exact)


def _wallet_bad_debt(fast: FastOutcomes) -> list[dict[tuple[str, str], float]]:
    """Per scenario, the bad debt each (market, wallet) leaves (USD), as the fast engine reports it."""
    found: list[dict[tuple[str, str], float]] = [{} for _ in range(fast.bad_debt_usd.size)]
    rows = zip(
        fast.bad_debt_scenario.tolist(),
        fast.bad_debt_account.tolist(),
        fast.bad_debt_account_usd.tolist(),
        strict=True,
    )
    for s, account, usd in rows:
        key = fast.accounts[account]
        found[s][key] = found[s].get(key, 0.0) + usd
    return found


def _from_fast(fast: FastOutcomes, i: int, wallets: dict[tuple[str, str], float]) -> Outcome:
    """A fast-path outcome: totals per market and asset and bad debt per wallet; its liquidations are not
    kept one by one (stored runs hold them for the exactly replayed scenarios only)."""
    by_asset = {
        (market, asset): float(fast.bad_debt_by_market_asset[i, m, a])
        for m, market in enumerate(fast.markets)
        for a, asset in enumerate(fast.assets)
        if fast.bad_debt_by_market_asset[i, m, a] > 0
    }
    by_market = {market: float(fast.bad_debt_by_market[i, m]) for m, market in enumerate(fast.markets)}
    none: tuple[WalletLiquidation, ...] = ()
    return Outcome(
        float(fast.bad_debt_usd[i]), by_market, by_asset, wallets, float(fast.liquidated_usd[i]),
        int(fast.depth[i]), none,
    )  # fmt: skip


def _fast_error(fast: FastOutcomes, worst: list[int], exact: Sequence[Outcome]) -> dict[str, Any]:
    """The fast path against the exact one on the replayed scenarios."""
    bad = [abs(float(fast.bad_debt_usd[i]) - o.bad_debt) for i, o in zip(worst, exact, strict=True)]
    liq = [abs(float(fast.liquidated_usd[i]) - o.liquidated) for i, o in zip(worst, exact, strict=True)]
    scale = max((o.bad_debt for o in exact), default=0.0)
    depth = sum(int(fast.depth[i]) != o.depth for i, o in zip(worst, exact, strict=True))
    return {
        "exact_scenarios": len(worst),
        "bad_debt_max_abs_error_usd": max(bad, default=0.0),
        "bad_debt_max_error_of_worst": max(bad, default=0.0) / scale if scale else 0.0,
        "liquidated_max_abs_error_usd": max(liq, default=0.0),
        "depth_differs": depth,
    }


# ------------------------------------------------------------------------------------------- surrogate


def _surrogate(
    inputs: Inputs,
    assets: Sequence[str],
    factors: FloatArray,
    surrogate: Surrogate,
    exact_worst: int | None,
    dask: str | None,
    progress: Callable[[int], None] | None,
) -> tuple[list[Outcome], dict[str, Any]]:
    import numpy as np

    from chainrisk.contagion.distributed import scenario_outcomes_on

    predicted, severity = surrogate_bad_debt(inputs, assets, factors, surrogate.tree)
    k = default_exact_worst(len(factors)) if exact_worst is None else exact_worst
    # Largest predicted bad debt first; where the prediction ties (at 0, mostly), the deepest price fall
    # first; then the lower scenario number.
    worst = np.lexsort((np.arange(len(factors)), severity, -predicted))[: max(0, k)].astype(np.int64)
    if progress is not None:
        progress(len(factors) - len(worst))
    exact = scenario_outcomes_on(inputs, assets, factors[worst], address=dask, progress=progress)
    none: tuple[WalletLiquidation, ...] = ()
    outcomes = [Outcome(float(b), {}, {}, {}, 0.0, 0, none) for b in predicted.tolist()]
    for i, outcome in zip(worst.tolist(), exact, strict=True):
        outcomes[i] = outcome
    return outcomes, _surrogate_error(surrogate, predicted, worst.tolist(), exact)


def surrogate_bad_debt(
    inputs: Inputs, assets: Sequence[str], factors: FloatArray, tree: TreeModel
) -> tuple[FloatArray, FloatArray]:
    """Per scenario (row of ``factors``), the tree surrogate's bad debt (USD) on the Aave markets and
    Morpho Blue books of ``inputs`` and the scenario's deepest price move of an asset with a feed
    (factor − 1, ≤ 0 for a fall). Scenarios go through in blocks of at most ``SURROGATE_ROWS`` account
    rows."""
    import numpy as np

    from graph.gnn.approx import approximate_cascade
    from graph.gnn.baselines import SCENARIO_FEATURES, scenario_table
    from graph.gnn.features import shock_matrix, static_graph, tabular

    owing = sum(
        any(r.scaled_vdebt_balance for r in reserves)
        for m in inputs.markets
        for reserves in m.positions.values()
    ) + sum(p.borrow_shares > 0 for b in inputs.morpho for p in b.positions.values())
    predicted, severity = np.zeros(len(factors)), np.zeros(len(factors))
    if owing == 0 or len(factors) == 0:  # nobody to liquidate: no bad debt
        return predicted, severity
    static = static_graph(inputs.books, inputs.pools, inputs.oracles)
    step = max(1, SURROGATE_ROWS // len(static.accounts))
    column = SCENARIO_FEATURES.index("min_shock")
    for start in range(0, len(factors), step):
        shocks = shock_matrix(static, assets, factors[start : start + step])
        approx = approximate_cascade(static, shocks)
        table = scenario_table(static, shocks, tabular(static, shocks, approx), approx)
        predicted[start : start + step] = tree.bad_debt_usd(table)
        severity[start : start + step] = table[:, column]
    return predicted, severity


def _surrogate_error(
    surrogate: Surrogate, predicted: FloatArray, worst: list[int], exact: Sequence[Outcome]
) -> dict[str, Any]:
    """The surrogate against the exact cascade on the replayed scenarios."""
    bad = [abs(float(predicted[i]) - o.bad_debt) for i, o in zip(worst, exact, strict=True)]
    scale = max((o.bad_debt for o in exact), default=0.0)
    return {
        "model": "tree",
        "version": surrogate.version,
        "exact_scenarios": len(worst),
        "replayed": sorted(worst),
        "bad_debt_max_abs_error_usd": max(bad, default=0.0),
        "bad_debt_mean_abs_error_usd": sum(bad) / len(bad) if bad else 0.0,
        "bad_debt_max_error_of_worst": max(bad, default=0.0) / scale if scale else 0.0,
    }


def run_command(
    database: Callable[[], str], options: VarOptions, *, store: bool, show_progress: bool
) -> dict[str, Any]:
    """`contagion var`: check every option, then open the database (``database()`` gives its conninfo),
    read, compute (no connection held meanwhile), store; the document, with ``run_id`` when stored."""
    import psycopg

    from chainrisk.contagion.var import progress_bar

    request, again = options.check()
    conninfo = database()
    with psycopg.connect(conninfo) as conn:
        # The model first: without one the run stops before minutes of loading the book.
        surrogate = load_surrogate(conn) if options.engine == "surrogate" else None
        inputs, request = prepare(conn, options, request, again)
    with progress_bar(request.scenarios, show_progress) as advance:
        run = compute(
            inputs, request, engine=options.engine, exact_worst=options.exact_worst, dask=options.dask,
            progress=advance, surrogate=surrogate,
        )  # fmt: skip
    if store:
        with psycopg.connect(conninfo) as conn:
            run.document["run_id"] = save(conn, inputs, request, run)
    return run.document
