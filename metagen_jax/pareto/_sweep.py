"""Non-dominated sorting of up to three objectives by a blocked sweep.

Rows are visited in lexicographic order of (f0, f1, f2), so every row that dominates
a row comes before it. A row's rank is one more than the largest rank among its
dominators (its longest chain of dominators), which is the front index of classic
non-dominated sorting. Only the first copy of identical rows is visited. Rows are
processed in steps of `group` consecutive rows, and a row's dominators are found in
three places:

* Processed rows in earlier f1 strips. The rows sorted by (f1, f0, f2) are cut into
  strips of `strip` rows, and a table stores, for each rank k and strip s, the
  smallest f2 of a processed rank-k row in a strip before s. A processed row there
  dominates the new row exactly when its f2 is not larger, because f0 and f1 are then
  not larger either. For a fixed strip this column is non-decreasing in k, because a
  rank-(k+1) row is dominated by an earlier rank-k row in the same or an earlier
  strip. So the ranks that dominate the row are a prefix 0..A-1, and a search over k
  finds A.
* Processed rows in the row's own strip: a direct check of the strip's rows.
* Rows of the same step: a dense check, resolved by iterating
  rank = max(base, 1 + max rank of in-step dominators) to its fixed point.

The table has two levels (blocks of strips, and strips inside a block), so inserting
a row updates O(sqrt(strips)) entries instead of all later strips. It keeps
`rank_capacity` ranks. Ranks beyond it are left to a further sweep over the rows not
yet ranked (see `metagen_jax.pareto.ranking.nondominated_ranks`).

Each step costs O(group * (strip + sqrt(strips) + sqrt(rank_capacity))) work and a
fixed number of XLA operations, so 20,000 distinct rows take 625 loop steps.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from metagen_jax.pareto._keys import MAX_KEY, dense_key_ranks, float_key, lexsort, position_bits

# Ranks kept in the table. Random data with 20,000 rows has about 60 fronts with
# three objectives and about 280 with two.
# `make_plan` widens the strips to keep the table below TABLE_BYTES. With larger
# tables, XLA's CPU backend splits the per-step operations across threads, which cost
# more than they saved. Measured with jax 0.10.2 on a 2-core VM, a 350 KB table with
# strips of 64 rows was still faster than a 170 KB one with strips of 128.
RANK_CAPACITY = 256
TABLE_BYTES = 1024 * 1024
# Rows per sweep step. Steps of 16, 48 and 64 rows were no faster with 20,000 random rows.
GROUP = 32


class SweepPlan(NamedTuple):
    """Static sizes of one sweep (all Python ints)."""

    size: int  # rows N
    group: int  # rows per sweep step
    strip: int  # rows per f1 strip
    strips: int  # number of strips, padded to blocks * block_width
    block_width: int  # strips per block of the two-level table
    blocks: int
    rank_capacity: int  # rows of the rank table


def make_plan(size: int, rank_capacity: int, table_bytes: int = TABLE_BYTES) -> SweepPlan:
    """Choose strip sizes for `size` rows and a table of `rank_capacity` rank rows.

    Strips of about sqrt(N) / 2 rows balance the strip check (N * strip work) against
    the table update (N * sqrt(N / strip) work), whose scattered writes cost more per
    element. Strips grow beyond that while the table would exceed `table_bytes`.
    """
    rank_capacity = max(1, min(rank_capacity, size + 1))
    strip = 1 << max(5, round(math.log2(max(math.sqrt(size) / 2, 1.0))))
    while True:
        strip_count = max(1, -(-size // strip))
        block_width = max(1, math.isqrt(strip_count - 1) + 1)
        blocks = -(-strip_count // block_width)
        table = rank_capacity * 4 * (blocks * block_width + blocks)
        if strip >= size or table <= table_bytes:
            break
        strip *= 2
    return SweepPlan(
        size=size,
        group=min(GROUP, size),
        strip=strip,
        strips=blocks * block_width,
        block_width=block_width,
        blocks=blocks,
        rank_capacity=rank_capacity,
    )


def sweep_orders(objectives: jnp.ndarray, active: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Sort rows for the sweep.

    Args:
        objectives: (N, 3) float32, finite where `active`.
        active: (N,) bool; inactive rows sort last in both orders.

    Returns:
        sweep_order: (N,) int32 row indices in lexicographic (f0, f1, f2) order.
        strip_order: (N,) int32 row indices in lexicographic (f1, f0, f2) order.

    Both orders put every row after the rows that dominate it. Seven sort passes over
    the rows: two per float column, then one over the f0 ranks, which turns the strip
    order into the sweep order.
    """
    keys = [jnp.where(active, float_key(objectives[:, m]), MAX_KEY) for m in range(3)]
    by_f0_f2 = lexsort([keys[0]], order=lexsort([keys[2]]))
    f0_ranks = dense_key_ranks(keys[0], by_f0_f2)
    strip_order = lexsort([keys[1]], order=by_f0_f2)
    sweep_order = lexsort([f0_ranks], order=strip_order, key_bits=position_bits(keys[0].shape[0]))
    return sweep_order, strip_order


