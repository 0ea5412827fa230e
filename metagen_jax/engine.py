"""ArchitectureSearchEngine: the search a CLI user and a Python user share."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from metagen_jax.candidates import build_candidates, describe_problem  # noqa: I001
from metagen_jax.engine_history import HistorySession, merge_warm_start
from metagen_jax.objectives import parse_objectives
from metagen_jax.problem import Problem, build_problem
from metagen_jax.ranking import MAX_REPORTED, rank_candidates
from metagen_jax.result import SearchResult
from metagen_jax.specs.requirements import Requirements
from metagen_jax.strategies.random_search import random_search_genomes

logger = logging.getLogger(__name__)

STRATEGIES = ("random", "evolution", "exhaustive")

# Progress callback: (phase name, completed units, total units).
ProgressCallback = Callable[[str, int, int], None]


class SearchError(ValueError):
    """Invalid search settings, reported to CLI users as one line with exit code 2."""


def requirements_of(spec: Any) -> tuple[Requirements, list[str]]:
    """Accept a Spec, a ParsedSpec, Requirements or a path, and return Requirements plus warnings."""
    from metagen_jax.specs import parse_spec, resolve_requirements

    if isinstance(spec, Requirements):
        return spec, []
    if isinstance(spec, (str, os.PathLike)):
        parsed = parse_spec(Path(spec))
        return parsed.requirements, list(parsed.warnings)
    if hasattr(spec, "requirements") and hasattr(spec, "warnings"):
        return spec.requirements, list(spec.warnings)
    return resolve_requirements(spec), []


# Sizes the cost model turns into int32 constants inside jitted code.
MAX_MODEL_SIZE = 2**30


def _check_sizes(requirements: Requirements) -> None:
    for name in ("context_tokens", "vocab_size", "image_size", "patch_size", "num_channels", "num_classes",
                 "embedding_dim", "num_outputs"):
        value = getattr(requirements, name)
        if value is not None and value > MAX_MODEL_SIZE:
            raise SearchError(f"{name} of {value:,} is larger than the cost model supports ({MAX_MODEL_SIZE:,})")


class ArchitectureSearchEngine:
    """Search the architecture space of a spec for Pareto-optimal candidates.

    Args:
        spec: a loaded Spec (from `load_spec`), a ParsedSpec, Requirements, or a path.
        budget: maximum number of candidates to evaluate.
        strategy: "random", "evolution" or "exhaustive".
        seed: seed of every random choice; the same seed gives the same result. Default:
            the spec's reproducibility seed (42 when the spec gives none).
        objectives: objective names or synonyms; default params, latency, performance.
        generations, population_size: evolution settings (see `metagen_jax.strategies.evolution`).
        device: device profile name overriding the spec's device.
        history_dir: folder of the search history, or None to turn history off.
        progress: optional callback for progress bars.
        sweep_dir: folder of the exhaustive sweep's checkpoint (default "outputs").
        resume: continue an exhaustive sweep from the checkpoint in `sweep_dir`.
        chunk_size: genomes per exhaustive-sweep step over all devices (default: 2^20 per
            CPU device, 2^23 per accelerator). Larger chunks use more memory per step.
        checkpoint_every: exhaustive sweep: save a checkpoint every this many chunks
            (default 8) and at the end.

    The search budget caps the cost-model evaluations of random search and evolution. An
    exhaustive sweep evaluates every genome of the space whatever the budget.

    Example:
        >>> spec, _ = load_spec("specs/tiny_text_lm.yaml")
        >>> result = ArchitectureSearchEngine(spec=spec, budget=50, seed=42).search()
        >>> best = result.top_k(1)[0]
    """

    def __init__(self, spec: Any, budget: int = 10, strategy: str = "random", seed: int | None = None, *,
                 objectives: str | list[str] | tuple[str, ...] | None = None,
                 generations: int | None = None, population_size: int | None = None,
                 device: str | None = None, history_dir: str | os.PathLike[str] | None = None,
                 max_reported: int = MAX_REPORTED, progress: ProgressCallback | None = None,
                 sweep_dir: str | os.PathLike[str] | None = None, resume: bool = False,
                 chunk_size: int | None = None, checkpoint_every: int | None = None) -> None:
        if not isinstance(budget, (int, np.integer)) or budget < 1:
            raise SearchError(f"search budget must be an integer of at least 1, got {budget!r}")
        strategy = str(strategy).strip().lower()
        if strategy not in STRATEGIES:
            raise SearchError(f"unknown strategy {strategy!r}; valid strategies: {', '.join(STRATEGIES)}")
        for name, value in (("generations", generations), ("population_size", population_size),
                            ("chunk_size", chunk_size), ("checkpoint_every", checkpoint_every)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
                raise SearchError(f"{name} must be an integer, got {value!r}")
            if value is not None and value < 1:
                raise SearchError(f"{name} must be at least 1, got {value}")
        try:
            self.objectives = parse_objectives(objectives)
        except ValueError as error:
            raise SearchError(str(error)) from None
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or not 0 <= seed < 2**32):
            raise SearchError(f"seed must be an integer from 0 to 4294967295, got {seed!r}")
        self.requirements, self.warnings = requirements_of(spec)
        _check_sizes(self.requirements)
        self.raw_spec = getattr(spec, "raw", None) if not isinstance(spec, tuple) else None
        try:
            self.problem: Problem = build_problem(self.requirements, self.objectives, device)
        except KeyError as error:
            message = str(error.args[0]) if error.args else str(error)
            raise SearchError(f"device {device!r}: {message}" if device is not None else message) from None
        self.budget = int(budget)
        self.strategy = strategy
        self.seed = int(self.requirements.seed if seed is None else seed)
        self.generations = generations
        self.population_size = population_size
        self.history_dir = Path(history_dir) if history_dir is not None else None
        self.max_reported = max_reported
        self.progress = progress
        self.sweep_dir = Path(sweep_dir) if sweep_dir is not None else Path("outputs")
        self.resume = resume
        self.chunk_size = chunk_size
        self.checkpoint_every = checkpoint_every
        self.interrupted = False
        self.exit_code = 0
        self.is_writer = True

    # ------------------------------------------------------------------------------------

    def search(self) -> SearchResult:
        """Run the strategy, rank what it evaluated and return the result."""
        started = time.perf_counter()
        key = jax.random.key(self.seed)
        timing: dict[str, float] = {}
        extras: dict[str, Any] = {}

        session = None
        warm = np.zeros((0, 5), dtype=np.int32)
        if self.history_dir is not None:
            session = HistorySession.open(self.history_dir, self.requirements, self.raw_spec, self.warnings)
        if session is not None:
            warm, source_runs = session.warm_start(self.problem, self.budget, self.strategy, self.seed)
            extras["history"] = {"warm_start_candidates": int(len(warm)), "source_runs": source_runs}

        tick = time.perf_counter()
        genomes, evaluation, sources = self._run_strategy(key, extras, warm)
        timing["search_seconds"] = time.perf_counter() - tick

        tick = time.perf_counter()
        ranking = rank_candidates(evaluation.objectives, evaluation.violation, self.max_reported)
        candidates = build_candidates(self.problem, genomes, evaluation, ranking, sources)
        front = [c for c in candidates if c.on_pareto_front]
        timing["ranking_seconds"] = time.perf_counter() - tick

        feasible_count = int(ranking.feasible.sum())
        if "sweep" in extras:
            # The sweep returns only its front and top-k; count what it evaluated.
            feasible_count = extras["sweep"]["feasible"]
        summary = {
            "evaluated": int(extras["sweep"]["evaluated"] if "sweep" in extras else len(genomes)),
            "feasible": feasible_count,
            "pareto_front_size": len(front),
            "reported": len(candidates),
            "space_size": int(self.problem.space.size),
        }
        if feasible_count == 0:
            self.warnings.append(
                "no candidate meets every constraint; the least-violating candidates are shown")
        if session is not None and self.is_writer and not self.interrupted:
            run_id = session.record(self.requirements.name, self.strategy, self.seed, front, self.warnings)
            logger.info("recorded run %s in %s", run_id, self.history_dir)
        timing["total_seconds"] = time.perf_counter() - started
        logger.info("search finished: %d evaluated, %d feasible, front of %d in %.2f s",
                    summary["evaluated"], feasible_count, len(front), timing["total_seconds"])
        described = describe_problem(self.problem)
        return SearchResult(
            spec_name=self.requirements.name,
            strategy=self.strategy,
            seed=self.seed,
            search_budget=self.budget,
            objectives=list(self.objectives),
            constraints=described["constraints"],
            device=described["device"],
            architecture=described["architecture"],
            candidates=candidates,
            pareto_front=front,
            summary=summary,
            warnings=list(self.warnings),
            extras=extras,
            timing=timing,
        )

    def _run_strategy(self, key: jax.Array, extras: dict[str, Any], warm: np.ndarray):
        problem = self.problem
        if self.strategy == "random":
            self._report("sampling", 0, self.budget)
            fresh = random_search_genomes(problem.space, key, self.budget)
            genomes, sources = merge_warm_start(warm, fresh, self.budget)
            self._report("sampling", self.budget, self.budget)
            evaluation = problem.evaluate_host(genomes)
            return genomes, evaluation, sources
        if self.strategy == "evolution":
            return self._run_evolution(key, extras, warm)
        return self._run_exhaustive(extras)

    def _run_evolution(self, key: jax.Array, extras: dict[str, Any], warm: np.ndarray):
        from metagen_jax.strategies.evolution import run_evolution

        try:
            outcome = run_evolution(
                self.problem, key, budget=self.budget, generations=self.generations,
                population_size=self.population_size, initial_genomes=warm if len(warm) else None,
                progress=self.progress,
            )
        except ValueError as error:
            raise SearchError(str(error)) from None
        self.warnings.extend(outcome.adjustments)
        extras["evolution"] = {
            "generations": int(outcome.generations),
            "population_size": int(outcome.population_size),
            "evaluations": int(outcome.evaluations),
            "hypervolume_reference_point": [float(v) for v in outcome.reference_point],
            "hypervolume_history": [float(v) for v in outcome.hypervolume_history],
            "feasible_history": [int(v) for v in outcome.feasible_history],
        }
        warm_rows = {tuple(row) for row in warm.tolist()}
        sources = ["history" if tuple(row) in warm_rows else "search" for row in outcome.genomes.tolist()]
        return outcome.genomes, outcome.evaluation, sources

    def _run_exhaustive(self, extras: dict[str, Any]):
        from metagen_jax.history import spec_hash
        from metagen_jax.strategies.checkpoint import checkpoint_path
        from metagen_jax.strategies.exhaustive import run_exhaustive

        source = self.raw_spec if self.raw_spec is not None else dataclasses.asdict(self.requirements)
        if self.resume and not checkpoint_path(self.sweep_dir).exists():
            self.warnings.append(f"resume: no checkpoint in {self.sweep_dir}; the sweep started from the beginning")
        try:
            sizes = {"chunk_size": self.chunk_size}
            if self.checkpoint_every is not None:
                sizes["checkpoint_every"] = self.checkpoint_every
            outcome = run_exhaustive(self.problem, out_dir=self.sweep_dir, resume=self.resume,
                                     progress=self.progress, spec_hash=spec_hash(source), **sizes)
        except ValueError as error:
            raise SearchError(str(error)) from None
        self.interrupted = bool(outcome.interrupted)
        self.exit_code = int(outcome.exit_code)
        if outcome.partial:
            self.warnings.append(outcome.message)
        extras["sweep"] = {
            "evaluated": int(outcome.evaluated),
            "feasible": int(outcome.feasible),
            "space_size": int(outcome.space_size),
            "partial": bool(outcome.partial),
            "devices": int(outcome.devices),
            "processes": int(outcome.processes),
            "checkpoint": str(outcome.checkpoint_path) if outcome.checkpoint_path else None,
        }
        self.is_writer = outcome.process_index == 0
        return outcome.genomes, outcome.evaluation, ["search"] * len(outcome.genomes)

    def _report(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)
