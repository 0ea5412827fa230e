"""Evaluations that a search needs to reach a hypervolume, cold and warm-started from history.

A source search on specs/text_llm_8b.yaml is recorded in a temporary history folder. The
target spec is a variant of it, written to the same temporary folder, whose parameter budget
moves from 6B..9B to 7B..10B (spec distance 0.056, well inside the 1.5 that warm start uses).
For each strategy (evolution, random) and seed, the target is searched twice with the same
settings through ArchitectureSearchEngine.search: cold (history off) and warm (the history
holds only the source run).

A search's hypervolume after n evaluations is that of the feasible front of the first n
genomes it evaluated, in its order of evaluation. It is measured after every block of P
evaluations, P being the evolution's population size, so both strategies share one scale.
Every hypervolume uses one reference point, the target's exact front's worst value in each
objective plus 10 % of its range, and is given as a fraction of the exact front's hypervolume.
The exact front comes from evaluating every genome of the target space. Hypervolumes are
computed by pymoo (exact, float64).

The engine's result lists neither the order of evaluation nor comparable hypervolumes (each
evolution run fixes its own reference point from its initial population). So each search is
replayed with the functions the engine calls, with the same key and the same seed genomes.
The bench asserts that each replay matches the engine's result: the evolution's population
hypervolume history, and the random search's Pareto front.

    python benches/warm_start.py [--budget 3000] [--seeds 0 1 2 3 4] [--levels 0.95 0.97 0.98]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description  # noqa: E402
from evolution_quality import exact_front, feasible_front, front_indices, hypervolume  # noqa: E402

from metagen_jax.engine import ArchitectureSearchEngine  # noqa: E402
from metagen_jax.engine_history import HistorySession, merge_warm_start  # noqa: E402
from metagen_jax.history import feature_distance, spec_features  # noqa: E402
from metagen_jax.problem import Problem  # noqa: E402
from metagen_jax.result import SearchResult  # noqa: E402
from metagen_jax.specs import parse_spec  # noqa: E402
from metagen_jax.strategies.evolution import plan_run, run_generations  # noqa: E402
from metagen_jax.strategies.random_search import random_search_genomes  # noqa: E402

SOURCE_SPEC = Path(__file__).resolve().parent.parent / "specs" / "text_llm_8b.yaml"
TARGET_PARAMETER_BUDGET = {"min": "7B", "max": "10B"}
# Seed of the source search, apart from the target seeds so that no target run repeats it.
SOURCE_SEED = 1000
STRATEGIES = ("evolution", "random")


def write_target_spec(folder: Path) -> Path:
    """Write the source spec with the target's parameter budget and name, and return its path."""
    raw = yaml.safe_load(SOURCE_SPEC.read_text(encoding="utf-8"))
    raw["name"] = f"{raw['name']}_7b_to_10b"
    raw["constraints"]["parameter_budget"] = dict(TARGET_PARAMETER_BUDGET)
    path = folder / "text_llm_8b_7b_to_10b.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def warm_genomes(engine: ArchitectureSearchEngine, history_dir: Path | None) -> np.ndarray:
    """Return the seed genomes that `engine.search()` takes from `history_dir`, by the same call."""
    if history_dir is None:
        return np.zeros((0, 5), dtype=np.int32)
    session = HistorySession.open(history_dir, engine.requirements, engine.raw_spec, [])
    if session is None:
        raise RuntimeError(f"the history in {history_dir} did not open")
    try:
        genomes, _ = session.warm_start(engine.problem, engine.budget, engine.strategy, engine.seed)
    finally:
        session.history.close()
    return genomes


def replay_evolution(engine: ArchitectureSearchEngine, result: SearchResult, warm: np.ndarray) -> np.ndarray:
    """Return every genome the engine's evolution evaluated, in order, P per generation."""
    evolution = result.extras["evolution"]
    _, history = run_generations(jax.random.key(engine.seed), engine.problem, evolution["population_size"],
                                 evolution["generations"], initial_genomes=warm if len(warm) else None)
    np.testing.assert_allclose(history.hypervolume, evolution["hypervolume_history"], rtol=1e-6,
                               err_msg="the evolution replay differs from the engine's search")
    return np.concatenate([history.initial_population, history.children.reshape(-1, 5)])


