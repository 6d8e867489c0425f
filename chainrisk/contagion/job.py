"""The `contagion` job of `chainrisk serve`: the day's Monte Carlo VaR of bad debt, stored with the run.

Everything happens in the job's transaction (:class:`chainrisk.serve.jobs.JobRun`): the run's rows commit
together with the job's success record, or not at all, so a crash leaves no half-stored run and the period
runs again. The seed is the period's start in Unix seconds: a period run twice draws the same scenarios.
Options come from `[contagion]` (scenarios, method, horizon, engine, stress days, dask). With engine
``surrogate`` the latest stored tree surrogate is read first; with none stored the job fails with the
message `contagion var` gives (run `chainrisk contagion train`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chainrisk.contagion.runs import VarOptions, compute, load_surrogate, prepare, save
from chainrisk.contagion.scenarios import STRESS_DAYS

if TYPE_CHECKING:
    from chainrisk.serve.jobs import JobRun


def options_of(run: JobRun) -> VarOptions:
    """The run's options: `[contagion]` and a seed from the period."""
    config = run.service.settings.contagion
    return VarOptions(
        scenarios=config.scenarios,
        seed=int(run.period.timestamp()),
        method=config.method,
        horizon=config.horizon,
        stress_days=STRESS_DAYS if config.stress_days else (),
        engine=config.engine,
        dask=config.dask,
        chain_id=config.chain_id,
    )


def run_job(run: JobRun) -> dict[str, Any]:
    """Run `contagion var` on the indexed head and store it in the job's transaction."""
    options = options_of(run)
    request, _ = options.check()
    surrogate = load_surrogate(run.conn) if options.engine == "surrogate" else None
    inputs, request = prepare(run.conn, options, request)
    result = compute(inputs, request, engine=options.engine, dask=options.dask, surrogate=surrogate)
    run_id = save(run.conn, inputs, request, result)
    tails = result.document["bad_debt_usd"]
    return {
        "run_id": run_id,
        "chain_id": inputs.chain_id,
        "block": inputs.block,
        "scenarios": request.scenarios,
        "seed": request.seed,
        "var99_usd": tails["VaR99"]["point"],
        "es99_usd": tails["ES99"]["point"],
    }
