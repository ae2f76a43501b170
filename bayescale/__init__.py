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

# laws: the declaration
from bayescale import laws

# convert: ArviZ and files
from bayescale.convert import SavedFitError, load, save, to_datatree

# derive: functions of a fit's draws
from bayescale.derive import (
    Allocation,
    Band,
    Discrepancy,
    Forecast,
    band,
    compute_optimal,
    compute_to_reach,
    forecast,
    mix_compute_optimal,
    optimal_bands,
    predict,
    predict_fit_space,
    reach_bands,
)

# evaluate: out-of-sample checks
from bayescale.evaluate import compare, leave_future_out, loo, waic

# fit: data, the Fit, the fitters
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
from bayescale.laws import (
    LAWS,
    Accuracy,
    ChanceAccuracy,
    Covariate,
    Law,
    Loss,
    compose,
    get_law,
)

# tables: pandas in, Data out
from bayescale.tables import datasets, from_arrays, from_frame, two_stage_data

__version__ = "0.2.0"

__all__ = [
    "LAWS",
    "Accuracy",
    "Allocation",
    "Band",
    "ChanceAccuracy",
    "Clusters",
    "Covariate",
    "Data",
    "DataError",
    "Discrepancy",
    "Fit",
    "Fitter",
    "Forecast",
    "Gaussian",
    "Huber",
    "HuberLikelihood",
    "Law",
    "Loss",
    "OptaxLbfgs",
    "Pairs",
    "ParallelLbfgs",
    "Race",
    "Residuals",
    "SavedFitError",
    "SquaredError",
    "StudentT",
    "band",
    "compare",
    "compose",
    "compute_optimal",
    "compute_to_reach",
    "datasets",
    "fit_bootstrap",
    "fit_map",
    "fit_nuts",
    "fit_two_stage",
    "forecast",
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
