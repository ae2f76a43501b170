"""MAP path: the Epoch reproduction, compile-once, honest convergence flags."""

import dataclasses

import numpy as np
import pytest
from conftest import shared_file

import bayescale as bs
from bayescale import laws


@pytest.fixture(scope="module")
def chinchilla_runs():
    return bs.datasets.read_chinchilla(shared_file("chinchilla", "svg_extracted_data.csv"))


def test_reproduces_epoch_approach_3(chinchilla_runs):
    """Besiroglu et al. (2024): E 1.8172, A 477.8, B 2143.9, alpha 0.3473, beta 0.3672 (objective 0.0010183)."""
    assert len(chinchilla_runs) == 240
    data = bs.from_frame(chinchilla_runs, laws.chinchilla, x=["N", "D"], y="L")
    fit = bs.fit_map(laws.chinchilla, data)
    p = fit.point
    assert fit.ok and fit.info.converged
    assert fit.info.n_starts == 4500
    assert abs(p["E"] - 1.8172) < 0.003
    assert abs(p["alpha"] - 0.3473) < 0.003
    assert abs(p["beta"] - 0.3672) < 0.003
    assert p["A"] == pytest.approx(477.8, rel=0.03)
    assert p["B"] == pytest.approx(2143.9, rel=0.03)
    assert fit.info.objective == pytest.approx(0.0010183, rel=1e-3)
    # the optimum this package found before the Fit refactor, to 5 digits: a refactor must not move it
    expect = dict(E=1.8172, A=477.83, B=2143.4, alpha=0.34731, beta=0.36717)
    for name, value in expect.items():
        assert p[name] == pytest.approx(value, rel=5e-5), name
    assert fit.info.objective == pytest.approx(0.0010183, rel=5e-5)
    assert fit.draws["E"].shape == fit.sigma.shape == (1, 1000)  # the Laplace band around the optimum


def _counting(law):
    calls = []

    def fn(p, x):
        calls.append(1)
        return law.fn(p, x)

    return dataclasses.replace(law, fn=fn), calls


def test_compiles_once_per_law_and_data_shape():
    law, calls = _counting(laws.power_law)
    c = np.geomspace(1e18, 1e22, 12)
    fit1 = bs.fit_map(law, bs.from_arrays(law, y=1.7 + 900.0 * c**-0.15, C=c))
    traced = len(calls)
    assert traced > 0
    # new values, same shapes: no new trace
    fit2 = bs.fit_map(law, bs.from_arrays(law, y=1.9 + 500.0 * c**-0.12, C=c * 3))
    assert len(calls) == traced
    assert fit1.ok and fit2.ok
    # a different data shape compiles again
    c13 = np.geomspace(1e18, 1e22, 13)
    bs.fit_map(law, bs.from_arrays(law, y=1.7 + 900.0 * c13**-0.15, C=c13))
    assert len(calls) > traced


def test_non_convergence_is_reported_not_hidden():
    c = np.geomspace(1e18, 1e22, 12)
    data = bs.from_arrays(laws.power_law, y=1.7 + 900.0 * c**-0.15, C=c)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        fit = bs.fit_map(laws.power_law, data, solver=bs.ParallelLbfgs(max_steps=2))
    assert not fit.ok and not fit.info.converged
    assert fit.info.steps == 2
    assert fit.diagnostics["converged"] is False
    assert fit.diagnostics["ok"] is False and "did not converge" in fit.diagnostics["problems"]


def test_impossible_start_is_flagged():
    # a start where the objective is not finite cannot converge, and must say so
    c = np.geomspace(1e18, 1e22, 12)
    data = bs.from_arrays(laws.power_law, y=1.7 + 900.0 * c**-0.15, C=c)
    bad = np.array([[1.0, np.inf, 0.1]])
    with pytest.warns(RuntimeWarning, match="did not converge"):
        fit = bs.fit_map(laws.power_law, data, starts=bad)
    assert not fit.ok and not fit.info.converged
    assert not np.isfinite(fit.info.objective)


def test_prior_starts_for_a_law_without_a_grid():
    law = dataclasses.replace(laws.pure_power_law, starts=None)
    c = np.geomspace(1e18, 1e22, 12)
    fit = bs.fit_map(law, bs.from_arrays(law, y=50.0 * c**-0.05, C=c))
    assert fit.info.n_starts == 64
    assert fit.point["alpha"] == pytest.approx(0.05, rel=1e-4)


def test_squared_error_objective():
    c = np.geomspace(1e18, 1e22, 12)
    data = bs.from_arrays(laws.pure_power_law, y=50.0 * c**-0.05, C=c)
    fit = bs.fit_map(laws.pure_power_law, data, objective=bs.SquaredError())
    assert fit.point["A"] == pytest.approx(50.0, rel=1e-6)
