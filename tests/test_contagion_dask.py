"""Scenario batches on a real Dask cluster (a LocalCluster of two worker processes): a seeded run gives the
same outcomes there as in process; a scheduler that cannot be reached is one clear error."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from chainrisk.contagion.distributed import DaskClusterError, scenario_outcomes_on
from chainrisk.contagion.var import scenario_outcomes
from chainrisk.inputs import OptionError
from tests.contagion_book import book, factors

SCENARIOS = 48


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    import distributed

    dask: Any = distributed  # untyped
    with dask.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as local:
        yield local


def test_a_seeded_run_gives_the_same_outcomes_in_process_and_on_the_cluster(cluster: Any) -> None:
    inputs = book()
    assets, drawn = factors(SCENARIOS, 11)
    on_cluster: list[int] = []
    remote = scenario_outcomes_on(
        inputs, assets, drawn, address=cluster.scheduler_address, batch_size=5, progress=on_cluster.append
    )
    in_process: list[int] = []
    local = scenario_outcomes_on(
        inputs, assets, drawn, address=None, batch_size=5, progress=in_process.append
    )
    assert remote == local == scenario_outcomes(inputs, assets, drawn)
    assert sum(o.depth > 0 for o in local) > 0 and sum(o.bad_debt > 0 for o in local) > 0  # real cascades
    # One call per batch of 5 (the last one 3), in completion order on the cluster.
    assert in_process == [5] * 9 + [3] and sorted(on_cluster) == sorted(in_process)
    # The batches were the scheduler's tasks, run by two worker processes other than this one.
    assert "run_batch" in cluster.scheduler.task_prefixes
    pids = {w.pid for w in cluster.scheduler.workers.values()}
    assert len(pids) == 2 and os.getpid() not in pids


def test_the_same_draws_give_the_same_outcomes_whatever_the_batches(cluster: Any) -> None:
    inputs = book()
    assets, drawn = factors(12, 5)
    one = scenario_outcomes_on(inputs, assets, drawn, address=cluster.scheduler_address, batch_size=12)
    many = scenario_outcomes_on(inputs, assets, drawn, address=cluster.scheduler_address, batch_size=1)
    assert one == many


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_scheduler_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from chainrisk.exits import answered

    address = f"tcp://127.0.0.1:{_closed_port()}"
    assets, drawn = factors(2, 1)
    with pytest.raises(DaskClusterError) as error:
        scenario_outcomes_on(book(), assets, drawn, address=address, timeout_s=1)
    assert error.value.exit_code == 1
    assert str(error.value).startswith(f"--dask {address}: cannot reach the Dask scheduler")
    # Through the CLI's error path: one line on stderr, exit 1.
    with pytest.raises(typer.Exit) as exit_, answered():
        raise error.value
    assert exit_.value.exit_code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --dask {address}: cannot reach")


@pytest.mark.parametrize("address", ["127.0.0.1:8786", "foo://host:1", "tcp://host", "tcp://h:1/x", ""])
def test_a_malformed_address_is_an_option_error(address: str) -> None:
    assets, drawn = factors(2, 1)
    expected = re.escape("expected a Dask scheduler address, e.g. tcp://127.0.0.1:8786")
    with pytest.raises(OptionError, match=expected):
        scenario_outcomes_on(book(), assets, drawn, address=address)


def test_a_batch_size_below_one_is_an_option_error() -> None:
    assets, drawn = factors(2, 1)
    with pytest.raises(OptionError, match="batch size 0"):
        scenario_outcomes_on(book(), assets, drawn, address=None, batch_size=0)


def test_the_config_names_a_scheduler_or_nothing() -> None:
    from pydantic import ValidationError

    from chainrisk.contagion.config import ContagionConfig

    assert ContagionConfig().dask is None
    assert ContagionConfig(dask="tcp://10.0.0.5:8786").dask == "tcp://10.0.0.5:8786"
    with pytest.raises(ValidationError, match="expected a Dask scheduler address"):
        ContagionConfig(dask="10.0.0.5:8786")
