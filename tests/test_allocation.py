"""Compute-optimal allocation: closed form, mixes, draws."""

import numpy as np
import pytest

import bayescale as bs
from bayescale import laws

EPOCH = dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672)


def closed_form(p, c):
    a, b = p["alpha"], p["beta"]
    g = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
    return g * (np.asarray(c) / 6) ** (b / (a + b))


def test_matches_hoffmann_closed_form():
    c = np.array([1e19, 1e21, 1e23, 5.88e23, 1e25])
    alloc = bs.compute_optimal(laws.chinchilla, EPOCH, c)
    np.testing.assert_allclose(alloc.N, closed_form(EPOCH, c), rtol=1e-9)
    np.testing.assert_allclose(alloc.D * alloc.N * 6, c, rtol=1e-12)
    assert alloc.interior.all()
    # Epoch: about 18 tokens per parameter at the Chinchilla budget
    assert alloc.tokens_per_param[3] == pytest.approx(18, abs=1.0)


def test_vectorised_over_draws_and_budgets():
    rng = np.random.default_rng(0)
    draws = {k: v * (1 + 0.02 * rng.standard_normal((3, 7))) for k, v in EPOCH.items()}
    c = np.array([1e21, 1e23])
    alloc = bs.compute_optimal(laws.chinchilla, draws, c)
    assert alloc.N.shape == (3, 7, 2)
    expected = closed_form({k: v[..., None] for k, v in draws.items()}, c)
    np.testing.assert_allclose(alloc.N, expected, rtol=1e-8)


def test_mix_of_one_law_and_a_zero_weight_is_that_law():
    other = dict(EPOCH, A=4000.0, alpha=0.5)
    c = np.array([1e20, 1e22])
    mixed = bs.mix_compute_optimal([(laws.chinchilla, EPOCH, 1.0), (laws.chinchilla, other, 0.0)], c)
    np.testing.assert_allclose(mixed.N, closed_form(EPOCH, c), rtol=1e-9)


def test_mix_lies_between_its_components():
    small = dict(EPOCH, A=100.0)  # cheap capacity -> smaller N*
    big = dict(EPOCH, A=3000.0)
    c = 1e22
    n_small = bs.compute_optimal(laws.chinchilla, small, c).N
    n_big = bs.compute_optimal(laws.chinchilla, big, c).N
    n_mix = bs.mix_compute_optimal([(laws.chinchilla, small, 0.5), (laws.chinchilla, big, 0.5)], c).N
    assert n_small < n_mix < n_big
    # and it really minimises the mixed loss
    grid = np.geomspace(n_mix / 3, n_mix * 3, 2001)
    mix_loss = 0.5 * bs.predict(laws.chinchilla, small, dict(N=grid, D=c / (6 * grid))) + 0.5 * bs.predict(
        laws.chinchilla, big, dict(N=grid, D=c / (6 * grid))
    )
    assert grid[np.argmin(mix_loss)] == pytest.approx(float(n_mix), rel=2e-3)


def test_needs_a_law_of_n_and_d():
    with pytest.raises(ValueError, match="needs a law of model size and tokens"):
        bs.compute_optimal(laws.power_law, dict(E=1.0, A=1.0, alpha=0.1), 1e21)


def test_rejects_bad_weights_and_budgets():
    with pytest.raises(ValueError, match="weights"):
        bs.mix_compute_optimal([(laws.chinchilla, EPOCH, -1.0)], 1e21)
    with pytest.raises(ValueError, match="positive"):
        bs.compute_optimal(laws.chinchilla, EPOCH, [0.0])


def test_edge_optimum_is_flagged():
    flat = dict(EPOCH, alpha=1e-6)  # N barely helps: the optimum runs off to tiny N
    c = 1e21
    assert closed_form(flat, c) < np.sqrt(c / 6) * np.exp(-12)  # outside the scanned range
    assert not bs.compute_optimal(laws.chinchilla, flat, c).interior.all()
    assert bs.compute_optimal(laws.chinchilla, EPOCH, c).interior.all()


def test_an_accuracy_law_is_allocated_to_maximise_accuracy():
    """For an accuracy law of N and D the optimum minimises the error 1 - Q, not Q."""
    p = dict(A=300.0, alpha=0.3, B=2000.0, beta=0.35)
    law = bs.laws.tpr.with_chance(0.25)
    alloc = bs.compute_optimal(law, p, 1e21)
    n_grid = np.geomspace(1e7, 1e13, 4001)
    acc = bs.predict(law, p, dict(N=n_grid, D=1e21 / (6 * n_grid)))
    assert alloc.N == pytest.approx(n_grid[np.argmax(acc)], rel=0.01)
    assert float(alloc.loss) == pytest.approx(1 - acc.max(), rel=1e-6)
    # and the compute that reaches a target accuracy is the least on that frontier
    c = bs.compute_to_reach(law, p, float(acc.max()))
    assert c == pytest.approx(1e21, rel=0.01)
