"""The arviz / xarray / h5 boundary: DataTree conversion, PSIS-LOO, save and load with integrity checks."""

from bayescale.convert.datatree import psis_loo, to_datatree
from bayescale.convert.files import atomic_write
from bayescale.convert.saved import SavedFitError, SavedInfo, load, save

__all__ = ["SavedFitError", "SavedInfo", "atomic_write", "load", "psis_loo", "save", "to_datatree"]
