"""Where pandas meets the arrays: :func:`from_frame`, expressions (:mod:`~bayescale.tables.expr`), bundled data."""

from bayescale.tables import datasets, expr
from bayescale.tables.expr import evaluate, mask
from bayescale.tables.frame import (
    columns_of,
    condition,
    derive,
    from_arrays,
    from_frame,
    query,
    read_csv,
    suggest,
    two_stage_data,
)

__all__ = ["columns_of", "condition", "datasets", "derive", "evaluate", "expr", "from_arrays", "from_frame", "mask",
           "query", "read_csv", "suggest", "two_stage_data"]
