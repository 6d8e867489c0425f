"""Labelled scenario sets from the cascade simulator, and splits that keep the future out of training.

    snapshot = Snapshot(0, markets, pools, oracles)
    labelled = label_set(snapshot, "severe", seed=7, scenarios=200)
    labelled.first_round          # (scenarios, accounts): 0 = not liquidated, else the round of the first
    labelled.liquidated_value     # (scenarios, accounts): debt repaid over every round, USD
    labelled.bad_debt_account     # (scenarios, accounts): bad debt left, USD at the final prices

Labels come from :class:`graph.fastcascade.FastCascade` (the vectorised engine: volume in seconds); the
exact engine :func:`graph.cascade.run_cascade` checks them on a subset (:func:`exact_agreement`).

A scenario family scales the one-day volatility of every shocked asset: ``mild`` draws at 3 %, ``moderate``
at 6 %, ``severe`` at 12 %, all Student-t with 4 degrees of freedom and the correlation ``CORRELATION``.
A snapshot is one book at one point in time; its ``index`` orders them. The split trains on the earlier
snapshots and milder families and tests on later snapshots of the severe family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from graph.cascade import LendingMarket, MorphoBook, OracleModel, PoolKey, run_cascade
from graph.fastcascade import FastCascade
from graph.tail import student_t_scenarios
from graph.univ3_pool import Pool

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

FAMILIES: dict[str, float] = {"mild": 0.03, "moderate": 0.06, "severe": 0.12}
CORRELATION, DF = 0.8, 4.0


class SplitLeakError(ValueError):
    """A split whose test sets share a snapshot, a family or a draw with what trains the model."""


@dataclass(frozen=True)
class Snapshot:
    """One book at one point in time: the cascade's inputs and the assets the scenarios move."""

    index: int
    markets: tuple[LendingMarket | MorphoBook, ...]
    pools: Mapping[PoolKey, Pool]
    oracles: Mapping[str, OracleModel]
    moving: tuple[str, ...]


@dataclass(frozen=True)
class LabelledSet:
    """The simulator's outcomes of one (snapshot, family, seed) draw, per account and per market."""

    snapshot: int
    family: str
    seed: int
    assets: tuple[str, ...]
    factors: FloatArray  # (scenarios, len(assets)) price multipliers
    accounts: tuple[tuple[str, str], ...]
    markets: tuple[str, ...]
    first_round: IntArray  # (scenarios, accounts); 0 = never liquidated
    liquidated_value: FloatArray  # (scenarios, accounts) debt repaid over every round, USD
    bad_debt_by_market: FloatArray  # (scenarios, markets) USD
    bad_debt: FloatArray  # (scenarios,) USD
    liquidated_usd: FloatArray  # (scenarios,) USD
    bad_debt_account: FloatArray  # (scenarios, accounts) USD; sums to ``bad_debt`` per scenario

    @property
    def liquidated_by_market(self) -> FloatArray:
        """(scenarios, markets) debt repaid, USD."""
        column = {m: i for i, m in enumerate(self.markets)}
        owner = np.array([column[m] for m, _ in self.accounts], dtype=np.int64)
        one_hot = np.zeros((len(self.accounts), len(self.markets)))
        one_hot[np.arange(len(self.accounts)), owner] = 1.0
        found: FloatArray = self.liquidated_value @ one_hot
        return found

    @property
    def key(self) -> tuple[int, str, int]:
        """What identifies the draw: a split never puts one key on two sides."""
        return self.snapshot, self.family, self.seed

    @property
    def cascade_induced(self) -> NDArray[np.bool_]:
        """Liquidated in a later round but not in the first."""
        result: NDArray[np.bool_] = self.first_round > 1
        return result


def draw_factors(moving: Sequence[str], family: str, scenarios: int, seed: int) -> FloatArray:
    """Seeded one-day price factors of ``moving`` for a family (see the module)."""
    if family not in FAMILIES:
        raise ValueError(f"family {family!r}: expected one of {', '.join(FAMILIES)}")
    k = len(moving)
    corr = np.full((k, k), CORRELATION) + np.eye(k) * (1 - CORRELATION)
    drawn = student_t_scenarios(
        corr, [FAMILIES[family]] * k, df=DF, n=scenarios, rng=np.random.default_rng(seed)
    )
    factors: FloatArray = np.asarray(drawn.factors, dtype=np.float64)
    return factors


def label_set(snapshot: Snapshot, family: str, seed: int, scenarios: int) -> LabelledSet:
    """Draw ``scenarios`` factors of a family and label them with the fast engine."""
    factors = draw_factors(snapshot.moving, family, scenarios, seed)
    fast = FastCascade.build(snapshot.markets, snapshot.pools, snapshot.oracles)
    return label_factors(fast, snapshot.index, family, seed, snapshot.moving, factors)


