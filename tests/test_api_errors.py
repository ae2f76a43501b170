"""Clear API errors: every bad argument ends in one bayescale error line naming it (issue 13, parts 6-7).

One table of (call, error class, message pattern).  Every error is a ValueError or a TypeError
(so ``except ValueError`` keeps working) and its message is one line; Ctrl-C inside a backtest
or a coverage study ends in one :class:`~bayescale.errors.Interrupted` line counting cut-offs
or data sets.
"""

from __future__ import annotations

import dataclasses
import importlib

import jax
import numpy as np
import numpyro.distributions as dist
import pandas as pd
import pytest

import bayescale as bs
from bayescale import laws
from bayescale.derive import mix_curve
from bayescale.errors import ArgumentError, ArgumentTypeError, BayescaleError, Interrupted
from bayescale.evaluate import backtest, coverage_study

C = np.geomspace(3e18, 6e21, 24)
EPOCH = dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672)
MISSPELT = {**{k: v for k, v in EPOCH.items() if k != "beta"}, "Beta": 0.3672}
KEY = jax.random.key(0)
NAN = dist.Normal(np.nan, 1.0, validate_args=False)  # numpyro itself refuses a concrete NaN when validating


def _direct_runs():
    z = np.log(40.0) - 0.06 * np.log(C) + 0.03 * np.sin(np.arange(C.size))
    return np.exp(-np.exp(z))


@pytest.fixture(scope="session")
def direct_data():
    return bs.from_arrays(laws.direct, y=_direct_runs(), C=C)


@pytest.fixture(scope="session")
def power_fit():
    y = 1.7 + 900.0 * C**-0.15 * np.exp(0.01 * np.sin(np.arange(C.size)))
    return bs.fit_map(laws.power_law, bs.from_arrays(laws.power_law, y=y, C=C), keep=4)


def _law(**changes):
    return lambda: dataclasses.replace(laws.power_law, **changes)


def _priors(**priors):
    return lambda: laws.power_law.with_priors(**priors)


