"""Non-dominated sorting of four or more objectives by a blocked dense sweep.

Rows are visited in lexicographic order, so a row's dominators come before it. For
each group of rows, the dominance test runs against the processed rows in chunks
(O(N**2 * M) work in total, memory O(chunk * group)), and the group's own rows are
resolved by iterating rank = max(base, 1 + max rank of in-group dominators).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from metagen_jax.pareto._keys import MAX_KEY, float_key, lexsort

GROUP = 128
CHUNK = 2048


def dense_ranks(objectives: jnp.ndarray, active: jnp.ndarray, *, front_only: bool = False) -> jnp.ndarray:
    """Rank the active rows by non-dominated sorting, any number of objectives.

    Args:
        objectives: (N, M) float32, finite where `active`.
        active: (N,) bool. Inactive rows neither dominate nor get a meaningful rank.
        front_only: compute min(rank, 1) only.

    Returns:
        (N,) int32 rank of each active row (0 = first front), 0 for inactive rows.
    """
    size, count = objectives.shape
    objectives = jnp.where(active[:, None], objectives, 0.0)
    keys = [jnp.where(active, float_key(objectives[:, m]), MAX_KEY) for m in range(count)]
    order = lexsort(keys)
    rows = objectives[order]
    sorted_active = active[order]

    # Only the first copy of identical rows (adjacent in this order) takes part.
    same_as_previous = jnp.concatenate([jnp.zeros((1,), bool), jnp.all(rows[1:] == rows[:-1], axis=1)]) & sorted_active
    representative = sorted_active & ~same_as_previous
    positions = jnp.arange(size, dtype=jnp.int32)
    run_start = lax.associative_scan(jnp.maximum, jnp.where(same_as_previous, 0, positions))

    group = min(GROUP, size)
    chunk = min(CHUNK, size)
    steps = -(-size // group)
    chunks = -(-size // chunk)
    padded = max(steps * group, chunks * chunk)
    rows = jnp.pad(rows, ((0, padded - size), (0, 0)))
    live_rows = jnp.pad(representative, (0, padded - size))
    ranks = jnp.zeros((padded,), jnp.int32)
    member = jnp.arange(group, dtype=jnp.int32)
    earlier_member = member[None, :] < member[:, None]  # [p, j]: j comes before p
    limit = 1 if front_only else jnp.iinfo(jnp.int32).max

    def step(index, ranks):
        start = index * group
        block = lax.dynamic_slice(rows, (start, 0), (group, count))
        live = lax.dynamic_slice(live_rows, (start,), (group,))

        def scan_chunk(chunk_index, best):
            first = chunk_index * chunk
            candidates = lax.dynamic_slice(rows, (first, 0), (chunk, count))
            candidate_live = lax.dynamic_slice(live_rows, (first,), (chunk,)) & ((first + positions[:chunk]) < start)
            candidate_ranks = lax.dynamic_slice(ranks, (first,), (chunk,))
            dominates = candidate_live[None, :] & jnp.all(candidates[None, :, :] <= block[:, None, :], axis=2)
            return jnp.maximum(best, jnp.max(jnp.where(dominates, candidate_ranks + 1, 0), axis=1))

        processed_chunks = (start + chunk - 1) // chunk
        base = lax.fori_loop(0, processed_chunks, scan_chunk, jnp.zeros((group,), jnp.int32))
        base = jnp.minimum(base, limit)

        in_group = earlier_member & live[None, :] & jnp.all(block[None, :, :] <= block[:, None, :], axis=2)

        def relax(carry):
            current, _ = carry
            updated = jnp.maximum(base, jnp.max(jnp.where(in_group, current[None, :] + 1, 0), axis=1))
            updated = jnp.minimum(updated, limit)
            return updated, jnp.any(updated != current)

        rank, _ = lax.while_loop(lambda carry: carry[1], relax, (base, jnp.bool_(True)))
        return lax.dynamic_update_slice(ranks, jnp.where(live, rank, 0), (start,))

    ranks = lax.fori_loop(0, steps, step, ranks)[:size]
    ranks = ranks[run_start]
    return jnp.zeros((size,), jnp.int32).at[order].set(jnp.where(sorted_active, ranks, 0))
