"""The primitives every mixer is built on (see ``aggregate`` for the formula and backends)."""
from .aggregate import (
    AGGREGATE_BACKENDS,
    BORDERS,
    SIMILARITY_BACKENDS,
    axis_neighbours,
    clamped_neighbours,
    local_aggregate,
    local_similarity,
    neighbour_mask,
    neighbour_offsets,
    window_positions,
)

__all__ = [
    "AGGREGATE_BACKENDS",
    "BORDERS",
    "SIMILARITY_BACKENDS",
    "axis_neighbours",
    "clamped_neighbours",
    "local_aggregate",
    "local_similarity",
    "neighbour_mask",
    "neighbour_offsets",
    "window_positions",
]