# (id, call of (fit, data), error class, message pattern)
CASES = [
    ("sigma parameter", lambda f, d: _law(params=("E", "A", "sigma"))(), ArgumentError,
     r"parameter name 'sigma' is reserved"),
    ("obs parameter", lambda f, d: _law(params=("E", "obs", "alpha"))(), ArgumentError, r"'obs' is reserved"),
    ("non-identifier parameter", lambda f, d: _law(params=("E", "A", "al pha"))(), ArgumentError,
     r"'al pha' must be a Python identifier"),
    ("duplicate parameter", lambda f, d: _law(params=("E", "A", "A"))(), ArgumentError, r"'A' is declared twice"),
    ("parameter named like a covariate", lambda f, d: _law(params=("E", "A", "C"))(), ArgumentError,
     r"parameter 'C' has the name of a covariate"),
    ("covariate named y", lambda f, d: _law(covariates=(bs.Covariate("y"),))(), ArgumentError,
     r"covariate name 'y' is reserved"),
    ("NaN prior", lambda f, d: _priors(alpha=NAN)(), ArgumentError, r"prior of 'alpha' \(Normal\) has loc = nan"),
    ("inf prior", lambda f, d: _priors(E=dist.Normal(0.0, np.inf))(), ArgumentError, r"prior of 'E' .*scale = inf"),
    ("non-Distribution prior", lambda f, d: _priors(alpha=0.5)(), ArgumentTypeError,
     r"prior of 'alpha' must be a numpyro distribution"),
    ("batch-shaped prior", lambda f, d: _priors(alpha=dist.Normal(np.zeros(3), 1.0))(), ArgumentError,
     r"prior of 'alpha' .*batch shape \(3,\)"),
    ("discrete prior", lambda f, d: _priors(alpha=dist.Poisson(1.0))(), ArgumentError, r"prior of 'alpha' .*support"),
    ("unknown prior name", lambda f, d: _priors(Alpha=dist.Normal(0.0, 1.0))(), ArgumentError,
     r"no parameter 'Alpha'\. Did you mean 'alpha'\?"),
    ("forecast at C=0", lambda f, d: bs.forecast(f, {"C": [1e22, 0.0]}, key=KEY), ArgumentError,
     r"^forecast: C must be > 0 \(the law takes its log\); got 0 at point 1$"),
    ("forecast at C=-1", lambda f, d: bs.forecast(f, {"C": -1.0}, key=KEY), ArgumentError,
     r"C must be > 0 .*got -1 at point 0"),
    ("forecast at C=nan", lambda f, d: bs.forecast(f, {"C": [1e22, 1e23, np.nan]}, key=KEY), ArgumentError,
     r"C must be finite .*got nan at point 2"),
    ("predict at C=inf", lambda f, d: bs.predict(laws.power_law, f.point, {"C": np.inf}), ArgumentError,
     r"^predict: C must be finite"),
    ("compute_optimal at compute 0", lambda f, d: bs.compute_optimal(laws.chinchilla, EPOCH, [1e21, 0.0]),
     ArgumentError, r"^compute_optimal: compute must be positive \(> 0\); got 0 at point 1$"),
    ("compute_optimal at compute -1", lambda f, d: bs.compute_optimal(laws.chinchilla, EPOCH, -1.0), ArgumentError,
     r"compute must be positive"),
    ("compute_to_reach an accuracy above 1",
     lambda f, d: bs.compute_to_reach(laws.direct, {p: 1.0 for p in laws.direct.params}, 1.2), ArgumentError,
     r"target 1\.2 is outside what law 'direct' can reach"),
    ("compute_to_reach below chance",
     lambda f, d: bs.compute_to_reach(laws.direct.with_chance(0.25), {p: 1.0 for p in laws.direct.params}, 0.2),
     ArgumentError, r"at or below chance"),
    ("interval 1.5", lambda f, d: bs.forecast(f, {"C": 1e22}, key=KEY, interval=1.5), ArgumentError,
     r"^forecast: interval must lie strictly between 0 and 1"),
    ("reach_bands interval 0", lambda f, d: bs.reach_bands(f, 2.0, interval=0), ArgumentError, r"interval"),
    ("DataFrame as fit", lambda f, d: bs.forecast(pd.DataFrame({"C": C}), {"C": 1e22}, key=KEY), ArgumentTypeError,
     r"^forecast: fit must be a Fit .*got DataFrame$"),
    ("string key", lambda f, d: bs.forecast(f, {"C": 1e22}, key="0"), ArgumentTypeError,
     r"forecast: key must be one JAX key"),
    ("int key", lambda f, d: bs.forecast(f, {"C": 1e22}, key=0), ArgumentTypeError, r"key must be one JAX key"),
    ("missing covariate in x", lambda f, d: bs.forecast(f, {"c": 1e22}, key=KEY), ArgumentError,
     r"x has no covariate 'C'; law 'power_law' reads C\. Did you mean 'c'\?"),
    ("text in x", lambda f, d: bs.predict(laws.power_law, f.point, {"C": "1e22"}), ArgumentTypeError,
     r"x\['C'\] must be numbers"),
    ("None parameter", lambda f, d: bs.predict(laws.chinchilla, dict(EPOCH, alpha=None), {"N": 1, "D": 1}),
     ArgumentTypeError, r"params\['alpha'\] must be numbers"),
    ("misspelt parameter", lambda f, d: bs.predict(laws.chinchilla, MISSPELT, {"N": 1, "D": 1}), ArgumentError,
     r"params has no parameter 'beta'; .*Did you mean 'Beta'\?"),
    ("mix weight outside [0, 1]", lambda f, d: mix_curve(f, f, [0.5, 2.0], 1e21), ArgumentError,
     r"weights must lie in \[0, 1\]"),
    ("backtest along a typo", lambda f, d: backtest(laws.direct, d, along="c"), ArgumentError,
     r"along must be a covariate .*Did you mean 'C'\?"),
    ("backtest of a DataFrame", lambda f, d: backtest(laws.direct, pd.DataFrame({"C": C})), ArgumentTypeError,
     r"backtest: data must be Data"),
    ("backtest starts=0", lambda f, d: backtest(laws.direct, d, starts=0), ArgumentError, r"starts must be at least 1"),
]


@pytest.mark.parametrize(("call", "error", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument_is_one_named_line(call, error, pattern, power_fit, direct_data):
    with pytest.raises(error, match=pattern) as info:
        call(power_fit, direct_data)
    assert isinstance(info.value, (ValueError, TypeError)) and isinstance(info.value, BayescaleError)
    assert "\n" not in str(info.value)


def test_array_likes_are_accepted(power_fit):
    as_list = bs.forecast(power_fit, {"C": [1e22, 1e23]}, key=KEY)
    as_array = bs.forecast(power_fit, {"C": np.array([1e22, 1e23])}, key=KEY)
    as_series = bs.forecast(power_fit, {"C": pd.Series([1e22, 1e23])}, key=KEY)
    np.testing.assert_array_equal(as_list.estimate, as_array.estimate)
    np.testing.assert_array_equal(as_series.estimate, as_array.estimate)
    assert np.isfinite(as_array.estimate).all()


def test_ctrl_c_inside_a_backtest_counts_cut_offs(monkeypatch, direct_data):
    module = importlib.import_module("bayescale.evaluate.backtest")  # the package's `backtest` is the function
    real, calls = module._cutoff_fit, []

    def interrupted_after_one(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    total = len(backtest(laws.direct, direct_data).origins)
    monkeypatch.setattr(module, "_cutoff_fit", interrupted_after_one)
    with pytest.raises(Interrupted, match=rf"^interrupted after 1 of {total} cut-offs$"):
        backtest(laws.direct, direct_data)
    assert total > 1


def test_ctrl_c_inside_a_coverage_study_counts_data_sets(monkeypatch):
    module = importlib.import_module("bayescale.evaluate.calibration")
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "_simulate_and_fit", interrupted)
    with pytest.raises(Interrupted, match=r"^interrupted after 0 of 3 data sets$"):
        coverage_study(laws.power_law, {"C": C}, {"C": [1e23]}, key=KEY, datasets=3)