def sweep_ranks(
    objectives: jnp.ndarray,
    active: jnp.ndarray,
    plan: SweepPlan,
    *,
    front_only: bool = False,
) -> jnp.ndarray:
    """Rank the active rows by non-dominated sorting.

    Args:
        objectives: (N, 3) float32; rows that are not active may hold any value.
        active: (N,) bool. Inactive rows neither dominate nor get a meaningful rank.
        plan: sizes from `make_plan`.
        front_only: compute min(rank, 1) only, which needs one rank row in the table.

    Returns:
        (N,) int32 rank of each active row (0 = first front), 0 for inactive rows. Ranks
        below `plan.rank_capacity` are exact. A row whose rank is at least the capacity
        gets some value >= the capacity, because the table keeps no row for those ranks;
        removing the exact rows and ranking the rest again continues the sort.
    """
    size = plan.size
    objectives = jnp.where(active[:, None], objectives, 0.0)
    sweep_order, strip_order = sweep_orders(objectives, active)
    sorted_objectives = objectives[sweep_order]
    sorted_active = active[sweep_order]

    # Identical rows are adjacent in sweep order. Only the first copy takes part in the
    # sweep; the others copy its rank at the end.
    same_as_previous = jnp.concatenate(
        [jnp.zeros((1,), bool), jnp.all(sorted_objectives[1:] == sorted_objectives[:-1], axis=1)]
    ) & sorted_active
    representative = sorted_active & ~same_as_previous
    positions = jnp.arange(size, dtype=jnp.int32)
    run_start = lax.associative_scan(jnp.maximum, jnp.where(same_as_previous, 0, positions))

    # Move the representatives to the front of both orders (stable), so the sweep
    # visits only them: duplicates and inactive rows cost no sweep steps.
    compact_position = _stable_partition(representative)
    compact_order = jnp.zeros((size,), jnp.int32).at[compact_position].set(sweep_order)
    row_is_representative = jnp.zeros((size,), bool).at[sweep_order].set(representative)
    compact_strip_order = jnp.zeros((size,), jnp.int32).at[_stable_partition(row_is_representative[strip_order])].set(
        strip_order
    )
    compact_ranks = _run_sweep(
        objectives[compact_order],
        positions < jnp.sum(representative),
        compact_order,
        compact_strip_order,
        plan,
        front_only=front_only,
    )

    sorted_ranks = compact_ranks[compact_position[run_start]]
    return jnp.zeros((size,), jnp.int32).at[sweep_order].set(jnp.where(sorted_active, sorted_ranks, 0))


def _stable_partition(first: jnp.ndarray) -> jnp.ndarray:
    """Return each element's position after moving the True elements first, keeping order."""
    before = jnp.cumsum(first) - first
    after = jnp.sum(first) + jnp.cumsum(~first) - (~first)
    return jnp.where(first, before, after).astype(jnp.int32)


