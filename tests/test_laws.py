"""Generic tests over the law table: known values, jit == eager, gradients, recovery."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from law_table import CASES

import bayescale as bs
from bayescale.law import ChanceAccuracy

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
    assert fit.converged, fit.diagnostics
    z_fit = bs.predict_fit_space(law, fit.params, x)
    # the fitted curve is within a few noise sd of the truth everywhere
    assert np.max(np.abs(z_fit - z_true)) < 4 * case.noise
    if case.rtol is not None:
        for name, true in case.truth.items():
            assert fit.params[name] == pytest.approx(true, rel=case.rtol), name


@pytest.mark.parametrize("case", [c for c in CASES if c.law.stages], ids=[c.id for c in CASES if c.law.stages])
def test_two_stage_recovers_composition(case):
    law = case.law
    stage1, stage2 = law.stages
    x = case.design()
    rng = np.random.default_rng(1)
    loss = bs.predict(stage1, case.truth, x) * np.exp(0.002 * rng.standard_normal(x["C"].shape))
    acc = bs.predict(stage2, case.truth, {"L": loss}) + 0.002 * rng.standard_normal(loss.shape)
    frame = pd.DataFrame({"C": x["C"], "val_loss": loss, "acc": acc})
    fit = bs.fit_two_stage(law, frame, x=["C"], proxy="val_loss", y="acc")
    assert fit.converged
    assert set(fit.params) == set(law.params)
    np.testing.assert_allclose(fit.predict(C=x["C"]), case.reference(case.truth, x), atol=0.01)
    assert fit.params["alpha"] == pytest.approx(case.truth["alpha"], rel=0.05)


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
    assert fit.converged
    assert fit.params["alpha"] == pytest.approx(0.076, rel=1e-3)
    assert fit.params["Nc"] == pytest.approx(8.8e13, rel=1e-2)
