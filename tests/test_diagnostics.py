"""The numpy R-hat and ESS of bayescale.fit.diagnostics equal arviz-stats' on synthetic chains.

arviz-stats is the reference the fit room does not import (it stays numpy-only); these
cases cover a non-stationary random walk, iid draws, an odd draw count (the split drops
the middle draw), chains with shifted means, a correlated AR(1) chain and ties.
"""

import numpy as np
import pytest

from bayescale.fit.diagnostics import ess_bulk, ess_tail, rhat

arviz_base = pytest.importorskip("arviz_base")
arviz_stats = pytest.importorskip("arviz_stats")


def _ar1(rng, chains, draws, phi):
    x = np.zeros((chains, draws))
    e = rng.standard_normal((chains, draws))
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def _cases():
    rng = np.random.default_rng(0)
    return {
        "random_walk": np.cumsum(rng.standard_normal((4, 200)), axis=1),
        "iid": rng.standard_normal((2, 500)),
        "odd_draws_shifted_chains": rng.standard_normal((3, 101)) + 0.3 * np.arange(3)[:, None],
        "ar1": _ar1(rng, 2, 301, 0.9),
            "ties": np.round(rng.standard_normal((2, 200)), 1),
        "heavy_tails": rng.standard_t(2, size=(4, 150)),
    }


CASES = _cases()


def _reference(x):
    ds = arviz_base.from_dict({"posterior": {"x": x}})["posterior"].to_dataset()
    return (float(arviz_stats.rhat(ds)["x"]), float(arviz_stats.ess(ds, method="bulk")["x"]),
            float(arviz_stats.ess(ds, method="tail", prob=0.95)["x"]))


@pytest.mark.parametrize("name", list(CASES))
def test_rhat_and_ess_match_arviz_stats(name):
    x = CASES[name]
    r, bulk, tail = _reference(x)
    assert rhat(x) == pytest.approx(r, rel=1e-9)
    assert ess_bulk(x) == pytest.approx(bulk, rel=1e-9)
    assert ess_tail(x) == pytest.approx(tail, rel=1e-9)


def test_the_cases_are_not_trivial():
    # the random walk has not converged and its ESS is tiny; iid draws have R-hat ~ 1 and ESS ~ n
    assert rhat(CASES["random_walk"]) > 1.5 and ess_bulk(CASES["random_walk"]) < 50
    assert rhat(CASES["iid"]) < 1.02 and ess_bulk(CASES["iid"]) > 500
    assert ess_bulk(CASES["ar1"]) < 0.2 * CASES["ar1"].size


def test_one_chain_ess_matches_and_its_rhat_is_the_split_rhat():
    """One chain: ESS as arviz-stats; R-hat compares its two halves (arviz-stats 1.3 gives NaN)."""
    x = np.random.default_rng(1).standard_normal((1, 400))
    _, bulk, tail = _reference(x)
    assert ess_bulk(x) == pytest.approx(bulk, rel=1e-9)
    assert ess_tail(x) == pytest.approx(tail, rel=1e-9)
    assert 0.98 < rhat(x) < 1.02  # iid: the halves agree (R-hat can dip below 1)
    assert rhat(np.cumsum(x, axis=1)) > 1.1  # a random walk's halves do not


def test_too_few_draws_give_nan():
    x = np.arange(6.0).reshape(2, 3)
    assert np.isnan(rhat(x)) and np.isnan(ess_bulk(x)) and np.isnan(ess_tail(x))
