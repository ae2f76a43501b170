"""MAP's Laplace band: the curvature at the optimum, mapped through the constraints, as draws."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayescale as bs
from bayescale import laws
from bayescale.fit.map import normal_design
from bayescale.fit.result import scrambled_order


def _noisy_power(n: int = 40, noise: float = 0.02, seed: int = 0) -> bs.Data:
    """``E + A C^-alpha`` (E 1.7, A 900, alpha 0.15) with log-normal noise of known scale ``noise``."""
    c = np.geomspace(1e18, 1e22, n)
    eps = np.random.default_rng(seed).standard_normal(n)
    return bs.from_arrays(laws.power_law, y=(1.7 + 900.0 * c**-0.15) * np.exp(noise * eps), C=c)


@pytest.fixture(scope="module")
def noisy():
    data = _noisy_power()
    return data, bs.fit_map(laws.power_law, data)


def test_map_draws_are_the_laplace_band_around_the_optimum(noisy):
    _, fit = noisy
    assert fit.ok and fit.method == "map" and fit.info.band == "laplace" and fit.band == "laplace"
    assert fit.shape == (1, 1000) and fit.sigma.shape == (1, 1000)
    assert np.all(fit.sigma == fit.info.residual_scale)
    assert fit.point == dict(fit.info.point)  # the point stays the optimum, not the draws' mean or median
    table = fit.summary()
    assert table.attrs["band"] == "laplace"
    assert not table.isna().any().any()
    for name, row in table.iterrows():
        assert row["sd"] > 0 and row["lo_90%"] < row["estimate"] < row["hi_90%"], name


def test_laplace_draws_have_the_optimum_as_mean_and_the_gauss_newton_covariance(noisy):
    data, fit = noisy
    law = laws.power_law
    u_star = law.unconstrain(law.pack({k: jnp.asarray(v) for k, v in fit.point.items()}))
    u = np.asarray(jax.vmap(lambda p: law.unconstrain(law.pack(p)))(
        {k: jnp.asarray(v).reshape(-1) for k, v in fit.draws.items()}))
    x = {k: jnp.asarray(v) for k, v in data.x.items()}
    jac = np.asarray(jax.jacfwd(lambda v: law.fn(law.constrain(v), x))(u_star))
    sigma = fit.info.residual_scale**2 * np.linalg.inv(jac.T @ jac)
    np.testing.assert_allclose(u.mean(axis=0), np.asarray(u_star), rtol=0, atol=1e-9 * (1 + np.abs(u_star)).max())
    cov = np.cov(u, rowvar=False)
    sd = np.sqrt(np.diag(sigma))
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), sd, rtol=0.03)
    np.testing.assert_allclose(cov / np.outer(sd, sd), sigma / np.outer(sd, sd), atol=0.03)


def test_laplace_sd_agrees_with_the_bootstrap_standard_error():
    """Within a factor 2 each way.  Measured: 0.65-0.72 (the Huber objective with delta 1e-3 is least absolute
    deviations at this noise, whose sampling spread is sqrt(pi/2) = 1.25 times least squares' on Gaussian noise;
    the Gauss-Newton band is least squares').
    """
    data = _noisy_power(noise=0.01)
    fit = bs.fit_map(laws.power_law, data)
    boot = bs.fit_bootstrap(laws.power_law, data, key=jax.random.key(1), resamples=200, starts=4, map_fit=fit,
                            warn=False)
    assert boot.band == "bootstrap" and boot.shape[1] > 150
    laplace, bootstrap = fit.std(), boot.std()
    for name in laws.power_law.params:
        assert 0.5 < laplace[name] / bootstrap[name] < 2.0, (name, laplace[name], bootstrap[name])


def test_fit_map_is_deterministic_and_takes_no_key():
    data = _noisy_power(seed=3)
    a, b = bs.fit_map(laws.power_law, data), bs.fit_map(laws.power_law, data)
    for name in laws.power_law.params:
        assert np.array_equal(a.draws[name], b.draws[name])
    assert "key" not in bs.fit_map.__code__.co_varnames[:bs.fit_map.__code__.co_argcount
                                                          + bs.fit_map.__code__.co_kwonlyargcount]


@pytest.mark.parametrize("count", [0, None])
def test_no_laplace_draws_gives_the_optimum_alone(noisy, count):
    data, fit = noisy
    point = bs.fit_map(laws.power_law, data, laplace_draws=count)
    assert point.shape == (1, 1) and point.info.band == "point" and point.band == "point" and point.ok
    assert point.point == fit.point
    assert point.summary()["sd"].isna().all()


def test_laplace_draws_count_is_a_keyword_and_checked(noisy):
    data, _ = noisy
    assert bs.fit_map(laws.power_law, data, laplace_draws=51).shape == (1, 51)
    with pytest.raises(bs.ArgumentError, match="laplace_draws must be at least 1"):
        bs.fit_map(laws.power_law, data, laplace_draws=-3)
    with pytest.raises(bs.ArgumentTypeError, match="laplace_draws must be a positive int"):
        bs.fit_map(laws.power_law, data, laplace_draws=2.5)


def test_a_fit_that_is_not_identified_keeps_one_draw():
    flat = dataclasses.replace(laws.power_law, name="flat",
                               fn=lambda p, x: jnp.log(p["E"] + 900.0 * x["C"] ** -0.15) + 0.0 * p["A"])
    fit = bs.fit_map(flat, _noisy_power(30), warn=False)
    assert fit.problems[0].startswith("not identified")
    assert fit.shape == (1, 1) and fit.info.band == "point" and fit.band == "point"


def test_a_curvature_that_is_not_finite_keeps_one_draw_and_says_so():
    # the law's gradient is NaN everywhere (sqrt at 0 in a term that is multiplied by zero)
    bad = dataclasses.replace(laws.power_law, name="bad",
                              fn=lambda p, x: laws.power_law.fn(p, x) + 0.0 * jnp.sqrt(0.0 * p["A"]))
    fit = bs.fit_map(bad, _noisy_power(30), warn=False)
    assert fit.shape == (1, 1) and fit.info.band == "point"
    assert any(p.startswith("no Laplace band: the curvature at the optimum is not finite") for p in fit.problems)


def test_map_forecast_and_compute_optimal_bands_have_width():
    c4 = bs.datasets.gadre_long().query("train_dataset == 'c4_original' and val_set == 'c4_val'")
    fit = bs.fit_map(laws.chinchilla, bs.from_frame(c4, laws.chinchilla, x=["N", "D"], y="loss"))
    assert fit.ok and fit.band == "laplace"
    at = {"N": np.array([1e9, 7e10]), "D": np.array([2e10, 1.4e12])}
    f = bs.forecast(fit, at, key=jax.random.key(0))
    np.testing.assert_allclose(f.estimate, bs.predict(laws.chinchilla, fit.point, at), rtol=1e-12)  # the optimum's
    assert np.all(f.credible.hi - f.credible.lo > 0)
    assert np.all(f.predictive.hi - f.predictive.lo > f.credible.hi - f.credible.lo)
    _, bands = bs.optimal_bands(fit, [1e21, 1e23])
    for q in ("N", "tokens_per_param"):
        assert np.all(bands[q].hi > bands[q].lo) and np.all(bands[q].lo > 0), q
        assert np.all((bands[q].lo < bands[q].median) & (bands[q].median < bands[q].hi)), q


def test_two_map_stages_are_not_paired_point_for_point():
    """Both stages' Laplace draws come from one fixed design: the composed fit must not pair them by index."""
    z = normal_design(1000, 2)
    order = scrambled_order(1000)
    assert sorted(order.tolist()) == list(range(1000))
    r = np.corrcoef(z[order, 0], z[:, 0])[0, 1]
    assert abs(r) < 0.1
    assert np.array_equal(normal_design(1000, 2), z) and not z.flags.writeable


def test_a_saved_map_fit_keeps_its_laplace_draws_and_label(noisy, tmp_path):
    _, fit = noisy
    loaded = bs.load(bs.save(fit, tmp_path / "map.nc"))
    assert loaded.method == "map" and loaded.band == "laplace" and loaded.band_name == "Laplace"
    assert loaded.shape == (1, 1000) and loaded.point == pytest.approx(fit.point)
    for name in laws.power_law.params:
        np.testing.assert_array_equal(loaded.draws[name], fit.draws[name])


def test_loo_refuses_the_laplace_band_and_compare_leaves_it_nan(noisy):
    """The Laplace draws sit on the Huber optimum, not on the mode of the Gaussian likelihood LOO scores."""
    data, fit = noisy
    with pytest.raises(bs.ArgumentError, match="not a single MAP point or MAP's Laplace band"):
        bs.loo(fit)
    pure = bs.fit_map(laws.pure_power_law, bs.from_arrays(laws.pure_power_law, y=data.y, C=data.x["C"]))
    table = bs.compare({"power_law": fit, "pure_power_law": pure})
    assert table.elpd_loo.isna().all() and table.elpd_waic.isna().all()
