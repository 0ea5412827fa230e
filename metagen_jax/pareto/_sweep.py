"""Non-dominated sorting of up to three objectives by a blocked sweep.

Rows are visited in lexicographic order of (f0, f1, f2), so every row that dominates
a row comes before it. A row's rank is one more than the largest rank among its
dominators (its longest chain of dominators), which is the front index of classic
non-dominated sorting. Rows are processed in groups of `group` consecutive rows and
a group's dominators are found in three places:

* processed rows in earlier f1 strips: the rows sorted by (f1, sweep position) are cut
  into strips of `strip` rows. `best_f2[k, s]` stores the smallest f2 of a processed
  rank-k row in a strip before s. A processed row there dominates the new row exactly
  when its f2 is not larger, because f0 and f1 are then not larger either. For a fixed
  strip the column is non-decreasing in k (a rank-(k+1) row is dominated by an earlier
  rank-k row in the same or an earlier strip), so the fronts that dominate the row are
  a prefix of the ranks and a search over k finds the count.
* processed rows in the row's own strip: a direct check of the strip's rows.
* rows of the same group: a dense check, resolved by iterating
  rank = max(base, 1 + max rank of in-group dominators) to its fixed point.

`best_f2` is stored in two levels (blocks of strips, and strips inside the block), so
that inserting a row updates O(sqrt(strips)) entries instead of all later strips.

Each group costs O(group * strip + group * sqrt(strips) + group * log(ranks)) work
and a fixed number of XLA operations, so 20,000 rows run as about 300 loop steps.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from metagen_jax.pareto._keys import MAX_KEY, float_key, lexsort

# Rank rows kept in `best_f2` before falling back to one row per possible rank. Random
# data with 20,000 rows and three objectives has about 60 fronts.
DEFAULT_RANK_CAPACITY = 1024


class SweepPlan(NamedTuple):
    """Static sizes of one sweep (all Python ints)."""

    size: int  # rows N
    group: int  # rows per sweep step
    strip: int  # rows per f1 strip
    strips: int  # number of strips, padded to blocks * block_width
    block_width: int  # strips per block of the two-level table
    blocks: int
    rank_capacity: int  # rows of the rank table


def make_plan(size: int, rank_capacity: int) -> SweepPlan:
    """Choose group and strip sizes for `size` rows.

    Strips of about sqrt(N) rows balance the strip check (N * strip) against the table
    update (N * sqrt(N / strip)). The bounds keep the per-row work of both small at the
    sizes this module is meant for (up to about 10**5 rows).
    """
    strip = min(256, max(32, 1 << max(0, round(math.log2(max(math.sqrt(size), 1.0))) - 1)))
    group = min(32, max(8, strip // 2))
    strip_count = max(1, -(-size // strip))
    block_width = max(1, math.isqrt(strip_count - 1) + 1)
    blocks = -(-strip_count // block_width)
    return SweepPlan(
        size=size,
        group=group,
        strip=strip,
        strips=blocks * block_width,
        block_width=block_width,
        blocks=blocks,
        rank_capacity=max(1, min(rank_capacity, size + 1)),
    )


def sweep_orders(objectives: jnp.ndarray, active: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Sort rows for the sweep.

    Args:
        objectives: (N, 3) float32, finite where `active`.
        active: (N,) bool; inactive rows sort last in both orders.

    Returns:
        sweep_order: (N,) int32 row indices in lexicographic (f0, f1, f2) order.
        strip_order: (N,) int32 row indices in (f1, sweep position) order.
    """
    keys = [jnp.where(active, float_key(objectives[:, m]), MAX_KEY) for m in range(3)]
    sweep_order = lexsort(keys)
    # Sorting the sweep order stably by f1 orders ties in f1 by (f0, f2), so a row's
    # dominators come before it in this order too.
    strip_order = lexsort([keys[1]], order=sweep_order)
    return sweep_order, strip_order


