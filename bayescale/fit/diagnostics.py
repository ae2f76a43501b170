"""Convergence diagnostics of MCMC draws ``(chain, draw)``, in numpy.

Rank-normalised split R-hat, bulk and tail effective sample sizes of Vehtari, Gelman,
Simpson, Carpenter and Bürkner (2021), "Rank-normalization, folding, and localization:
an improved R-hat for assessing convergence of MCMC", *Bayesian Analysis* 16(2), with
the autocorrelation sum truncated by Geyer's initial positive and monotone sequences
(Stan's estimator).  The tests check the values against arviz-stats.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

__all__ = ["ess_bulk", "ess_tail", "rhat"]

_PPF = np.vectorize(NormalDist().inv_cdf, otypes=[float])


def _split(x: np.ndarray) -> np.ndarray:
    """Each chain cut in two halves (the middle draw of an odd count is dropped)."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled average ranks."""
    flat = x.reshape(-1)
    _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    average_rank = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    return _PPF((average_rank - 0.375) / (flat.size + 0.25)).reshape(x.shape)


def _rhat(x: np.ndarray) -> float:
    n = x.shape[1]
    between = n * np.var(x.mean(axis=1), ddof=1)
    within = np.mean(np.var(x, axis=1, ddof=1))
    return float(np.sqrt((between / within + n - 1) / n))


def _autocov(x: np.ndarray) -> np.ndarray:
    """Biased autocovariance of each chain at every lag (FFT)."""
    n = x.shape[1]
    f = np.fft.rfft(x - x.mean(axis=1, keepdims=True), n=2 * n, axis=1)
    return np.fft.irfft(f * np.conjugate(f), n=2 * n, axis=1)[:, :n] / n


def _ess(x: np.ndarray) -> float:
    """Effective sample size of chains ``x`` (chain, draw)."""
    chains, n = x.shape
    if np.ptp(x) < np.finfo(float).resolution:
        return float(x.size)
    acov = _autocov(x).mean(axis=0)
    mean_var = acov[0] * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n + (np.var(x.mean(axis=1), ddof=1) if chains > 1 else 0.0)
    rho = 1.0 - (mean_var - acov) / var_plus
    rho[0] = 1.0
    kept = np.zeros(n)
    kept[:2] = rho[:2]
    t, even, odd = 1, 1.0, rho[1]
    while t < n - 3 and even + odd > 0.0:  # initial positive sequence
        even, odd = rho[t + 1], rho[t + 2]
        if even + odd >= 0:
            kept[t + 1], kept[t + 2] = even, odd
        t += 2
    last = t - 2
    if even > 0:
        kept[last + 1] = even
    for t in range(1, last - 1, 2):  # initial monotone sequence
        if kept[t + 1] + kept[t + 2] > kept[t - 1] + kept[t]:
            kept[t + 1] = kept[t + 2] = (kept[t - 1] + kept[t]) / 2.0
    tau = -1.0 + 2.0 * np.sum(kept[: last + 1]) + np.sum(kept[last + 1: last + 2])
    return float(x.size / max(tau, 1.0 / np.log10(x.size)))


def rhat(draws: np.ndarray) -> float:
    """Rank-normalised split R-hat: the larger of the bulk and the folded (tail) R-hat."""
    x = np.asarray(draws, dtype=float)
    if x.shape[1] < 4 or np.ptp(x) == 0:
        return float("nan")
    split = _split(x)
    return max(_rhat(_z_scale(split)), _rhat(_z_scale(np.abs(split - np.median(split)))))


def ess_bulk(draws: np.ndarray) -> float:
    """Bulk effective sample size: ESS of the rank-normalised split chains."""
    x = np.asarray(draws, dtype=float)
    return _ess(_z_scale(_split(x))) if x.shape[1] >= 4 else float("nan")


def ess_tail(draws: np.ndarray) -> float:
    """Tail effective sample size: the smaller ESS of the 5 % and 95 % quantile indicators."""
    x = np.asarray(draws, dtype=float)
    if x.shape[1] < 4:
        return float("nan")
    lo, hi = np.quantile(x, [0.05, 0.95])
    return min(_ess(_split((x <= lo).astype(float))), _ess(_split((x <= hi).astype(float))))
