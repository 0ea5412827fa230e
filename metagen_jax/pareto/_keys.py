"""Order-preserving integer keys and a stable lexicographic argsort built on them.

XLA on CPU sorts a single int32 operand several times faster than it sorts several
operands together (about 1.5 ms against 7 ms for 20,000 elements, measured with
jax 0.10.2 on a 2-core AMD EPYC VM). `lexsort` therefore runs a least-significant-digit
radix sort: each pass packs one digit of the key and the element's current position
into one int32 and sorts that, which keeps every pass stable.
"""

from __future__ import annotations

import math

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


def position_bits(size: int) -> int:
    """Number of bits needed to store a position in [0, size)."""
    return max(1, math.ceil(math.log2(max(size, 2))))


def lexsort(keys: list[jnp.ndarray], order: jnp.ndarray | None = None) -> jnp.ndarray:
    """Return the stable permutation that sorts rows by `keys`, most significant first.

    Args:
        keys: uint32 arrays of shape (N,), most significant key first.
        order: optional (N,) int32 permutation giving the order that ties keep
            (default: index order).

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

    # Least significant digit first: the last key's low digit, up to the first key's
    # high digit.
    for key in reversed(keys):
        key = jnp.asarray(key, jnp.uint32)
        shift = 0
        while shift < 32:
            width = min(digit_bits, 32 - shift)
            digit = ((key >> shift) & jnp.uint32((1 << width) - 1)).astype(jnp.int32)
            packed = (digit[perm] << pbits) | positions
            packed = lax.sort(packed)
            perm = perm[packed & ((1 << pbits) - 1)]
            shift += width
    return perm
