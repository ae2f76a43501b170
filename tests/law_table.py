"""One table of library laws drives the generic tests.

Each case: the law, true parameters, a covariate design, an independent NumPy
reference of the law in natural units, and how closely a fit to noisy synthetic
data must recover the parameters (``rtol``; ``None`` checks the curve only, for
laws whose parameters are weakly identified, like a broken power law's break).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from bayescale import laws


@dataclasses.dataclass(frozen=True)
class Case:
    law: object
    truth: dict
    design: Callable[[], dict]
    reference: Callable[[dict, dict], np.ndarray]
    rtol: float | None = 0.05
    chance: float | None = None
    noise: float = 0.005

    @property
    def id(self) -> str:
        return self.law.name

    def bound_law(self):
        return self.law.with_chance(self.chance) if self.chance is not None else self.law


def _mesh(**axes):
    grids = np.meshgrid(*axes.values(), indexing="ij")
    return {k: g.ravel() for k, g in zip(axes, grids)}


def _nd_design():
    n = np.geomspace(5e7, 1e10, 8)
    tpr = np.array([2.0, 8.0, 20.0, 80.0, 300.0])
    m = _mesh(N=n, tpr=tpr)
    return {"N": m["N"], "D": m["N"] * m["tpr"]}


def _acc(q_prime, chance):
    return chance + (1 - chance) * q_prime


CASES = [
    Case(
        laws.chinchilla,
        dict(E=1.8172, A=477.8, B=2143.9, alpha=0.3473, beta=0.3672),
        _nd_design,
        lambda p, x: p["E"] + p["A"] * x["N"] ** -p["alpha"] + p["B"] * x["D"] ** -p["beta"],
        rtol=0.08,
        noise=0.002,
    ),
    Case(
        laws.power_law,
        dict(E=1.7, A=1000.0, alpha=0.15),
        lambda: {"C": np.geomspace(1e17, 1e23, 15)},
        lambda p, x: p["E"] + p["A"] * x["C"] ** -p["alpha"],
        rtol=0.1,
        noise=0.002,
    ),
    Case(
        laws.pure_power_law,
        dict(A=50.0, alpha=0.05),
        lambda: {"C": np.geomspace(1e17, 1e23, 15)},
        lambda p, x: p["A"] * x["C"] ** -p["alpha"],
    ),
    Case(
        laws.direct,
        dict(A=100.0, alpha=0.1),
        lambda: {"C": np.geomspace(1e17, 1e23, 15)},
        lambda p, x: _acc(np.exp(-p["A"] * x["C"] ** -p["alpha"]), 0.25),
        chance=0.25,
        rtol=0.1,
    ),
    Case(
        laws.direct_ceiling,
        dict(E=0.2, A=300.0, alpha=0.15),
        lambda: {"C": np.geomspace(1e16, 1e23, 20)},
        lambda p, x: _acc(np.exp(-(p["A"] * x["C"] ** -p["alpha"] + p["E"])), 0.25),
        chance=0.25,
        rtol=0.15,
        noise=0.002,
    ),
    Case(
        laws.bnsl,
        dict(a=0.05, b=10.0, c0=0.05, c1=0.1, log_d1=46.0, f1=0.5),
        lambda: {"C": np.geomspace(1e17, 1e23, 30)},
        lambda p, x: _acc(
            np.exp(
                -(
                    p["a"]
                    + p["b"]
                    * x["C"] ** -p["c0"]
                    * (1 + (x["C"] / np.exp(p["log_d1"])) ** (1 / p["f1"])) ** (-p["c1"] * p["f1"])
                )
            ),
            0.0,
        ),
        rtol=None,
    ),
    Case(
        laws.tpr,
        dict(A=50.0, alpha=0.2, B=200.0, beta=0.2),
        _nd_design,
        lambda p, x: np.exp(-(p["A"] * x["N"] ** -p["alpha"] + p["B"] * x["D"] ** -p["beta"])),
        rtol=0.1,
        noise=0.002,
    ),
    Case(
        laws.pass_at_k,
        dict(A=np.exp(9.9), alpha=-0.2, beta=-1.0, delta=0.01),
        lambda: (lambda m: {"C": m["C"], "k": m["k"]})(
            _mesh(C=np.geomspace(1e18, 1e22, 7), k=np.array([1.0, 2, 4, 8, 16, 32]))
        ),
        lambda p, x: np.exp(
            -np.exp(
                np.log(p["A"])
                + p["alpha"] * np.log(x["C"])
                + p["beta"] * np.log(x["k"])
                + p["delta"] * np.log(x["C"]) * np.log(x["k"])
            )
        ),
        rtol=0.05,
        noise=0.002,
    ),
    Case(
        laws.isoflop,
        dict(L_star=2.5, N_star=1e9, k=0.05),
        lambda: {"N": np.geomspace(1e8, 1e10, 9)},
        lambda p, x: p["L_star"] + p["k"] * (np.log(x["N"]) - np.log(p["N_star"])) ** 2,
        rtol=0.05,
        noise=0.001,
    ),
    Case(
        laws.stage2_linear,
        dict(a=1.5, b=-0.35),
        lambda: {"L": np.linspace(2.2, 3.5, 15)},
        lambda p, x: p["a"] + p["b"] * x["L"],
    ),
    Case(
        laws.stage2_logistic,
        dict(a=0.6, k=-4.0, l0=2.8, b=0.25),
        lambda: {"L": np.linspace(2.0, 3.8, 25)},
        lambda p, x: p["a"] / (1 + np.exp(-p["k"] * (x["L"] - p["l0"]))) + p["b"],
        rtol=0.1,
        noise=0.002,
    ),
    Case(
        laws.two_stage_linear,
        dict(A=20.0, alpha=0.05, a=1.2, b=-0.3),
        lambda: {"C": np.geomspace(1e17, 1e23, 15)},
        lambda p, x: p["a"] + p["b"] * p["A"] * x["C"] ** -p["alpha"],
        rtol=None,
    ),
    Case(
        laws.two_stage_logistic,
        dict(A=20.0, alpha=0.05, a=0.6, k=-4.0, l0=2.2, b=0.25),
        lambda: {"C": np.geomspace(1e17, 1e23, 15)},
        lambda p, x: p["a"] / (1 + np.exp(-p["k"] * (p["A"] * x["C"] ** -p["alpha"] - p["l0"]))) + p["b"],
        rtol=None,
    ),
]
