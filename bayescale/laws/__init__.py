"""The declaration: :class:`Law`, its covariates and responses, and the papers' laws.

jax and numpyro.distributions only: nothing here knows how a law is fitted.
"""

from bayescale.laws.compose import compose
from bayescale.laws.law import Accuracy, ChanceAccuracy, Check, Covariate, Law, Loss, Response, Role
from bayescale.laws.library import (
    LAWS,
    bnsl,
    chinchilla,
    direct,
    direct_ceiling,
    get_law,
    isoflop,
    pass_at_k,
    power_law,
    pure_power_law,
    stage2_linear,
    stage2_logistic,
    tpr,
    two_stage_linear,
    two_stage_logistic,
)

__all__ = [
    "LAWS",
    "Accuracy",
    "ChanceAccuracy",
    "Check",
    "Covariate",
    "Law",
    "Loss",
    "Response",
    "Role",
    "bnsl",
    "chinchilla",
    "compose",
    "direct",
    "direct_ceiling",
    "get_law",
    "isoflop",
    "pass_at_k",
    "power_law",
    "pure_power_law",
    "stage2_linear",
    "stage2_logistic",
    "tpr",
    "two_stage_linear",
    "two_stage_logistic",
]
