"""Crowding distance and hypervolume against pymoo and hand-computed cases."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pymoo.indicators.hv import HV
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance

from metagen_jax.pareto import crowding_distance, default_reference_point, hypervolume


def test_hypervolume_two_points_by_hand():
    # (1,2) and (2,1) against (3,3): 2*1 + 1*2 - 1*1 overlap = 3.
    assert float(hypervolume(jnp.array([[1.0, 2.0], [2.0, 1.0]]), jnp.array([3.0, 3.0]))) == pytest.approx(3.0)


def test_hypervolume_three_objectives_by_hand():
    # Two boxes [1,3]x[2,3]x[1,3] (volume 4) and [2,3]x[1,3]x[2,3] (volume 2) overlapping in
    # [2,3]x[2,3]x[2,3] (volume 1): union 5.
    points = jnp.array([[1.0, 2.0, 1.0], [2.0, 1.0, 2.0]])
    assert float(hypervolume(points, jnp.array([3.0, 3.0, 3.0]))) == pytest.approx(5.0)


@pytest.mark.parametrize("num_objectives", [2, 3])
@pytest.mark.parametrize("integer_valued", [False, True])
def test_hypervolume_matches_pymoo(num_objectives, integer_valued):
    rng = np.random.default_rng(num_objectives)
    points = rng.random((400, num_objectives))
    if integer_valued:
        points = np.round(points * 6) / 6  # many ties and duplicates
    points = points.astype(np.float32)
    reference = np.full(num_objectives, 1.2, dtype=np.float32)
    expected = HV(ref_point=reference.astype(np.float64))(points.astype(np.float64))
    assert float(hypervolume(points, reference)) == pytest.approx(expected, rel=1e-5)


def test_hypervolume_ignores_masked_nan_and_outside_points():
    points = jnp.array([[1.0, 2.0], [2.0, 1.0], [jnp.nan, 0.0], [0.0, jnp.inf], [0.5, 5.0], [0.1, 0.1]])
    mask = jnp.array([True, True, True, True, True, False])
    assert float(hypervolume(points, jnp.array([3.0, 3.0]), mask=mask)) == pytest.approx(3.0)


def test_hypervolume_monte_carlo_four_objectives():
    # One point at the origin against (1,1,1,1) dominates the whole unit box.
    points = jnp.zeros((1, 4))
    estimate = hypervolume(points, jnp.ones(4), key=jax.random.key(0), samples=4096)
    assert float(estimate) == pytest.approx(1.0)
    half = hypervolume(jnp.array([[0.0, 0.0, 0.0, 0.5]]), jnp.ones(4), key=jax.random.key(1), samples=20000)
    assert float(half) == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError, match="PRNG key"):
        hypervolume(points, jnp.ones(4))


def test_default_reference_point_margin_and_constant_column():
    points = jnp.array([[0.0, 5.0, 2.0], [10.0, 5.0, 4.0]])
    reference = np.asarray(default_reference_point(points))
    np.testing.assert_allclose(reference, [11.0, 5.5, 4.2], rtol=1e-6)


def _ranks_by_peeling(points: np.ndarray) -> np.ndarray:
    ranks = np.full(len(points), -1)
    rank = 0
    while (ranks < 0).any():
        remaining = np.flatnonzero(ranks < 0)
        for i in remaining:
            others = points[remaining]
            if not np.any(np.all(others <= points[i], axis=1) & np.any(others < points[i], axis=1)):
                ranks[i] = rank
        rank += 1
    return ranks


def test_crowding_matches_pymoo_per_front():
    rng = np.random.default_rng(5)
    points = rng.random((120, 3)).astype(np.float32)
    points[:, 2] = 0.5  # a whole column of equal values
    ranks = _ranks_by_peeling(points)
    distances = np.asarray(crowding_distance(points, ranks))
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        expected = calc_crowding_distance(points[members].astype(np.float64))
        got = distances[members]
        assert np.array_equal(np.isinf(got), np.isinf(expected)), rank
        finite = ~np.isinf(expected)
        np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-5, atol=1e-6)


def test_crowding_small_fronts_are_infinite():
    points = jnp.array([[1.0, 2.0], [2.0, 1.0], [5.0, 5.0]])
    distances = np.asarray(crowding_distance(points, jnp.array([0, 0, 1])))
    assert np.isinf(distances).all()
