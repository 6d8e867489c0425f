"""Gaussian hidden Markov regimes (hmmlearn) with forward-only filtered probabilities.

hmmlearn's `predict_proba` returns *smoothed* probabilities P(state at t | all data), computed by the
forward-backward pass, so the value for day t moves when later days change. A risk signal must only use
data up to t, so this module fits the model with hmmlearn (EM, several seeded restarts) and runs the
forward filter itself from the fitted start probabilities, transition matrix and per-state Gaussian
log-likelihoods: P(state at t | data up to t). `rolling_probabilities` and `stress_probabilities` in
`analytics.regimes` re-estimate it on a schedule exactly as they do the Markov-switching model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import logsumexp

from analytics.baselines import InsufficientHistoryError
from analytics.regimes import Signal, signal_values

__all__ = ["HMMFit", "HMMRegimes", "forward_filter"]


def forward_filter(log_start: np.ndarray, log_trans: np.ndarray, log_lik: np.ndarray) -> np.ndarray:
    """Filtered state probabilities, row t = P(state_t | obs_0..t), by the normalised forward recursion.

    `log_lik[t, j]` is log p(obs_t | state j). Row t uses rows 0..t of `log_lik` only.
    """
    n, k = log_lik.shape
    out = np.empty((n, k))
    log_alpha = log_start + log_lik[0]
    log_alpha -= logsumexp(log_alpha)
    out[0] = log_alpha
    for t in range(1, n):
        # Predict with the transition matrix, then update with day t's likelihood and renormalise.
        predicted = logsumexp(log_alpha[:, None] + log_trans, axis=0)
        log_alpha = predicted + log_lik[t]
        log_alpha -= logsumexp(log_alpha)
        out[t] = log_alpha
    return np.asarray(np.exp(out))


@dataclass(frozen=True)
class HMMFit:
    """Fitted HMM parameters in the standardised signal's units, states ordered calm → turbulent."""

    startprob: np.ndarray
    transmat: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    order: np.ndarray
    center: float
    scale: float
    k: int
    signal: Signal

    def daily_vols(self) -> list[float | None]:
        """Each state's daily return volatility (returns signal only), calm first."""
        if self.signal != "returns":
            return [None] * self.k
        return [float(np.sqrt(self.variances[i]) * self.scale / 100.0) for i in self.order]

    def log_likelihoods(self, data: pd.DataFrame) -> np.ndarray:
        values = (signal_values(data, self.signal).to_numpy() - self.center) / self.scale
        sd = np.sqrt(self.variances)
        return np.asarray(stats.norm.logpdf(values[:, None], loc=self.means[None, :], scale=sd[None, :]))

    def _forward(self, data: pd.DataFrame) -> np.ndarray:
        with np.errstate(divide="ignore"):
            log_start, log_trans = np.log(self.startprob), np.log(self.transmat)
        return forward_filter(log_start, log_trans, self.log_likelihoods(data))

    def filtered(self, data: pd.DataFrame) -> pd.DataFrame:
        """Filtered state probabilities for every day of `data`, columns 0 (calm) … k − 1 (turbulent)."""
        probs = self._forward(data)[:, self.order]
        return pd.DataFrame(probs, index=data.index, columns=range(self.k))

    def predicted(self, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row t: next-day state probabilities given data up to t, and the (fixed) means and variances."""
        shape = (len(data), self.k)
        probs = self._forward(data) @ self.transmat
        return probs, np.broadcast_to(self.means, shape), np.broadcast_to(self.variances, shape)


@dataclass(frozen=True)
class HMMRegimes:
    """A k-state Gaussian HMM on a regime signal, best of `restarts` seeded EM runs (diagonal variance).

    Diagonal covariance and restarts follow the known failure mode: a single EM run of a 3-state HMM on
    daily returns often collapses a state onto a handful of outliers.
    """

    k: Literal[2, 3] = 2
    signal: Signal = "returns"
    restarts: int = 5
    seed: int = 0
    n_iter: int = 200
    min_history: int = 250

    def _em(self, values: np.ndarray, seed: int) -> tuple[float, Any]:
        from hmmlearn.hmm import GaussianHMM

        model = GaussianHMM(
            n_components=self.k, covariance_type="diag", n_iter=self.n_iter, tol=1e-4, random_state=seed
        )
        model.fit(values[:, None])
        return float(model.score(values[:, None])), model

    def fit(self, history: pd.DataFrame) -> HMMFit:
        if len(history) < self.min_history:
            raise InsufficientHistoryError(
                f"{self.k}-state HMM needs at least {self.min_history} days of history, got {len(history)}"
            )
        raw = signal_values(history, self.signal).to_numpy()
        center, scale = float(raw.mean()), float(raw.std())
        values = (raw - center) / scale
        # hmmlearn reports non-convergence through logging; the best restart is kept either way.
        logging.getLogger("hmmlearn").setLevel(logging.ERROR)
        runs = [self._em(values, self.seed + r) for r in range(self.restarts)]
        _, best = max(runs, key=lambda run: run[0])
        means = np.asarray(best.means_).ravel()
        variances = np.asarray(best.covars_).reshape(self.k, -1)[:, 0]
        key = variances if self.signal == "returns" else means
        return HMMFit(
            startprob=np.asarray(best.startprob_),
            transmat=np.asarray(best.transmat_),
            means=means,
            variances=variances,
            order=np.argsort(key),
            center=center,
            scale=scale,
            k=self.k,
            signal=self.signal,
        )
