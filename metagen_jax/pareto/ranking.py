"""Constrained non-dominated ranking and the feasible Pareto front.

Every objective column is minimised. A row is feasible when its violation is <= 0,
its violation is not NaN and all its objectives are finite; any other row is
infeasible, with NaN violation and non-finite objectives counted as violation +inf.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from metagen_jax.pareto._dense import dense_ranks
from metagen_jax.pareto._keys import MAX_KEY, dense_key_ranks, float_key, lexsort
from metagen_jax.pareto._sweep import RANK_CAPACITY, make_plan, sweep_ranks

# Up to this many rows, ranks come from the full dominance matrix: O(N**2) memory and
# O(N**2) work per front. It compiled in about 1 s where the sweep took 4 to 8 s
# (jax 0.10.2 on a 2-core VM).
DENSE_SIZE = 512


def check_objectives(objectives: jnp.ndarray, violation: jnp.ndarray | None = None) -> None:
    """Raise ValueError unless objectives is (N, M) with M >= 1 and violation is (N,)."""
    if objectives.ndim != 2 or objectives.shape[1] < 1:
        raise ValueError(f"objectives must have shape (N, M) with M >= 1, got shape {objectives.shape}")
    if violation is not None and violation.shape != (objectives.shape[0],):
        raise ValueError(
            f"violation must have shape ({objectives.shape[0]},) to match objectives, got shape {violation.shape}"
        )


def feasibility(objectives: jnp.ndarray, violation: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Return (feasible (N,) bool, violation (N,) float32 with NaN and bad rows set to +inf)."""
    finite = jnp.all(jnp.isfinite(objectives), axis=1)
    violation = jnp.where(jnp.isnan(violation) | ~finite, jnp.inf, violation)
    return violation <= 0, violation


def nondominated_ranks(objectives: jnp.ndarray, active: jnp.ndarray, *, front_only: bool = False) -> jnp.ndarray:
    """Rank the active rows by non-dominated sorting (0 = first front); 0 for the others.

    Identical rows do not dominate each other and share a rank. With `front_only`,
    returns min(rank, 1), which is cheaper.
    """
    size, count = objectives.shape
    objectives = objectives.astype(jnp.float32)
    if size == 0:
        return jnp.zeros((0,), jnp.int32)
    if count == 1:
        return _single_objective_ranks(objectives[:, 0], active, front_only=front_only)
    if size <= DENSE_SIZE:
        return _matrix_ranks(objectives, active, front_only=front_only)
    if count > 3:
        return dense_ranks(objectives, active, front_only=front_only)
    if count == 2:
        # A constant third column changes no dominance relation.
        objectives = jnp.pad(objectives, ((0, 0), (0, 1)))

    plan = make_plan(size, RANK_CAPACITY)
    if front_only:
        return sweep_ranks(objectives, active, plan, front_only=True)

    # One sweep ranks the first `capacity` fronts exactly. Rows ranked beyond them are
    # sorted again on their own, which continues the numbering: the fronts of the rest
    # are the remaining fronts of the whole set.
    capacity = plan.rank_capacity

    def another_pass(state):
        return jnp.any(state[1])

    def sort_rest(state):
        ranks, remaining, offset = state
        pass_ranks = sweep_ranks(objectives, remaining, plan)
        exact = remaining & (pass_ranks < capacity)
        return jnp.where(exact, offset + pass_ranks, ranks), remaining & ~exact, offset + capacity

    state = (jnp.zeros((size,), jnp.int32), active, jnp.int32(0))
    return lax.while_loop(another_pass, sort_rest, state)[0]


def _matrix_ranks(objectives: jnp.ndarray, active: jnp.ndarray, *, front_only: bool) -> jnp.ndarray:
    """Iterate rank[i] = max(1 + rank[j] for j dominating i) over the full dominance matrix."""
    no_worse = jnp.all(objectives[:, None, :] <= objectives[None, :, :], axis=2)
    better = jnp.any(objectives[:, None, :] < objectives[None, :, :], axis=2)
    dominates = no_worse & better & active[:, None] & active[None, :]  # [j, i]: j dominates i
    if front_only:
        return jnp.any(dominates, axis=0).astype(jnp.int32)

    def relax(state):
        ranks, _ = state
        updated = jnp.max(jnp.where(dominates, ranks[:, None] + 1, 0), axis=0)
        return updated, jnp.any(updated != ranks)

    # Each round fixes one more front, so this stops after (fronts + 1) rounds.
    zeros = jnp.zeros(objectives.shape[:1], jnp.int32)
    return lax.while_loop(lambda state: state[1], relax, (zeros, jnp.bool_(True)))[0]


