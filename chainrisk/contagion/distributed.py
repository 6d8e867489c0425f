"""Scenario batches in process or on a Dask distributed cluster, with the same outcomes either way.

    outcomes = scenario_outcomes_on(inputs, assets, factors, address=None)              # in process
    outcomes = scenario_outcomes_on(inputs, assets, factors, address="tcp://10.0.0.5:8786")

On a cluster the inputs (markets, pools, oracles) go to every worker once, each batch of scenarios is one
task, and the outcomes come back in scenario order. Each scenario's cascade is exact arithmetic on
fractions from the drawn floats (see :func:`chainrisk.contagion.var.scenario_outcomes`), so a seeded run
gives the same outcomes on any worker. The workers need chainrisk installed, at the same version.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from chainrisk.contagion.config import ADDRESS_HINT, valid_address
from chainrisk.contagion.inputs import Inputs
from chainrisk.contagion.var import Outcome, scenario_outcomes
from chainrisk.errors import ChainriskError
from chainrisk.inputs import OptionError

if TYPE_CHECKING:
    from numpy.typing import NDArray

DEFAULT_BATCH = 100  # scenarios per task: ~0.3 s of cascades at the devnet's 3 ms a scenario
CONNECT_TIMEOUT_S = 10.0


class DaskClusterError(ChainriskError):
    """The Dask cluster could not be reached or lost the run (an operation failed: exit 1)."""

    exit_code = 1


def check_address(address: str) -> str:
    """A scheduler address such as ``tcp://10.0.0.5:8786``; anything else is an :class:`OptionError`."""
    if not valid_address(address):
        raise OptionError(f"--dask {address!r}: expected {ADDRESS_HINT}")
    return address


def scenario_outcomes_on(
    inputs: Inputs,
    assets: Sequence[str],
    factors: NDArray[Any],
    *,
    address: str | None,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
    timeout_s: float = CONNECT_TIMEOUT_S,
) -> list[Outcome]:
    """The cascade outcome of every scenario (row of ``factors``), in order: on the Dask scheduler at
    ``address``, or in process when it is None. ``progress(n)`` is called as each batch of n completes.
    Raises :class:`OptionError` for a malformed address or batch size and :class:`DaskClusterError` when the
    scheduler cannot be reached within ``timeout_s`` or the cluster fails the run."""
    if batch_size < 1:
        raise OptionError(f"batch size {batch_size}: expected 1 or more scenarios per task")
    bounds = [(start, min(start + batch_size, len(factors))) for start in range(0, len(factors), batch_size)]
    if address is None:
        outcomes: list[Outcome] = []
        for start, stop in bounds:
            outcomes += run_batch(inputs, assets, factors[start:stop])
            if progress is not None:
                progress(stop - start)
        return outcomes
    return _on_cluster(inputs, assets, factors, check_address(address), bounds, progress, timeout_s)


def run_batch(inputs: Inputs, assets: Sequence[str], factors: NDArray[Any]) -> list[Outcome]:
    """One task: the outcomes of a batch of scenarios (top level, so that workers can unpickle it)."""
    return scenario_outcomes(inputs, assets, factors)


def _on_cluster(
    inputs: Inputs,
    assets: Sequence[str],
    factors: NDArray[Any],
    address: str,
    bounds: list[tuple[int, int]],
    progress: Callable[[int], None] | None,
    timeout_s: float,
) -> list[Outcome]:
    import distributed
    from distributed.scheduler import KilledWorker

    dask: Any = distributed  # untyped: its calls are checked by the tests, not by mypy
    try:
        client = dask.Client(address, timeout=timeout_s, set_as_default=False)
    except OSError as exc:
        raise DaskClusterError(
            f"--dask {address}: cannot reach the Dask scheduler ({exc}); expected a running scheduler"
            " (`dask scheduler`, with `dask worker ADDRESS` on the workers)"
        ) from None
    with client:
        try:
            shared = client.scatter(inputs, broadcast=True)  # once per worker, not once per task
            futures = [
                client.submit(run_batch, shared, list(assets), factors[start:stop], pure=False)
                for start, stop in bounds
            ]
            index = {future.key: i for i, future in enumerate(futures)}
            done: dict[int, list[Outcome]] = {}
            for future in dask.as_completed(futures, loop=client.loop):
                i = index[future.key]
                done[i] = future.result()
                if progress is not None:
                    progress(bounds[i][1] - bounds[i][0])
        except (OSError, TimeoutError, KilledWorker) as exc:
            raise DaskClusterError(
                f"--dask {address}: the cluster failed the run ({type(exc).__name__}: {exc})"
            ) from None
    return [outcome for i in range(len(bounds)) for outcome in done[i]]
