# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Compute optima depend on the skill (Roberts et al. 2025), with posterior bands
#
# Roberts et al. found that code is data-hungry (smaller N*, more tokens) while knowledge is
# capacity-hungry, and that the skill mix of the validation set can move N* by up to ~50 %.
# Their runs are not public; the bundled Gadre et al. (2024) runs (104 models, 3 training
# corpora, 8 validation losses, MIT) support the parametric version of the question:
#
# 1. fit Chinchilla's law per training corpus to a web validation loss (C4) and a code
#    validation loss (Paloma's Dolma-100-programming-languages), by NUTS;
# 2. N* per skill at 1e21 FLOPs with 90 % posterior bands, and P(code N* < web N*);
# 3. the N* of every web/code validation mix, and how far it moves;
# 4. an IsoFLOP analysis on a synthetic IsoFLOP grid drawn from a known law: the known N*
#    must land inside the band.
#
# `BAYESCALE_NOTEBOOK_SCALE=small` (the test suite) shortens the chains.

# %%
import json
import os
from pathlib import Path

import jax
import numpy as np
import pandas as pd

import bayescale as bs
from bayescale import laws
from bayescale.derive import isoflop_analysis, isoflop_grid, mix_curve

SMALL = os.environ.get("BAYESCALE_NOTEBOOK_SCALE", "full") == "small"
CHAINS, WARMUP, DRAWS = (2, 400, 400) if SMALL else (4, 1000, 1000)
OUT = Path(os.environ.get("BAYESCALE_NOTEBOOK_OUT", Path("notebooks") / "out"))
OUT.mkdir(parents=True, exist_ok=True)
BUDGET = 1e21
SKILLS = {"web": "c4_val", "code": "paloma_dolma_100_programing_languages"}

# %% [markdown]
# ## 1. One posterior per (training corpus, skill)

# %%
runs = bs.datasets.gadre_long()
posteriors = {}
for i, corpus in enumerate(sorted(runs.train_dataset.unique())):
    for j, (skill, val_set) in enumerate(SKILLS.items()):
        table = runs[(runs.train_dataset == corpus) & (runs.val_set == val_set)]
        data = bs.from_frame(table, laws.chinchilla, x=["N", "D"], y="loss")
        posteriors[corpus, skill] = bs.fit_nuts(laws.chinchilla, data, key=jax.random.key(10 * i + j),
                                                chains=CHAINS, warmup=WARMUP, draws=DRAWS,
                                                progress=not SMALL)
pd.DataFrame({f"{c}/{s}": p.diagnostics for (c, s), p in posteriors.items()}).loc[
    ["r_hat_max", "ess_bulk_min", "divergences", "ok"]]

# %% [markdown]
# ## 2. N* per skill at 1e21 FLOPs, and the probability that code wants the smaller model

# %%
rows = []
for corpus in sorted(runs.train_dataset.unique()):
    web, code = posteriors[corpus, "web"], posteriors[corpus, "code"]
    alloc_web, b_web = bs.optimal_bands(web, BUDGET)
    alloc_code, b_code = bs.optimal_bands(code, BUDGET)
    n = min(alloc_web.N.size, alloc_code.N.size)
    ratio = alloc_code.N.reshape(-1)[:n] / alloc_web.N.reshape(-1)[:n]
    r = bs.band(ratio[None], 0.9)
    rows.append(dict(
        corpus=corpus,
        web_N_median=float(b_web["N"].median), web_N_lo=float(b_web["N"].lo), web_N_hi=float(b_web["N"].hi),
        code_N_median=float(b_code["N"].median), code_N_lo=float(b_code["N"].lo), code_N_hi=float(b_code["N"].hi),
        ratio_median=float(r.median), ratio_lo=float(r.lo), ratio_hi=float(r.hi),
        p_code_below_web=float(np.mean(ratio < 1.0)),
    ))
per_skill = pd.DataFrame(rows)
per_skill

