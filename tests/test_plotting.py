"""Every plot kind draws on any fit (MAP, bootstrap, NUTS, saved) and writes a real image."""

import jax
import matplotlib
import numpy as np
import pytest

import bayescale as bs
from bayescale import laws
from bayescale import plot as plotting
from bayescale.derive.skills import isoflop_analysis, isoflop_grid
from bayescale.tables import condition

matplotlib.use("Agg")


def _png(fig, path):
    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 5_000
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.fixture(scope="module")
def gadre():
    runs = bs.datasets.gadre_long()
    table = runs[(runs.train_dataset == "rpj") & (runs.val_set == "paloma_c4_en")]
    data = bs.from_frame(table, laws.chinchilla, x=["N", "D"], y="loss")
    later = condition(data, "N * D > 1e20")
    post = bs.fit_nuts(laws.chinchilla, data.select(~later), key=jax.random.key(0), chains=2, warmup=150, draws=150)
    return post, data.select(later)


def test_forecast_with_heldout_runs_and_groups(gadre, tmp_path):
    post, held = gadre
    ax = plotting.plot_forecast(post, heldout=held, along="D", key=jax.random.key(0))
    labels = ax.get_legend_handles_labels()[1]
    assert "held-out runs" in labels and sum(label.startswith("N=") for label in labels) == 6
    assert ax.get_xscale() == "log" and "tokens" in ax.get_xlabel()
    _png(ax.figure, tmp_path / "f.png")


def test_forecast_of_one_covariate_draws_both_bands(tmp_path):
    c = np.geomspace(1e18, 1e21, 10)
    y = 1.7 + 900.0 * c**-0.15 * np.exp(0.01 * np.random.default_rng(0).standard_normal(10))
    fit = bs.fit_map(laws.power_law, bs.from_arrays(laws.power_law, y=y, C=c))
    ax = plotting.plot_forecast(fit, upto=1e23, key=jax.random.key(0))
    labels = ax.get_legend_handles_labels()[1]
    assert "90% predictive band" in labels and "90% Laplace band" in labels  # a MAP fit's band says what it is
    assert ax.get_xlim()[1] >= 1e23
    _png(ax.figure, tmp_path / "g.png")


def test_residuals_pairs_and_optimal(gadre, tmp_path):
    post, _ = gadre
    _png(plotting.plot_residuals(post, along="D").figure, tmp_path / "r.png")
    fig = plotting.plot_pairs(post, key=jax.random.key(0))
    assert len([a for a in fig.axes if a.get_visible()]) == 15  # 5 diagonals + 10 pairs
    _png(fig, tmp_path / "p.png")
    _png(plotting.plot_optimal(post).figure, tmp_path / "o.png")


def test_pairs_need_draws(tmp_path):
    c = np.geomspace(1e18, 1e21, 10)
    data = bs.from_arrays(laws.power_law, y=(1.7 + 900.0 * c**-0.15) * np.exp(0.01 * np.sin(c)), C=c)
    point = bs.fit_map(laws.power_law, data, laplace_draws=0)
    with pytest.raises(ValueError, match=r"pair plots need draws \(MAP's Laplace draws, bootstrap or NUTS\)"):
        plotting.plot_pairs(point, key=jax.random.key(0))
    fig = plotting.plot_pairs(bs.fit_map(laws.power_law, data), key=jax.random.key(0))  # the Laplace draws
    _png(fig, tmp_path / "laplace_pairs.png")


def test_isoflop_and_reliability(tmp_path):
    truth = dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672)
    grid = isoflop_grid(laws.chinchilla, truth, np.geomspace(6e18, 3e21, 3), sizes=6, noise=0.005,
                        key=jax.random.key(1))
    assert len(grid) == 18 and set(grid.columns) == {"C", "N", "loss"}
    iso = isoflop_analysis(grid, fitter=bs.Fitter.of(bs.fit_bootstrap, resamples=30, starts=4), key=jax.random.key(3))
    assert set(iso.curves) == set(iso.vertices.C)
    _png(plotting.plot_isoflop(grid, iso).figure, tmp_path / "i.png")
    ax = plotting.plot_reliability([0.5, 0.8, 0.9], [[0.4, 0.7, 0.85], [0.5, 0.8, 0.9]], labels=["plain", "calibrated"])
    _png(ax.figure, tmp_path / "c.png")
