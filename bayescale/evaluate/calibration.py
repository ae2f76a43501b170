"""Simulation-based calibration of the Bayesian path.

Draw parameters and noise from a law's prior, simulate a data set from the
model at the user's covariates, fit it by NUTS, and record whether the central
credible interval contains the truth -- for every parameter and for the mean law
at extrapolation points beyond the data.  If the model, the sampler and the
band code are right, an ``interval`` band contains the truth ``interval`` of the
time (Cook, Gelman & Rubin 2006; Talts et al. 2018); the rank of the truth among
the draws is recorded too, and is uniform under the same condition.

This checks the *machinery* (a correctly specified model); how well bands hold
when the law itself is wrong is a separate question (backtests on real runs).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.infer import Predictive

from bayescale.derive import predict
from bayescale.derive.checks import check_interval, check_law, covariate_values
from bayescale.errors import ArgumentError, ArgumentTypeError, Interrupted, interruptible
from bayescale.fit import DataError, Gaussian, HuberLikelihood, Likelihood, StudentT, fit_nuts, float64, model
from bayescale.fit.map import check_key, positive_int
from bayescale.laws import Law
from bayescale.tables import from_arrays

__all__ = ["CoverageStudy", "coverage_study"]


@dataclasses.dataclass(frozen=True)
class CoverageStudy:
    """Per data set and quantity: the truth, the band, whether it was inside, its rank.

    ``table`` has one row per (data set, quantity); ``coverage`` the share inside
    per quantity and ``overall`` across all of them.
    """

    table: pd.DataFrame
    interval: float
    flagged: int
    datasets: int
    seconds: float

    @property
    def coverage(self) -> pd.Series:
        return self.table.groupby("quantity", sort=False)["inside"].mean()

    @property
    def overall(self) -> float:
        return float(self.table["inside"].mean())


@float64
def coverage_study(
    law: Law,
    x: Mapping[str, np.ndarray],
    extrapolate: Mapping[str, np.ndarray],
    *,
    key,
    datasets: int = 50,
    interval: float = 0.8,
    likelihood: Likelihood = StudentT(),
    chains: int = 2,
    warmup: int = 500,
    draws: int = 500,
    progress: bool = False,
) -> CoverageStudy:
    """Coverage of ``interval`` credible bands on data simulated from the prior predictive.

    ``x`` are the covariates of the simulated runs, ``extrapolate`` the covariates
    at which the mean law is checked (beyond the runs, as in a forecast).
    """
    t0 = time.perf_counter()
    _check_study(law, x, extrapolate, key, datasets, interval, likelihood, (chains, warmup, draws))
    tail = (1.0 - interval) / 2.0
    rows: list[dict] = []
    flagged = 0
    keys = jax.random.split(key, datasets)
    values = covariate_values(law, x, "coverage_study")
    shape = np.broadcast_shapes(*(v.shape for v in values.values()))
    if len(shape) != 1:
        raise ArgumentError(f"coverage_study: x must give one value per simulated run (1-D arrays), got shape {shape}")
    n = int(shape[0])
    xj = {k: jnp.asarray(np.broadcast_to(v, shape), dtype=jnp.float64) for k, v in values.items()}
    with interruptible(datasets, "data sets") as state:
        for done in range(datasets):
            try:
                post, truth, sim = _simulate_and_fit(law, likelihood, xj, n, keys[done], (chains, warmup, draws))
            except Interrupted:  # inside one data set's NUTS run: count data sets, the unit of this work
                raise KeyboardInterrupt from None
            flagged += not post.ok
            quantities = {p: (truth[p], post.draws[p]) for p in law.params}
            quantities["sigma"] = (float(sim["sigma"][0]), post.sigma)
            mean_true = predict(law, truth, extrapolate).reshape(-1)
            mean_draws = predict(law, post.draws, extrapolate).reshape(post.shape + (-1,))
            for j, value in enumerate(mean_true):
                quantities[f"prediction_{j}"] = (float(value), mean_draws[..., j])
            for name, (true, d) in quantities.items():
                flat = np.asarray(d).reshape(-1)
                lo, hi = np.quantile(flat, [tail, 1 - tail])
                rows.append(dict(dataset=done, quantity=name, truth=true, lo=lo, hi=hi,
                                 inside=bool(lo <= true <= hi), rank=float(np.mean(flat < true)), ok=post.ok))
            state.done = done + 1
            if progress:
                print(f"  coverage study: {done + 1}/{datasets} data sets", flush=True)
    return CoverageStudy(pd.DataFrame(rows), interval, flagged, datasets, time.perf_counter() - t0)


_ATTEMPTS = 100


def _simulate_and_fit(law: Law, likelihood: Likelihood, xj, n: int, key, settings: tuple[int, int, int]):
    """One data set from the prior predictive (drawn again while the data boundary refuses it), fitted by NUTS."""
    for attempt in range(_ATTEMPTS):
        k_sim, k_fit = jax.random.split(key if attempt == 0 else jax.random.fold_in(key, attempt))
        sim = Predictive(model, num_samples=1)(k_sim, law, likelihood, xj, None, n)
        y = np.asarray(law.response.from_fit(sim["z"][0]))
        try:
            data = from_arrays(law, y=y, **{k: np.asarray(v) for k, v in xj.items()})
        except DataError as exc:  # a draw the data boundary cannot take (e.g. all at chance): draw again
            last = exc
            continue
        chains, warmup, draws = settings
        post = fit_nuts(law, data, key=k_fit, likelihood=likelihood, chains=chains, warmup=warmup, draws=draws,
                        warn=False)
        return post, {p: float(sim[p][0]) for p in law.params}, sim
    raise DataError(f"coverage_study: {_ATTEMPTS} data sets drawn from the prior of law {law.name!r} in a row were "
                    f"refused ({last}); use priors whose predictions the response can take")


def _check_study(law, x, extrapolate, key, datasets, interval, likelihood, settings) -> None:
    check_law(law, "coverage_study")
    covariate_values(law, x, "coverage_study")
    covariate_values(law, extrapolate, "coverage_study", "extrapolate")
    check_key(key, "coverage_study")
    positive_int(datasets, "datasets", "coverage_study")
    check_interval(interval, "coverage_study")
    if not isinstance(likelihood, (Gaussian, StudentT, HuberLikelihood)):
        raise ArgumentTypeError(f"coverage_study: likelihood must be StudentT(), Gaussian() or HuberLikelihood(), "
                                f"got {type(likelihood).__name__}")
    for name, value in zip(("chains", "warmup", "draws"), settings):
        positive_int(value, name, "coverage_study")
