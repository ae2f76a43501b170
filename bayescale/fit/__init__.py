"""Fitting: :class:`Data`, the :class:`Fit` every fitter returns, and the fitters.

numpy, jax, optax and numpyro only: never pandas, arviz or matplotlib.
"""

from bayescale.fit.bootstrap import Clusters, Pairs, Race, Residuals, Scheme, fit_bootstrap
from bayescale.fit.data import Data, DataError
from bayescale.fit.lbfgs import OptaxLbfgs, ParallelLbfgs, Solver
from bayescale.fit.map import fit_map, starts_for
from bayescale.fit.model import Gaussian, HuberLikelihood, Likelihood, StudentT, model, pointwise_log_likelihood
from bayescale.fit.nuts import fit_nuts
from bayescale.fit.objective import Huber, Objective, SquaredError, default_objective
from bayescale.fit.precision import float64
from bayescale.fit.result import BootstrapInfo, ComposedInfo, Fit, Fitter, MapInfo, Mode, NutsInfo, combine_stages
from bayescale.fit.staged import fit_two_stage

__all__ = [
    "BootstrapInfo",
    "Clusters",
    "ComposedInfo",
    "Data",
    "DataError",
    "Fit",
    "Fitter",
    "Gaussian",
    "Huber",
    "HuberLikelihood",
    "Likelihood",
    "MapInfo",
    "Mode",
    "NutsInfo",
    "Objective",
    "OptaxLbfgs",
    "Pairs",
    "ParallelLbfgs",
    "Race",
    "Residuals",
    "Scheme",
    "Solver",
    "SquaredError",
    "default_objective",
    "StudentT",
    "combine_stages",
    "fit_bootstrap",
    "fit_map",
    "fit_nuts",
    "fit_two_stage",
    "float64",
    "model",
    "pointwise_log_likelihood",
    "starts_for",
]
