"""The temporal split keeps the future and the severe days out of training, and says so when it would not."""

from __future__ import annotations

import pytest

from chainrisk.contagion.surrogate import synthetic_snapshots
from graph.gnn.compare import build_data
from graph.gnn.dataset import FAMILIES, Split, SplitLeakError, check_no_leak, temporal_split


def test_split_trains_early_and_mild_and_tests_late_and_severe() -> None:
    split = temporal_split(range(6), seed=5)
    fitting = split.train + split.valid
    assert max(k[0] for k in fitting) < min(k[0] for k in split.test + split.later)
    assert max(FAMILIES[k[1]] for k in fitting) < min(FAMILIES[k[1]] for k in split.test)
    keys = [*fitting, *split.test, *split.later]
    assert len(set(keys)) == len(keys) and len({k[2] for k in keys}) == len(keys)
    assert {k[0] for k in split.test} == {4, 5} and {k[1] for k in split.train} == {"mild", "moderate"}


@pytest.mark.parametrize(
    ("split", "reason"),
    [
        (Split(((0, "mild", 1),), ((1, "moderate", 2),), ((1, "severe", 3),)), "later"),
        (Split(((0, "mild", 1),), ((1, "severe", 2),), ((2, "severe", 3),)), "severe"),
        (Split(((0, "mild", 1),), ((1, "moderate", 2),), ((2, "severe", 1),)), "two sides"),
        (
            Split(((0, "mild", 1),), ((1, "moderate", 2),), ((2, "severe", 3),), ((0, "moderate", 4),)),
            "later",
        ),
    ],
)
def test_a_leaking_split_is_refused(split: Split, reason: str) -> None:
    with pytest.raises(SplitLeakError, match=reason):
        check_no_leak(split)


def test_labelled_sets_follow_the_split() -> None:
    data = build_data(synthetic_snapshots(6, 60, seed=2), scenarios=8, seed=2)
    trained = {p.labelled.key for p in data.train + data.valid}
    held = {p.labelled.key for p in data.test + data.later}
    assert trained == set(data.split.train + data.split.valid)
    assert held == set(data.split.test + data.split.later) and not trained & held
    # Different draws: no held-out scenario repeats a training one.
    seen = {tuple(row) for p in data.train + data.valid for row in p.labelled.factors.round(12)}
    assert not any(tuple(row) in seen for p in data.test for row in p.labelled.factors.round(12))
