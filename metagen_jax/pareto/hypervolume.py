"""Hypervolume indicator: exact for 2 and 3 objectives, Monte Carlo beyond (jit-able).

The hypervolume of a set of minimised points is the volume of the region they dominate
inside the box bounded by a reference point (Zitzler and Thiele 1998, "Multiobjective
optimization using evolutionary algorithms: a comparative case study", PPSN V).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

# Relative margin past the worst point used by `default_reference_point`.
REFERENCE_MARGIN = 0.1


def default_reference_point(objectives: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Return the nadir of the masked points plus 10% of their range in each objective.

    A column of equal values gets a margin of 10% of its magnitude (or 1 when it is 0),
    so every point on the front still has a positive contribution.
    """
    objectives = jnp.asarray(objectives, dtype=jnp.float32)
    if mask is None:
        mask = jnp.ones(objectives.shape[0], dtype=bool)
    usable = mask[:, None] & jnp.isfinite(objectives)
    high = jnp.max(jnp.where(usable, objectives, -jnp.inf), axis=0)
    low = jnp.min(jnp.where(usable, objectives, jnp.inf), axis=0)
    span = high - low
    fallback = jnp.where(jnp.abs(high) > 0, jnp.abs(high) * REFERENCE_MARGIN, 1.0)
    margin = jnp.where(span > 0, span * REFERENCE_MARGIN, fallback)
    return jnp.where(jnp.isfinite(high), high + margin, 1.0)


def _clip_to_reference(objectives, reference_point, mask):
    """Move points that do not strictly dominate the reference point onto it (volume 0)."""
    inside = jnp.all(objectives < reference_point, axis=1) & jnp.all(jnp.isfinite(objectives), axis=1)
    if mask is not None:
        inside = inside & mask
    return jnp.where(inside[:, None], objectives, reference_point), inside


def _area_2d(first, second, reference_point):
    """Dominated area of 2-D points; points at the reference point add nothing."""
    order = jnp.lexsort((second, first))
    first, second = first[order], second[order]
    best_before = lax.associative_scan(jnp.minimum, jnp.concatenate([reference_point[1:2], second[:-1]]))
    height = jnp.maximum(best_before - second, 0.0)
    return jnp.sum((reference_point[0] - first) * height)


def _volume_3d(points, inside, reference_point):
    """Dominated volume of 3-D points already clipped to the reference point.

    The region is cut into slabs between consecutive third-objective values: slab i is
    dominated by the points whose third objective is among the i + 1 smallest, and its
    area is a 2-D sweep in first-objective order. One loop over the points in that order
    advances the sweeps of all N slabs at once, carrying each slab's running minimum of
    the second objective: O(N^2) time, O(N) memory. On XLA:CPU it is about ten times
    faster than N separate sorted sweeps or an (N, N) associative scan. Points outside
    (`inside` False) sit on the reference point, sort last and add nothing, so the loop
    stops after the inside ones.
    """
    size = points.shape[0]
    z_order = jnp.argsort(points[:, 2])
    z_sorted = points[z_order, 2]
    depth = jnp.concatenate([z_sorted[1:], reference_point[2:3]]) - z_sorted
    z_place = jnp.zeros(size, dtype=jnp.int32).at[z_order].set(jnp.arange(size, dtype=jnp.int32))

    # Ties in the first objective are ordered by the second, so a tied later point adds 0.
    x_order = jnp.lexsort((points[:, 1], points[:, 0]))
    slabs = jnp.arange(size, dtype=jnp.int32)
    xs, ys, places = points[x_order, 0], points[x_order, 1], z_place[x_order]

    def sweep_column(index, carry):
        lowest, area = carry
        height = jnp.where(places[index] <= slabs, ys[index], reference_point[1])
        area = area + jnp.maximum(lowest - height, 0.0) * (reference_point[0] - xs[index])
        return jnp.minimum(lowest, height), area

    start = (jnp.full(size, reference_point[1]), jnp.zeros(size, dtype=points.dtype))
    _, areas = lax.fori_loop(0, jnp.sum(inside, dtype=jnp.int32), sweep_column, start)
    return jnp.sum(areas * depth)


@functools.partial(jax.jit, static_argnames=("samples",))
def hypervolume(objectives: jax.Array, reference_point: jax.Array, mask: jax.Array | None = None,
                key: jax.Array | None = None, samples: int = 100_000) -> jax.Array:
    """Hypervolume dominated by the (masked) points up to `reference_point`.

    Exact for two objectives (one sorted sweep, O(N log N)) and three (slabs along the
    third objective, all swept in one pass: O(N^2) time, O(N) memory). For four or
    more objectives it is a Monte Carlo estimate from `samples` uniform points in the box
    between the ideal point and the reference point, with `key` required; its standard
    error is box_volume * sqrt(p (1 - p) / samples) for a dominated fraction p.

    Points with a NaN or infinite objective, points outside the mask and points that do
    not strictly dominate the reference point contribute nothing.
    """
    objectives = jnp.asarray(objectives, dtype=jnp.float32)
    reference_point = jnp.asarray(reference_point, dtype=jnp.float32)
    points, inside = _clip_to_reference(jnp.nan_to_num(objectives, nan=jnp.inf), reference_point, mask)
    num_objectives = objectives.shape[1]

    if num_objectives == 1:
        return jnp.maximum(reference_point[0] - jnp.min(points[:, 0]), 0.0)
    if num_objectives == 2:
        return _area_2d(points[:, 0], points[:, 1], reference_point)
    if num_objectives == 3:
        return _volume_3d(points, inside, reference_point)

    if key is None:
        raise ValueError("hypervolume of four or more objectives is a Monte Carlo estimate: pass a PRNG key")
    ideal = jnp.min(jnp.where(inside[:, None], points, reference_point), axis=0)
    box = jnp.prod(reference_point - ideal)
    draws = ideal + jax.random.uniform(key, (samples, num_objectives)) * (reference_point - ideal)

    def dominated(draw):
        return jnp.any(inside & jnp.all(points <= draw, axis=1))

    fraction = jnp.mean(lax.map(dominated, draws, batch_size=1024).astype(jnp.float32))
    return box * fraction
