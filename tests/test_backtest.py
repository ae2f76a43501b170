"""Backtests and calibrated bands: they widen where the law is wrong, and not where it is right."""

import json

import jax
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import laws
from bayescale.evaluate import (
    Calibration,
    backtest,
    backtest_score,
    calibration_report,
    extrapolation_study,
    learn_discrepancy,
)

C = np.geomspace(3e18, 6e21, 30)
LSQ = bs.Fitter.of(bs.fit_map, objective=bs.SquaredError())


def _direct_runs(seed, curve=0.0, noise=0.03):
    """Accuracy from the direct law in log(-log Q'), plus ``curve`` (a bend the law cannot follow)."""
    rng = np.random.default_rng(seed)
    lc = np.log(C) - np.log(C[0])
    z = np.log(40.0) - 0.06 * np.log(C) + curve * lc**2 + noise * rng.standard_normal(C.size)
    return np.exp(-np.exp(z))


def test_backtest_cut_offs_never_see_their_future():
    law = laws.direct
    data = bs.from_arrays(law, y=_direct_runs(0), C=C)
    bt = backtest(law, data)
    assert bt.along == "C" and bt.origins.n_fit.min() >= 10 and bt.origins.converged.all()
    assert (bt.errors.x > bt.errors.origin).all() and (bt.errors.distance > 0).all()
    # the last cut-off's fit equals a MAP fit of exactly its runs
    last = bt.origins.origin.iloc[-1]
    sub = data.select(data.x["C"] <= last)
    fit = bs.fit_map(law, sub, objective=bs.SquaredError())
    z_hat = bs.predict_fit_space(law, fit.point, {"C": C[C > last]})
    z = np.log(-np.log(data.y[C > last]))
    np.testing.assert_allclose(bt.errors[bt.errors.origin == last].error, z - z_hat, atol=1e-7)


def test_tau_is_small_when_the_law_is_right_and_large_when_it_bends():
    law = laws.direct
    right = [backtest(law, bs.from_arrays(law, y=_direct_runs(s), C=C)) for s in range(4)]
    bent = [backtest(law, bs.from_arrays(law, y=_direct_runs(s, curve=0.004), C=C)) for s in range(4)]
    tau_right, tau_bent = learn_discrepancy(*right), learn_discrepancy(*bent)
    assert tau_right.tau < 0.01 < 0.02 < tau_bent.tau
    assert "4 tasks" in tau_bent.describe() and "per e-fold of C" in tau_bent.describe()
    # the report: plain bands under-cover the bent law's backtests, calibrated ones fix it
    rep = calibration_report(bent[0], tau_bent)
    assert list(rep.level) == [0.5, 0.8, 0.9]
    row = rep.set_index("level").loc[0.9]
    assert row.coverage_plain < 0.8 <= row.coverage_calibrated
    assert row.interval_score_calibrated < row.interval_score_plain
    # backtest scores rank the right law form first
    assert backtest_score(right[0], tau_right) > backtest_score(bent[0], tau_bent)


def test_coverage_matched_tau_covers_its_backtests():
    law = laws.direct
    bts = [backtest(law, bs.from_arrays(law, y=_direct_runs(s, curve=0.004), C=C)) for s in range(3)]
    d = learn_discrepancy(*bts, level=0.9)
    rep = pd.concat([calibration_report(b, d, levels=[0.9]) for b in bts])
    assert (rep.coverage_calibrated * rep.n).sum() / rep.n.sum() >= 0.9
    assert "coverage-matched at 90%" in d.describe()


def test_discrepancy_widens_only_beyond_the_fitted_range():
    law = laws.direct
    data = bs.from_arrays(law, y=_direct_runs(1), C=C)
    fit = bs.fit_map(law, data)
    d = bs.Discrepancy(tau=0.1, along="C")
    x = {"C": np.array([1e20, 6e21, 6e22, 6e23])}
    plain = bs.forecast(fit, x, key=jax.random.key(0))
    wide = bs.forecast(fit, x, key=jax.random.key(0), discrepancy=d)
    w0, w1 = plain.predictive.hi - plain.predictive.lo, wide.predictive.hi - wide.predictive.lo
    np.testing.assert_allclose(w1[:2], w0[:2], rtol=0.05)  # inside the fitted range: unchanged
    assert w1[2] > 1.5 * w0[2] and w1[3] > w1[2]  # beyond: wider, and more so further out
    np.testing.assert_allclose(wide.estimate, plain.estimate)  # the point forecast does not move


def test_calibrated_study_selects_the_right_form_and_keeps_synthetic_bands_honest():
    # point fits (laplace_draws=0): with MAP's Laplace band, direct_ceiling's barely determined E (log E to
    # +-30 on t2) would give the mixture a band from chance up, 15-25 times the reference width
    rng = np.random.default_rng(0)
    c = np.geomspace(3e18, 3.8e22, 36)
    parts, chance = [], {}
    for t in range(4):
        a = rng.uniform(20, 200)
        z = np.log(a) - np.log(a / 0.3) / np.log(3e22) * np.log(c) + 0.03 * rng.standard_normal(c.size)
        parts.append(pd.DataFrame({"C": c, "score": 0.25 + 0.75 * np.exp(-np.exp(z)), "task": f"t{t}"}))
        chance[f"t{t}"] = 0.25
    s = extrapolation_study(pd.concat(parts), [laws.direct, laws.direct_ceiling], y="score", holdout="C > 6e21",
                            key=jax.random.key(0), task="task", chance=chance,
                            fitter=bs.Fitter.of(bs.fit_map, objective=bs.SquaredError(), laplace_draws=0),
                            calibrate=Calibration(pooled=True))
    assert s.chosen == "direct"
    assert set(s.selection.law) == {"direct", "direct_ceiling"} and s.selection.weight.sum() == pytest.approx(1.0)
    cal = s.table[s.table.law == "calibrated"]
    assert len(cal) == 4 and cal.width_ratio.median() < 1.3  # the law is right: bands hardly widen
    direct = s.table[s.table.law == "direct"]
    assert cal.mre.mean() <= direct.mre.mean() * 1.05


def test_cli_forecast_defaults_to_the_calibrated_band(tmp_path):
    from bayescale.cli import main

    path = tmp_path / "acc.csv"
    pd.DataFrame({"C": C, "acc": _direct_runs(2, curve=0.004)}).to_csv(path, index=False)
    out = {}
    for band in ("calibrated", "plain"):
        out[band] = tmp_path / f"{band}.json"
        code = main(["forecast", str(path), "--law", "direct", "--x", "C", "--y", "acc", "--at", "C=6e22,6e23",
                     "--band", band, "--json", str(out[band])])
        assert code == 0
    cal, plain = (json.loads(out[b].read_text()) for b in ("calibrated", "plain"))
    assert cal["band"] == "calibrated" and cal["discrepancy"]["tau"] > 0 and plain["discrepancy"] is None
    for p, q in zip(cal["points"], plain["points"]):
        assert p["estimate"] == pytest.approx(q["estimate"])
        assert p["hi"] - p["lo"] > q["hi"] - q["lo"]


def test_default_cut_offs_are_thinned_evenly():
    from bayescale.evaluate.backtest import _default_origins

    x = np.geomspace(1e18, 1e22, 100)
    cuts = _default_origins(x, 10, 30)
    assert len(cuts) == 30 and cuts[0] == x[9] and cuts[-1] == x[-2]  # first and last candidates kept
    assert len(_default_origins(x[:25], 10, 30)) == 15  # fewer candidates than the cap: all of them
