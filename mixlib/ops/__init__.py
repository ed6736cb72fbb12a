"""The primitives every mixer is built on (see ``aggregate`` for the formula and backends)."""
from .aggregate import (
    AGGREGATE_BACKENDS,
    SIMILARITY_BACKENDS,
    local_aggregate,
    local_similarity,
    neighbour_mask,
    neighbour_offsets,
)

__all__ = [
    "AGGREGATE_BACKENDS",
    "SIMILARITY_BACKENDS",
    "local_aggregate",
    "local_similarity",
    "neighbour_mask",
    "neighbour_offsets",
]
