"""Ranking of evaluated candidates on the host, shared by every strategy.

Order: the feasible Pareto front first, then the other feasible candidates, then the
infeasible ones by increasing violation. Inside the first two groups, candidates are
ordered by the desirability score of `metagen_jax.objectives.desirability_score`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

import metagen_jax.pareto as pareto

# Reports keep at most this many candidates besides the whole Pareto front, so that a
# search of millions of genomes still writes a JSON file of a few megabytes.
MAX_REPORTED = 1000
# Smallest padded length of the ranking inputs (a power of two).
MIN_BUCKET = 256


@dataclasses.dataclass(frozen=True)
class Ranking:
    """Ranking of N evaluated candidates.

    Attributes:
        order: indices of the reported candidates, best first.
        feasible: (N,) bool.
        on_front: (N,) bool, the feasible Pareto front over all N.
        score: (N,) float64 desirability score.
        pareto_rank: constrained non-dominated rank of each reported candidate, computed
            among the reported candidates (rank 0 is the front over all N, because the
            whole front is always reported).
    """

    order: np.ndarray
    feasible: np.ndarray
    on_front: np.ndarray
    score: np.ndarray
    pareto_rank: np.ndarray


def rank_candidates(objectives: np.ndarray, violation: np.ndarray,
                    max_reported: int = MAX_REPORTED) -> Ranking:
    """Rank candidates by feasibility, Pareto front membership and score."""
    from metagen_jax.objectives import desirability_score

    objectives = np.asarray(objectives, dtype=np.float32)
    violation = np.asarray(violation, dtype=np.float32)
    finite = np.all(np.isfinite(objectives), axis=1) & np.isfinite(violation)
    feasible = finite & (violation <= 0)
    padded_objectives, padded_violation = pad_to_bucket(objectives, violation)
    count = len(objectives)
    # One jitted ranking program at one shape serves both calls below, so a cold run compiles
    # it once (about 3 s on a 2-core CPU) instead of also compiling `pareto_front_mask`.
    bucket = len(padded_objectives)
    all_ranks = np.asarray(pareto.constrained_nondominated_rank(padded_objectives, padded_violation))[:count]
    on_front = (all_ranks == 0) & feasible
    score = desirability_score(objectives, feasible)

    group = np.where(on_front, 0, np.where(feasible, 1, 2))
    safe_violation = np.where(np.isfinite(violation), violation, np.inf)
    # lexsort sorts by the last key first: group, then violation, then score (descending).
    order = np.lexsort((-score, safe_violation, group))
    keep = max(max_reported, int(on_front.sum()))
    order = order[:keep]

    reported_objectives, reported_violation = pad_to_bucket(objectives[order], violation[order], bucket)
    ranks = pareto.constrained_nondominated_rank(reported_objectives, reported_violation)
    ranks = np.asarray(ranks, dtype=np.int64)[: len(order)]
    return Ranking(order=order, feasible=feasible, on_front=on_front, score=score, pareto_rank=ranks)


def pad_to_bucket(objectives: np.ndarray, violation: np.ndarray,
                  minimum: int = MIN_BUCKET) -> tuple[np.ndarray, np.ndarray]:
    """Pad to the next power of two, and to at least `minimum` rows, with infeasible rows.

    The jitted Pareto functions compile once per input shape; padding keeps the number of
    shapes a search meets to a handful. Padding rows have infinite objectives and
    violation, so they rank after every real row and change no real row's front or rank.
    """
    count = len(objectives)
    bucket = max(minimum, 1 << max(0, (count - 1).bit_length()))
    padded_objectives = np.full((bucket, objectives.shape[1]), np.inf, dtype=np.float32)
    padded_violation = np.full(bucket, np.inf, dtype=np.float32)
    padded_objectives[:count] = objectives
    padded_violation[:count] = violation
    return padded_objectives, padded_violation