# %% [markdown]
# ## 3. How far the validation mix moves N*
#
# N* of the mix `(1 - w)·L_web + w·L_code` for w from 0 to 1; the shift is N*(w)/N*(0) - 1,
# computed draw by draw.

# %%
weights = [0.0, 0.25, 0.5, 0.75, 1.0]
curves = {}
for corpus in sorted(runs.train_dataset.unique()):
    curves[corpus] = mix_curve(posteriors[corpus, "web"], posteriors[corpus, "code"], weights, BUDGET)
pd.concat(curves, names=["corpus"]).round(3)

# %% [markdown]
# ## 4. IsoFLOP analysis on a synthetic grid with a known answer
#
# Losses drawn from Chinchilla's law (Epoch's parameters) with 1 % noise at 5 budgets from 6e18
# to 3e21 FLOPs (as in Roberts et al.), 7 sizes per budget around the true optimum.  Each
# budget's parabola in log N is fitted by bootstrap; N*(C) = K·C^a is then fitted through the
# vertices draw by draw.

# %%
truth = dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672)
grid = isoflop_grid(laws.chinchilla, truth, np.geomspace(6e18, 3e21, 5), sizes=7, span=8.0, noise=0.01,
                    key=jax.random.key(0))
fitter = bs.Fitter.of(bs.fit_bootstrap, resamples=100 if SMALL else 1000, starts=4, progress=not SMALL)
iso = isoflop_analysis(grid, fitter=fitter, key=jax.random.key(7))
check_c = np.array([1e20, 1e22])
n_draws, n_band = iso.n_star(check_c)
known = np.asarray(bs.compute_optimal(laws.chinchilla, truth, check_c).N)
iso.vertices.assign(N_true=[float(bs.compute_optimal(laws.chinchilla, truth, c).N) for c in iso.vertices.C])

# %%
exponent = iso.exponent_band
print(f"N* exponent a: {float(exponent.median):.3f} [{float(exponent.lo):.3f}, {float(exponent.hi):.3f}] "
      f"(true beta/(alpha+beta) = {truth['beta'] / (truth['alpha'] + truth['beta']):.3f})")
for c, k, lo, med, hi in zip(check_c, known, n_band.lo, n_band.median, n_band.hi):
    print(f"N*({c:.0e}): known {k:.3g}, IsoFLOP {med:.3g} [{lo:.3g}, {hi:.3g}]")

# %% [markdown]
# ## Plot: N*(C) per skill, one training corpus

# %%
from bayescale.plot import plot_bands  # noqa: E402

budgets = np.logspace(19, 24, 21)
corpus = "rpj"
bands = {skill: bs.optimal_bands(posteriors[corpus, skill], budgets)[1]["N"] for skill in SKILLS}
ax = plot_bands(budgets, bands)
ax.set_title(f"N*(C) by validation skill, trained on {corpus}")
ax.figure.savefig(OUT / "skills_n_star.png", dpi=120, bbox_inches="tight")

# %%
headline = {
    "budget": BUDGET,
    "per_corpus": per_skill.to_dict(orient="records"),
    "mix_shift_at_w1": {c: curves[c].iloc[-1][["shift_median", "shift_lo", "shift_hi"]].to_dict() for c in curves},
    "nuts_ok": {f"{c}/{s}": bool(p.ok) for (c, s), p in posteriors.items()},
    "isoflop": {
        "exponent": [float(exponent.lo), float(exponent.median), float(exponent.hi)],
        "exponent_true": truth["beta"] / (truth["alpha"] + truth["beta"]),
        "check_compute": check_c.tolist(),
        "n_star_known": known.tolist(),
        "n_star_lo": np.asarray(n_band.lo).tolist(),
        "n_star_hi": np.asarray(n_band.hi).tolist(),
    },
    "scale": "small" if SMALL else "full",
}
(OUT / "skills_compute_optima.json").write_text(json.dumps(headline, indent=2))
print(json.dumps(headline["mix_shift_at_w1"], indent=1))
