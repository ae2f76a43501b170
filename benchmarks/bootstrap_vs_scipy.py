"""Bootstrap of the Chinchilla law: bayescale vs a scipy L-BFGS-B loop, same objective, starts, resamples.

(a) scipy L-BFGS-B with finite-difference gradients (as the published replication code does),
(b) scipy L-BFGS-B with exact (analytic NumPy) gradients,
(c) bayescale.fit_bootstrap,
(d) the floor: the time of the batched evaluations the bayescale run performed, replayed alone.

All use the summed Huber (delta 1e-3) objective on log L, the 240 Epoch runs, the same 64 starts per
resample (the full-data MAP optimum plus the 63 best points of the classic 4,500-start grid) and the same
multinomial resample weights.  scipy runs only on the first few resamples (it is slow); its times are
reported per resample.  Prints what it measured.

Usage: python benchmarks/bootstrap_vs_scipy.py [RESAMPLES=1000] [STARTS=64] [SCIPY_RESAMPLES=4]
"""

import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize

import bayescale as bs
from bayescale.fit.bootstrap import bootstrap_starts
from bayescale.fit.map import objective_u

R = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
S = int(sys.argv[2]) if len(sys.argv) > 2 else 64
R_SCIPY = int(sys.argv[3]) if len(sys.argv) > 3 else 4
DELTA = 1e-3

root = Path(os.environ.get("BAYESCALE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
runs = bs.datasets.read_chinchilla(root / "chinchilla" / "svg_extracted_data.csv")
law = bs.laws.chinchilla
data = bs.from_frame(runs, law, x=["N", "D"], y="L")
log_n, log_d, z = np.log(data.x["N"]), np.log(data.x["D"]), np.log(data.y)
n = data.n
print(f"machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, devices {jax.devices()}")

# ---- shared inputs: starts (unconstrained: log E, log A, log B, log alpha, log beta) and weights
m = bs.fit_map(law, data)
with jax.enable_x64(True):
    xj = {k: jnp.asarray(v) for k, v in data.x.items()}
    zj = jnp.asarray(z)
    starts = bootstrap_starts(law, data, m, S, objective=bs.Huber(DELTA))  # the very starts fit_bootstrap uses
    keys = jax.random.split(jax.random.key(0), R)
    # the pairs-bootstrap weights fit_bootstrap draws from each resample's key: n runs drawn with replacement
    weights = np.asarray(jax.vmap(lambda k: jnp.zeros(n).at[jax.random.randint(k, (n,), 0, n)].add(1.0))(
        keys[:R_SCIPY]))


# ---- (a), (b): scipy, Epoch's parametrisation (a, b, e, alpha, beta)
def objective(theta, w):
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full(n, e)])
    top = terms.max(axis=0)
    pred = top + np.log(np.exp(terms - top).sum(axis=0))
    r = pred - z
    ab = np.abs(r)
    return float(np.sum(w * np.where(ab <= DELTA, 0.5 * r * r, DELTA * (ab - 0.5 * DELTA))))


def objective_and_grad(theta, w):
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full(n, e)])
    top = terms.max(axis=0)
    ex = np.exp(terms - top)
    tot = ex.sum(axis=0)
    pred = top + np.log(tot)
    soft = ex / tot
    r = pred - z
    ab = np.abs(r)
    value = float(np.sum(w * np.where(ab <= DELTA, 0.5 * r * r, DELTA * (ab - 0.5 * DELTA))))
    dr = w * np.clip(r, -DELTA, DELTA)
    grad = np.array([
        np.sum(dr * soft[0]), np.sum(dr * soft[1]), np.sum(dr * soft[2]),
        -np.sum(dr * soft[0] * log_n), -np.sum(dr * soft[1] * log_d),
    ])
    return value, grad


def to_epoch(u):
    return np.array([u[1], u[2], u[0], np.exp(u[3]), np.exp(u[4])])


def scipy_bootstrap(exact: bool):
    out, evals = [], 0
    t0 = time.perf_counter()
    for r in range(R_SCIPY):
        best = None
        for u in starts:
            if exact:
                res = minimize(objective_and_grad, to_epoch(u), args=(weights[r],), jac=True, method="L-BFGS-B")
            else:
                res = minimize(objective, to_epoch(u), args=(weights[r],), method="L-BFGS-B")
            evals += res.nfev
            if best is None or res.fun < best.fun:
                best = res
        a, b, e, alpha, beta = best.x
        out.append([np.exp(e), np.exp(a), np.exp(b), alpha, beta])
    return np.array(out), (time.perf_counter() - t0) / R_SCIPY, evals


