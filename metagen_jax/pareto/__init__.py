"""Pareto ranking, crowding distance, hypervolume and streaming first fronts in JAX."""

from metagen_jax.pareto.ranking import (
    constrained_nondominated_rank,
    nondominated_rank,
    pareto_front_mask,
)

__all__ = [
    "constrained_nondominated_rank",
    "nondominated_rank",
    "pareto_front_mask",
]
