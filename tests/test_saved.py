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


# --------------------------------------------------------------------------- tamper evidence


def _scale_later_alpha(f):
    f["posterior/alpha"][0, 5:] = f["posterior/alpha"][0, 5:] * 0.4  # the probe sees only the first draws


def _nan_draw(f):
    f["posterior/E"][0, 7] = np.nan


def _edit_response(f):
    f["observed_data/y"][3] = f["observed_data/y"][3] * 1.01


def _edit_covariate(f):
    f["observed_data/C"][2] = f["observed_data/C"][2] * 1.5


def _edit_sigma(f):
    f["posterior/sigma"][0, 9] = f["posterior/sigma"][0, 9] * 2.0


def _edit_probe(f):
    f.attrs["probe_z"] = f.attrs["probe_z"].replace("1", "2", 1)


def _add_diagnostic(f):
    f.attrs["diag_made_up"] = 1


def _delete_group(f):
    del f["observed_data"]


# (edit made with h5py, the library under h5netcdf that saved the file; what the message must name)
_EDITS = {
    "scaled later draws": (_scale_later_alpha, "the draws of 'alpha' do not match the file's digest"),
    "NaN draw": (_nan_draw, "the draws of 'E' hold 1 NaN or infinite value(s)"),
    "response": (_edit_response, "response 'y' does not match the file's digest"),
    "covariate": (_edit_covariate, "covariate 'C' does not match the file's digest"),
    "sigma": (_edit_sigma, "the draws of 'sigma' do not match"),
    "cleared problems": (lambda f: f.attrs.__setitem__("problems", "[]"), "attribute 'problems' does not match"),
    "method": (lambda f: f.attrs.__setitem__("draws_kind", "nuts"), "attribute 'draws_kind' does not match"),
    "probe": (_edit_probe, "probe values (attributes 'probe_x', 'probe_z') do not match"),
    "added diagnostic": (_add_diagnostic, "attribute 'diag_made_up' is not covered by the file's digest"),
    "deleted attribute": (lambda f: f.attrs.__delitem__("point"), "required attribute 'point' is missing"),
    "deleted digest": (lambda f: f.attrs.__delitem__("bayescale_digest"), "the digest (attribute 'bayescale_digest') is missing"),
    "deleted draws": (lambda f: f["posterior"].__delitem__("A"), "the draws of 'A' are missing"),
    "deleted group": (_delete_group, "group 'observed_data' (the data it was fitted to) is missing"),
}


def _snapshot(path):
    import h5py

    with h5py.File(path, "r") as f:
        arrays = {f"{g}/{n}": f[g][n][()] for g in f for n in f[g]}
        return arrays, {k: f.attrs[k] for k in f.attrs}


@pytest.fixture(scope="module")
def flagged(fits, tmp_path_factory):
    """A saved bootstrap fit with a problem (so clearing it is an edit), and the fit itself."""
    fit = dataclasses.replace(fits["bootstrap"], problems=("R-hat 1.2 > 1.01 (a made-up problem)",))
    assert fit.shape[1] >= 10
    return fit, bs.save(fit, tmp_path_factory.mktemp("flagged") / "fit.nc")


def test_an_untouched_file_loads_with_identical_forecasts(flagged, tmp_path):
    import shutil

    fit, path = flagged
    copy = shutil.copy(path, tmp_path / "copy.nc")
    for saved in (bs.load(path), bs.load(copy)):
        assert saved.problems == fit.problems and saved.method == "bootstrap"
        key, at = jax.random.key(3), {"C": np.array([1e23, 1e24])}
        before, after = bs.forecast(fit, at, key=key), bs.forecast(saved, at, key=key)
        for part in ("lo", "median", "hi"):
            np.testing.assert_array_equal(getattr(after.predictive, part), getattr(before.predictive, part))


@pytest.mark.parametrize("edit", list(_EDITS))
def test_an_edited_file_is_refused_naming_the_part(flagged, edit, tmp_path):
    import shutil

    import h5py

    change, message = _EDITS[edit]
    edited = shutil.copy(flagged[1], tmp_path / "fit.nc")
    with h5py.File(edited, "r+") as f:
        change(f)
    (arrays, attrs), (arrays0, attrs0) = _snapshot(edited), _snapshot(flagged[1])
    same = {k: np.array_equal(a, arrays0[k], equal_nan=np.asarray(a).dtype.kind == "f") for k, a in arrays.items()}
    differs = arrays.keys() != arrays0.keys() or attrs.keys() != attrs0.keys() or not all(same.values()) \
        or any(not np.array_equal(attrs[k], attrs0[k]) for k in attrs)
    assert differs, f"the edit {edit!r} did not change the file"
    with pytest.raises(bs.SavedFitError, match="edited|missing|NaN|not covered") as info:
        bs.load(edited)
    text = str(info.value)
    assert message in text and text.startswith(f"saved fit {str(edited)!r}: "), text
    assert "\n" not in text and "refit and save again" in text


def test_the_cli_refuses_an_edited_file_in_one_line(flagged, tmp_path, capsys):
    import shutil

    import h5py

    from bayescale.cli.main import main

    edited = shutil.copy(flagged[1], tmp_path / "edited.nc")
    with h5py.File(edited, "r+") as f:
        _scale_later_alpha(f)
    assert main(["forecast", "--from", str(flagged[1]), "--at", "C=1e23"]) == 1  # 1: the saved fit is flagged
    assert "made-up problem" in capsys.readouterr().err
    out = tmp_path / "out.json"
    assert main(["forecast", "--from", str(edited), "--at", "C=1e23", "--json", str(out)]) == 2
    _, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "the draws of 'alpha' do not match the file's digest" in err and not out.exists()


def test_wrong_types_and_non_finite_fits_are_refused(fits, tmp_path):
    with pytest.raises(bs.ArgumentTypeError, match="path must be str or PathLike"):
        bs.load(123)
    with pytest.raises(bs.ArgumentTypeError, match="fit must be Fit"):
        bs.save({"E": 1.0}, tmp_path / "x.nc")
    fit = fits["bootstrap"]
    broken = dataclasses.replace(fit, draws={**fit.draws, "A": np.where(np.arange(fit.n_draws) == 2, np.inf,
                                                                        np.ravel(fit.draws["A"])).reshape(fit.shape)})
    with pytest.raises(bs.SavedFitError, match="the draws of 'A' hold 1 NaN or infinite"):
        bs.save(broken, tmp_path / "x.nc")
    assert list(tmp_path.iterdir()) == []
