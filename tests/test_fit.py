"""The Fit value: one layout for every fitter, readable views, stages that combine, refits that keep settings.

Tiny runs throughout (8 resamples x 2 starts, NUTS 1 chain x 50 + 50): the layout and the
bookkeeping are checked here, the statistics in test_bootstrap / test_nuts.  The power-law
and two-stage designs are those of the law table, so test_laws reuses the compiled programs.
"""

import warnings

import jax
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import laws
from bayescale.fit.result import scrambled_order

C = np.geomspace(1e17, 1e23, 15)  # the law table's compute design
MAP = bs.Fitter.of(bs.fit_map)
BOOT = bs.Fitter.of(bs.fit_bootstrap, resamples=8, starts=2)
NUTS = bs.Fitter.of(bs.fit_nuts, chains=1, warmup=50, draws=50)
FITTERS = {"map": MAP, "bootstrap": BOOT, "nuts": NUTS}


def _power(seed=0, n=None):
    c = C if n is None else np.geomspace(1e17, 1e23, n)
    rng = np.random.default_rng(seed)
    y = (1.7 + 1000.0 * c**-0.15) * np.exp(0.002 * rng.standard_normal(c.size))
    return bs.from_arrays(laws.power_law, y=y, C=c)


@pytest.fixture(scope="module")
def data():
    return _power()


@pytest.fixture(scope="module")
def fits(data):
    return {name: f(laws.power_law, data, key=jax.random.key(i), warn=False) for i, (name, f) in
            enumerate(FITTERS.items())}


def _two_stage_frame(law=laws.two_stage_linear, seed=1, truth=None):
    truth = truth or dict(A=20.0, alpha=0.05, a=1.2, b=-0.3)
    stage1, stage2 = law.stages
    rng = np.random.default_rng(seed)
    loss = bs.predict(stage1, truth, {"C": C}) * np.exp(0.002 * rng.standard_normal(C.size))
    acc = bs.predict(stage2, truth, {"L": loss}) + 0.002 * rng.standard_normal(C.size)
    return pd.DataFrame({"C": C, "val_loss": loss, "acc": acc})


def _assert_layout(fit, law, shape):
    assert isinstance(fit, bs.Fit)
    assert set(fit.draws) == set(law.params)
    for name, v in fit.draws.items():
        assert np.shape(v) == shape, (fit.method, name, np.shape(v))
        assert np.all(np.isfinite(v)), (fit.method, name)
    assert np.shape(fit.sigma) == shape and fit.shape == shape and fit.n_draws == shape[0] * shape[1]
    assert np.all(np.isfinite(fit.sigma))


# ---------------------------------------------------------------- (a) one layout


def test_every_fitter_returns_a_fit_laid_out_chain_by_draw(fits, data, tmp_path):
    expected = {"map": (1, 1000), "bootstrap": (1, int(fits["bootstrap"].info.converged.sum())), "nuts": (1, 50)}
    assert expected["bootstrap"][1] > 0
    for name, fit in fits.items():
        assert fit.method == name and fit.data is data and fit.n_obs == data.n
        _assert_layout(fit, laws.power_law, expected[name])
        assert fit.fitter is not None and fit.fitter.fn.__name__ == f"fit_{name}"
        assert fit.seconds >= 0
        ll = fit.log_likelihood()
        assert ll.shape == expected[name] + (data.n,) and np.all(np.isfinite(ll))
        loaded = bs.load(bs.save(fit, tmp_path / f"{name}.nc"))
        assert loaded.method == name and loaded.fitter is None
        _assert_layout(loaded, laws.power_law, expected[name])
    d1, d2, d = bs.two_stage_data(laws.two_stage_linear, _two_stage_frame(), x=["C"], proxy="val_loss", y="acc")
    staged = bs.fit_two_stage(laws.two_stage_linear, d1, d2, data=d)
    _assert_layout(staged, laws.two_stage_linear, (1, 1000))  # both stages' Laplace draws, paired
    assert staged.method == "map" and [p.method for p in staged.parts] == ["map", "map"]
    assert staged.data is d and staged.n_obs == d.n


# ---------------------------------------------------------------- (b) views


def test_repr_is_one_short_line(fits):
    for fit in fits.values():
        text = repr(fit)
        assert "\n" not in text and len(text) < 300, text
        assert "array" not in text and "[" not in text, text
        assert text.startswith(f"Fit(power_law, {fit.method}, 15 runs, ")
        assert (", ok;" in text) == fit.ok and (f"{len(fit.problems)} problem(s)" in text) == (not fit.ok)


