"""Random search: a uniform sample of distinct valid genomes, drawn in one jitted call."""

from __future__ import annotations

import functools

import jax
import numpy as np

from metagen_jax.space import SearchSpace

# Draw this much more than requested so that duplicates rarely force a second draw.
OVERSAMPLE = 1.25


@functools.partial(jax.jit, static_argnames=("count", "layouts", "depths", "ffn_steps"))
def _draw_parts(key: jax.Array, count: int, layouts: int, depths: int, ffn_steps: int):
    layout_key, depth_key, ffn_key = jax.random.split(key, 3)
    return (
        jax.random.randint(layout_key, (count,), 0, layouts),
        jax.random.randint(depth_key, (count,), 0, depths),
        jax.random.randint(ffn_key, (count,), 0, ffn_steps),
    )


def sample_distinct_indices(space: SearchSpace, key: jax.Array, count: int) -> np.ndarray:
    """Draw up to `count` distinct genome numbers uniformly, in draw order (int64).

    When `count` reaches the space's size, every genome number is returned in order.
    """
    if count >= space.size:
        return np.arange(space.size, dtype=np.int64)
    if 2 * count >= space.size:
        # Rejection would need many draws this close to the whole space: shuffle it instead.
        return np.asarray(jax.random.permutation(key, space.size), dtype=np.int64)[:count]
    per_layout = space.num_depths * space.num_ffn_steps
    chosen = np.empty(0, dtype=np.int64)
    for attempt in range(8):
        draw_key = jax.random.fold_in(key, attempt)
        draw = max(64, int(count * OVERSAMPLE))
        # Round the draw size up to a power of two so repeated searches reuse one compile.
        draw = 1 << (draw - 1).bit_length()
        layout, depth, ffn = jax.device_get(
            _draw_parts(draw_key, draw, len(space.layouts), space.num_depths, space.num_ffn_steps))
        indices = layout.astype(np.int64) * per_layout + depth.astype(np.int64) * space.num_ffn_steps + ffn
        merged = np.concatenate([chosen, indices])
        _, first = np.unique(merged, return_index=True)
        chosen = merged[np.sort(first)]
        if len(chosen) >= count:
            return chosen[:count]
    return chosen


def random_search_genomes(space: SearchSpace, key: jax.Array, count: int) -> np.ndarray:
    """Sample `count` distinct genomes (fewer only when the space is smaller)."""
    return space.genomes_at(sample_distinct_indices(space, key, count))
