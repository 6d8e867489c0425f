"""Smooth price-impact curves per Uniswap v3 pool, fitted by Levenberg–Marquardt to exact quotes.

    curves = fit_pool(pool, decimals0=18, decimals1=6)
    curves.zero.report.max_output_error     # held-out relative error of the fitted output amount
    u, proceeds, filled = curves.sell(u, amount, zero_for_one=True)   # vectorised over any shape

For each direction (token0 in, token1 in) the exact pool (:meth:`graph.univ3_pool.Pool.quote`, exact in)
is quoted at a log-spaced grid of input sizes, from a millionth of the pool's in-range depth to a
thousand times it. Each quote gives the input, the output and the price move
``t = |log(sqrtPrice after / before)|``. Two smooth curves of the move are fitted to those quotes with
``scipy.optimize.least_squares(method="lm")``:

    input(t)  = t · exp(h(log t))          output(t) = t · exp(k(log t))

with ``h`` and ``k`` cubic B-splines (``KNOTS`` knots over the quoted moves), fitted on log ratios so
every size weighs alike as a relative error. A constant-liquidity range has ``input ∝ e^t − 1`` and
``output ∝ 1 − e^-t``: smooth in ``log t``; the concentrated ranges bend the liquidity, which the spline
follows. The price after a sale is the inverse of ``input(t)``; the output is ``output(t)`` there. Every
other quote is held out of the fit; :class:`FitReport` gives the max and median relative error on those,
of the output amount and of the price after.

For a cascade the pool must be sold into from any price, not only from today's, so the two fitted
directions are joined into one table over ``u = log(sqrtPrice / sqrtPrice today)``: the pool's net
token0 and token1 (fee-free) needed to move it from today's price to ``u``. A v3 pool's amounts between
two prices depend on those prices only, so a sale from ``u`` of ``a`` token0 ends where the net token0
grows by ``a·(1 − fee)`` and pays the net token1 between the two prices. Amounts are in token units
(decimals applied). A sale beyond the largest quoted size is reported as not filled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import BSpline
from scipy.optimize import least_squares

from graph.errors import GraphError
from graph.univ3 import Q96, UniswapMathError
from graph.univ3_pool import Pool

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

KNOTS = 24  # over about 9 decades of size: enough to follow a range's edge, few enough to stay smooth
SPLINE_DEGREE = 3
GRID_POINTS = 60  # fitting sizes per direction; as many held-out sizes sit between them
SMALLEST, LARGEST = 1e-6, 1e3  # sizes as multiples of the in-range depth
TABLE_POINTS = 4_000  # points of the joined table per direction
PIPS = 1_000_000


class ImpactFitError(GraphError, ValueError):
    """A pool the curves cannot be fitted to: no in-range liquidity, or no quote that fills."""


@dataclass(frozen=True, slots=True)
class FitReport:
    """One direction's fit: quotes used, and relative errors on the held-out sizes."""

    zero_for_one: bool
    quotes: int
    held_out: int
    max_output_error: float
    median_output_error: float
    max_price_error: float  # of the price after (sqrtPrice squared), relative
    median_price_error: float


@dataclass(frozen=True, slots=True)
class DirectionFit:
    """The fitted curves of one direction: price move → input and output (token units)."""

    zero_for_one: bool
    knots: FloatArray
    input_coefficients: FloatArray
    output_coefficients: FloatArray
    input_scale: float  # base units per token unit of the token in
    output_scale: float
    max_move: float  # the largest quoted move that filled
    report: FitReport

    def input(self, move: FloatArray) -> FloatArray:
        """Token-in units that move the price by ``move`` (|log sqrtPrice|) from today's."""
        return self._curve(self.input_coefficients, move) / self.input_scale

    def output(self, move: FloatArray) -> FloatArray:
        """Token-out units a sale moving the price by ``move`` brings."""
        return self._curve(self.output_coefficients, move) / self.output_scale

    def _curve(self, coefficients: FloatArray, move: FloatArray) -> FloatArray:
        t = np.asarray(move, dtype=np.float64)
        positive = np.maximum(t, 1e-300)
        result: FloatArray = t * np.exp(_basis(self.knots, np.log(positive).ravel()) @ coefficients).reshape(
            t.shape
        )
        return result


