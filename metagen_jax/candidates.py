"""Turn evaluated genomes into reported `Candidate` records and describe a problem as JSON."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from metagen_jax.problem import Evaluation, Problem
from metagen_jax.ranking import Ranking
from metagen_jax.result import GIGA, Candidate
from metagen_jax.space import FFN_QUARTERS, decode


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def build_candidates(problem: Problem, genomes: np.ndarray, evaluation: Evaluation,
                     ranking: Ranking, sources: list[str]) -> list[Candidate]:
    """Build the reported candidates in ranking order.

    Metrics are recomputed on the host in float64 for the reported candidates, and the
    parameter count exactly in int64. Feasibility and ranks come from the float32
    evaluation that the search ranked with.
    NOTE: a candidate within float32 rounding (about 1e-7 relative) of a limit may be
    reported feasible with a float64 metric a hair over that limit, or the reverse.
    """
    order = ranking.order
    chosen = np.asarray(genomes)[order]
    dims64 = decode(chosen.astype(np.float64), np)
    metrics = problem.cost_model.evaluate(dims64, np)
    exact_params = problem.cost_model.exact_params(decode(chosen.astype(np.int64), np))

    candidates = []
    for row, index in enumerate(order):
        genome = chosen[row]
        violation = float(evaluation.violation[index])
        candidates.append(Candidate(
            hidden_size=int(genome[0]),
            num_layers=int(genome[1]),
            num_heads=int(genome[2]),
            num_kv_heads=int(genome[3]),
            ffn_multiplier=int(genome[FFN_QUARTERS]) / 4,
            ffn_hidden_size=int(dims64.ffn_hidden[row]) if problem.cost_model.config.has_ffn else 0,
            params=int(exact_params[row]),
            params_billion=int(exact_params[row]) / GIGA,
            flops_per_token=float(metrics.flops_per_token[row]),
            latency_ms=float(metrics.latency_ms[row]),
            prefill_ms=float(metrics.prefill_ms[row]),
            throughput=float(metrics.throughput[row]),
            memory_gb=float(metrics.memory_bytes[row]) / GIGA,
            weights_gb=float(metrics.weight_bytes[row]) / GIGA,
            kv_cache_gb=float(metrics.kv_cache_bytes[row]) / GIGA,
            state_gb=float(metrics.state_bytes[row]) / GIGA,
            activations_gb=float(metrics.activation_bytes[row]) / GIGA,
            predicted_loss=float(metrics.predicted_loss[row]),
            score=round(float(ranking.score[index]), 6),
            feasible=bool(ranking.feasible[index]),
            violation=_finite_or_none(violation),
            pareto_rank=int(ranking.pareto_rank[row]),
            on_pareto_front=bool(ranking.on_front[index]),
            source=sources[index],
        ))
    return candidates


def describe_problem(problem: Problem) -> dict[str, dict[str, Any]]:
    """Return the constraints, device profile and fixed architecture as JSON-ready dicts."""
    device = dataclasses.asdict(problem.device)
    constraints = dataclasses.asdict(problem.constraints)
    # Report the parameter budget as the exact integers of the spec, not as floats.
    constraints["min_params"] = problem.requirements.min_params
    constraints["max_params"] = problem.requirements.max_params
    constraints["latency_class"] = problem.requirements.latency_class
    constraints["context_tokens"] = problem.requirements.context_tokens
    architecture = dataclasses.asdict(problem.cost_model.config)
    architecture["search_space"] = {
        **dataclasses.asdict(problem.space.bounds),
        "size": int(problem.space.size),
    }
    architecture["training_tokens"] = problem.cost_model.quality.training_tokens
    return {"constraints": constraints, "device": device, "architecture": architecture}
