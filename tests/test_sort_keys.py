"""Radix lexsort, order-preserving keys and the sweep's two row orders, against NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metagen_jax.pareto._keys import dense_key_ranks, float_key, int_key, lexsort
from metagen_jax.pareto._sweep import sweep_orders
from metagen_jax.strategies.operators import argsort_bits


def test_int_key_keeps_signed_order():
    values = np.array([5, -3, 0, -2**31, 2**31 - 1, -1, 7], dtype=np.int32)
    keys = np.asarray(int_key(jnp.asarray(values)))
    np.testing.assert_array_equal(np.argsort(keys, kind="stable"), np.argsort(values, kind="stable"))


def test_lexsort_bits_per_key():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 5, 3000).astype(np.uint32)  # fits 3 bits: one pass
    large = rng.integers(0, 2**32, 3000, dtype=np.uint64).astype(np.uint32)
    order = np.asarray(lexsort([jnp.asarray(small), jnp.asarray(large)], key_bits=[3, 32]))
    np.testing.assert_array_equal(order, np.lexsort((large, small)))


def test_lexsort_rejects_bits_length():
    with pytest.raises(ValueError, match="2 entries for 1 keys"):
        lexsort([jnp.zeros(4, jnp.uint32)], key_bits=[8, 8])


def test_dense_key_ranks_by_hand():
    keys = jnp.asarray([7, 3, 7, 1, 3, 9], dtype=jnp.uint32)
    ranks = dense_key_ranks(keys, jnp.argsort(keys))
    # Distinct keys 1 < 3 < 7 < 9 get ranks 0..3.
    np.testing.assert_array_equal(np.asarray(ranks), [2, 1, 2, 0, 1, 3])


@pytest.mark.parametrize("kind", ["uniform", "integer"])
def test_sweep_orders_are_lexicographic(kind):
    rng = np.random.default_rng(3)
    size = 2500
    if kind == "uniform":
        points = rng.random((size, 3)).astype(np.float32)
    else:
        points = rng.integers(0, 6, (size, 3)).astype(np.float32)
    active = rng.random(size) < 0.9
    sweep, strip = (np.asarray(order) for order in jax.jit(sweep_orders)(jnp.asarray(points), jnp.asarray(active)))

    # Sweep order: (f0, f1, f2); strip order: (f1, f0, f2); inactive rows last in both,
    # in any order. Equal rows may come in any order, so compare the sorted rows.
    live = int(active.sum())
    for order, columns in ((sweep, (0, 1, 2)), (strip, (1, 0, 2))):
        assert active[order[:live]].all()
        expected = np.lexsort(tuple(points[:, c] for c in reversed(columns)) + (~active,))[:live]
        np.testing.assert_array_equal(points[order[:live]], points[expected])


def test_argsort_bits_matches_argsort():
    rng = np.random.default_rng(5)
    # Distinct values in the high 21 bits, random low bits.
    high = rng.permutation(1 << 12)[:1000].astype(np.uint32) << 20
    bits = high | rng.integers(0, 1 << 20, 1000).astype(np.uint32)
    order = np.asarray(argsort_bits(jnp.asarray(bits)[None, :]))[0]
    np.testing.assert_array_equal(order, np.argsort(bits))


def test_argsort_bits_equal_high_bits():
    # Equal above bit 11 (10 index bits + 1 for 1,000 elements): the low bits are ignored.
    bits = np.full(1000, 5 << 20, dtype=np.uint32)
    bits[::2] |= np.uint32(3)
    order = np.asarray(argsort_bits(jnp.asarray(bits)[None, :]))[0]
    np.testing.assert_array_equal(order, np.arange(1000))
