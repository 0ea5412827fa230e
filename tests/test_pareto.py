"""Pareto ranking, crowding distance and streaming first fronts against pymoo and oracles."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from metagen_jax.pareto import (
    constrained_nondominated_rank,
    crowding_distance,
    first_front_chunked,
    merge_front,
    nondominated_rank,
    pareto_front_mask,
)
from metagen_jax.pareto.ranking import DENSE_SIZE


def pymoo_ranks(points: np.ndarray) -> np.ndarray:
    return NonDominatedSorting().do(points.astype(np.float64), return_rank=True)[1]


def dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def oracle_constrained_ranks(points: np.ndarray, violation: np.ndarray) -> list[int]:
    """Slow reference: peel fronts among feasible rows, then rank infeasible rows by violation."""
    rows = [tuple(float(v) for v in row) for row in points]
    bad = [not all(math.isfinite(v) for v in row) or math.isnan(float(c)) for row, c in zip(rows, violation)]
    feasible = [not b and float(c) <= 0 for b, c in zip(bad, violation)]
    ranks = [-1] * len(rows)
    remaining = [i for i in range(len(rows)) if feasible[i]]
    front = 0
    while remaining:
        current = [i for i in remaining if not any(dominates(rows[j], rows[i]) for j in remaining)]
        for i in current:
            ranks[i] = front
        remaining = [i for i in remaining if i not in current]
        front += 1
    keys = {i: (math.inf if bad[i] else float(violation[i])) for i in range(len(rows)) if not feasible[i]}
    distinct = sorted(set(keys.values()))
    for i, key in keys.items():
        ranks[i] = front + distinct.index(key)
    return ranks


def pymoo_crowding(points: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    crowding = get_crowding_function("cd")
    expected = np.zeros(len(points))
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        expected[members] = crowding.do(points[members].astype(np.float64))
    return expected


def random_points(seed: int, size: int, count: int, integer: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if integer:
        return rng.integers(0, 4, (size, count)).astype(np.float32)  # many ties and duplicates
    return rng.random((size, count)).astype(np.float32)


# Ranking ---------------------------------------------------------------------------


def test_rank_hand_case():
    points = jnp.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [3.0, 3.0], [1.0, 2.0]])
    ranks = constrained_nondominated_rank(points, jnp.zeros(5))
    assert ranks.dtype == jnp.int32
    assert ranks.tolist() == [0, 0, 1, 2, 0]


@pytest.mark.parametrize("count", [1, 2, 3, 4])
@pytest.mark.parametrize("integer", [False, True])
def test_rank_matches_pymoo_small(count, integer):
    points = random_points(count + 10 * integer, 300, count, integer)
    ranks = np.asarray(constrained_nondominated_rank(points, np.zeros(300, np.float32)))
    np.testing.assert_array_equal(ranks, pymoo_ranks(points))


@pytest.mark.parametrize("integer", [False, True])
def test_rank_sweep_matches_pymoo(integer):
    # Above DENSE_SIZE rows, three objectives go through the blocked sweep.
    size = 1500
    assert size > DENSE_SIZE
    points = random_points(7 + integer, size, 3, integer)
    if integer:
        points = np.random.default_rng(1).integers(0, 12, (size, 3)).astype(np.float32)
    ranks = np.asarray(constrained_nondominated_rank(points, np.zeros(size, np.float32)))
    np.testing.assert_array_equal(ranks, pymoo_ranks(points))


def test_identical_rows_share_rank():
    points = np.array([[1, 1], [1, 1], [0, 2], [0, 2], [2, 2], [2, 2]], np.float32)
    ranks = np.asarray(constrained_nondominated_rank(points, np.zeros(6, np.float32)))
    assert ranks.tolist() == [0, 0, 0, 0, 1, 1]


def test_negative_zero_equals_zero():
    points = np.array([[0.0, 1.0], [-0.0, 1.0], [0.0, 0.5]], np.float32)
    ranks = np.asarray(constrained_nondominated_rank(points, np.zeros(3, np.float32)))
    assert ranks.tolist() == [1, 1, 0]


def test_constrained_rank_matches_oracle():
    rng = np.random.default_rng(3)
    size = 80
    points = rng.integers(0, 5, (size, 3)).astype(np.float32)
    violation = np.where(rng.random(size) < 0.4, rng.integers(1, 4, size), 0).astype(np.float32)
    violation[rng.random(size) < 0.2] = -1.0  # negative violation is feasible too
    points[3, 1] = np.nan
    points[7, 0] = np.inf
    points[11, 2] = -np.inf
    violation[13] = np.nan
    violation[17] = np.inf
    ranks = np.asarray(constrained_nondominated_rank(points, violation))
    assert ranks.tolist() == oracle_constrained_ranks(points, violation)


def test_infeasible_rows_follow_feasible_fronts():
    points = np.array([[0, 0], [1, 1], [5, 5], [5, 5], [9, 9]], np.float32)
    violation = np.array([0, 0, 2.0, 0.5, 2.0], np.float32)
    ranks = np.asarray(constrained_nondominated_rank(points, violation))
    # Feasible fronts 0 and 1; violation 0.5 next, then the two rows with violation 2.
    assert ranks.tolist() == [0, 1, 3, 2, 3]


def test_all_infeasible_ranks_by_violation():
    points = np.zeros((4, 2), np.float32)
    violation = np.array([3.0, 1.0, np.nan, 1.0], np.float32)
    assert np.asarray(constrained_nondominated_rank(points, violation)).tolist() == [1, 0, 2, 0]


def test_nonfinite_rows_never_on_front():
    points = np.array([[np.nan, 0], [0, np.inf], [-np.inf, 0], [1, 1], [2, 2]], np.float32)
    violation = np.zeros(5, np.float32)
    mask = np.asarray(pareto_front_mask(points, violation))
    assert mask.tolist() == [False, False, False, True, False]
    ranks = np.asarray(constrained_nondominated_rank(points, violation))
    assert ranks.tolist() == [2, 2, 2, 0, 1]


def test_front_mask_empty_when_nothing_feasible():
    points = np.random.default_rng(0).random((20, 3)).astype(np.float32)
    assert not np.asarray(pareto_front_mask(points, np.ones(20, np.float32))).any()


@pytest.mark.parametrize("size", [1, 2, 300])
def test_front_mask_matches_rank_zero(size):
    rng = np.random.default_rng(size)
    points = rng.integers(0, 5, (size, 3)).astype(np.float32)
    violation = np.where(rng.random(size) < 0.3, 1.0, 0.0).astype(np.float32)
    mask = np.asarray(pareto_front_mask(points, violation))
    ranks = np.asarray(constrained_nondominated_rank(points, violation))
    np.testing.assert_array_equal(mask, (ranks == 0) & (violation <= 0))


def test_nondominated_rank_respects_mask():
    points = np.array([[0, 0], [1, 1], [2, 2]], np.float32)
    ranks = np.asarray(nondominated_rank(points, np.array([False, True, True])))
    assert ranks[1:].tolist() == [0, 1]


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"objectives must have shape \(N, M\)"):
        constrained_nondominated_rank(jnp.zeros(5), jnp.zeros(5))
    with pytest.raises(ValueError, match=r"violation must have shape \(4,\)"):
        constrained_nondominated_rank(jnp.zeros((4, 2)), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"ranks must have shape \(4,\)"):
        crowding_distance(jnp.zeros((4, 2)), jnp.zeros(3, jnp.int32))


# Crowding distance -----------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("integer", [False, True])
def test_crowding_matches_pymoo(count, integer):
    points = random_points(20 + count + 10 * integer, 200, count, integer)
    ranks = pymoo_ranks(points)
    got = np.asarray(crowding_distance(points, ranks.astype(np.int32)))
    expected = pymoo_crowding(points, ranks)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    finite = ~np.isinf(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-5, atol=1e-6)


def test_crowding_hand_case():
    # One front of four points on a line; boundaries inf, interior (next - previous) / range / M.
    points = np.array([[0, 3], [1, 2], [3, 1], [4, 0]], np.float32)
    got = np.asarray(crowding_distance(points, np.zeros(4, np.int32)))
    assert np.isinf(got[0])
    assert np.isinf(got[3])
    np.testing.assert_allclose(got[1:3], [(3 / 4 + 2 / 3) / 2, (3 / 4 + 2 / 3) / 2], rtol=1e-6)


def test_crowding_constant_column_adds_zero():
    points = np.array([[0, 5], [1, 5], [2, 5], [4, 5]], np.float32)
    got = np.asarray(crowding_distance(points, np.zeros(4, np.int32)))
    # Column 0 gives inf at both ends and (2/4, 3/4) inside; column 1 adds 0; divided by M = 2.
    assert np.isinf(got[0])
    assert np.isinf(got[3])
    np.testing.assert_allclose(got[1:3], [0.25, 0.375], rtol=1e-6)


def test_crowding_identical_front_is_zero():
    points = np.ones((3, 2), np.float32)
    assert np.asarray(crowding_distance(points, np.zeros(3, np.int32))).tolist() == [0.0, 0.0, 0.0]


def test_crowding_small_fronts_infinite():
    points = np.array([[0, 1], [1, 0], [5, 5], [7, 7], [7, 6]], np.float32)
    got = np.asarray(crowding_distance(points, np.array([0, 0, 1, 2, 2], np.int32)))
    assert np.isinf(got).all()


def test_crowding_nonfinite_rows_get_zero():
    points = np.array([[0, 3], [1, 2], [np.nan, 1], [3, 1], [4, 0]], np.float32)
    got = np.asarray(crowding_distance(points, np.zeros(5, np.int32)))
    assert got[2] == 0.0
    expected = pymoo_crowding(np.delete(points, 2, axis=0), np.zeros(4, int))
    np.testing.assert_allclose(np.delete(got, 2), expected, rtol=1e-6)


# Streaming first front -------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3, 4])
def test_first_front_chunked_matches_unchunked(count):
    rng = np.random.default_rng(count)
    size = 500
    points = rng.integers(0, 8, (size, count)).astype(np.float32)
    violation = np.where(rng.random(size) < 0.2, 1.0, 0.0).astype(np.float32)
    points[rng.random(size) < 0.05, 0] = np.nan
    expected = np.asarray(pareto_front_mask(points, violation))
    # A small capacity forces restarts with a doubled buffer.
    got = first_front_chunked(points, violation, chunk_size=64, capacity=16)
    np.testing.assert_array_equal(got, expected)


def test_first_front_chunked_nothing_feasible():
    points = np.zeros((10, 2), np.float32)
    assert not first_front_chunked(points, np.ones(10, np.float32)).any()


def test_merge_front_keeps_nondominated_rows_and_counts_overflow():
    front = jnp.array([[1.0, 3.0], [3.0, 1.0], [0.0, 0.0]])
    payload = jnp.array([10, 11, 12], jnp.int32)
    valid = jnp.array([True, True, False])
    new = jnp.array([[2.0, 2.0], [0.5, 5.0], [4.0, 4.0]])
    objectives, kept_payload, kept_valid, dropped = merge_front(
        front, payload, valid, new, jnp.array([20, 21, 22], jnp.int32), jnp.array([True, True, True])
    )
    # Nondominated: (1,3), (3,1), (2,2), (0.5,5); four rows for a buffer of three.
    assert int(dropped) == 1
    assert kept_valid.tolist() == [True, True, True]
    assert kept_payload.tolist() == [10, 11, 20]
    np.testing.assert_array_equal(np.asarray(objectives), [[1, 3], [3, 1], [2, 2]])


# Compilation -----------------------------------------------------------------------


def test_functions_compile_once_per_shape():
    rng = np.random.default_rng(0)
    points = [jnp.asarray(rng.random((300, 3)), jnp.float32) for _ in range(3)]
    violation = jnp.zeros(300)
    calls = {
        constrained_nondominated_rank: lambda p: constrained_nondominated_rank(p, violation),
        pareto_front_mask: lambda p: pareto_front_mask(p, violation),
        crowding_distance: lambda p: crowding_distance(p, jnp.zeros(300, jnp.int32)),
        merge_front: lambda p: merge_front(p[:40], jnp.arange(40), jnp.ones(40, bool), p[40:], jnp.arange(260),
                                           jnp.ones(260, bool)),
    }
    for function, call in calls.items():
        call(points[0])
        compiled = function._cache_size()
        call(points[1])
        call(points[2])
        assert function._cache_size() == compiled, function.__name__


def test_rank_traces_once_under_caller_jit():
    traces = 0

    def rank(points, violation):
        nonlocal traces
        traces += 1
        return constrained_nondominated_rank(points, violation)

    jitted = jax.jit(rank)
    rng = np.random.default_rng(1)
    for _ in range(3):
        jitted(jnp.asarray(rng.random((300, 3)), jnp.float32), jnp.zeros(300))
    assert traces == 1


# Exhaustive tier -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("size", [513, 1000, 4000, 20000])
@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("kind", ["uniform", "integer", "correlated"])
def test_rank_sweep_exhaustive(size, count, kind):
    rng = np.random.default_rng(size + count)
    if kind == "uniform":
        points = rng.random((size, count))
    elif kind == "integer":
        points = rng.integers(0, 20, (size, count))
    else:
        # Nearly comparable rows: more fronts than one sweep's rank table holds.
        base = np.sort(rng.random(size))
        points = np.stack([base + 0.001 * rng.random(size) for _ in range(count)], axis=1)
    points = points.astype(np.float32)
    violation = np.zeros(size, np.float32)
    ranks = np.asarray(constrained_nondominated_rank(points, violation))
    np.testing.assert_array_equal(ranks, pymoo_ranks(points))
    np.testing.assert_array_equal(np.asarray(pareto_front_mask(points, violation)), ranks == 0)


@pytest.mark.slow
@pytest.mark.parametrize("count", [4, 5])
def test_rank_many_objectives_exhaustive(count):
    points = np.random.default_rng(count).integers(0, 6, (3000, count)).astype(np.float32)
    ranks = np.asarray(constrained_nondominated_rank(points, np.zeros(3000, np.float32)))
    np.testing.assert_array_equal(ranks, pymoo_ranks(points))


@pytest.mark.slow
def test_first_front_chunked_large():
    rng = np.random.default_rng(9)
    size = 60000
    points = rng.random((size, 3)).astype(np.float32)
    violation = np.where(rng.random(size) < 0.1, 1.0, 0.0).astype(np.float32)
    expected = np.asarray(pareto_front_mask(points, violation))
    np.testing.assert_array_equal(first_front_chunked(points, violation, chunk_size=8192), expected)


@pytest.mark.slow
def test_constrained_rank_oracle_exhaustive():
    rng = np.random.default_rng(11)
    for trial in range(30):
        size = int(rng.integers(1, 60))
        points = rng.integers(0, 3, (size, int(rng.integers(1, 4)))).astype(np.float32)
        violation = np.where(rng.random(size) < 0.3, rng.integers(0, 3, size), -1).astype(np.float32)
        points[rng.random(size) < 0.1] = np.nan
        ranks = np.asarray(constrained_nondominated_rank(points, violation))
        assert ranks.tolist() == oracle_constrained_ranks(points, violation), trial