def label_factors(
    fast: FastCascade, snapshot: int, family: str, seed: int, assets: Sequence[str], factors: FloatArray
) -> LabelledSet:
    """Label given factors: every account's first liquidation round, bad debt per market."""
    out = fast.run(list(assets), factors)
    first = np.zeros((factors.shape[0], len(out.accounts)), dtype=np.int64)
    # Later rounds first, so the earliest round of an account is what stays.
    order = np.argsort(-out.liquidation_round, kind="stable")
    first[out.liquidation_scenario[order], out.liquidation_account[order]] = out.liquidation_round[order]
    value = np.zeros(first.shape)
    np.add.at(value, (out.liquidation_scenario, out.liquidation_account), out.liquidation_usd)
    return LabelledSet(
        snapshot=snapshot,
        family=family,
        seed=seed,
        assets=tuple(assets),
        factors=np.asarray(factors, dtype=np.float64),
        accounts=out.accounts,
        markets=out.markets,
        first_round=first,
        liquidated_value=value,
        bad_debt_by_market=out.bad_debt_by_market,
        bad_debt=out.bad_debt_usd,
        liquidated_usd=out.liquidated_usd,
        bad_debt_account=out.account_bad_debt(),
    )


def exact_agreement(snapshot: Snapshot, labelled: LabelledSet, scenarios: int) -> dict[str, float]:
    """Run the exact engine on the first ``scenarios`` draws: the share of (scenario, account) labels
    (liquidated or not) it agrees on, and of the fast engine's liquidations it also makes."""
    agree = total = both = fast_hits = 0
    column = {account: i for i, account in enumerate(labelled.accounts)}
    for s in range(min(scenarios, labelled.factors.shape[0])):
        shock = {a: float(labelled.factors[s, k]) for k, a in enumerate(labelled.assets)}
        result = run_cascade(snapshot.markets, snapshot.pools, snapshot.oracles, shock)
        exact = np.zeros(len(labelled.accounts), dtype=bool)
        for round_ in result.rounds:
            for x in round_.liquidations:
                if (x.market, x.user) in column:
                    exact[column[(x.market, x.user)]] = True
        fast = labelled.first_round[s] > 0
        agree += int((exact == fast).sum())
        total += exact.size
        both += int((exact & fast).sum())
        fast_hits += int(fast.sum())
    return {
        "scenarios": float(min(scenarios, labelled.factors.shape[0])),
        "label_agreement": agree / max(1, total),
        "liquidations_confirmed": both / max(1, fast_hits),
    }


@dataclass(frozen=True)
class Split:
    """Which draws train, which stop training early, which measure."""

    train: tuple[tuple[int, str, int], ...]
    valid: tuple[tuple[int, str, int], ...]
    test: tuple[tuple[int, str, int], ...]
    later: tuple[tuple[int, str, int], ...] = ()  # later snapshots, a training family: time alone held out


def temporal_split(snapshots: Sequence[int], seed: int) -> Split:
    """Earlier snapshots with mild and moderate draws train; the last training snapshot's moderate family,
    drawn again, stops early; the two latest snapshots' severe draws test, and their moderate draws measure
    what holding out time alone costs."""
    ordered = sorted(snapshots)
    if len(ordered) < 4:
        raise ValueError(f"a temporal split needs at least 4 snapshots, got {len(ordered)}")
    early, late = ordered[:-2], ordered[-2:]
    train = tuple(
        (t, f, seed + 1_000 * t + i) for t in early[:-1] for i, f in enumerate(("mild", "moderate"))
    )
    valid = ((early[-1], "moderate", seed + 1_000 * early[-1] + 7),)
    test = tuple((t, "severe", seed + 1_000 * t + 9) for t in late)
    later = tuple((t, "moderate", seed + 1_000 * t + 11) for t in late)
    split = Split(train, valid, test, later)
    check_no_leak(split)
    return split


def check_no_leak(split: Split) -> None:
    """Raise :class:`SplitLeakError` unless every test snapshot is later than every training one, every
    test family more severe than every training family (the ``later`` sets hold out time alone), and no
    draw or seed is used twice."""
    fitting = split.train + split.valid
    keys = [*fitting, *split.test, *split.later]
    if len(set(keys)) != len(keys) or len({k[2] for k in keys}) != len(keys):
        raise SplitLeakError("a draw (snapshot, family, seed) or a seed is used on two sides")
    if max(k[0] for k in fitting) >= min(k[0] for k in split.test + split.later):
        raise SplitLeakError("a test snapshot is not later than every training snapshot")
    if max(FAMILIES[k[1]] for k in fitting) >= min(FAMILIES[k[1]] for k in split.test):
        raise SplitLeakError("a test family is not more severe than every training family")