@dataclass(frozen=True, slots=True)
class PoolCurves:
    """Both directions of one pool, joined into net-amount tables over ``u`` (see the module docstring)."""

    fee: float  # as a fraction
    price0: float  # today's token1 units per token0 unit
    zero: DirectionFit
    one: DirectionFit
    u: FloatArray  # ascending
    net0: FloatArray  # net token0 into the pool to reach u (decreasing in u)
    net1: FloatArray  # net token1 into the pool to reach u (increasing in u)

    @property
    def reports(self) -> tuple[FitReport, FitReport]:
        return self.zero.report, self.one.report

    def price(self, u: FloatArray) -> FloatArray:
        """token1 units per token0 unit at ``u``."""
        result: FloatArray = self.price0 * np.exp(2.0 * np.asarray(u, dtype=np.float64))
        return result

    def sell(
        self, u: FloatArray, amount: FloatArray, *, zero_for_one: bool
    ) -> tuple[FloatArray, FloatArray, BoolArray]:
        """Sell ``amount`` (token units) of token0 (``zero_for_one``) or token1 from pool states ``u``.

        Returns the states after, the other token received, and whether the pool could fill each sale
        (an unfilled sale leaves its state as it was and brings nothing).
        """
        u = np.asarray(u, dtype=np.float64)
        amount = np.asarray(amount, dtype=np.float64)
        given, other = (self.net0, self.net1) if zero_for_one else (self.net1, self.net0)
        target = np.interp(u, self.u, given) + amount * (1.0 - self.fee)
        if zero_for_one:  # net token0 falls as u rises: invert on the reversed table
            filled = target <= given[0]
            after = np.interp(target, given[::-1], self.u[::-1])
        else:
            filled = target <= given[-1]
            after = np.interp(target, given, self.u)
        after = np.where(filled, after, u)
        received = np.where(filled, np.interp(u, self.u, other) - np.interp(after, self.u, other), 0.0)
        return after, received, filled


# ------------------------------------------------------------------------------------------- curves


def _basis(knots: FloatArray, s: FloatArray) -> FloatArray:
    """Cubic B-spline basis at ``s`` (clamped to the knots' span: flat beyond it)."""
    inner = knots[SPLINE_DEGREE:-SPLINE_DEGREE]
    clamped = np.clip(s, inner[0], inner[-1])
    matrix: FloatArray = BSpline.design_matrix(clamped, knots, SPLINE_DEGREE).toarray()
    return matrix


def _knots(s: FloatArray) -> FloatArray:
    inner = np.linspace(float(s.min()), float(s.max()), KNOTS)
    return np.concatenate([np.full(SPLINE_DEGREE, inner[0]), inner, np.full(SPLINE_DEGREE, inner[-1])])


def _fit(basis: FloatArray, target: FloatArray) -> FloatArray:
    """LM fit of spline coefficients to ``target`` (a log ratio, so the residuals are relative errors)."""

    def residuals(coefficients: FloatArray) -> FloatArray:
        result: FloatArray = basis @ coefficients - target
        return result

    start = np.full(basis.shape[1], float(np.median(target)))
    found = least_squares(residuals, start, method="lm")
    return np.asarray(found.x, dtype=np.float64)


# ------------------------------------------------------------------------------------------- quotes