params_a, per_a, evals_a = scipy_bootstrap(exact=False)
print(f"(a) scipy L-BFGS-B, finite differences: {per_a:.2f} s per resample ({R_SCIPY} resamples x {S} starts, "
      f"{evals_a / R_SCIPY:.0f} objective calls per resample)")
params_b, per_b, evals_b = scipy_bootstrap(exact=True)
print(f"(b) scipy L-BFGS-B, exact gradients:    {per_b:.2f} s per resample ({evals_b / R_SCIPY:.0f} calls per resample)")

# ---- (c) bayescale
t0 = time.perf_counter()
boot = bs.fit_bootstrap(law, data, key=jax.random.key(0), resamples=R, starts=S, map_fit=m)
wall = time.perf_counter() - t0
run_c = wall - boot.info.compile_seconds
per_c = run_c / R
print(f"(c) bayescale: {R} resamples x {S} starts in {run_c:.1f} s ({per_c * 1e3:.1f} ms per resample; "
      f"compile {boot.info.compile_seconds:.1f} s not included); failed {boot.info.n_failed}; pool "
      f"{boot.info.pool_lanes} lanes x {boot.info.pool_calls} calls; {boot.info.pruned} of {R * S} starts stopped by "
      "racing")

# ---- (d) the floor: the batched evaluations of (c), replayed alone
solver = bs.ParallelLbfgs()
n_values = len(solver.steps)
with jax.enable_x64(True):
    B = boot.info.pool_lanes
    u = jnp.tile(jnp.asarray(starts[:1]), (B, 1)) + 0.01 * jax.random.normal(jax.random.key(1), (B, 5))
    w = jnp.ones((B, n))
    t = jnp.asarray(solver.steps)

    def one_step_evals(ui, wi):
        f = lambda v: objective_u(law, bs.Huber(DELTA), v, xj, zj, wi)  # noqa: E731
        val, g = jax.value_and_grad(f)(ui)
        trial = jax.vmap(lambda s: f(ui - s * g))(t)
        return val + trial.sum()

    evals = jax.jit(jax.vmap(one_step_evals))
    jax.block_until_ready(evals(u, w))
    t0 = time.perf_counter()
    reps = 10
    for _ in range(reps):
        jax.block_until_ready(evals(u, w))
    per_batch = (time.perf_counter() - t0) / reps
performed = boot.info.lane_steps / B  # batched steps the pool ran (every lane of every call, idle or not)
floor_performed = performed * per_batch
floor_needed = boot.info.job_steps * per_batch / B
print(f"(d) floor: one batched step (1 value+grad + {n_values} values, {B} lanes) {per_batch * 1e3:.1f} ms; "
      f"{performed:.0f} batched steps performed -> {floor_performed:.1f} s; the {boot.info.job_steps} lane-steps the jobs "
      f"needed -> {floor_needed:.1f} s")

print(f"\nspeed-up of (c): {per_a / per_c:.0f}x vs (a), {per_b / per_c:.0f}x vs (b); "
      f"(c) / floor performed = {run_c / floor_performed:.2f}, (c) / floor needed = {run_c / floor_needed:.2f}")

# ---- agreement on the scipy resamples, and medians
names = law.params
params_c = np.column_stack([boot.info.all_draws[k][:R_SCIPY] for k in names])
for label, other in (("(a)", params_a), ("(b)", params_b)):
    rel = np.abs(np.median(other, axis=0) / np.median(params_c, axis=0) - 1)
    print(f"medians over the first {R_SCIPY} resamples, {label} vs (c): max relative difference {rel.max():.2e} "
          f"({', '.join(f'{k} {v:.1e}' for k, v in zip(names, rel))})")
print("bootstrap standard errors (c):", {k: round(v, 4) for k, v in boot.std().items()},
      "(Epoch, 4,000 resamples: E 0.03, A 124.6, B 1293, alpha 0.02, beta 0.02)")
alloc = bs.compute_optimal(law, boot.draws, 5.88e23)
lo, med, hi = np.quantile(alloc.tokens_per_param[0], [0.1, 0.5, 0.9])
print(f"tokens per parameter at C = 5.88e23: median {med:.1f}, 80 % band [{lo:.1f}, {hi:.1f}]")
