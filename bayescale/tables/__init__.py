"""Where pandas meets the arrays: :func:`from_frame`, expressions, the bundled data sets."""

from bayescale.tables import datasets
from bayescale.tables.frame import (
    condition,
    derive,
    from_arrays,
    from_frame,
    query,
    read_csv,
    suggest,
    two_stage_data,
)

__all__ = ["condition", "datasets", "derive", "from_arrays", "from_frame", "query", "read_csv", "suggest",
           "two_stage_data"]
