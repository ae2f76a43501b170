"""Generic tests over the law table: known values, jit == eager, gradients, recovery."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from law_table import CASES

import bayescale as bs
from bayescale.laws import ChanceAccuracy

IDS = [c.id for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_known_values(case):
    law = case.bound_law()
    x = case.design()
    got = bs.predict(law, case.truth, x)
    np.testing.assert_allclose(got, case.reference(case.truth, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jit_equals_eager(case):
    law = case.bound_law()
    x = {k: jnp.asarray(v) for k, v in case.design().items()}
    p = {k: jnp.asarray(v) for k, v in case.truth.items()}
    eager = law(p, x)
    jitted = jax.jit(law.fn)(p, x)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradient_matches_finite_differences(case):
    law = case.bound_law()
    x = {k: jnp.asarray(v) for k, v in case.design().items()}
    u0 = law.unconstrain(law.pack(case.truth))

    def f(u):
        return jnp.sum(jnp.sin(law(law.constrain(u), x)))  # a non-trivial scalar of every output

    g = jax.grad(f)(u0)
    eps = 1e-6
    fd = np.array(
        [(f(u0 + eps * e) - f(u0 - eps * e)) / (2 * eps) for e in np.eye(law.n_params)]
    )
    np.testing.assert_allclose(np.asarray(g), fd, rtol=1e-5, atol=1e-7)


def _synthetic(case, seed=0):
    law = case.bound_law()
    x = case.design()
    z_true = bs.predict_fit_space(law, case.truth, x)
    rng = np.random.default_rng(seed)
    z = z_true + case.noise * rng.standard_normal(z_true.shape)
    y = np.asarray(law.response.from_fit(z))
    return law, x, y, z_true


@pytest.mark.parametrize("case", [c for c in CASES if not c.law.stages], ids=[c.id for c in CASES if not c.law.stages])
def test_recovers_known_parameters(case):
    law, x, y, z_true = _synthetic(case)
    data = bs.from_arrays(law, y=y, **x)
    fit = bs.fit_map(law, data)
    assert fit.ok, fit.diagnostics
    z_fit = bs.predict_fit_space(law, fit.point, x)
    # the fitted curve is within a few noise sd of the truth everywhere
    assert np.max(np.abs(z_fit - z_true)) < 4 * case.noise
    if case.rtol is not None:
        for name, true in case.truth.items():
            assert fit.point[name] == pytest.approx(true, rel=case.rtol), name


@pytest.mark.parametrize("case", [c for c in CASES if c.law.stages], ids=[c.id for c in CASES if c.law.stages])
def test_two_stage_recovers_composition(case):
    law = case.law
    stage1, stage2 = law.stages
    x = case.design()
    rng = np.random.default_rng(1)
    loss = bs.predict(stage1, case.truth, x) * np.exp(0.002 * rng.standard_normal(x["C"].shape))
    acc = bs.predict(stage2, case.truth, {"L": loss}) + 0.002 * rng.standard_normal(loss.shape)
    frame = pd.DataFrame({"C": x["C"], "val_loss": loss, "acc": acc})
    d1, d2, d = bs.two_stage_data(law, frame, x=["C"], proxy="val_loss", y="acc")
    fit = bs.fit_two_stage(law, d1, d2, data=d)
    assert fit.ok
    assert set(fit.point) == set(law.params)
    np.testing.assert_allclose(bs.predict(law, fit.point, {"C": x["C"]}), case.reference(case.truth, x), atol=0.01)
    assert fit.point["alpha"] == pytest.approx(case.truth["alpha"], rel=0.05)


def test_every_library_law_is_in_the_table():
    assert {c.law.name for c in CASES} == set(bs.LAWS)


def test_laws_are_hashable_values():
    assert hash(bs.laws.direct.with_chance(0.25)) == hash(bs.laws.direct.with_chance(0.25))
    assert bs.laws.direct.with_chance(0.25) == bs.laws.direct.with_chance(0.25)
    assert bs.laws.direct.with_chance(0.25) != bs.laws.direct.with_chance(0.5)


def test_chance_only_for_accuracy_laws():
    with pytest.raises(ValueError, match="no chance level"):
        bs.laws.chinchilla.with_chance(0.25)
    assert isinstance(bs.laws.bnsl.with_chance(0.1).response, ChanceAccuracy)


def test_unknown_law_suggests_closest():
    with pytest.raises(KeyError, match="chinchilla"):
        bs.get_law("chinchila")


def test_custom_law_in_a_few_lines():
    import numpyro.distributions as dist

    kaplan = bs.Law(
        name="kaplan_n",
        params=("Nc", "alpha"),
        covariates=(bs.Covariate("N", "parameters"),),
        fn=lambda p, x: p["alpha"] * (jnp.log(p["Nc"]) - jnp.log(x["N"])),
        priors=(dist.LogNormal(30.0, 3.0), dist.LogNormal(-2.5, 1.0)),
    )
    n = np.geomspace(1e7, 1e10, 12)
    y = (8.8e13 / n) ** 0.076
    fit = bs.fit_map(kaplan, bs.from_arrays(kaplan, y=y, N=n))
    assert fit.ok
    assert fit.point["alpha"] == pytest.approx(0.076, rel=1e-3)
    assert fit.point["Nc"] == pytest.approx(8.8e13, rel=1e-2)


# ---------------------------------------------------------------- every law through every fitter


def _synthetic_data(case):
    """(fitted law, its data) for a one-stage case; for a two-stage case a proxy column feeds both stages."""
    if not case.law.stages:
        law, x, y, _ = _synthetic(case)
        return law, bs.from_arrays(law, y=y, **x)
    stage1, stage2 = case.law.stages
    x = case.design()
    rng = np.random.default_rng(2)
    loss = bs.predict(stage1, case.truth, x) * np.exp(0.002 * rng.standard_normal(x["C"].shape))
    acc = bs.predict(stage2, case.truth, {"L": loss}) + 0.002 * rng.standard_normal(loss.shape)
    frame = pd.DataFrame({"C": x["C"], "val_loss": loss, "acc": acc})
    return case.law, bs.two_stage_data(case.law, frame, x=["C"], proxy="val_loss", y="acc")


_FITTERS = {
    "map": (bs.Fitter.of(bs.fit_map), lambda n: (1, 1000)),  # the Laplace draws
    "bootstrap": (bs.Fitter.of(bs.fit_bootstrap, resamples=8, starts=2), None),  # (1, converged resamples)
    "nuts": (bs.Fitter.of(bs.fit_nuts, chains=1, warmup=50, draws=50), lambda n: (1, 50)),
}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_law_fits_by_map_bootstrap_and_nuts(case):
    """Every library law goes through MAP, a tiny bootstrap and a tiny NUTS run and gives a well-formed Fit.

    (Tiny runs: the layout and finiteness are checked here, not the quality of the draws.)
    """
    law, data = _synthetic_data(case)
    for i, (method, (fitter, shape)) in enumerate(_FITTERS.items()):
        key = jax.random.key(i)
        if law.stages:
            d1, d2, d = data
            fit = bs.fit_two_stage(law, d1, d2, data=d, fitter=fitter, key=key, warn=False)
            assert [p.method for p in fit.parts] == [method, method]
            n_obs = d.n
        else:
            fit = fitter(law, data, key=key, warn=False)
            n_obs = data.n
        assert isinstance(fit, bs.Fit) and fit.method == method and fit.law == law
        assert fit.n_obs == n_obs
        assert set(fit.draws) == set(law.params), method
        expected = shape(n_obs) if shape is not None else (1, fit.sigma.shape[1])
        assert fit.shape == expected and fit.sigma.shape == expected, (method, fit.shape)
        if method == "bootstrap":
            converged = int(np.sum(fit.info.converged)) if not law.stages else fit.shape[1]
            assert fit.shape == (1, converged) and 0 < converged <= 8, (method, fit.shape)
        for name, v in fit.draws.items():
            assert v.shape == expected, (method, name, v.shape)
            assert np.all(np.isfinite(v)), (method, name)
        assert np.all(np.isfinite(fit.sigma)) and np.all(fit.sigma > 0), method
        assert np.all(np.isfinite(list(fit.point.values()))), method
