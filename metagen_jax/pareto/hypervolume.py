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
    best_before = lax.cummin(jnp.concatenate([reference_point[1:2], second[:-1]]))
    height = jnp.maximum(best_before - second, 0.0)
    return jnp.sum((reference_point[0] - first) * height)


@functools.partial(jax.jit, static_argnames=("samples",))
def hypervolume(objectives: jax.Array, reference_point: jax.Array, mask: jax.Array | None = None,
                key: jax.Array | None = None, samples: int = 100_000) -> jax.Array:
    """Hypervolume dominated by the (masked) points up to `reference_point`.

    Exact for two objectives (one sorted sweep) and three (slices along the third
    objective, each a 2-D sweep: O(N^2 log N) time, O(N) memory per slice). For four or
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
        order = jnp.argsort(points[:, 2])
        points = points[order]
        levels = jnp.concatenate([points[1:, 2], reference_point[2:3]])
        depth = jnp.maximum(levels - points[:, 2], 0.0)
        index = jnp.arange(points.shape[0])

        def slice_area(i):
            # Points up to i in f2 order dominate the slab [f2_i, f2_{i+1}).
            active = index <= i
            first = jnp.where(active, points[:, 0], reference_point[0])
            second = jnp.where(active, points[:, 1], reference_point[1])
            return _area_2d(first, second, reference_point)

        areas = lax.map(slice_area, index)
        return jnp.sum(areas * depth)

    if key is None:
        raise ValueError("hypervolume of four or more objectives is a Monte Carlo estimate: pass a PRNG key")
    ideal = jnp.min(jnp.where(inside[:, None], points, reference_point), axis=0)
    box = jnp.prod(reference_point - ideal)
    draws = ideal + jax.random.uniform(key, (samples, num_objectives)) * (reference_point - ideal)

    def dominated(draw):
        return jnp.any(inside & jnp.all(points <= draw, axis=1))

    fraction = jnp.mean(lax.map(dominated, draws, batch_size=1024).astype(jnp.float32))
    return box * fraction