def _single_objective_ranks(values: jnp.ndarray, active: jnp.ndarray, *, front_only: bool) -> jnp.ndarray:
    """Rank = number of distinct smaller active values."""
    ranks = dense_value_ranks(jnp.where(active, float_key(values), MAX_KEY))
    ranks = jnp.where(active, ranks, 0)
    return jnp.minimum(ranks, 1) if front_only else ranks


def dense_value_ranks(keys: jnp.ndarray) -> jnp.ndarray:
    """Return, for each uint32 key, the number of distinct keys smaller than it."""
    return dense_key_ranks(keys, lexsort([keys])).astype(jnp.int32)


@jax.jit
def constrained_nondominated_rank(objectives: jnp.ndarray, violation: jnp.ndarray) -> jnp.ndarray:
    """Rank rows feasible-first by non-dominated sorting, then infeasible by violation.

    Args:
        objectives: (N, M) float32, every column minimised.
        violation: (N,) float32 constraint violation; <= 0 means feasible.

    Returns:
        (N,) int32 ranks. Feasible rows get their front index 0, 1, 2, ... from
        non-dominated sorting among feasible rows; identical rows share a rank.
        Infeasible rows follow the last feasible front: with F feasible fronts, an
        infeasible row gets F + (number of distinct smaller violations among infeasible
        rows), so equal violations share a rank. Rows with a NaN or infinite objective,
        or a NaN violation, count as infeasible with violation +inf.

    Cost: up to DENSE_SIZE rows, the full dominance matrix. Beyond, for M <= 3, a
    sweep of about N / 32 sequential steps and O(N * sqrt(N)) work per 256 fronts
    (see `metagen_jax.pareto._sweep`); for M >= 4, O(N**2 * M) work.

    Example:
        >>> import jax.numpy as jnp
        >>> objectives = jnp.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [0.0, 0.0]])
        >>> constrained_nondominated_rank(objectives, jnp.array([0.0, 0.0, 0.0, 1.0])).tolist()
        [0, 0, 1, 2]
    """
    check_objectives(objectives, violation)
    objectives = jnp.asarray(objectives, jnp.float32)
    feasible, violation = feasibility(objectives, jnp.asarray(violation, jnp.float32))

    ranks = nondominated_ranks(objectives, feasible)
    fronts = jnp.max(jnp.where(feasible, ranks + 1, 0), initial=0)

    # NOTE: float_key maps every violation > 0 (and +inf) below MAX_KEY, so feasible rows,
    # keyed MAX_KEY, take no distinct value below an infeasible row's.
    violation_ranks = lax.cond(
        jnp.all(feasible),
        lambda: jnp.zeros_like(ranks),
        lambda: dense_value_ranks(jnp.where(feasible, MAX_KEY, float_key(violation))),
    )
    return jnp.where(feasible, ranks, fronts + violation_ranks).astype(jnp.int32)


@jax.jit
def pareto_front_mask(objectives: jnp.ndarray, violation: jnp.ndarray) -> jnp.ndarray:
    """Return (N,) bool: the feasible rows on the first front among feasible rows.

    All False when no row is feasible. Feasibility as in `constrained_nondominated_rank`.
    """
    check_objectives(objectives, violation)
    objectives = jnp.asarray(objectives, jnp.float32)
    feasible, _ = feasibility(objectives, jnp.asarray(violation, jnp.float32))
    return feasible & (nondominated_ranks(objectives, feasible, front_only=True) == 0)


@functools.partial(jax.jit, static_argnames=("front_only",))
def nondominated_rank(objectives: jnp.ndarray, mask: jnp.ndarray | None = None, *, front_only: bool = False):
    """Rank the rows selected by `mask` (default: all) by non-dominated sorting.

    Rows outside the mask, and rows with a non-finite objective, get rank 0 and do not
    dominate anything; callers should ignore their value.
    """
    check_objectives(objectives)
    objectives = jnp.asarray(objectives, jnp.float32)
    active = jnp.all(jnp.isfinite(objectives), axis=1)
    if mask is not None:
        active = active & jnp.asarray(mask, bool)
    return nondominated_ranks(objectives, active, front_only=front_only)