def replay_random(engine: ArchitectureSearchEngine, result: SearchResult, warm: np.ndarray) -> np.ndarray:
    """Return every genome the engine's random search evaluated, history seeds first."""
    fresh = random_search_genomes(engine.problem.space, jax.random.key(engine.seed), engine.budget)
    genomes, _ = merge_warm_start(warm, fresh, engine.budget)
    scored = engine.problem.evaluate_host(genomes)
    replay_front = {tuple(row) for row in genomes[front_indices(scored.objectives, scored.violation)].tolist()}
    engine_front = {tuple(candidate.genome) for candidate in result.pareto_front}
    if replay_front != engine_front:
        raise AssertionError("the random search replay differs from the engine's search")
    return genomes


def hypervolume_curve(problem: Problem, genomes: np.ndarray, block: int, reference: np.ndarray,
                      exact_volume: float) -> list[tuple[int, float]]:
    """Return (evaluations, hypervolume fraction) after every `block` genomes of `genomes`."""
    scored = problem.evaluate_host(genomes)
    objectives = np.asarray(scored.objectives, dtype=np.float64)
    violation = np.asarray(scored.violation)
    front = np.zeros((0, objectives.shape[1]))
    curve = []
    for start in range(0, len(genomes), block):
        rows = slice(start, start + block)
        # The front of a union is the front of the old front and the new rows.
        merged = np.concatenate([front, feasible_front(objectives[rows], violation[rows])])
        front = feasible_front(merged, np.zeros(len(merged)))
        curve.append((min(start + block, len(genomes)), hypervolume(front, reference) / exact_volume))
    return curve


def evaluations_to_reach(curve: list[tuple[int, float]], level: float) -> int | None:
    """Return the evaluations after which `curve` first reaches `level`, or None when it never does."""
    for evaluations, fraction in curve:
        if fraction >= level:
            return evaluations
    return None


