"""Search space: exact size, enumeration, sampling, repair and budget narrowing."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metagen_jax.cost.architecture import ArchitectureConfig
from metagen_jax.cost.model import CostModel
from metagen_jax.cost.quality import QualityModel
from metagen_jax.hardware import PROFILES
from metagen_jax.space import (
    FFN_QUARTERS,
    HEADS,
    HIDDEN,
    KV_HEADS,
    LAYERS,
    GeneBounds,
    SearchSpace,
    decode,
    narrow_bounds,
)

SMALL = GeneBounds(hidden_min=256, hidden_max=768, layers_min=4, layers_max=7, heads_min=4,
                   heads_max=32, ffn_quarters_min=8, ffn_quarters_max=11)


def brute_force_genomes(bounds: GeneBounds) -> list[tuple[int, ...]]:
    rows = []
    for hidden in range(bounds.hidden_min, bounds.hidden_max + 1, 64):
        for heads in range(bounds.heads_min, bounds.heads_max + 1):
            if hidden % heads or not 32 <= hidden // heads <= 256 or (hidden // heads) % 8:
                continue
            for kv in range(1, heads + 1):
                if heads % kv:
                    continue
                for layers in range(bounds.layers_min, bounds.layers_max + 1):
                    for quarters in range(bounds.ffn_quarters_min, bounds.ffn_quarters_max + 1):
                        rows.append((hidden, layers, heads, kv, quarters))
    return rows


def test_size_matches_brute_force():
    space = SearchSpace.from_bounds(SMALL)
    assert space.size == len(brute_force_genomes(SMALL))


def test_enumeration_is_a_bijection():
    space = SearchSpace.from_bounds(SMALL)
    genomes = space.genomes_at(np.arange(space.size))
    assert {tuple(row) for row in genomes.tolist()} == set(brute_force_genomes(SMALL))
    assert space.is_valid(genomes).all()


def test_genome_index_out_of_range():
    space = SearchSpace.from_bounds(SMALL)
    with pytest.raises(IndexError):
        space.genomes_at([space.size])


def test_full_space_size():
    # 125 widths, 61 depths, 25 FFN steps; heads 4..128 dividing the width with a head size
    # of 32..256 in steps of 8, kv dividing heads.
    space = SearchSpace.from_bounds(GeneBounds())
    layouts = 0
    for hidden in range(256, 8193, 64):
        for heads in range(4, 129):
            head_dim = hidden // heads
            if hidden % heads == 0 and 32 <= head_dim <= 256 and head_dim % 8 == 0:
                layouts += sum(1 for kv in range(1, heads + 1) if heads % kv == 0)
    assert len(space.layouts) == layouts
    assert space.size == layouts * 61 * 25


def test_sample_is_valid_and_covers_every_gene_value():
    space = SearchSpace.from_bounds(SMALL)
    genomes = np.asarray(jax.jit(space.sample, static_argnums=1)(jax.random.key(0), 20000))
    assert genomes.dtype == np.int32
    assert space.is_valid(genomes).all()
    assert set(genomes[:, LAYERS]) == set(range(4, 8))
    assert set(genomes[:, FFN_QUARTERS]) == set(range(8, 12))
    assert set(genomes[:, HIDDEN]) == set(range(256, 769, 64))


def test_repair_maps_anything_to_valid_and_keeps_valid():
    space = SearchSpace.from_bounds(SMALL)
    rng = np.random.default_rng(1)
    junk = rng.integers(-50, 10000, size=(5000, 5)).astype(np.int32)
    repaired = np.asarray(jax.jit(space.repair)(junk))
    assert space.is_valid(repaired).all()
    valid = space.genomes_at(rng.integers(0, space.size, 2000))
    np.testing.assert_array_equal(np.asarray(space.repair(valid)), valid)


def test_repair_picks_nearest_divisors():
    space = SearchSpace.from_bounds(SMALL)
    # 448 = 7 * 64, so 7 heads (head size 64) divide it and stay. kv 5 does not divide 7; the
    # divisor 7 (distance 2) beats 1 (distance 4).
    repaired = np.asarray(space.repair(np.array([[448, 5, 7, 5, 9]], dtype=np.int32)))[0]
    assert repaired.tolist() == [448, 5, 7, 7, 9]
    # 500 snaps to 512, whose allowed head counts near 10 are 8 and 16 (head sizes 64 and 32),
    # so heads become 8. kv 3 lies between the divisors 2 and 4 of 8; ties go to the smaller.
    repaired = np.asarray(space.repair(np.array([[500, 99, 10, 3, 2]], dtype=np.int32)))[0]
    assert repaired[HIDDEN] == 512
    assert repaired[LAYERS] == 7
    assert repaired[HEADS] == 8
    assert repaired[KV_HEADS] == 2
    assert repaired[FFN_QUARTERS] == 8


def test_decode_ffn_hidden():
    dims = decode(jnp.array([[1024, 8, 16, 4, 11]], dtype=jnp.int32))
    assert int(dims.ffn_hidden[0]) == 1024 * 11 // 4


def test_narrowing_never_drops_a_genome_within_budget():
    config = ArchitectureConfig(vocab_size=32000)
    model = CostModel(config, PROFILES["h100"], QualityModel())
    bounds = GeneBounds(hidden_min=256, hidden_max=2048, layers_min=4, layers_max=40,
                        heads_min=4, heads_max=16, ffn_quarters_min=8, ffn_quarters_max=16)
    full = SearchSpace.from_bounds(bounds)
    genomes = full.genomes_at(np.arange(full.size))
    params = model.exact_params(decode(genomes.astype(np.int64), np))
    low, high = 200_000_000, 400_000_000
    narrowed = narrow_bounds(bounds, model, max_params=high, min_params=low, memory_limit_bytes=None)
    inside = genomes[(params >= low) & (params <= high)]
    assert len(inside) > 0
    assert inside[:, HIDDEN].min() >= narrowed.hidden_min
    assert inside[:, HIDDEN].max() <= narrowed.hidden_max
    assert inside[:, LAYERS].min() >= narrowed.layers_min
    assert inside[:, LAYERS].max() <= narrowed.layers_max
    # And it does narrow: the space shrinks.
    assert SearchSpace.from_bounds(narrowed).size < full.size


def test_narrowing_to_nothing_keeps_one_width():
    model = CostModel(ArchitectureConfig(vocab_size=32000), PROFILES["h100"], QualityModel())
    narrowed = narrow_bounds(GeneBounds(), model, max_params=1000, min_params=None, memory_limit_bytes=None)
    assert narrowed.hidden_min == narrowed.hidden_max == 256
    assert narrowed.layers_min == narrowed.layers_max == 4


def test_non_attention_space_has_one_layout_per_width():
    space = SearchSpace.from_bounds(GeneBounds(attention=False))
    assert len(space.layouts) == 125
    assert (space.layouts[:, 1] == 4).all()


@pytest.mark.parametrize("bad", [dict(hidden_min=300), dict(layers_min=10, layers_max=5), dict(heads_min=0)])
def test_invalid_bounds_rejected(bad):
    with pytest.raises(ValueError):
        GeneBounds(**bad)


def test_sizes_by_itertools_product_small():
    bounds = GeneBounds(hidden_min=256, hidden_max=256, layers_min=4, layers_max=4, heads_min=4,
                        heads_max=4, ffn_quarters_min=8, ffn_quarters_max=8)
    # 256 with 4 heads of 64: kv in {1, 2, 4}.
    assert SearchSpace.from_bounds(bounds).size == len(list(itertools.product([1, 2, 4])))


def test_head_size_limits():
    space = SearchSpace.from_bounds(GeneBounds())
    head_dims = space.layouts[:, 0] // space.layouts[:, 1]
    assert head_dims.min() == 32
    assert head_dims.max() == 256
    assert (head_dims % 8 == 0).all()