def test_summary_and_html(fits):
    for name, fit in fits.items():
        table = fit.summary()
        assert isinstance(table, pd.DataFrame)
        assert {"estimate", "sd", "lo_90%", "hi_90%"} <= set(table.columns)
        assert set(laws.power_law.params) <= set(table.index)
        for p in laws.power_law.params:
            assert table.loc[p, "estimate"] == pytest.approx(fit.point[p])
        if name == "nuts":
            assert {"r_hat", "ess_bulk", "ess_tail"} <= set(table.columns)
            assert table.loc["alpha", "ess_bulk"] == pytest.approx(fit.info.ess_bulk["alpha"])
        else:
            assert not {"r_hat", "ess_bulk", "ess_tail"} & set(table.columns)
        assert table.loc["alpha", "lo_90%"] < table.loc["alpha", "estimate"] < table.loc["alpha", "hi_90%"], name
        assert table.loc["alpha", "sd"] > 0, name  # MAP too: its Laplace band
        assert table.attrs["method"] == name and table.attrs["band"] == fit.band and table.attrs["n_obs"] == fit.n_obs
        assert list(fit.summary(interval=0.5).columns)[2:4] == ["lo_50%", "hi_50%"]
        html = fit._repr_html_()
        assert "<table" in html and "power_law" in html


def test_frames_of_forecasts_allocations_and_bands(fits):
    x = {"C": np.array([1e23, 1e24, 1e25])}
    for fit in fits.values():
        f = bs.forecast(fit, x, key=jax.random.key(0))
        frame = f.to_frame()
        assert list(frame.columns) == ["C", "estimate", "lo", "hi", "credible_lo", "credible_hi"]
        assert len(frame) == 3 and (frame.lo <= frame.hi).all() and np.isfinite(frame.to_numpy()).all()
        b = f.credible.to_frame()
        assert list(b.columns) == ["median", "lo", "hi"] and len(b) == 3
        if fit.band == "laplace":  # MAP: the optimum's prediction, inside its Laplace band
            np.testing.assert_allclose(f.estimate, bs.predict(fit.law, fit.point, x), rtol=1e-12)
            assert np.all((b["lo"] < f.estimate) & (f.estimate < b["hi"]))
        else:
            np.testing.assert_array_equal(b["median"], f.estimate)
    p = dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672)
    alloc = bs.compute_optimal(laws.chinchilla, p, np.array([1e21, 1e23]))
    frame = alloc.to_frame()
    assert list(frame.columns) == ["draw", "compute", "N", "D", "tokens_per_param", "loss", "interior"]
    assert len(frame) == 2 and list(frame.compute) == [1e21, 1e23]
    np.testing.assert_allclose(frame.N, np.ravel(alloc.N))
    draws = {k: np.full((1, 3), v) for k, v in p.items()}
    assert len(bs.compute_optimal(laws.chinchilla, draws, np.array([1e21, 1e23])).to_frame()) == 6


# ---------------------------------------------------------------- (c) stages combine, any methods


@pytest.fixture(scope="module")
def two_stage():
    return bs.two_stage_data(laws.two_stage_linear, _two_stage_frame(), x=["C"], proxy="val_loss", y="acc")


