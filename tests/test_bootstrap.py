"""Bootstrap: reproducibility, devices, honest convergence flags, schemes, draws layout."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import bayescale as bs
from bayescale import laws


@pytest.fixture(scope="module")
def power_data():
    c = np.geomspace(1e17, 1e23, 20)
    rng = np.random.default_rng(0)
    y = (1.7 + 900.0 * c**-0.15) * np.exp(0.003 * rng.standard_normal(c.size))
    return bs.from_arrays(laws.power_law, y=y, C=c)


@pytest.fixture(scope="module")
def map_fit(power_data):
    return bs.fit_map(laws.power_law, power_data)


def boot(data, map_fit, **kw):
    kw.setdefault("resamples", 40)
    kw.setdefault("starts", 4)
    return bs.fit_bootstrap(laws.power_law, data, key=kw.pop("key", jax.random.key(7)), map_fit=map_fit, **kw)


def test_same_key_same_result_any_pool_width(power_data, map_fit):
    a = boot(power_data, map_fit)
    again = boot(power_data, map_fit)
    b = boot(power_data, map_fit, lanes=12)  # a narrow pool: many refills
    for name in laws.power_law.params:
        np.testing.assert_array_equal(a.info.all_draws[name], again.info.all_draws[name])
        # other batch shapes change only the floating-point summation order
        np.testing.assert_allclose(a.info.all_draws[name], b.info.all_draws[name], rtol=1e-8)
    c = boot(power_data, map_fit, key=jax.random.key(8))
    assert not np.array_equal(a.info.all_draws["alpha"], c.info.all_draws["alpha"])


def test_draws_layout_and_bands_serve_prediction(power_data, map_fit):
    r = boot(power_data, map_fit)
    assert r.info.n_failed == 0 and r.ok and r.method == "bootstrap"
    assert r.draws["alpha"].shape == r.sigma.shape == (1, 40)
    assert r.point == map_fit.point  # the full-data MAP optimum
    pred = bs.predict(laws.power_law, r.draws, {"C": np.array([1e23, 1e24])})
    assert pred.shape == (1, 40, 2)
    b = bs.band(pred)  # 90 % by default
    assert b.lo.shape == (2,)
    point = bs.predict(laws.power_law, map_fit.point, {"C": np.array([1e23, 1e24])})
    assert np.all(b.lo <= point) and np.all(point <= b.hi)
    assert np.all(bs.band(pred, 0.5).hi <= b.hi)


def test_standard_errors_match_the_noise(power_data, map_fit):
    # the sd of alpha across resamples is close to the sd across fresh noisy data sets
    r = boot(power_data, map_fit, resamples=150)
    c = power_data.x["C"]
    rng = np.random.default_rng(1)
    alphas = []
    for _ in range(40):
        y = (1.7 + 900.0 * c**-0.15) * np.exp(0.003 * rng.standard_normal(c.size))
        alphas.append(bs.fit_map(laws.power_law, bs.from_arrays(laws.power_law, y=y, C=c)).point["alpha"])
    assert r.std()["alpha"] == pytest.approx(np.std(alphas, ddof=1), rel=0.5)


def test_non_converged_resamples_are_counted_and_excluded(power_data, map_fit):
    with pytest.warns(RuntimeWarning, match="40 of 40 resamples did not converge"):
        r = boot(power_data, map_fit, solver=bs.ParallelLbfgs(max_steps=1), race=None)
    assert r.info.n_failed == 40 and not r.ok
    assert r.draws["alpha"].shape == r.sigma.shape == (1, 0)
    assert r.info.all_draws["alpha"].shape == (40,)


def test_impossible_start_is_reported(power_data, map_fit):
    info = map_fit.info._replace(point={"E": 1.0, "A": float("inf"), "alpha": 0.1}, objective=float("inf"),
                                 converged=False, steps=0, grad_norm=float("nan"), n_starts=1, n_polished=1, n_agree=0)
    bad = dataclasses.replace(map_fit, info=info, problems=("the MAP fit did not converge",))
    with pytest.warns(RuntimeWarning, match="full-data MAP fit did not converge"):
        r = bs.fit_bootstrap(laws.power_law, power_data, key=jax.random.key(0), resamples=5, starts=1, map_fit=bad)
    assert r.info.n_failed == 5 and not r.ok


def test_cluster_and_residual_schemes(power_data, map_fit):
    labels = np.repeat(np.arange(10), 2)  # pairs of neighbouring runs resampled together
    clustered = boot(power_data, map_fit, scheme=bs.Clusters(labels))
    residual = boot(power_data, map_fit, scheme=bs.Residuals())
    for r in (clustered, residual):
        assert r.info.n_failed == 0
        assert 0 < r.std()["alpha"] < 0.05
    with pytest.raises(ValueError, match="one label per row"):
        boot(power_data, map_fit, scheme=bs.Clusters(labels[:-1]))


def test_mix_optimum_over_bootstrap_draws(power_data):
    # a validation mix over draws: two "skills" from one bootstrap, vectorised over draws
    n = np.repeat(np.geomspace(5e7, 5e9, 6), 5)
    d = n * np.tile([3.0, 10.0, 30.0, 100.0, 300.0], 6)
    loss = 1.8 + 480 * n**-0.35 + 2100 * d**-0.37
    data = bs.from_arrays(laws.chinchilla, y=loss, N=n, D=d)
    r = bs.fit_bootstrap(laws.chinchilla, data, key=jax.random.key(2), resamples=6, starts=4)
    other = dict(r.draws, A=r.draws["A"] * 3)
    mix = bs.mix_compute_optimal([(laws.chinchilla, r.draws, 0.5), (laws.chinchilla, other, 0.5)], [1e21])
    assert mix.N.shape == (1, 6 - r.info.n_failed, 1)


def test_compute_optimal_over_bootstrap_draws():
    n = np.repeat(np.geomspace(5e7, 5e9, 6), 5)
    d = n * np.tile([3.0, 10.0, 30.0, 100.0, 300.0], 6)
    rng = np.random.default_rng(3)
    loss = (1.8 + 480 * n**-0.35 + 2100 * d**-0.37) * np.exp(0.003 * rng.standard_normal(n.size))
    data = bs.from_arrays(laws.chinchilla, y=loss, N=n, D=d)
    r = bs.fit_bootstrap(laws.chinchilla, data, key=jax.random.key(1), resamples=24, starts=8)
    alloc = bs.compute_optimal(laws.chinchilla, r.draws, np.array([1e21, 1e23]))
    assert alloc.N.shape == (1, 24 - r.info.n_failed, 2)
    assert r.info.n_failed <= 2
    point = bs.compute_optimal(laws.chinchilla, r.point, np.array([1e21, 1e23])).N
    lo, hi = np.quantile(alloc.N[0], [0.05, 0.95], axis=0)
    assert np.all(lo <= point) and np.all(point <= hi)


SCRIPT = textwrap.dedent(
    """
    import json, sys, jax, numpy as np
    import bayescale as bs
    c = np.geomspace(1e17, 1e23, 20)
    y = (1.7 + 900.0 * c**-0.15) * np.exp(0.003 * np.random.default_rng(0).standard_normal(c.size))
    d = bs.from_arrays(bs.laws.power_law, y=y, C=c)
    r = bs.fit_bootstrap(bs.laws.power_law, d, key=jax.random.key(7), resamples=30, starts=4, lanes=int(sys.argv[1]))
    print(json.dumps({"devices": jax.device_count(), "alpha": r.info.all_draws["alpha"].tolist()}))
    """
)


def _run(devices: int, lanes: int):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(lanes)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_host_devices_give_the_same_answer_as_one():
    one = _run(1, 40)
    two = _run(2, 40)
    assert one["devices"] == 1 and two["devices"] == 2
    # sharding changes only the floating-point summation order; the optimiser stops
    # within ~1e-8 of the optimum, a million times below the bootstrap sd (~1.6 %)
    np.testing.assert_allclose(two["alpha"], one["alpha"], rtol=1e-6)
