"""Pareto ranking, crowding distance, hypervolume and streaming first fronts in JAX."""

from metagen_jax.pareto.crowding import crowding_distance
from metagen_jax.pareto.front import first_front_chunked, merge_front
from metagen_jax.pareto.hypervolume import default_reference_point, hypervolume
from metagen_jax.pareto.ranking import (
    constrained_nondominated_rank,
    nondominated_rank,
    pareto_front_mask,
)

__all__ = [
    "constrained_nondominated_rank",
    "crowding_distance",
    "default_reference_point",
    "first_front_chunked",
    "hypervolume",
    "merge_front",
    "nondominated_rank",
    "pareto_front_mask",
]
