"""Saved fits: a round trip gives the same forecasts; a changed, unknown or foreign file is refused."""

import dataclasses

import jax
import numpy as np
import pytest

import bayescale as bs
from bayescale import laws


@pytest.fixture(scope="module")
def data():
    c = np.geomspace(1e18, 1e22, 12)
    y = 1.7 + 900.0 * c**-0.15 * np.exp(0.01 * np.random.default_rng(0).standard_normal(12))
    return bs.from_arrays(laws.power_law, y=y, C=c)


@pytest.fixture(scope="module")
def fits(data):
    return {
        "map": bs.fit_map(laws.power_law, data),
        "bootstrap": bs.fit_bootstrap(laws.power_law, data, key=jax.random.key(0), resamples=40, starts=4),
        "nuts": bs.fit_nuts(laws.power_law, data, key=jax.random.key(1), chains=2, warmup=150, draws=150),
    }


@pytest.mark.parametrize("kind", ["map", "bootstrap", "nuts"])
def test_round_trip_gives_the_same_forecast_and_optimum(fits, data, kind, tmp_path):
    path = bs.save(fits[kind], tmp_path / "fit.nc")
    saved = bs.load(path)
    assert saved.method == kind and saved.law.name == "power_law" and saved.n_obs == data.n
    assert isinstance(saved, bs.Fit) and saved.fitter is None
    assert saved.shape == fits[kind].shape and saved.point == pytest.approx(fits[kind].point, rel=1e-12)
    for name in laws.power_law.params:
        np.testing.assert_array_equal(saved.draws[name], fits[kind].draws[name])
    np.testing.assert_array_equal(saved.sigma, fits[kind].sigma)
    np.testing.assert_array_equal(saved.data.y, data.y)
    key = jax.random.key(5)
    before = bs.forecast(fits[kind], {"C": np.array([1e23, 1e24])}, key=key)
    after = bs.forecast(saved, {"C": np.array([1e23, 1e24])}, key=key)
    for part in ("lo", "median", "hi"):
        np.testing.assert_allclose(getattr(after.predictive, part), getattr(before.predictive, part), rtol=1e-12)
        np.testing.assert_allclose(getattr(after.credible, part), getattr(before.credible, part), rtol=1e-12)
    assert saved.ok == fits[kind].ok and saved.problems == fits[kind].problems


def test_chance_level_and_flags_survive(tmp_path):
    c = np.geomspace(1e18, 1e22, 10)
    law = laws.direct.with_chance(0.25)
    acc = 0.25 + 0.75 * np.exp(-100.0 * c**-0.1) * np.exp(0.002 * np.random.default_rng(1).standard_normal(10))
    short = bs.fit_nuts(law, bs.from_arrays(law, y=acc, C=c), key=jax.random.key(2), chains=2, warmup=3, draws=10)
    assert not short.ok
    saved = bs.load(bs.save(short, tmp_path / "short.nc"))
    assert saved.law.response.chance == 0.25
    assert saved.problems == tuple(short.problems) and not saved.ok


def test_a_changed_law_is_refused(fits, tmp_path):
    path = bs.save(fits["map"], tmp_path / "fit.nc")
    nudged = dataclasses.replace(laws.power_law, fn=lambda p, x: laws.power_law.fn(p, x) * 1.0001)
    with pytest.raises(bs.SavedFitError, match="changed since .* computes different values"):
        bs.load(path, law=nudged)
    renamed = dataclasses.replace(laws.power_law, params=("E", "A", "a"))
    with pytest.raises(bs.SavedFitError, match="parameters"):
        bs.load(path, law=dataclasses.replace(renamed, priors=laws.power_law.priors))
    with pytest.raises(bs.SavedFitError, match="not 'chinchilla'"):
        bs.load(path, law=laws.chinchilla)


def test_an_unknown_law_needs_to_be_passed(data, tmp_path):
    custom = dataclasses.replace(laws.power_law, name="my_power_law")
    path = bs.save(bs.fit_map(custom, data), tmp_path / "custom.nc")
    with pytest.raises(bs.SavedFitError, match="'my_power_law', which this version of bayescale does not know"):
        bs.load(path)
    assert bs.load(path, law=custom).law.name == "my_power_law"


def test_foreign_and_missing_files_are_refused(tmp_path):
    with pytest.raises(bs.SavedFitError, match="does not exist"):
        bs.load(tmp_path / "nope.nc")
    junk = tmp_path / "junk.nc"
    junk.write_text("N,D,loss\n1,2,3\n")
    with pytest.raises(bs.SavedFitError, match="cannot read"):
        bs.load(junk)
    import arviz_base

    other = tmp_path / "other.nc"
    arviz_base.from_dict({"posterior": {"a": np.zeros((2, 5))}}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(bs.SavedFitError, match="not a bayescale saved fit"):
        bs.load(other)


def test_save_into_a_missing_folder_writes_nothing(fits, tmp_path):
    with pytest.raises(bs.SavedFitError, match="does not exist"):
        bs.save(fits["map"], tmp_path / "missing" / "fit.nc")
    assert list(tmp_path.iterdir()) == []
