"""NUTS on the Chinchilla model: bayescale (NumPyro) vs PyMC's default sampler, side by side.

Same data (Epoch's 240 Chinchilla runs), same priors (``laws.chinchilla``'s
LogNormals), same likelihood (Student-t, df 4, on log-loss residuals with a
LogNormal(-3, 1) scale), 4 chains × (1,000 warmup + 1,000 draws).  Reports wall
time including compilation, bulk/tail ESS, ESS per second for every parameter,
R-hat and divergences.  Both ESS figures come from the same ArviZ function.

PyMC is a benchmark-only extra::

    pip install -e ".[bench]"
    python benchmarks/nuts_vs_pymc.py [--draws 1000 --warmup 1000 --chains 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

import bayescale as bs
from bayescale import laws

DATA = Path(os.environ.get("BAYESCALE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _lognormal(d):
    base = getattr(d, "base_dist", d)
    return float(base.loc), float(base.scale)


def run_bayescale(data, args):
    t0 = time.perf_counter()
    post = bs.fit_nuts(laws.chinchilla, data, key=jax.random.key(args.seed), chains=args.chains,
                       warmup=args.warmup, draws=args.draws, likelihood=bs.StudentT(4.0))
    wall = time.perf_counter() - t0
    return wall, {**post.draws, "sigma": post.sigma}, post.info.divergences


def check_against_bootstrap(data, draws, args):
    """Posterior medians vs the 90 % pairs-bootstrap band (1,000 resamples x 64 starts)."""
    boot = bs.fit_bootstrap(laws.chinchilla, data, key=jax.random.key(args.seed), resamples=1000, starts=64)
    print(f"\nposterior medians vs 90 % bootstrap bands ({boot.info.resamples} resamples, {boot.info.n_failed} failed):")
    inside = True
    for name in laws.chinchilla.params:
        b = bs.band(boot.draws[name], 0.9)
        med = float(np.median(draws[name]))
        ok = float(b.lo) <= med <= float(b.hi)
        inside &= ok
        print(f"  {name:>6} median {med:10.5g}  band [{float(b.lo):.5g}, {float(b.hi):.5g}]  {'inside' if ok else 'OUTSIDE'}")
    print(f"  all inside: {inside}")


def run_pymc(data, args):
    import pymc as pm
    import pytensor.tensor as pt

    log_n, log_d = np.log(data.x["N"]), np.log(data.x["D"])
    z = np.log(data.y)
    priors = dict(zip(laws.chinchilla.params, laws.chinchilla.priors))
    t0 = time.perf_counter()
    with pm.Model():
        p = {n: pm.LogNormal(n, *_lognormal(priors[n])) for n in laws.chinchilla.params}
        sigma = pm.LogNormal("sigma", -3.0, 1.0)
        mu = pt.logaddexp(
            pt.log(p["E"]),
            pt.logaddexp(pt.log(p["A"]) - p["alpha"] * log_n, pt.log(p["B"]) - p["beta"] * log_d),
        )
        pm.StudentT("z", nu=4.0, mu=mu, sigma=sigma, observed=z)
        idata = pm.sample(draws=args.draws, tune=args.warmup, chains=args.chains, random_seed=args.seed,
                          progressbar=False, compute_convergence_checks=False)
    wall = time.perf_counter() - t0
    post = idata["posterior"] if "posterior" in idata else idata.posterior
    draws = {n: np.asarray(post[n]) for n in (*laws.chinchilla.params, "sigma")}
    stats = idata["sample_stats"] if "sample_stats" in idata else idata.sample_stats
    return wall, draws, int(np.asarray(stats["diverging"]).sum())


def _convergence(draws: dict[str, np.ndarray]):
    """R-hat, bulk and tail ESS per parameter, from ArviZ (the same functions for both samplers)."""
    import arviz_stats
    import xarray as xr

    ds = xr.Dataset({n: (("chain", "draw"), v) for n, v in draws.items()})
    r_hat = arviz_stats.rhat(ds)
    bulk = arviz_stats.ess(ds, method="bulk")
    tail = arviz_stats.ess(ds, method="tail")
    return tuple({n: float(table[n]) for n in draws} for table in (r_hat, bulk, tail))


def _report(name, wall, draws, divergences, chains, n):
    r_hat, bulk, tail = _convergence(draws)
    print(f"\n{name}: wall {wall:.1f} s (incl. compile), divergences {divergences} of {chains * n}")
    print(f"  {'param':>6} {'median':>12} {'R-hat':>7} {'ESS bulk':>9} {'ESS tail':>9} {'ESS/s':>8}")
    for k in draws:
        print(f"  {k:>6} {np.median(draws[k]):12.5g} {r_hat[k]:7.4f} {bulk[k]:9.0f} {tail[k]:9.0f} {bulk[k] / wall:8.1f}")
    return {k: bulk[k] / wall for k in draws}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-pymc", action="store_true")
    args = ap.parse_args(argv)
    path = DATA / "chinchilla" / "svg_extracted_data.csv"
    if not path.exists():
        sys.exit(f"Chinchilla data not found at {path}; set BAYESCALE_SHARED_DATA")
    frame = bs.datasets.read_chinchilla(path)
    data = bs.from_frame(frame, laws.chinchilla, x=["N", "D"], y="L")
    print(f"Chinchilla, {data.n} runs; {args.chains} chains x ({args.warmup} warmup + {args.draws} draws); "
          f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs")
    wall, draws, divergences = run_bayescale(data, args)
    ours = _report("bayescale (NumPyro NUTS on the Laplace-whitened posterior, dense metric, chains vectorised)",
                   wall, draws, divergences, args.chains, args.draws)
    check_against_bootstrap(data, draws, args)
    if args.skip_pymc:
        return
    import pymc

    theirs = _report(f"PyMC {pymc.__version__} default pm.sample (NUTS, jitter+adapt_diag)",
                     *run_pymc(data, args), args.chains, args.draws)
    print("\nESS/s ratio bayescale / PyMC (bulk):")
    for k in ours:
        print(f"  {k:>6} {ours[k] / theirs[k]:6.1f}x")
    print(f"  min over parameters: {min(ours[k] / theirs[k] for k in ours):.1f}x")


if __name__ == "__main__":
    main()
