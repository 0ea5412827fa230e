"""Re-rank a search result by the validation loss of trained prototypes.

The first `count` candidates in ranking order (the Pareto front comes first) are scaled
down to prototypes and trained together as one program (`metagen_jax.prototype`). Those
candidates are then re-ordered among themselves by prototype loss, failed ones last; the
candidates after them keep their order.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from metagen_jax.result import SearchResult

logger = logging.getLogger(__name__)

DEFAULT_PROTOTYPE_CANDIDATES = 16


def rank_by_prototypes(result: SearchResult, *, steps: int, seed: int, count: int = DEFAULT_PROTOTYPE_CANDIDATES,
                       data_path: Path | None = None, data=None, progress=None) -> None:
    """Train prototypes of the leading candidates and re-order them by validation loss, in place."""
    from metagen_jax.prototype import load_prototype_data, train_prototypes

    chosen = result.candidates[: max(1, count)]
    if not chosen:
        return
    genomes = np.array([c.genome for c in chosen], dtype=np.int32)
    if data is None and data_path is not None:
        data = load_prototype_data(data_path)
    callback = None if progress is None else (lambda step: progress("prototype training", step, steps))
    outcome = train_prototypes(genomes, steps=steps, seed=seed, data=data, progress=callback)

    per_candidate_seconds = float(outcome.seconds) / len(chosen)
    for index, candidate in enumerate(chosen):
        candidate.prototype_steps = int(outcome.steps)
        candidate.prototype_seconds = per_candidate_seconds
        if bool(outcome.failed[index]):
            candidate.prototype_failure = outcome.failure_reason[index] or "training failed"
            candidate.prototype_loss = None
        else:
            candidate.prototype_loss = float(outcome.validation_loss[index])

    def key(candidate):
        failed = candidate.prototype_loss is None
        return (failed, candidate.prototype_loss if not failed else 0.0)

    result.candidates[: len(chosen)] = sorted(chosen, key=key)
    result.extras["prototypes"] = {
        "trained": len(chosen),
        "steps": int(outcome.steps),
        "seconds": float(outcome.seconds),
        "data": data.description if data is not None else "synthetic",
        "failed": int(np.sum(outcome.failed)),
    }
    logger.info("trained %d prototypes for %d steps in %.1f s", len(chosen), steps, outcome.seconds)