def _run_sweep(
    sorted_objectives: jnp.ndarray,
    representative: jnp.ndarray,
    sweep_order: jnp.ndarray,
    strip_order: jnp.ndarray,
    plan: SweepPlan,
    *,
    front_only: bool,
) -> jnp.ndarray:
    """Visit the rows in sweep order and return their ranks in that order."""
    size, group, strip = plan.size, plan.group, plan.strip
    width, blocks, strips = plan.block_width, plan.blocks, plan.strips
    capacity = 1 if front_only else plan.rank_capacity
    steps = -(-size // group)
    padded_size = steps * group
    strip_rows = strips * strip
    positions = jnp.arange(size, dtype=jnp.int32)

    # Sweep position of each row, and each row's place in strip order.
    sweep_position = jnp.zeros((size,), jnp.int32).at[sweep_order].set(positions)
    strip_position = jnp.zeros((size,), jnp.int32).at[strip_order].set(positions)

    # Per-step data, shape (steps, group), in sweep order; padding rows are inactive.
    def by_step(values, fill):
        return jnp.pad(values, (0, padded_size - size), constant_values=fill).reshape(steps, group)

    row_strip_position = strip_position[sweep_order]
    step_f1 = by_step(sorted_objectives[:, 1], 0.0)
    step_f2 = by_step(sorted_objectives[:, 2], 0.0)
    step_live = by_step(representative, False)
    step_strip = by_step(row_strip_position // strip, 0)
    # Where the row's rank goes in strip order; rows that do not take part write
    # out of range, which is dropped.
    step_target = by_step(jnp.where(representative, row_strip_position, strip_rows), strip_rows)

    # Strip data in strip order: f1, f2, and the sweep position from which the row
    # counts as processed (never, for rows that do not take part).
    from_sweep = sweep_position[strip_order]
    processed_at = jnp.where(representative[from_sweep], from_sweep, padded_size).astype(jnp.float32)
    strip_data = jnp.stack(
        [
            jnp.pad(sorted_objectives[from_sweep, 1], (0, strip_rows - size)),
            jnp.pad(sorted_objectives[from_sweep, 2], (0, strip_rows - size)),
            jnp.pad(processed_at, (0, strip_rows - size), constant_values=float(padded_size)),
        ]
    )

    # In-step dominance of every step at once, N * GROUP bytes. [step, j, p] is True when
    # row j comes before row p in the step and its f1 and f2 are not larger. Its f0 is then
    # not larger either, so for distinct rows j dominates p.
    member = jnp.arange(group, dtype=jnp.int32)
    step_dominance = (
        (member[:, None] < member[None, :])
        & step_live[:, :, None]
        & (step_f1[:, :, None] <= step_f1[:, None, :])
        & (step_f2[:, :, None] <= step_f2[:, None, :])
    )

    # Flat tables. fine[k * strips + s] is the smallest f2 of a processed rank-k row in
    # an earlier strip of the same block as s. coarse[k * blocks + b] is the smallest f2
    # of a processed rank-k row in a block before b.
    fine = jnp.full((capacity * strips,), jnp.inf, jnp.float32)
    coarse = jnp.full((capacity * blocks,), jnp.inf, jnp.float32)
    strip_ranks = jnp.zeros((strip_rows,), jnp.int32)
    step_ranks = jnp.zeros((steps, group), jnp.int32)

    in_block = jnp.arange(width, dtype=jnp.int32)
    block_index = jnp.arange(blocks, dtype=jnp.int32)
    page = max(1, math.isqrt(capacity - 1) + 1)  # ranks per page of the two-step search
    pages = -(-capacity // page)
    page_last = jnp.minimum(jnp.arange(pages, dtype=jnp.int32) * page + page - 1, capacity - 1)
    in_page = jnp.arange(page, dtype=jnp.int32)
    limit = 1 if front_only else jnp.iinfo(jnp.int32).max

    def best_f2(fine, coarse, k, strip_index, block):
        k = jnp.minimum(k, capacity - 1)
        return jnp.minimum(coarse[k * blocks + block[:, None]], fine[k * strips + strip_index[:, None]])

    def step(index, state):
        fine, coarse, strip_ranks, step_ranks = state
        start = index * group
        f1, f2 = step_f1[index], step_f2[index]
        live = step_live[index]
        strip_index = step_strip[index]
        block = strip_index // width

        # Ranks with a dominating row in an earlier strip: a two-step search over the
        # non-decreasing column, first whole pages, then inside the first page that is
        # not entirely <= f2.
        full_pages = jnp.sum(best_f2(fine, coarse, page_last[None, :], strip_index, block) <= f2[:, None], axis=1)
        inside = full_pages[:, None] * page + in_page[None, :]
        inside_count = jnp.sum((inside < capacity) & (best_f2(fine, coarse, inside, strip_index, block) <= f2[:, None]), axis=1)
        from_strips = jnp.minimum(full_pages * page + inside_count, capacity)

        # Processed rows of the row's own strip.
        first = strip_index * strip
        segment = jax.vmap(lambda s: lax.dynamic_slice(strip_data, (0, s), (3, strip)))(first)
        segment_ranks = jax.vmap(lambda s: lax.dynamic_slice(strip_ranks, (s,), (strip,)))(first)
        dominated_by = (segment[:, 2] < start) & (segment[:, 0] <= f1[:, None]) & (segment[:, 1] <= f2[:, None])
        from_own_strip = jnp.max(jnp.where(dominated_by, segment_ranks + 1, 0), axis=1)
        base = jnp.minimum(jnp.maximum(from_strips, from_own_strip), limit)

        rank = _longest_chain(base, step_dominance[index], limit)
        rank = jnp.where(live, rank, 0)

        step_ranks = lax.dynamic_update_slice(step_ranks, rank[None, :], (index, 0))
        strip_ranks = strip_ranks.at[step_target[index]].set(rank, mode="drop")

        # Insert the rows: `fine` gets the later strips of the row's block, and `coarse`
        # the later blocks.
        row = jnp.where(live & (rank < capacity), rank, capacity)  # capacity: dropped
        fine_columns = block[:, None] * width + in_block[None, :]
        fine = fine.at[row[:, None] * strips + fine_columns].min(
            jnp.where(fine_columns > strip_index[:, None], f2[:, None], jnp.inf), mode="drop"
        )
        coarse = coarse.at[row[:, None] * blocks + block_index[None, :]].min(
            jnp.where(block_index[None, :] > block[:, None], f2[:, None], jnp.inf), mode="drop"
        )
        return fine, coarse, strip_ranks, step_ranks

    state = (fine, coarse, strip_ranks, step_ranks)
    live_steps = (jnp.sum(representative) + group - 1) // group
    _, _, _, step_ranks = lax.fori_loop(0, live_steps, step, state)
    return step_ranks.reshape(padded_size)[:size]


def _longest_chain(base: jnp.ndarray, dominance: jnp.ndarray, limit) -> jnp.ndarray:
    """Solve rank[p] = max(base[p], 1 + max(rank[j] for j with dominance[j, p])).

    The dominance inside a step is acyclic, so iterating from `base` reaches the fixed
    point after at most (longest chain + 1) rounds. The maximum runs over the leading
    axis, which XLA's CPU backend vectorizes across the rows p (a maximum over the last
    axis took 1.8 ms more per 20,000 rows).
    """

    def relax(carry):
        current, _ = carry
        updated = jnp.maximum(base, jnp.max(jnp.where(dominance, current[:, None] + 1, 0), axis=0))
        updated = jnp.minimum(updated, limit)
        return updated, jnp.any(updated != current)

    rank, _ = lax.while_loop(lambda carry: carry[1], relax, (base, jnp.bool_(True)))
    return rank
