"""Out-of-sample checks, pandas tables out: held-out scores, LOO / WAIC / leave-future-out,
backtests and calibrated bands, extrapolation studies, simulation-based calibration.
"""

from bayescale.evaluate.backtest import Backtest, backtest, backtest_score, calibration_report, learn_discrepancy
from bayescale.evaluate.calibration import CoverageStudy, coverage_study
from bayescale.evaluate.comparison import Score, compare, leave_future_out, loo, score_heldout, waic
from bayescale.evaluate.extrapolation import Calibration, ExtrapolationStudy, extrapolation_study

__all__ = [
    "Backtest",
    "Calibration",
    "CoverageStudy",
    "ExtrapolationStudy",
    "Score",
    "backtest",
    "backtest_score",
    "calibration_report",
    "compare",
    "coverage_study",
    "extrapolation_study",
    "leave_future_out",
    "learn_discrepancy",
    "loo",
    "score_heldout",
    "waic",
]
