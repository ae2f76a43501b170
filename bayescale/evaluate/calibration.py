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
from bayescale.fit import DataError, Likelihood, StudentT, fit_nuts, float64, model
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
    tail = (1.0 - interval) / 2.0
    rows = []
    flagged = 0
    keys = jax.random.split(key, datasets)
    xj = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in x.items()}
    n = int(np.broadcast_shapes(*(np.shape(v) for v in x.values()))[0])
    done = 0
    attempt = 0
    while done < datasets:
        k_sim, k_fit = jax.random.split(keys[done] if attempt == 0 else jax.random.fold_in(keys[done], attempt))
        sim = Predictive(model, num_samples=1)(k_sim, law, likelihood, xj, None, n)
        truth = {p: float(sim[p][0]) for p in law.params}
        y = np.asarray(law.response.from_fit(sim["z"][0]))
        try:
            data = from_arrays(law, y=y, **{k: np.asarray(v) for k, v in x.items()})
        except DataError:  # a draw the data boundary cannot take (e.g. all at chance): draw again
            attempt += 1
            continue
        attempt = 0
        post = fit_nuts(law, data, key=k_fit, likelihood=likelihood, chains=chains, warmup=warmup, draws=draws,
                        warn=False)
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
        done += 1
        if progress:
            print(f"  coverage study: {done}/{datasets} data sets", flush=True)
    return CoverageStudy(pd.DataFrame(rows), interval, flagged, datasets, time.perf_counter() - t0)