def sweep_ranks(
    objectives: jnp.ndarray,
    active: jnp.ndarray,
    plan: SweepPlan,
    *,
    front_only: bool = False,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Rank the active rows by non-dominated sorting.

    Args:
        objectives: (N, 3) float32; rows that are not active may hold any value.
        active: (N,) bool. Inactive rows neither dominate nor get a meaningful rank.
        plan: sizes from `make_plan`.
        front_only: compute min(rank, 1) only, which needs one rank row in the table.

    Returns:
        ranks: (N,) int32 rank of each active row (0 = first front), 0 for inactive rows.
        overflow: bool scalar, True when some rank reached `plan.rank_capacity`, in which
            case the ranks are not reliable and the caller must run a larger plan.
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

    sweep_ranks_sorted, overflow = _run_sweep(
        sorted_objectives, representative, sweep_order, strip_order, plan, front_only=front_only
    )
    sweep_ranks_sorted = sweep_ranks_sorted[run_start]
    ranks = jnp.zeros((size,), jnp.int32).at[sweep_order].set(jnp.where(sorted_active, sweep_ranks_sorted, 0))
    return ranks, overflow


def _run_sweep(
    sorted_objectives: jnp.ndarray,
    representative: jnp.ndarray,
    sweep_order: jnp.ndarray,
    strip_order: jnp.ndarray,
    plan: SweepPlan,
    *,
    front_only: bool,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Visit the rows in sweep order and return their ranks in that order."""
    size, group, strip = plan.size, plan.group, plan.strip
    width, blocks = plan.block_width, plan.blocks
    capacity = 1 if front_only else plan.rank_capacity
    steps = -(-size // group)
    padded_size = steps * group
    strip_rows = plan.strips * strip

    # Sweep position of each row, and each row's place in strip order.
    sweep_position = jnp.zeros((size,), jnp.int32).at[sweep_order].set(jnp.arange(size, dtype=jnp.int32))
    strip_position = jnp.zeros((size,), jnp.int32).at[strip_order].set(jnp.arange(size, dtype=jnp.int32))

    # Group data in sweep order, padded with inactive rows.
    pad = padded_size - size
    group_objectives = jnp.pad(sorted_objectives, ((0, pad), (0, 0)))
    group_active = jnp.pad(representative, (0, pad))
    group_strip_position = jnp.pad(strip_position[sweep_order], (0, pad), constant_values=strip_rows - 1)

    # Strip data in strip order: f1, f2 and the sweep position at which the row becomes
    # processed (never, for rows that do not take part).
    strip_pad = strip_rows - size
    strip_active = representative[sweep_position[strip_order]]
    strip_data = jnp.stack(
        [
            jnp.pad(sorted_objectives[sweep_position[strip_order], 1], (0, strip_pad)),
            jnp.pad(sorted_objectives[sweep_position[strip_order], 2], (0, strip_pad)),
            jnp.pad(
                jnp.where(strip_active, sweep_position[strip_order], padded_size).astype(jnp.float32),
                (0, strip_pad),
                constant_values=float(padded_size),
            ),
        ]
    )

    fine = jnp.full((capacity, plan.strips), jnp.inf, jnp.float32)  # min f2 over earlier strips of the block
    coarse = jnp.full((capacity, blocks), jnp.inf, jnp.float32)  # min f2 over earlier blocks
    strip_ranks = jnp.zeros((strip_rows,), jnp.int32)
    ranks_sorted = jnp.zeros((padded_size,), jnp.int32)

    member = jnp.arange(group, dtype=jnp.int32)
    earlier_member = member[None, :] < member[:, None]  # [p, j]: j comes before p
    in_block = jnp.arange(width, dtype=jnp.int32)
    block_index = jnp.arange(blocks, dtype=jnp.int32)
    page = max(1, math.isqrt(capacity - 1) + 1)  # ranks per page of the two-step search
    pages = -(-capacity // page)

    def count_dominating_fronts(fine, coarse, strip_index, f2):
        """Number of ranks k whose best f2 before the row's strip is <= the row's f2."""
        block = strip_index // width

        def best(k):
            k = jnp.minimum(k, capacity - 1)
            return jnp.minimum(coarse[k, block[:, None]], fine[k, strip_index[:, None]])

        # Two-step search over the non-decreasing column: first whole pages, then the
        # ranks inside the first page that is not entirely <= f2.
        page_last = jnp.minimum(jnp.arange(pages, dtype=jnp.int32) * page + page - 1, capacity - 1)
        full_pages = jnp.sum(best(jnp.broadcast_to(page_last, (group, pages))) <= f2[:, None], axis=1)
        inside = full_pages[:, None] * page + jnp.arange(page, dtype=jnp.int32)[None, :]
        in_page = jnp.sum((inside < capacity) & (best(inside) <= f2[:, None]), axis=1)
        return jnp.minimum(full_pages * page + in_page, capacity).astype(jnp.int32)

    def step(index, state):
        fine, coarse, strip_ranks, ranks_sorted, overflow = state
        start = index * group
        rows = lax.dynamic_slice(group_objectives, (start, 0), (group, 3))
        live = lax.dynamic_slice(group_active, (start,), (group,))
        where = lax.dynamic_slice(group_strip_position, (start,), (group,))
        strip_index = where // strip
        f1, f2 = rows[:, 1], rows[:, 2]

        from_strips = count_dominating_fronts(fine, coarse, strip_index, f2)

        # Processed rows of the row's own strip.
        first = strip_index * strip
        segment = jax.vmap(lambda s: lax.dynamic_slice(strip_data, (0, s), (3, strip)))(first)
        segment_ranks = jax.vmap(lambda s: lax.dynamic_slice(strip_ranks, (s,), (strip,)))(first)
        dominated_by = (segment[:, 2] < start) & (segment[:, 0] <= f1[:, None]) & (segment[:, 1] <= f2[:, None])
        from_own_strip = jnp.max(jnp.where(dominated_by, segment_ranks + 1, 0), axis=1)
        base = jnp.maximum(from_strips, from_own_strip)

        # Rows of this group: rows[j] dominates rows[p] when j comes first (so f0 is not
        # larger) and f1, f2 are not larger; distinct rows then differ somewhere.
        in_group = (
            earlier_member
            & live[None, :]
            & (rows[None, :, 1] <= rows[:, None, 1])
            & (rows[None, :, 2] <= rows[:, None, 2])
        )
        limit = 1 if front_only else jnp.iinfo(jnp.int32).max

        def relax(carry):
            current, _ = carry
            updated = jnp.maximum(base, jnp.max(jnp.where(in_group, current[None, :] + 1, 0), axis=1))
            updated = jnp.minimum(updated, limit)
            return updated, jnp.any(updated != current)

        rank, _ = lax.while_loop(lambda carry: carry[1], relax, (jnp.minimum(base, limit), jnp.bool_(True)))
        rank = jnp.where(live, rank, 0)

        ranks_sorted = lax.dynamic_update_slice(ranks_sorted, rank, (start,))
        strip_ranks = strip_ranks.at[jnp.where(live, where, strip_rows)].set(rank, mode="drop")
        overflow = overflow | jnp.any(live & (rank >= capacity))

        # Insert the group into the table: strip s of block b sees a row in an earlier
        # strip of the same block through `fine`, and a row in an earlier block through
        # `coarse`.
        target = jnp.where(live & (rank < capacity), rank, capacity)  # capacity: dropped
        block = strip_index // width
        fine_columns = block[:, None] * width + in_block[None, :]
        fine = fine.at[target[:, None], fine_columns].min(
            jnp.where(fine_columns > strip_index[:, None], f2[:, None], jnp.inf), mode="drop"
        )
        coarse = coarse.at[target].min(
            jnp.where(block_index[None, :] > block[:, None], f2[:, None], jnp.inf), mode="drop"
        )
        return fine, coarse, strip_ranks, ranks_sorted, overflow

    state = (fine, coarse, strip_ranks, ranks_sorted, jnp.bool_(False))
    _, _, _, ranks_sorted, overflow = lax.fori_loop(0, steps, step, state)
    if front_only:
        overflow = jnp.bool_(False)
    return ranks_sorted[:size], overflow
