"""bayescale: fit scaling laws of language models and say how sure the fit is.

The public API, hand-curated::

    from bayescale import laws, from_frame, fit_map, predict, compute_optimal

Importing bayescale creates no device arrays, changes no global JAX setting and
does not import matplotlib.  Every entry point runs in float64 internally.
"""

from bayescale import datasets, laws
from bayescale.allocation import Allocation, compute_optimal, mix_compute_optimal
from bayescale.bands import Band, band
from bayescale.bootstrap import (
    BootstrapResult,
    Clusters,
    Pairs,
    Race,
    Residuals,
    fit_bootstrap,
)
from bayescale.comparison import compare, leave_future_out, loo, waic
from bayescale.conversion import to_datatree
from bayescale.data import Data, DataError, from_arrays, from_frame
from bayescale.forecast import (
    Draws,
    Forecast,
    compute_to_reach,
    draws_of,
    forecast,
    optimal_bands,
)
from bayescale.law import Accuracy, ChanceAccuracy, Covariate, Law, Loss
from bayescale.laws import LAWS, compose, get_law
from bayescale.model import Gaussian, HuberLikelihood, StudentT
from bayescale.nuts import NutsResult, fit_nuts
from bayescale.objective import Huber, SquaredError
from bayescale.optimization import MapResult, Solver, fit_map
from bayescale.prediction import predict, predict_fit_space
from bayescale.saved import SavedFit, SavedFitError, load, save
from bayescale.staged import fit_two_stage

__version__ = "0.1.0"

__all__ = [
    "SavedFit",
    "SavedFitError",
    "load",
    "save",
    "LAWS",
    "Draws",
    "Forecast",
    "Gaussian",
    "HuberLikelihood",
    "NutsResult",
    "StudentT",
    "compare",
    "compute_to_reach",
    "draws_of",
    "fit_nuts",
    "forecast",
    "leave_future_out",
    "loo",
    "optimal_bands",
    "to_datatree",
    "waic",
    "Accuracy",
    "Allocation",
    "Band",
    "BootstrapResult",
    "Clusters",
    "Pairs",
    "Race",
    "Residuals",
    "fit_bootstrap",
    "ChanceAccuracy",
    "Covariate",
    "Data",
    "DataError",
    "Huber",
    "Law",
    "Loss",
    "MapResult",
    "Solver",
    "SquaredError",
    "band",
    "compose",
    "compute_optimal",
    "datasets",
    "fit_map",
    "fit_two_stage",
    "from_arrays",
    "from_frame",
    "get_law",
    "laws",
    "mix_compute_optimal",
    "predict",
    "predict_fit_space",
]
