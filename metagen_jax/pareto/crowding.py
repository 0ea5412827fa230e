"""NSGA-II crowding distance within each front.

References:
    Deb, Pratap, Agarwal, Meyarivan (2002). A fast and elitist multiobjective genetic
    algorithm: NSGA-II. IEEE Trans. Evol. Comput. 6(2). https://doi.org/10.1109/4235.996017
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from metagen_jax.pareto._keys import float_key, int_key, lexsort
from metagen_jax.pareto.ranking import check_objectives


@jax.jit
def crowding_distance(objectives: jnp.ndarray, ranks: jnp.ndarray) -> jnp.ndarray:
    """Compute the crowding distance of each row within its front (rows of equal rank).

    For each objective, the rows of a front are sorted by that objective (ties in row
    order). An interior row adds (next - previous) / (front max - front min); the first
    and last rows add +inf. A column whose values are all equal within the front adds 0
    to every row of that front, the boundary rows included. The sum is divided by M.
    A front of one or two rows gets +inf for every row. These are the rules of pymoo
    0.6.2 (`calc_crowding_distance` through `get_crowding_function("cd")`), so a front
    of three or more identical rows gets 0 everywhere.

    Args:
        objectives: (N, M) float32.
        ranks: (N,) int32 front index of each row, e.g. from
            `constrained_nondominated_rank`.

    Returns:
        (N,) float32 crowding distances. Rows with a NaN or infinite objective get 0 and
        take no part in their front's distances.
    """
    check_objectives(objectives)
    if ranks.shape != (objectives.shape[0],):
        raise ValueError(f"ranks must have shape ({objectives.shape[0]},), got shape {ranks.shape}")
    size, count = objectives.shape
    if size == 0:
        return jnp.zeros((0,), jnp.float32)
    objectives = jnp.asarray(objectives, jnp.float32) + jnp.float32(0.0)
    finite = jnp.all(jnp.isfinite(objectives), axis=1)

    # Rows with a non-finite objective form their own group next to their rank's group.
    # NOTE: ranks beyond 2**30 would overflow this key; ranks are below N.
    group = jnp.asarray(ranks, jnp.int32) * 2 + (~finite).astype(jnp.int32)
    index = jnp.arange(size, dtype=jnp.int32)

    # One stable sort per objective by (group, value), all objectives at once: shape
    # (M, N). `lexsort`'s radix passes sort single int32 arrays, which XLA:CPU does faster
    # than one sort of three operands: at N = 2,000 and M = 3 this function took 0.96 ms
    # instead of 1.76 ms (jax 0.10.2).
    values = jnp.where(finite[None, :], objectives.T, 0.0)
    group_key = int_key(group)
    order = jax.vmap(lambda column: lexsort([group_key, float_key(column)]))(values)
    sorted_group = group[order]
    sorted_values = jnp.take_along_axis(values, order, axis=1)

    # First and last row of each group in sorted order.
    is_first = jnp.concatenate([jnp.ones((count, 1), bool), sorted_group[:, 1:] != sorted_group[:, :-1]], axis=1)
    is_last = jnp.concatenate([sorted_group[:, 1:] != sorted_group[:, :-1], jnp.ones((count, 1), bool)], axis=1)
    first = lax.associative_scan(jnp.maximum, jnp.where(is_first, index, 0), axis=1)
    last = lax.associative_scan(jnp.minimum, jnp.where(is_last, index, size - 1), axis=1, reverse=True)

    spread = jnp.take_along_axis(sorted_values, last, axis=1) - jnp.take_along_axis(sorted_values, first, axis=1)
    previous = jnp.concatenate([sorted_values[:, :1], sorted_values[:, :-1]], axis=1)
    following = jnp.concatenate([sorted_values[:, 1:], sorted_values[:, -1:]], axis=1)
    interior = (following - previous) / jnp.where(spread > 0, spread, 1.0)
    contribution = jnp.where(is_first | is_last, jnp.inf, interior)
    contribution = jnp.where(spread > 0, contribution, 0.0)

    distance = jnp.zeros((size,), jnp.float32).at[order.reshape(-1)].add(contribution.reshape(-1)) / count

    # Fronts of one or two rows: all +inf.
    group_size = (last - first + 1)[0]
    small = jnp.zeros((size,), bool).at[order[0]].set(group_size <= 2)
    distance = jnp.where(small, jnp.inf, distance)
    return jnp.where(finite, distance, 0.0)