def median_count(counts: list[int | None]) -> int | None:
    """Median of the counts with a run that never reached the level ranked last; None if that run is the median."""
    ranked = sorted(counts, key=lambda count: (count is None, count or 0))
    middle = ranked[(len(ranked) - 1) // 2 : len(ranked) // 2 + 1]
    if any(count is None for count in middle):
        return None
    return int(np.median(middle))


def print_report(strategy: str, curves: dict[str, list[list[tuple[int, float]]]], levels: list[float],
                 budget: int) -> None:
    runs = len(curves["cold"])
    print(f"{strategy}: evaluations to reach each hypervolume level (median of {runs} seeds)")
    print(f"{'level':>7} {'cold':>10} {'warm':>10} {'cold / warm':>11} {'cold runs':>9} {'warm runs':>9}")
    for level in levels:
        counts = {mode: [evaluations_to_reach(curve, level) for curve in curves[mode]] for mode in curves}
        medians = {mode: median_count(counts[mode]) for mode in counts}
        cells = {mode: f"{medians[mode]:,}" if medians[mode] is not None else f">{budget:,}" for mode in medians}
        if medians["cold"] is not None and medians["warm"] is not None:
            ratio = f"{medians['cold'] / medians['warm']:.2f}x"
        elif medians["warm"] is not None:
            ratio = f">{budget / medians['warm']:.2f}x"
        elif medians["cold"] is not None:
            ratio = f"<{medians['cold'] / budget:.2f}x"
        else:
            ratio = "-"
        reached = {mode: sum(count is not None for count in counts[mode]) for mode in counts}
        print(f"{level:>7.3f} {cells['cold']:>10} {cells['warm']:>10} {ratio:>11} "
              f"{reached['cold']:>5}/{runs:<3} {reached['warm']:>5}/{runs:<3}")
    points = len(curves["cold"][0])
    print(f"{'evals':>7} {'cold':>7} {'warm':>7}   median hypervolume fraction")
    for index in sorted({*range(0, points, max(1, points // 6)), points - 1}):
        cold = np.median([curve[index][1] for curve in curves["cold"]])
        warm = np.median([curve[index][1] for curve in curves["warm"]])
        print(f"{curves['cold'][0][index][0]:>7,} {cold:>7.4f} {warm:>7.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=3000, help="evaluations per target search")
    parser.add_argument("--source-budget", type=int, default=3000, help="evaluations of the source search")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--levels", type=float, nargs="+", default=[0.95, 0.97, 0.98],
                        help="hypervolume levels, as fractions of the exact front's hypervolume")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    args = parser.parse_args()

    print(f"machine: {machine_description()}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="metagen-warm-start-") as folder:
        folder = Path(folder)
        target_spec = write_target_spec(folder)
        distance = feature_distance(spec_features(parse_spec(SOURCE_SPEC).requirements),
                                    spec_features(parse_spec(target_spec).requirements))
        source_history = folder / "source-history"
        source = ArchitectureSearchEngine(SOURCE_SPEC, budget=args.source_budget, strategy="evolution",
                                          seed=SOURCE_SEED, history_dir=source_history).search()
        print(f"source: {SOURCE_SPEC.name}, evolution, {args.source_budget:,} evaluations, seed {SOURCE_SEED}, "
              f"front of {len(source.pareto_front)} genomes recorded; target: parameter budget "
              f"{TARGET_PARAMETER_BUDGET['min']}..{TARGET_PARAMETER_BUDGET['max']}, spec distance {distance:.3f}")

        problem = ArchitectureSearchEngine(target_spec, budget=args.budget, strategy="evolution").problem
        tick = time.perf_counter()
        _, exact = exact_front(problem, 1 << 20)
        low, high = exact.min(axis=0), exact.max(axis=0)
        reference = high + 0.1 * (high - low)
        exact_volume = hypervolume(exact, reference)
        block = plan_run(args.budget, space_size=problem.space.size).population_size
        print(f"target: {problem.space.size:,} genomes; exact front of {len(exact):,} points swept in "
              f"{time.perf_counter() - tick:.1f} s; {args.budget:,} evaluations per search, hypervolume "
              f"measured every {block} evaluations (the evolution's population size)")

        replays = {"evolution": replay_evolution, "random": replay_random}
        for strategy in args.strategies:
            curves: dict[str, list[list[tuple[int, float]]]] = {"cold": [], "warm": []}
            seeded = []
            for seed in args.seeds:
                for mode in ("cold", "warm"):
                    history_dir = None
                    if mode == "warm":
                        # A fresh copy per run, so that no target run warm-starts from another one.
                        history_dir = folder / f"history-{strategy}-{seed}"
                        shutil.copytree(source_history, history_dir)
                    engine = ArchitectureSearchEngine(target_spec, budget=args.budget, strategy=strategy,
                                                      seed=seed, history_dir=history_dir)
                    warm = warm_genomes(engine, history_dir)
                    result = engine.search()
                    if mode == "warm":
                        assert result.extras["history"]["warm_start_candidates"] == len(warm)
                        seeded.append(len(warm))
                    genomes = replays[strategy](engine, result, warm)
                    curves[mode].append(hypervolume_curve(problem, genomes, block, reference, exact_volume))
            print()
            counts = f"{min(seeded)}" if min(seeded) == max(seeded) else f"{min(seeded)} to {max(seeded)}"
            note = f", of which the first {block} form the initial population" if strategy == "evolution" else ""
            print(f"{strategy}: warm runs start from {counts} genomes of the source front{note}")
            print_report(strategy, curves, args.levels, args.budget)

    print()
    print("cold, warm: median over seeds of the evaluations after which a search's feasible front first "
          f"reaches the level; '>{args.budget:,}' when the median run never does. runs: seeds that reach it. "
          f"Wall time {time.perf_counter() - started:.0f} s, compilation included.")


if __name__ == "__main__":
    main()