def _quotes(pool: Pool, zero_for_one: bool, sizes: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(input, output, t) in base units for every size the pool fills in full."""
    ins, outs, moves = [], [], []
    for size in sizes:
        amount = max(1, int(size))
        try:
            outcome = pool.quote(zero_for_one, amount)
        except UniswapMathError:
            break
        taken, given = (
            (outcome.amount0, -outcome.amount1) if zero_for_one else (outcome.amount1, -outcome.amount0)
        )
        if taken != amount or given <= 0 or outcome.sqrt_price == pool.sqrt_price:
            if taken != amount:
                break
            continue
        ins.append(float(amount))
        outs.append(float(given))
        moves.append(abs(math.log(outcome.sqrt_price / pool.sqrt_price)))
    return np.array(ins), np.array(outs), np.array(moves)


def _depth(pool: Pool, zero_for_one: bool) -> float:
    """Base units of the token in that move the in-range liquidity's price by about e (one range)."""
    sqrt_price = pool.sqrt_price / Q96
    return pool.liquidity / sqrt_price if zero_for_one else pool.liquidity * sqrt_price


def _relative(fitted: FloatArray, exact: FloatArray) -> FloatArray:
    result: FloatArray = np.abs(fitted / exact - 1.0)
    return result


def _invert(fit: DirectionFit, amounts: FloatArray) -> FloatArray:
    """The price move a sale of ``amounts`` (token units) makes, from the fitted input curve."""
    moves = np.geomspace(1e-12, fit.max_move, TABLE_POINTS)
    inputs = np.maximum.accumulate(fit.input(moves))
    result: FloatArray = np.interp(amounts, inputs, moves)
    return result


def fit_direction(pool: Pool, zero_for_one: bool, decimals_in: int, decimals_out: int) -> DirectionFit:
    """Quote ``pool`` at log-spaced sizes in one direction and fit the two curves (see the module)."""
    if pool.liquidity <= 0:
        raise ImpactFitError("the pool has no in-range liquidity to fit")
    depth = _depth(pool, zero_for_one)
    grid = np.geomspace(SMALLEST, LARGEST, 2 * GRID_POINTS - 1) * depth
    ins, outs, moves = _quotes(pool, zero_for_one, grid)
    fit_rows, held_rows = np.arange(0, ins.size, 2), np.arange(1, ins.size, 2)
    if fit_rows.size < KNOTS + SPLINE_DEGREE or held_rows.size == 0:
        raise ImpactFitError(f"only {ins.size} quotes fill; too few to fit {KNOTS + 2} coefficients")
    unit_in, unit_out = 10.0**decimals_in, 10.0**decimals_out
    s = np.log(moves)
    knots = _knots(s[fit_rows])
    basis = _basis(knots, s[fit_rows])
    fit = DirectionFit(
        zero_for_one=zero_for_one,
        knots=knots,
        input_coefficients=_fit(basis, np.log(ins[fit_rows] / moves[fit_rows])),
        output_coefficients=_fit(basis, np.log(outs[fit_rows] / moves[fit_rows])),
        input_scale=unit_in,
        output_scale=unit_out,
        max_move=float(moves.max()),
        report=FitReport(zero_for_one, int(ins.size), int(held_rows.size), 0.0, 0.0, 0.0, 0.0),
    )
    predicted = _invert(fit, ins[held_rows] / unit_in)
    # The output as the cascade reads it: integrated along the fitted price path (see _table).
    raw = (pool.sqrt_price / Q96) ** 2  # token1 base units per token0 base unit
    rate = (raw if zero_for_one else 1.0 / raw) * 10.0 ** (decimals_in - decimals_out)
    moves_table, _, out_table = _table(fit, pool.fee / PIPS, rate)
    out_error = _relative(np.interp(predicted, moves_table, out_table) * unit_out, outs[held_rows])
    # The price after is sqrtPrice² and moves by exp(∓2t): its relative error follows from t's error.
    price_error = np.abs(np.expm1(2.0 * (predicted - moves[held_rows])))
    report = FitReport(
        zero_for_one=zero_for_one,
        quotes=int(ins.size),
        held_out=int(held_rows.size),
        max_output_error=float(out_error.max()),
        median_output_error=float(np.median(out_error)),
        max_price_error=float(price_error.max()),
        median_price_error=float(np.median(price_error)),
    )
    return DirectionFit(
        zero_for_one,
        knots,
        fit.input_coefficients,
        fit.output_coefficients,
        unit_in,
        unit_out,
        fit.max_move,
        report,
    )


def _table(fit: DirectionFit, fee: float, rate: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(t, net in, out) along the fitted direction, from 0 up to the largest quoted move.

    The net input is the fitted curve (made non-decreasing: a spline wiggle under the fit's error must
    not make the table non-invertible). The output is not read off its own curve but integrated along the
    price path: each slice of net input pays out at the pool's price there (``rate · e^-2t`` token out
    per token in, ``rate`` today's), so the marginal price at every state is the pool's own exactly and
    only the liquidity profile carries the fit's error.
    """
    moves = np.concatenate([[0.0], np.geomspace(fit.max_move * 1e-9, fit.max_move, TABLE_POINTS)])
    net_in = np.maximum.accumulate(fit.input(moves) * (1.0 - fee))
    middle = 0.5 * (moves[1:] + moves[:-1])
    out = np.concatenate([[0.0], np.cumsum(rate * np.exp(-2.0 * middle) * np.diff(net_in))])
    return moves, net_in, out


def fit_pool(pool: Pool, decimals0: int, decimals1: int) -> PoolCurves:
    """Fit both directions of ``pool`` and join them into the net-amount tables the cascade sells into."""
    zero = fit_direction(pool, True, decimals0, decimals1)
    one = fit_direction(pool, False, decimals1, decimals0)
    fee = pool.fee / PIPS
    price0 = (pool.sqrt_price / Q96) ** 2 * 10.0 ** (decimals0 - decimals1)
    t0, in0, out1 = _table(zero, fee, price0)
    t1, in1, out0 = _table(one, fee, 1.0 / price0)
    # Below today's price token0 went in and token1 came out; above it, the other way round.
    u = np.concatenate([-t0[::-1], t1[1:]])
    net0 = np.concatenate([in0[::-1], -out0[1:]])
    net1 = np.concatenate([-out1[::-1], in1[1:]])
    return PoolCurves(fee, price0, zero, one, u, net0, net1)
