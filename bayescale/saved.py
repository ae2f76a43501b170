"""Saved fits: ArviZ NetCDF for the draws, plus what it takes to trust them later.

:func:`save` writes any fit result (MAP, bootstrap, NUTS) as the ArviZ DataTree of
:func:`bayescale.to_datatree` (posterior draws, observed data, pointwise log
likelihood) with attributes naming the law, its chance level, the likelihood and the
fit's diagnostics.  :func:`load` reads it back as a :class:`SavedFit`, which
:func:`bayescale.forecast`, :func:`bayescale.optimal_bands`, the plots and the CLI's
``--from`` accept like the original result -- without refitting.

A saved fit is only as good as the law it was fitted with.  The file keeps a
*probe*: the law evaluated (in fit space) at the first saved draws and at the
observed covariates.  :func:`load` re-evaluates the law it finds under that name
and refuses the file if the law is unknown, declares other parameters, covariates
or response, or computes something else at the probe.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from bayescale._io import atomic_write
from bayescale.data import Data
from bayescale.forecast import Draws, draws_of, fitted_data
from bayescale.law import ChanceAccuracy, Law
from bayescale.model import Gaussian, HuberLikelihood, StudentT

__all__ = ["SavedFit", "SavedFitError", "load", "save"]

FORMAT = "bayescale-fit/1"
_PROBE_DRAWS = 3
_PROBE_RTOL = 1e-9
_LIKELIHOODS = {"Gaussian": Gaussian, "StudentT": StudentT, "HuberLikelihood": HuberLikelihood}


class SavedFitError(ValueError):
    """A saved fit that cannot be used: unreadable, not a bayescale fit, or its law changed."""


@dataclasses.dataclass(frozen=True)
class SavedFit:
    """A fit read back from disk: its draws, the data it was fitted to, its diagnostics.

    ``kind`` is ``"map"``, ``"bootstrap"`` or ``"nuts"``.  ``problems`` lists why the
    original fit was not trusted (empty when it was).
    """

    draws: Draws
    data: Data | None
    diagnostics: dict
    problems: tuple[str, ...]
    path: str

    @property
    def law(self) -> Law:
        return self.draws.law

    @property
    def kind(self) -> str:
        return self.draws.kind

    @property
    def params(self) -> dict[str, float]:
        """Point estimate: the single MAP draw, else the median of the draws."""
        return {n: float(np.median(v)) for n, v in self.draws.params.items()}

    @property
    def n_obs(self) -> int:
        return self.data.n if self.data is not None else int(self.diagnostics.get("n_obs", 0))

    @property
    def ok(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------- save


def _problems(result) -> tuple[str, ...]:
    problems = getattr(result, "problems", None)
    if problems is not None:
        return tuple(problems)
    if hasattr(result, "n_failed"):  # bootstrap
        out = []
        if not result.map.converged:
            out.append("the full-data MAP fit did not converge")
        if result.n_failed > 0.1 * result.resamples:
            out.append(f"{result.n_failed} of {result.resamples} resamples did not converge")
        return tuple(out)
    if hasattr(result, "converged"):
        return () if result.converged else ("the MAP fit did not converge",)
    return ()


def _probe_x(law: Law, data: Data | None) -> dict[str, np.ndarray]:
    if data is not None:
        return {k: np.asarray(v, dtype=float) for k, v in data.x.items()}
    grid = {c.name: (np.geomspace(1e18, 1e24, 7) if c.log_scale else np.linspace(2.0, 4.0, 7)) for c in law.covariates}
    return grid


def _probe(law: Law, params: dict[str, np.ndarray], x: dict[str, np.ndarray]) -> np.ndarray:
    import jax

    with jax.enable_x64(True):
        first = {n: np.asarray(v).reshape(-1)[:_PROBE_DRAWS] for n, v in params.items()}
        return np.stack([np.asarray(law({n: v[i] for n, v in first.items()}, x), dtype=float)
                         for i in range(len(next(iter(first.values()))))])


def _likelihood_spec(likelihood) -> dict:
    name = type(likelihood).__name__
    fields = {f.name: getattr(likelihood, f.name) for f in dataclasses.fields(likelihood)
              if isinstance(getattr(likelihood, f.name), (int, float))}
    return {"class": name, **fields}


def save(result, path: str | os.PathLike, *, data: Data | None = None) -> Path:
    """Write ``result`` (MAP, bootstrap or NUTS) to ``path`` as ArviZ NetCDF.

    ``data`` is needed for MAP and bootstrap results fitted before results kept their
    data; NUTS, MAP and bootstrap results from this version carry it.  The file is
    written to a temporary name and moved into place, so ``path`` never holds half a
    fit.  Returns the path.
    """
    from bayescale import __version__
    from bayescale.conversion import to_datatree

    target = Path(path)
    if not target.parent.exists():
        raise SavedFitError(f"cannot save to {str(target)!r}: folder {str(target.parent)!r} does not exist")
    d = draws_of(result)
    if data is None:
        data = fitted_data(result)
    tree = to_datatree(result, data)
    law = d.law
    x = _probe_x(law, data)
    tree.attrs.update({
        "bayescale_format": FORMAT,
        "bayescale_version": __version__,
        "law_formula": law.formula,
        "law_chance": float(law.response.chance) if isinstance(law.response, ChanceAccuracy) else -1.0,
        "likelihood_spec": json.dumps(_likelihood_spec(d.likelihood)),
        "problems": json.dumps(list(_problems(result))),
        "probe_x": json.dumps({k: v.tolist() for k, v in x.items()}),
        "probe_z": json.dumps(_probe(law, d.params, x).tolist()),
        "data_columns": json.dumps(dict(data.columns)) if data is not None else "{}",
        "n_obs": int(data.n) if data is not None else 0,
    })
    return atomic_write(target, lambda tmp: tree.to_netcdf(tmp, engine="h5netcdf"))


# --------------------------------------------------------------------------- load


def load(path: str | os.PathLike, *, law: Law | None = None) -> SavedFit:
    """Read a fit written by :func:`save`.

    The law is looked up by its saved name among the library laws; pass ``law`` for a
    custom law (its name must match).  Raises :class:`SavedFitError` with a message
    saying what to do when the file is missing or unreadable, is not a bayescale fit,
    or its law is unknown or changed since it was saved.
    """
    import xarray as xr

    from bayescale.laws import get_law

    p = Path(path)
    if not p.exists():
        raise SavedFitError(f"saved fit {str(p)!r} does not exist")
    try:
        tree = xr.open_datatree(p, engine="h5netcdf").load()
    except Exception as exc:  # h5py/xarray raise many types for a foreign file
        raise SavedFitError(f"cannot read {str(p)!r} as a saved fit (ArviZ NetCDF): {str(exc).splitlines()[0]}") from None
    attrs = dict(tree.attrs)
    if attrs.get("bayescale_format") != FORMAT:
        raise SavedFitError(f"{str(p)!r} is not a bayescale saved fit (format {attrs.get('bayescale_format')!r}, "
                            f"expected {FORMAT!r}); save fits with bayescale.save or --save")
    name = str(attrs["law"])
    if law is None:
        try:
            law = get_law(name)
        except KeyError as exc:
            raise SavedFitError(f"{str(p)!r} was fitted with law {name!r}, which this version of bayescale does not "
                                f"know ({exc.args[0]}); for a custom law pass it: load(path, law=my_law)") from None
    elif law.name != name:
        raise SavedFitError(f"{str(p)!r} was fitted with law {name!r}, not {law.name!r}")
    chance = float(attrs["law_chance"])
    if chance >= 0.0:
        law = law.with_chance(chance)
    saved_params = [str(v) for v in np.atleast_1d(attrs["law_params"])]
    saved_cov = [str(v) for v in np.atleast_1d(attrs["law_covariates"])]
    changed = []
    if saved_params != list(law.params):
        changed.append(f"parameters {saved_params} -> {list(law.params)}")
    if saved_cov != list(law.covariate_names):
        changed.append(f"covariates {saved_cov} -> {list(law.covariate_names)}")
    if str(attrs["response"]) != law.response.describe():
        changed.append(f"response {attrs['response']!r} -> {law.response.describe()!r}")
    post = tree["posterior"]
    params = {n: np.asarray(post[n].values, dtype=float) for n in law.params if n in post}
    if not changed:
        x = {k: np.asarray(v, dtype=float) for k, v in json.loads(attrs["probe_x"]).items()}
        expected = np.asarray(json.loads(attrs["probe_z"]), dtype=float)
        got = _probe(law, params, x)
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=_PROBE_RTOL, atol=1e-12, equal_nan=True):
            worst = float(np.nanmax(np.abs(got - expected))) if got.shape == expected.shape else float("nan")
            changed.append(f"it computes different values at the saved draws (largest difference {worst:.3g})")
    if changed:
        raise SavedFitError(f"the law {name!r} changed since {str(p)!r} was saved: {'; '.join(changed)}. "
                            "Refit with this version (a saved fit is only valid for the law it was fitted with)")
    spec = json.loads(attrs["likelihood_spec"])
    cls = _LIKELIHOODS.get(spec.pop("class"))
    if cls is None:
        raise SavedFitError(f"{str(p)!r} uses an unknown likelihood {attrs['likelihood']!r}")
    draws = Draws(law, params, np.asarray(post["sigma"].values, dtype=float), cls(**spec), str(attrs["draws_kind"]))
    data = None
    if "observed_data" in tree.children:
        obs = tree["observed_data"]
        data = Data(x={c: np.asarray(obs[c].values, dtype=float) for c in law.covariate_names},
                    y=np.asarray(obs["y"].values, dtype=float), rows=np.asarray(obs["obs"].values),
                    columns=json.loads(attrs["data_columns"]))
    diagnostics = {k[5:]: v.item() if hasattr(v, "item") else v for k, v in attrs.items() if k.startswith("diag_")}
    diagnostics["n_obs"] = int(attrs.get("n_obs", 0))
    return SavedFit(draws=draws, data=data, diagnostics=diagnostics, problems=tuple(json.loads(attrs["problems"])),
                    path=str(p))