@pytest.mark.parametrize("second", list(FITTERS))
@pytest.mark.parametrize("first", list(FITTERS))
def test_stages_fitted_by_any_pair_of_methods_combine(two_stage, first, second):
    d1, d2, d = two_stage
    law = laws.two_stage_linear
    fit = bs.fit_two_stage(law, d1, d2, data=d, fitter=FITTERS[first], second=FITTERS[second],
                           key=jax.random.key(3), warn=False)
    s1, s2 = fit.parts
    assert (s1.method, s2.method) == (first, second)
    assert fit.method == (first if first == second else f"{first}+{second}")
    assert fit.info.methods == (first, second)
    n1, n2 = s1.n_draws, s2.n_draws
    n = max(n1, n2) if min(n1, n2) == 1 else min(n1, n2)
    assert fit.n_draws == n
    _assert_layout(fit, law, fit.shape)
    # the stage draws are carried over (a one-draw stage repeated), the first stage's in a fixed scrambled order
    for stage, order in ((s1, scrambled_order(n)), (s2, np.arange(n))):
        for name, v in stage.draws.items():
            flat = np.asarray(v).reshape(-1)
            expect = np.repeat(flat, n) if flat.size == 1 else flat[:n]
            np.testing.assert_array_equal(fit.draws[name].reshape(-1), expect[order])
    labels = {"map": "laplace", "bootstrap": "bootstrap", "nuts": "credible"}
    assert fit.band == "+".join(dict.fromkeys((labels[first], labels[second])))
    np.testing.assert_array_equal(fit.sigma.reshape(-1), np.repeat(s2.sigma.reshape(-1), n // n2 if n2 == 1 else 1)[:n])
    assert fit.point == {**s1.point, **s2.point}
    f = bs.forecast(fit, {"C": np.array([1e23, 1e24])}, key=jax.random.key(4))
    assert np.all(np.isfinite(f.estimate)) and np.all(np.isfinite(f.predictive.lo))
    assert np.all(np.isfinite(f.predictive.hi))
    assert fit.log_likelihood().shape == fit.shape + (d.n,)


def test_stage_two_on_its_own_larger_table():
    """Stage 1 on the final runs, stage 2 on every checkpoint (more rows)."""
    law = laws.two_stage_linear
    final = _two_stage_frame()
    rng = np.random.default_rng(5)
    loss = np.linspace(2.0, 3.6, 40)
    # labelled 0..39 like the final runs' 0..14: the labels must not be taken for the same runs
    checkpoints = pd.DataFrame({"val_loss": loss, "acc": 1.2 - 0.3 * loss + 0.002 * rng.standard_normal(40)})
    d1, d2, d = bs.two_stage_data(law, final, x=["C"], proxy="val_loss", y="acc", stage2=checkpoints)
    assert (d1.n, d2.n, d.n) == (15, 40, 15)
    assert not d2.rows_in(d1.rows).any()
    fit = bs.fit_two_stage(law, d1, d2, data=d)
    assert fit.ok and fit.parts[1].n_obs == 40 and fit.n_obs == 15
    assert fit.point["a"] == pytest.approx(1.2, abs=0.02) and fit.point["b"] == pytest.approx(-0.3, abs=0.01)
    # a refit on a subset of the final runs cannot pick stage 2's rows out of them: it says so
    with pytest.raises(ValueError, match="its own table"):
        fit.refit(d.select(d.x["C"] < 1e22))
    refit = fit.refit(d.select(d.x["C"] < 1e22), parts=(d1.select(d1.x["C"] < 1e22), d2))
    assert refit.parts[0].n_obs == int((C < 1e22).sum()) and refit.parts[1].n_obs == 40


def test_a_stage_one_law_of_n_and_d():
    law = bs.laws.compose(bs.laws.chinchilla, bs.laws.stage2_logistic)
    assert law.covariate_names == ("N", "D")
    n = np.repeat(np.geomspace(5e7, 1e10, 8), 5)
    dd = n * np.tile([2.0, 8.0, 20.0, 80.0, 300.0], 8)
    truth = dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672, a=0.6, k=-4.0, l0=2.6, b=0.25)
    rng = np.random.default_rng(6)
    loss = bs.predict(bs.laws.chinchilla, truth, {"N": n, "D": dd}) * np.exp(0.002 * rng.standard_normal(n.size))
    acc = bs.predict(bs.laws.stage2_logistic, truth, {"L": loss}) + 0.002 * rng.standard_normal(n.size)
    frame = pd.DataFrame({"N": n, "D": dd, "val_loss": loss, "acc": acc})
    d1, d2, d = bs.two_stage_data(law, frame, x=["N", "D"], proxy="val_loss", y="acc")
    fit = bs.fit_two_stage(law, d1, d2, data=d)
    assert fit.ok, fit.problems
    _assert_layout(fit, law, (1, 1000))
    got = bs.predict(law, fit.point, {"N": n, "D": dd})
    np.testing.assert_allclose(got, bs.predict(law, truth, {"N": n, "D": dd}), atol=0.01)


def test_a_stage_one_law_with_a_constant():
    law = bs.laws.compose(bs.laws.power_law, bs.laws.stage2_linear)
    truth = dict(E=1.7, A=1000.0, alpha=0.15, a=1.0, b=-0.2)
    frame = _two_stage_frame(law, truth=truth)
    d1, d2, d = bs.two_stage_data(law, frame, x=["C"], proxy="val_loss", y="acc")
    fit = bs.fit_two_stage(law, d1, d2, data=d)
    assert fit.ok and set(fit.point) == {"E", "A", "alpha", "a", "b"}
    np.testing.assert_allclose(bs.predict(law, fit.point, {"C": C}), bs.predict(law, truth, {"C": C}), atol=0.005)


# ---------------------------------------------------------------- (d) a refit keeps its settings


def test_a_map_refit_keeps_its_objective(data):
    lsq = bs.fit_map(laws.power_law, data, objective=bs.SquaredError())
    sub = data.select(data.x["C"] < 1e22)
    again = lsq.refit(sub)
    direct = bs.fit_map(laws.power_law, sub, objective=bs.SquaredError())
    huber = bs.fit_map(laws.power_law, sub)
    assert again.point == direct.point and again.info.objective == direct.info.objective
    assert again.n_obs == sub.n and again.fitter == lsq.fitter
    assert again.info.objective != huber.info.objective
    assert again.point != huber.point


def test_a_bootstrap_refit_keeps_resamples_and_starts(fits, data):
    boot = fits["bootstrap"]
    sub = data.select(data.x["C"] < 1e22)
    again = boot.refit(sub, key=jax.random.key(9))
    direct = bs.fit_bootstrap(laws.power_law, sub, key=jax.random.key(9), resamples=8, starts=2)
    assert (again.info.resamples, again.info.starts) == (8, 2)
    for name in laws.power_law.params:
        np.testing.assert_array_equal(again.info.all_draws[name], direct.info.all_draws[name])
    with pytest.raises(ValueError, match="key="):
        boot.refit(sub)


def test_a_nuts_refit_keeps_chains_draws_and_likelihood(data):
    post = bs.fit_nuts(laws.power_law, data, key=jax.random.key(1), likelihood=bs.Gaussian(), chains=1, warmup=50,
                       draws=50, warn=False)
    sub = data.select(data.x["C"] < 1e22)
    again = post.refit(sub, key=jax.random.key(2))
    direct = bs.fit_nuts(laws.power_law, sub, key=jax.random.key(2), likelihood=bs.Gaussian(), chains=1, warmup=50,
                         draws=50, warn=False)
    assert again.shape == (1, 50) and (again.info.chains, again.info.warmup, again.info.draws) == (1, 50, 50)
    assert again.likelihood == bs.Gaussian() and again.n_obs == sub.n
    np.testing.assert_array_equal(again.draws["alpha"], direct.draws["alpha"])
    np.testing.assert_array_equal(again.sigma, direct.sigma)


def test_compare_refits_a_squared_error_fit_by_squared_error(data):
    holdout = "C > 1e22"
    train, test = data.select(data.x["C"] <= 1e22), data.select(data.x["C"] > 1e22)
    key = jax.random.key(4)
    table = bs.compare({"lsq": bs.fit_map(laws.power_law, data, objective=bs.SquaredError())}, holdout=holdout,
                       key=key)
    _, k_pred = jax.random.split(jax.random.split(key, 1)[0])
    from bayescale.evaluate import score_heldout

    lsq = score_heldout(bs.fit_map(laws.power_law, train, objective=bs.SquaredError()), test, key=k_pred)
    huber = score_heldout(bs.fit_map(laws.power_law, train), test, key=k_pred)
    row = table.iloc[0]
    assert row["n_heldout"] == test.n
    assert row["elpd_lfo"] == lsq["elpd_lfo"] and row["mre"] == lsq["mre"]
    assert row["elpd_lfo"] != huber["elpd_lfo"]


def test_a_loaded_fit_cannot_be_refitted(fits, data, tmp_path):
    loaded = bs.load(bs.save(fits["map"], tmp_path / "fit.nc"))
    with pytest.raises(ValueError, match="loaded from disk and has no fitter"):
        loaded.refit(data)


# ---------------------------------------------------------------- (e) problems and warnings


def test_warn_false_silences_the_warning_not_the_problems(data):
    solver = bs.ParallelLbfgs(max_steps=2)
    with pytest.warns(RuntimeWarning, match="map fit of 'power_law'.*did not converge"):
        loud = bs.fit_map(laws.power_law, data, solver=solver)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        quiet = bs.fit_map(laws.power_law, data, solver=solver, warn=False)
    for fit in (loud, quiet):
        assert not fit.ok and fit.problems and "did not converge" in fit.problems[0]
        assert fit.diagnostics["ok"] is False
        assert "problem" in repr(fit)
    assert quiet.problems == loud.problems
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        boot = bs.fit_bootstrap(laws.power_law, data, key=jax.random.key(0), resamples=8, starts=2, solver=solver,
                                race=None, warn=False)
    assert not boot.ok and any("resamples did not converge" in p for p in boot.problems)


def test_a_stage_problem_is_the_composed_fits_problem(two_stage):
    d1, d2, d = two_stage
    # (Huber: stage 2's default least squares on a linear law converges in two steps)
    bad = bs.Fitter.of(bs.fit_map, solver=bs.ParallelLbfgs(max_steps=2), objective=bs.Huber(1e-3))
    with pytest.warns(RuntimeWarning, match="stage 2: the MAP fit did not converge"):
        fit = bs.fit_two_stage(laws.two_stage_linear, d1, d2, data=d, second=bad)
    assert not fit.ok and all(p.startswith("stage 2: ") for p in fit.problems)
    assert fit.parts[0].ok and not fit.parts[1].ok
