"""Order-preserving integer keys and a stable lexicographic argsort built on them.

XLA on CPU sorts a single int32 operand several times faster than it sorts several
operands together (about 1.5 ms against 7 ms for 20,000 elements, measured with
jax 0.10.2 on a 2-core AMD EPYC VM). `lexsort` therefore runs a least-significant-digit
radix sort: each pass packs one digit of the key and the element's current position
into one int32 and sorts that, which keeps every pass stable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

# Largest key: every finite float32 and +inf map below it, so rows given this key
# sort after all real values.
MAX_KEY = np.uint32(0xFFFFFFFF)  # a NumPy scalar: a jnp one would start the XLA backend at import


def float_key(values: jnp.ndarray) -> jnp.ndarray:
    """Map float32 values to uint32 keys with the same order.

    -0.0 and +0.0 get the same key. NaN gets a key above +inf; callers that care mask
    NaN first.
    """
    values = jnp.asarray(values, jnp.float32) + jnp.float32(0.0)  # turns -0.0 into +0.0
    bits = lax.bitcast_convert_type(values, jnp.uint32)
    negative = (bits >> 31) == 1
    # Negative floats: flip every bit, so larger magnitudes sort first.
    # Non-negative floats: set the sign bit, so they sort after all negatives.
    return jnp.where(negative, ~bits, bits | jnp.uint32(0x80000000))


def int_key(values: jnp.ndarray) -> jnp.ndarray:
    """Map int32 values to uint32 keys with the same order (negative values first)."""
    return lax.bitcast_convert_type(jnp.asarray(values, jnp.int32), jnp.uint32) ^ jnp.uint32(0x80000000)


def position_bits(size: int) -> int:
    """Number of bits needed to store a position in [0, size)."""
    return max(1, math.ceil(math.log2(max(size, 2))))


def lexsort(keys: list[jnp.ndarray], order: jnp.ndarray | None = None,
            key_bits: int | Sequence[int] = 32) -> jnp.ndarray:
    """Return the stable permutation that sorts rows by `keys`, most significant first.

    Args:
        keys: uint32 arrays of shape (N,), most significant key first.
        order: optional (N,) int32 permutation giving the order that ties keep
            (default: index order).
        key_bits: each key is below 2**key_bits (one number for all keys, or one per
            key). Fewer bits take fewer sort passes.

    Returns:
        (N,) int32 permutation `p` such that rows `p[0], p[1], ...` are in ascending
        lexicographic order of `keys`, ties in the order of `order`.
    """
    size = keys[0].shape[0]
    pbits = position_bits(size)
    if pbits > 29:
        raise ValueError(f"lexsort supports at most 2**29 rows, got {size}")
    digit_bits = 31 - pbits
    positions = jnp.arange(size, dtype=jnp.int32)
    perm = positions if order is None else jnp.asarray(order, jnp.int32)

    bits_of = [key_bits] * len(keys) if isinstance(key_bits, int) else list(key_bits)
    if len(bits_of) != len(keys):
        raise ValueError(f"key_bits has {len(bits_of)} entries for {len(keys)} keys")

    # Least significant digit first: the last key's low digit, up to the first key's
    # high digit.
    for key, bits in zip(reversed(keys), reversed(bits_of), strict=True):
        key = jnp.asarray(key, jnp.uint32)
        shift = 0
        while shift < bits:
            width = min(digit_bits, bits - shift)
            digit = ((key >> shift) & jnp.uint32((1 << width) - 1)).astype(jnp.int32)
            packed = (digit[perm] << pbits) | positions
            packed = lax.sort(packed)
            perm = perm[packed & ((1 << pbits) - 1)]
            shift += width
    return perm


def dense_key_ranks(keys: jnp.ndarray, order: jnp.ndarray) -> jnp.ndarray:
    """Return, for each uint32 key, the number of distinct keys smaller than it.

    Args:
        keys: (N,) uint32.
        order: (N,) int32 permutation that sorts `keys` (ties in any order).

    Returns:
        (N,) uint32 dense ranks in [0, N).
    """
    ordered = keys[order]
    is_new = jnp.concatenate([jnp.zeros((1,), jnp.uint32), (ordered[1:] != ordered[:-1]).astype(jnp.uint32)])
    return jnp.zeros(keys.shape, jnp.uint32).at[order].set(jnp.cumsum(is_new, dtype=jnp.uint32))
