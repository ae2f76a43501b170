"""Out-of-sample checks, pandas tables out: held-out scores, LOO / WAIC / leave-future-out,
backtests and calibrated bands, extrapolation studies, simulation-based calibration.
"""

from bayescale.evaluate.backtest import Backtest, backtest, backtest_score, calibration_report, default_along
from bayescale.evaluate.calibrated import calibrate, forecast, forecast_groups
from bayescale.evaluate.calibration import CoverageStudy, coverage_study
from bayescale.evaluate.comparison import Score, compare, leave_future_out, loo, score_heldout, waic
from bayescale.evaluate.discrepancy import (
    learn_discrepancies,
    learn_discrepancy,
    learn_prior,
    prior_discrepancy,
)
from bayescale.evaluate.extrapolation import Calibration, ExtrapolationStudy, extrapolation_study

__all__ = [
    "Backtest",
    "Calibration",
    "CoverageStudy",
    "ExtrapolationStudy",
    "Score",
    "backtest",
    "backtest_score",
    "calibrate",
    "calibration_report",
    "compare",
    "coverage_study",
    "default_along",
    "extrapolation_study",
    "forecast",
    "forecast_groups",
    "leave_future_out",
    "learn_discrepancies",
    "learn_discrepancy",
    "learn_prior",
    "loo",
    "prior_discrepancy",
    "score_heldout",
    "waic",
]
