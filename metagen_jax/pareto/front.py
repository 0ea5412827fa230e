"""First Pareto front of many rows in bounded memory, by streaming fixed-size chunks.

`merge_front` keeps a fixed-capacity buffer of front rows (objectives, an int32
payload such as the row index, and a validity mask) and merges one chunk into it, so
every call has the same shapes and compiles once. `first_front_chunked` drives it over
an array on the host.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from metagen_jax.pareto.ranking import check_objectives, nondominated_ranks

DEFAULT_CHUNK_SIZE = 16384


@jax.jit
def merge_front(
    front_objectives: jnp.ndarray,
    front_payload: jnp.ndarray,
    front_valid: jnp.ndarray,
    new_objectives: jnp.ndarray,
    new_payload: jnp.ndarray,
    new_valid: jnp.ndarray,
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Merge a chunk of rows into a buffer of first-front rows.

    Args:
        front_objectives: (C, M) float32 buffer rows.
        front_payload: (C,) int32 value carried with each buffer row.
        front_valid: (C,) bool, which buffer rows hold a row.
        new_objectives: (B, M) float32 chunk rows.
        new_payload: (B,) int32.
        new_valid: (B,) bool, which chunk rows take part (e.g. the feasible ones).
            Rows with a NaN or infinite objective never take part.

    Returns:
        (front_objectives, front_payload, front_valid, dropped): the rows of the buffer
        and the chunk that no other of them dominates, buffer rows first and in input
        order otherwise, packed at the start of the (C,) buffer. `dropped` is the int32
        count of such rows that did not fit. When it is positive, the buffer is
        incomplete and the caller needs a larger capacity.
    """
    check_objectives(front_objectives)
    check_objectives(new_objectives)
    capacity = front_objectives.shape[0]
    objectives = jnp.concatenate([front_objectives, new_objectives]).astype(jnp.float32)
    payload = jnp.concatenate([front_payload, new_payload]).astype(jnp.int32)
    valid = jnp.concatenate([front_valid, new_valid]) & jnp.all(jnp.isfinite(objectives), axis=1)

    keep = valid & (nondominated_ranks(objectives, valid, front_only=True) == 0)
    slot = jnp.where(keep, jnp.cumsum(keep) - 1, capacity)  # capacity and beyond: dropped
    kept_count = jnp.sum(keep, dtype=jnp.int32)
    merged_objectives = jnp.zeros_like(front_objectives).at[slot].set(objectives, mode="drop")
    merged_payload = jnp.zeros_like(front_payload).at[slot].set(payload, mode="drop")
    merged_valid = jnp.arange(capacity) < kept_count
    return merged_objectives, merged_payload, merged_valid, jnp.maximum(kept_count - capacity, 0)


def first_front_chunked(
    objectives,
    violation,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    capacity: int | None = None,
) -> np.ndarray:
    """Return the (N,) bool mask of the feasible first front, streaming chunks of rows.

    Equal to `pareto_front_mask(objectives, violation)`, but device memory stays
    O((capacity + chunk_size) * M) whatever N is. Rows go through `merge_front` in
    chunks of `chunk_size` (the last one padded), so each buffer capacity compiles once.
    When the front outgrows `capacity` (default: the chunk size), the pass restarts
    with twice the capacity.

    Args:
        objectives: (N, M) float array on the host or device, every column minimised.
        violation: (N,) constraint violation; feasible rows have violation <= 0, no NaN
            and only finite objectives.
        chunk_size: rows per merge.
        capacity: initial buffer size, in front rows.

    Returns:
        (N,) numpy bool array, True for feasible rows on the first front.
    """
    objectives = np.asarray(objectives, dtype=np.float32)
    violation = np.asarray(violation, dtype=np.float32)
    if objectives.ndim != 2 or objectives.shape[1] < 1:
        raise ValueError(f"objectives must have shape (N, M) with M >= 1, got shape {objectives.shape}")
    if violation.shape != (objectives.shape[0],):
        raise ValueError(f"violation must have shape ({objectives.shape[0]},), got shape {violation.shape}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    size, count = objectives.shape
    mask = np.zeros((size,), dtype=bool)
    feasible = np.all(np.isfinite(objectives), axis=1) & (violation <= 0)  # NaN violation compares False
    if not feasible.any():
        return mask

    # Chunks no larger than needed, rounded up to a power of two to bound the number of
    # compiled shapes.
    chunk = min(chunk_size, 1 << max(0, (size - 1).bit_length()))
    capacity = chunk if capacity is None else max(1, capacity)
    while True:
        front_objectives = jnp.zeros((capacity, count), jnp.float32)
        front_payload = jnp.zeros((capacity,), jnp.int32)
        front_valid = jnp.zeros((capacity,), bool)
        dropped = jnp.int32(0)
        for start in range(0, size, chunk):
            stop = min(start + chunk, size)
            pad = chunk - (stop - start)
            rows = np.pad(objectives[start:stop], ((0, pad), (0, 0)))
            rows_valid = np.pad(feasible[start:stop], (0, pad))
            payload = np.arange(start, start + chunk, dtype=np.int32)
            front_objectives, front_payload, front_valid, chunk_dropped = merge_front(
                front_objectives, front_payload, front_valid, rows, payload, rows_valid
            )
            dropped = dropped + chunk_dropped
        if int(dropped) == 0:
            break
        capacity *= 2

    mask[np.asarray(front_payload)[np.asarray(front_valid)]] = True
    return mask
