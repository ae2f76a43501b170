"""NUTS with its default settings on clean synthetic Chinchilla grids (issue 14, part 6).

Acceptance: on 20 clean grids x 4 keys, R-hat <= 1.01 in at least 95 % of the runs, and
every remaining run names its modes (a ``chains disagree`` line in ``problems``).

Each grid: 6 model sizes x 5 tokens-per-parameter ratios (30 runs), the Hoffmann law
``E + A N^-alpha + B D^-beta`` with its truth drawn per grid by a seeded NumPy generator
(E in 1.7-1.9, A in 400-600, B in 400-2000, alpha and beta in 0.3-0.4) and 1 %
multiplicative log-normal noise.  Every grid is fitted by ``fit_nuts`` with the default
settings (4 chains, 1,000 warmup, 2,000 draws, Student-t) under ``jax.random.key(0..3)``.
Printed per run: the largest R-hat, divergences, how many distinct posterior modes the
multi-start reached (``optima``), the mode each chain started at (``starts``), whether
``problems`` names modes, seconds (MAP, modes and NUTS) and the problem lines.

    python benchmarks/nuts_modes.py [--grids 20] [--keys 4] [--first-grid 0] [--warmup W] [--draws D]
"""

from __future__ import annotations

import argparse
import time
import warnings

import jax
import numpy as np

import bayescale as bs
from bayescale import laws


def grid(index: int) -> tuple[dict, bs.Data]:
    """Grid ``index``: its truth and 30 noisy losses (seeded by ``index``: the same grid every run)."""
    rng = np.random.default_rng(1000 + index)
    truth = dict(E=rng.uniform(1.7, 1.9), A=rng.uniform(400, 600), B=rng.uniform(400, 2000),
                 alpha=rng.uniform(0.3, 0.4), beta=rng.uniform(0.3, 0.4))
    n0 = 10 ** rng.uniform(7.5, 8.3)
    sizes = np.geomspace(n0, n0 * 10 ** rng.uniform(1.7, 2.3), 6)
    r0 = rng.uniform(2.0, 5.0)
    ratios = np.geomspace(r0, r0 * 100, 5)
    n = np.repeat(sizes, ratios.size)
    d = n * np.tile(ratios, sizes.size)
    clean = truth["E"] + truth["A"] * n ** -truth["alpha"] + truth["B"] * d ** -truth["beta"]
    loss = clean * np.exp(0.01 * rng.standard_normal(n.size))
    return truth, bs.from_arrays(laws.chinchilla, y=loss, N=n, D=d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, default=20)
    parser.add_argument("--first-grid", type=int, default=0)
    parser.add_argument("--keys", type=int, default=4)
    parser.add_argument("--warmup", type=int, help="warmup per chain (default: fit_nuts's)")
    parser.add_argument("--draws", type=int, help="draws per chain (default: fit_nuts's)")
    args = parser.parse_args()
    settings = {k: v for k, v in (("warmup", args.warmup), ("draws", args.draws)) if v is not None}
    print(f"bayescale {bs.__version__}; {args.grids} grids from {args.first_grid} x {args.keys} keys; fit_nuts "
          f"defaults{''.join(f', {k}={v}' for k, v in settings.items())}")
    print(f"{'grid':>4} {'key':>3} {'max R-hat':>9} {'div':>4} {'optima':>6} {'starts':>7} {'modes named':>11} "
          f"{'seconds':>7}  problems")
    good = named = slow = total = 0
    t_all = time.perf_counter()
    for g in range(args.first_grid, args.first_grid + args.grids):
        _, data = grid(g)
        for k in range(args.keys):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                fit = bs.fit_nuts(laws.chinchilla, data, key=jax.random.key(k), **settings)
            r_hat = max(fit.info.r_hat.values())
            names = any(p.startswith("chains disagree") for p in fit.problems)
            total += 1
            good += r_hat <= 1.01
            named += names and r_hat > 1.01
            slow += not names and any("agree on one mode" in p for p in fit.problems)
            starts = "".join(map(str, fit.info.starts))
            print(f"{g:>4} {k:>3} {r_hat:>9.4f} {fit.info.divergences:>4} {fit.info.optima:>6} {starts:>7} "
                  f"{'yes' if names else 'no':>11} "
                  f"{time.perf_counter() - t0:>7.1f}  {'; '.join(fit.problems) or '-'}", flush=True)
    bad = total - good
    print(f"\nR-hat <= 1.01 in {good} of {total} runs ({100 * good / total:.1f} %); of the {bad} others, "
          f"{named} name their modes (chains disagree) and {slow} say the chains agree on one mode but mix slowly; "
          f"{time.perf_counter() - t_all:.0f} s in all")


if __name__ == "__main__":
    main()
