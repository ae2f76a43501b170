"""Functions of a fit's draws: predictions, bands, forecasts, compute-optimal allocation."""

from bayescale.derive.allocation import (
    Allocation,
    compute_optimal,
    compute_to_reach,
    mix_compute_optimal,
    optimal_bands,
    paired,
    reach_bands,
)
from bayescale.derive.bands import Band, band
from bayescale.derive.discrepancy import DEFAULT_PRIORS, Discrepancy, DiscrepancyPrior, distance_beyond, prior_for
from bayescale.derive.forecast import Forecast, forecast, predictive_draws
from bayescale.derive.prediction import predict, predict_fit_space
from bayescale.derive.skills import IsoflopAnalysis, isoflop_analysis, isoflop_grid, mix_curve

__all__ = [
    "DEFAULT_PRIORS",
    "Allocation",
    "Band",
    "Discrepancy",
    "DiscrepancyPrior",
    "Forecast",
    "IsoflopAnalysis",
    "band",
    "compute_optimal",
    "compute_to_reach",
    "distance_beyond",
    "forecast",
    "isoflop_analysis",
    "isoflop_grid",
    "mix_compute_optimal",
    "mix_curve",
    "optimal_bands",
    "paired",
    "predict",
    "predict_fit_space",
    "predictive_draws",
    "prior_for",
    "reach_bands",
]
