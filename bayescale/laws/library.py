"""The law library of Hoffmann et al. (2022), Krajewski et al. (2025) and Roberts et al. (2025).

Each law is one pure function and one :class:`~bayescale.law.Law` declaration.
Log-space forms use ``logaddexp`` so that covariates from 1e7 to 1e24 never
overflow.  Formulas are in natural parameters; the fit space of each law is set by
its response (see :mod:`bayescale.law`).

Default priors are weakly informative on the scale of real LLM runs (losses of 1.5
to 5 nats, compute of 1e15 to 1e25 FLOPs); override them per parameter with
:meth:`Law.with_priors`.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from bayescale.errors import expect
from bayescale.laws.compose import compose
from bayescale.laws.law import Accuracy, ChanceAccuracy, Covariate, Law, Loss

__all__ = [
    "LAWS",
    "bnsl",
    "chinchilla",
    "direct",
    "direct_ceiling",
    "get_law",
    "isoflop",
    "pass_at_k",
    "power_law",
    "pure_power_law",
    "stage2_linear",
    "stage2_logistic",
    "tpr",
    "two_stage_linear",
    "two_stage_logistic",
]

_N = Covariate("N", "parameters", role="size")
_D = Covariate("D", "tokens", role="tokens")
_C = Covariate("C", "FLOPs", role="compute")
_L = Covariate("L", "nats/token", log_scale=False)
_K = Covariate("k", "samples", minimum=1.0, inclusive=True)


def _grid(**axes: np.ndarray) -> np.ndarray:
    return np.array(list(itertools.product(*axes.values())), dtype=float)


def _least_squares(columns: list[np.ndarray], z: np.ndarray) -> np.ndarray:
    design = np.column_stack(columns)
    coef, *_ = np.linalg.lstsq(design, z, rcond=None)
    return coef


# --------------------------------------------------------------------------- Chinchilla


def _chinchilla(p, x):
    return jnp.logaddexp(jnp.log(p["E"]), _tpr(p, x))


def _chinchilla_classic_grid(x, z):
    """The 4,500-start grid of Hoffmann et al. / Besiroglu et al. (e, a, b in log space)."""
    g = _grid(
        e=np.arange(-1.0, 1.01, 0.5),
        a=np.arange(0.0, 25.01, 5.0),
        b=np.arange(0.0, 25.01, 5.0),
        alpha=np.arange(0.0, 2.01, 0.5),
        beta=np.arange(0.0, 2.01, 0.5),
    )
    return np.column_stack([np.exp(g[:, 0]), np.exp(g[:, 1]), np.exp(g[:, 2]), g[:, 3], g[:, 4]])


chinchilla = Law(
    name="chinchilla",
    params=("E", "A", "B", "alpha", "beta"),
    covariates=(_N, _D),
    fn=_chinchilla,
    priors=(
        dist.LogNormal(0.5, 0.6),  # E: irreducible loss, median 1.6 nats
        dist.LogNormal(6.0, 1.5),  # A: median 400 (Epoch 482, Hoffmann 406)
        dist.LogNormal(7.0, 1.5),  # B: median 1100 (Epoch 2085, Hoffmann 411)
        dist.LogNormal(-1.1, 0.25),  # alpha: median 0.33, 95 % in 0.20-0.54
        dist.LogNormal(-1.1, 0.25),  # beta
    ),
    response=Loss(),
    starts=_chinchilla_classic_grid,
    formula="L(N, D) = E + A·N^-alpha + B·D^-beta",
)


# --------------------------------------------------------------------------- power laws


def _power_law(p, x):
    return jnp.logaddexp(jnp.log(p["E"]), _pure_power_law(p, x))


def _pure_power_law(p, x):
    return jnp.log(p["A"]) - p["alpha"] * jnp.log(x["C"])


def _power_law_starts(x, z):
    lx = np.log(x["C"])
    y = np.exp(z)
    lx_mid, y_mid = np.median(lx), np.median(y)
    rows = []
    for frac in (0.0, 0.5, 0.8, 0.95):
        e = max(frac * y.min(), 1e-6 * y.min())
        for alpha in (0.02, 0.05, 0.1, 0.2, 0.4, 0.8):
            gap = max(y_mid - e, 1e-6 * y_mid)
            rows.append([e, np.exp(np.log(gap) + alpha * lx_mid), alpha])
    return np.array(rows)


def _pure_power_law_starts(x, z):
    lx = np.log(x["C"])
    _, slope = _least_squares([np.ones_like(lx), lx], z)
    alphas = np.array([-slope, 0.5 * -slope, 2.0 * -slope, 0.1])
    alphas = np.where(alphas > 0, alphas, 0.05)
    return np.column_stack([np.exp(np.median(z) + alphas * np.median(lx)), alphas])


power_law = Law(
    name="power_law",
    params=("E", "A", "alpha"),
    covariates=(_C,),
    fn=_power_law,
    priors=(dist.LogNormal(0.5, 0.6), dist.LogNormal(5.0, 1.5), dist.LogNormal(-2.3, 0.4)),
    response=Loss(),
    starts=_power_law_starts,
    formula="y(C) = E + A·C^-alpha",
)

pure_power_law = Law(
    name="pure_power_law",
    params=("A", "alpha"),
    covariates=(_C,),
    fn=_pure_power_law,
    priors=(dist.LogNormal(5.0, 1.5), dist.LogNormal(-2.5, 0.4)),
    response=Loss(),
    starts=_pure_power_law_starts,
    formula="y(C) = A·C^-alpha",
)

# Krajewski et al. (2025): accuracy straight from compute, in log(-log Q') space.
direct = Law(
    name="direct",
    params=("A", "alpha"),
    covariates=(_C,),
    fn=_pure_power_law,
    priors=(dist.LogNormal(4.0, 2.0), dist.LogNormal(-2.5, 0.5)),
    response=ChanceAccuracy(0.0),
    starts=_pure_power_law_starts,
    formula="-log Q'(C) = A·C^-alpha,  Q' = (Q - Q_rand)/(1 - Q_rand)",
)

direct_ceiling = Law(
    name="direct_ceiling",
    params=("E", "A", "alpha"),
    covariates=(_C,),
    fn=_power_law,
    priors=(dist.LogNormal(-3.0, 1.5), dist.LogNormal(4.0, 2.0), dist.LogNormal(-2.5, 0.5)),
    response=ChanceAccuracy(0.0),
    starts=_power_law_starts,
    formula="-log Q'(C) = A·C^-alpha + E",
)

# each averaged with the other by the calibrated forecast (weights from backtests on the user's runs)
direct, direct_ceiling = (dataclasses.replace(direct, alternatives=(direct_ceiling,)),
                          dataclasses.replace(direct_ceiling, alternatives=(direct,)))


# --------------------------------------------------------------------------- BNSL


def _bnsl(p, x):
    lc = jnp.log(x["C"])
    f1 = p["f1"]
    bend = p["c1"] * f1 * jax.nn.softplus((lc - p["log_d1"]) / f1)
    return jnp.logaddexp(jnp.log(p["a"]), jnp.log(p["b"]) - p["c0"] * lc - bend)


def _bnsl_starts(x, z):
    lc = np.log(x["C"])
    y = np.exp(z)
    _, slope = _least_squares([np.ones_like(lc), lc], z)
    lc_mid, y_mid = np.median(lc), np.median(y)
    rows = []
    for frac in (0.0, 0.5, 0.9):
        a = max(frac * y.min(), 1e-6 * y.min())
        for c0 in (-slope, 0.5 * -slope):
            for c1 in (-0.5 * abs(slope), 0.0, 0.5 * abs(slope)):
                for q in (0.25, 0.5, 0.75):
                    for f1 in (0.3, 1.0):
                        ld1 = float(np.quantile(lc, q))
                        bend = c1 * f1 * np.logaddexp(0.0, (lc_mid - ld1) / f1)
                        gap = max(y_mid - a, 1e-6 * y_mid)
                        rows.append([a, np.exp(np.log(gap) + c0 * lc_mid + bend), c0, c1, ld1, f1])
    return np.array(rows)


bnsl = Law(
    name="bnsl",
    params=("a", "b", "c0", "c1", "log_d1", "f1"),
    covariates=(_C,),
    fn=_bnsl,
    priors=(
        dist.LogNormal(-3.0, 1.5),
        dist.LogNormal(5.0, 5.0),
        dist.Normal(0.1, 0.3),
        dist.Normal(0.0, 0.3),
        dist.Normal(47.0, 5.0),  # break near 2.5e20 FLOPs
        dist.LogNormal(0.0, 1.0),
    ),
    response=ChanceAccuracy(0.0),
    starts=_bnsl_starts,
    formula="y(C) = a + b·C^-c0·(1 + (C/d1)^(1/f1))^(-c1·f1),  y = -log Q', d1 = exp(log_d1)",
)


# --------------------------------------------------------------------------- across TPR


def _tpr(p, x):
    term_n = jnp.log(p["A"]) - p["alpha"] * jnp.log(x["N"])
    term_d = jnp.log(p["B"]) - p["beta"] * jnp.log(x["D"])
    return jnp.logaddexp(term_n, term_d)


def _tpr_starts(x, z):
    g = _grid(
        a=np.arange(0.0, 25.01, 5.0),
        b=np.arange(0.0, 25.01, 5.0),
        alpha=np.arange(0.0, 2.01, 0.5),
        beta=np.arange(0.0, 2.01, 0.5),
    )
    return np.column_stack([np.exp(g[:, 0]), g[:, 2], np.exp(g[:, 1]), g[:, 3]])


tpr = Law(
    name="tpr",
    params=("A", "alpha", "B", "beta"),
    covariates=(_N, _D),
    fn=_tpr,
    priors=(
        dist.LogNormal(3.0, 4.0),
        dist.LogNormal(-1.5, 1.0),
        dist.LogNormal(3.0, 4.0),
        dist.LogNormal(-1.5, 1.0),
    ),
    response=ChanceAccuracy(0.0),
    starts=_tpr_starts,
    formula="-log Q'(N, D) = A·N^-alpha + B·D^-beta",
)


# --------------------------------------------------------------------------- pass@k


def _pass_at_k(p, x):
    lc, lk = jnp.log(x["C"]), jnp.log(x["k"])
    return jnp.log(p["A"]) + p["alpha"] * lc + p["beta"] * lk + p["delta"] * lc * lk


def _pass_at_k_starts(x, z):
    lc, lk = np.log(x["C"]), np.log(x["k"])
    log_a, alpha, beta, delta = _least_squares([np.ones_like(lc), lc, lk, lc * lk], z)
    ols = [np.exp(log_a), alpha, beta, delta]
    no_inter = _least_squares([np.ones_like(lc), lc, lk], z)
    return np.array([ols, [np.exp(no_inter[0]), no_inter[1], no_inter[2], 0.0]])


pass_at_k = Law(
    name="pass_at_k",
    params=("A", "alpha", "beta", "delta"),
    covariates=(_C, _K),
    fn=_pass_at_k,
    priors=(
        dist.LogNormal(3.0, 2.0),
        dist.Normal(-0.1, 0.1),  # alpha: -log pass@1 falls with compute
        dist.Normal(-0.3, 0.3),  # beta: and with the number of samples k
        dist.Normal(0.0, 0.02),  # delta: interaction, small
    ),
    response=ChanceAccuracy(0.0),
    starts=_pass_at_k_starts,
    formula="log(-log pass@k) = log A + alpha·log C + beta·log k + delta·log C·log k",
)


# --------------------------------------------------------------------------- IsoFLOP


def _isoflop(p, x):
    u = jnp.log(x["N"]) - jnp.log(p["N_star"])
    return jnp.log(p["L_star"] + p["k"] * u * u)


def _isoflop_starts(x, z):
    ln = np.log(x["N"])
    y = np.exp(z)
    c0, c1, c2 = _least_squares([np.ones_like(ln), ln, ln * ln], y)
    rows = []
    if c2 > 0:
        v = -c1 / (2 * c2)
        rows.append([max(c0 - c1 * c1 / (4 * c2), 1e-3 * y.min()), np.exp(v), c2])
    for q in (0.25, 0.5, 0.75):
        rows.append([0.95 * y.min(), np.exp(np.quantile(ln, q)), 0.05])
    return np.array(rows)


isoflop = Law(
    name="isoflop",
    params=("L_star", "N_star", "k"),
    covariates=(_N,),
    fn=_isoflop,
    priors=(dist.LogNormal(1.0, 0.6), dist.LogNormal(20.0, 3.0), dist.LogNormal(-3.0, 1.5)),
    response=Loss(),
    starts=_isoflop_starts,
    formula="L(N) = L_star + k·(log N - log N_star)^2  (fixed compute budget; vertex N_star)",
)


# --------------------------------------------------------------------------- two-stage


def _stage2_linear(p, x):
    return p["a"] + p["b"] * x["L"]


def _stage2_linear_starts(x, z):
    a, b = _least_squares([np.ones_like(x["L"]), x["L"]], z)
    return np.array([[a, b]])


def _stage2_logistic(p, x):
    return p["a"] * jax.nn.sigmoid(p["k"] * (x["L"] - p["l0"])) + p["b"]


def _stage2_logistic_starts(x, z):
    loss = x["L"]
    lo, hi = float(np.min(z)), float(np.max(z))
    rows = []
    for span in (1.2, 2.0):
        for k in (-1.0, -3.0, -10.0):
            for q in (0.25, 0.5, 0.75):
                rows.append([span * max(hi - lo, 1e-3), k, float(np.quantile(loss, q)), lo - 0.1 * (hi - lo)])
    return np.array(rows)


stage2_linear = Law(
    name="stage2_linear",
    params=("a", "b"),
    covariates=(_L,),
    fn=_stage2_linear,
    priors=(dist.Normal(1.0, 2.0), dist.Normal(-0.3, 1.0)),
    response=Accuracy(),
    starts=_stage2_linear_starts,
    formula="Q(L) = a + b·L",
)

stage2_logistic = Law(
    name="stage2_logistic",
    params=("a", "k", "l0", "b"),
    covariates=(_L,),
    fn=_stage2_logistic,
    priors=(dist.LogNormal(-1.0, 1.0), dist.Normal(-3.0, 5.0), dist.LogNormal(1.0, 0.5), dist.Normal(0.25, 0.3)),
    response=Accuracy(),
    starts=_stage2_logistic_starts,
    formula="Q(L) = a / (1 + exp(-k·(L - l0))) + b",
)


two_stage_linear = compose(pure_power_law, stage2_linear, name="two_stage_linear")
two_stage_logistic = compose(pure_power_law, stage2_logistic, name="two_stage_logistic")


# --------------------------------------------------------------------------- registry

LAWS: dict[str, Law] = {
    law.name: law
    for law in (
        chinchilla,
        power_law,
        pure_power_law,
        direct,
        direct_ceiling,
        bnsl,
        tpr,
        pass_at_k,
        isoflop,
        stage2_linear,
        stage2_logistic,
        two_stage_linear,
        two_stage_logistic,
    )
}


def get_law(name: str) -> Law:
    """Look a library law up by name; an unknown name suggests the closest ones.

    ``"stage1>stage2"`` names the composition of two library laws (:func:`compose`).
    """
    expect(name, str, "name", "get_law")
    if ">" in name and name not in LAWS:
        first, _, second = name.partition(">")
        return compose(get_law(first.strip()), get_law(second.strip()))
    try:
        return LAWS[name]
    except KeyError:
        close = difflib.get_close_matches(name, LAWS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown law {name!r}.{hint} Known laws: {', '.join(LAWS)}") from None
