"""bayescale: fit scaling laws of language models and say how sure the fit is.

The public API, grouped by room (each room imports only from those above it)::

    laws      the declaration: Law, Covariate, responses, the papers' laws
    fit       Data, the Fit every fitter returns, fit_map / fit_bootstrap / fit_nuts
    tables    from_frame and the bundled data sets (where pandas meets the arrays)
    convert   ArviZ DataTree, save / load
    derive    predict, forecast, bands, compute-optimal allocation
    evaluate  LOO / WAIC / leave-future-out, backtests, extrapolation studies

Importing bayescale creates no device arrays, changes no global JAX setting and does not
import matplotlib (``bayescale.plot`` does, when imported).  Every entry point runs in
float64 internally.
"""

import importlib
from typing import TYPE_CHECKING

from bayescale import errors, laws
from bayescale.errors import (
    ArgumentError,
    ArgumentTypeError,
    BayescaleError,
    ExpressionError,
    Interrupted,
    MemoryBudgetError,
    NotIdentifiedError,
    OutputError,
)
from bayescale.fit import (
    Clusters,
    Data,
    DataError,
    Fit,
    Fitter,
    Gaussian,
    Huber,
    HuberLikelihood,
    OptaxLbfgs,
    Pairs,
    ParallelLbfgs,
    Race,
    Residuals,
    SquaredError,
    StudentT,
    fit_bootstrap,
    fit_map,
    fit_nuts,
    fit_two_stage,
)
from bayescale.laws import LAWS, Accuracy, ChanceAccuracy, Covariate, Law, Loss, compose, get_law

if TYPE_CHECKING:
    from bayescale.convert import SavedFitError, load, save, to_datatree
    from bayescale.derive import (
        Allocation,
        Band,
        Discrepancy,
        Forecast,
        band,
        compute_optimal,
        compute_to_reach,
        mix_compute_optimal,
        optimal_bands,
        predict,
        predict_fit_space,
        reach_bands,
    )
    from bayescale.evaluate import calibrate, compare, forecast, forecast_groups, leave_future_out, loo, waic
    from bayescale.tables import datasets, from_arrays, from_frame, two_stage_data

# laws and fit are imported eagerly; tables, convert, derive and evaluate on first use, so that
# ``import bayescale.laws, bayescale.fit`` (which runs this file first) leaves pandas, arviz and
# xarray unloaded.
_LAZY = {
    "bayescale.tables": ("datasets", "from_arrays", "from_frame", "two_stage_data"),
    "bayescale.convert": ("SavedFitError", "load", "save", "to_datatree"),
    "bayescale.derive": ("Allocation", "Band", "Discrepancy", "Forecast", "band", "compute_optimal",
                         "compute_to_reach", "mix_compute_optimal", "optimal_bands", "predict",
                         "predict_fit_space", "reach_bands"),
    "bayescale.evaluate": ("calibrate", "compare", "forecast", "forecast_groups", "leave_future_out", "loo", "waic"),
}
_ROOM_OF = {name: room for room, names in _LAZY.items() for name in names}


def __getattr__(name: str):
    room = _ROOM_OF.get(name)
    if room is None:
        raise AttributeError(f"module 'bayescale' has no attribute {name!r}")
    value = getattr(importlib.import_module(room), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__version__ = "0.2.0"

__all__ = [
    "LAWS",
    "Accuracy",
    "Allocation",
    "Band",
    "ChanceAccuracy",
    "Clusters",
    "ArgumentError",
    "ArgumentTypeError",
    "BayescaleError",
    "Covariate",
    "Data",
    "DataError",
    "Discrepancy",
    "ExpressionError",
    "Fit",
    "Fitter",
    "Forecast",
    "Gaussian",
    "Huber",
    "Interrupted",
    "HuberLikelihood",
    "Law",
    "Loss",
    "MemoryBudgetError",
    "NotIdentifiedError",
    "OptaxLbfgs",
    "OutputError",
    "Pairs",
    "ParallelLbfgs",
    "Race",
    "Residuals",
    "SavedFitError",
    "SquaredError",
    "StudentT",
    "band",
    "calibrate",
    "compare",
    "compose",
    "compute_optimal",
    "compute_to_reach",
    "datasets",
    "errors",
    "fit_bootstrap",
    "fit_map",
    "fit_nuts",
    "fit_two_stage",
    "forecast",
    "forecast_groups",
    "from_arrays",
    "from_frame",
    "get_law",
    "laws",
    "leave_future_out",
    "load",
    "loo",
    "mix_compute_optimal",
    "optimal_bands",
    "predict",
    "predict_fit_space",
    "reach_bands",
    "save",
    "to_datatree",
    "two_stage_data",
    "waic",
]
