"""Search history around a search: warm-start genomes before it, a record after it.

An unusable database turns history off with a warning (see `SearchHistory.open`), a corrupt
run is skipped with a warning, and a failed write is reported as a warning, so none of them
fails the search.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np

from metagen_jax.result import Candidate
from metagen_jax.problem import Problem
from metagen_jax.specs.requirements import Requirements

logger = logging.getLogger(__name__)

# Share of a search's evaluations that may come from earlier runs' fronts.
# Evolution places at most a fifth of its initial population from them (SEED_SHARE in
# strategies/evolution.py); benches/warm_start.py measures the effect.
WARM_START_SHARE = 0.25


@dataclasses.dataclass
class HistorySession:
    """An open history database with the features of the spec being searched."""

    history: Any
    features: Any
    spec_hash: str
    # The search's warning list, which also receives the warm start's warnings.
    warnings: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def open(cls, directory: Path, requirements: Requirements, raw_spec: dict[str, Any] | None,
             warnings: list[str]) -> HistorySession | None:
        from metagen_jax.history import SearchHistory, spec_features, spec_hash

        history = SearchHistory.open(directory, on_warning=lambda message: warnings.append(f"history: {message}"))
        if history is None:
            return None
        source = raw_spec if raw_spec is not None else dataclasses.asdict(requirements)
        return cls(history, spec_features(requirements), spec_hash(source), warnings)

    def warm_start(self, problem: Problem, budget: int, strategy: str, seed: int) -> tuple[np.ndarray, list[int]]:
        """Repair the nearest earlier runs' fronts into the problem's space, up to a quarter of the budget.

        The genomes come back in the order in which NSGA-II survival would keep them under
        this problem's objectives and constraints (see `order_by_survival`), so a strategy
        that takes only the first few gets feasible, well spread ones. Runs of the same
        spec, strategy and seed are skipped, so repeating a search gives the same result as
        the first time instead of feeding on its own output.
        """
        space = problem.space
        from metagen_jax.history import warm_start_genomes

        count = int(budget * WARM_START_SHARE)
        if count < 1:
            return np.zeros((0, 5), dtype=np.int32), []
        repair = jax.jit(space.repair)
        source = _OtherSearches(self.history, (self.spec_hash, strategy, seed))
        start = warm_start_genomes(source, self.features, count,
                                   lambda genomes: np.asarray(repair(np.asarray(genomes, dtype=np.int32))),
                                   on_warning=lambda message: self.warnings.append(f"history: {message}"))
        if len(start.genomes):
            logger.info("warm start: %d genomes from runs %s", len(start.genomes), start.source_run_ids)
        return order_by_survival(problem, np.asarray(start.genomes, dtype=np.int32)), list(start.source_run_ids)

    def record(self, spec_name: str, strategy: str, seed: int, front: list[Candidate],
               warnings: list[str]) -> int | None:
        """Store the run's Pareto front; return the run id, or None when the write failed."""
        from metagen_jax.history import HistoryError

        genomes = np.array([c.genome for c in front], dtype=np.int32).reshape(-1, 5)
        metrics = [
            {key: getattr(c, key) for key in ("params", "params_billion", "latency_ms", "memory_gb",
                                              "predicted_loss", "score")}
            for c in front
        ]
        try:
            return self.history.record_run(self.features, self.spec_hash, spec_name, strategy, seed, genomes, metrics)
        except HistoryError as error:
            warnings.append(f"history: could not record this run ({error})")
            logger.warning("history write failed: %s", error)
            return None
        finally:
            self.history.close()


class _OtherSearches:
    """A read view of the history without the runs of one (spec hash, strategy, seed)."""

    def __init__(self, history: Any, excluded: tuple[str, str, int]) -> None:
        self._history = history
        self._excluded = excluded

    def nearest_runs(self, features: Any, k: int = 3, **options: Any) -> list:
        # Ask for more runs than needed, because some of them may be excluded.
        found = self._history.nearest_runs(features, k=k + 32, **options)
        kept = [(run, distance) for run, distance in found
                if (run.spec_hash, run.strategy, run.seed) != self._excluded]
        return kept[:k]

    def get_run(self, run_id: int) -> Any:
        return self._history.get_run(run_id)


def merge_warm_start(warm: np.ndarray, fresh: np.ndarray, budget: int) -> tuple[np.ndarray, list[str]]:
    """Put warm-start genomes first, then fresh ones not already present, up to `budget`."""
    combined = np.concatenate([warm.reshape(-1, 5), fresh.reshape(-1, 5)]).astype(np.int32)
    _, first = np.unique(combined, axis=0, return_index=True)
    keep = np.sort(first)[:budget]
    sources = ["history" if index < len(warm) else "search" for index in keep]
    return combined[keep], sources


def order_by_survival(problem: Problem, genomes: np.ndarray) -> np.ndarray:
    """Sort genomes by constrained non-dominated rank under `problem`, then by decreasing crowding.

    Seeds from a related spec may break this spec's constraints: a front recorded for a 6B..9B
    budget has many genomes below a 7B minimum. This order puts the feasible front first and
    spreads it along the front, as NSGA-II's survival would.
    """
    if len(genomes) == 0:
        return genomes
    from metagen_jax import pareto
    from metagen_jax.ranking import pad_to_bucket
    from metagen_jax.strategies.operators import survivor_order

    evaluation = problem.evaluate_host(genomes)
    objectives, violation = pad_to_bucket(np.asarray(evaluation.objectives, dtype=np.float32),
                                          np.asarray(evaluation.violation, dtype=np.float32))
    ranks = pareto.constrained_nondominated_rank(objectives, violation)
    crowding = pareto.crowding_distance(objectives, ranks)
    # Padding rows rank after every real row, so the first len(genomes) places are real rows.
    order = np.asarray(survivor_order(ranks, crowding))[: len(genomes)]
    return genomes[order]
