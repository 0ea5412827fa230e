"""Objectives and constraints: from metrics to the minimisation matrix F and violations.

Every objective is minimised. `performance` is the predicted loss of the scaling law, so a
lower value means a more capable model.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from metagen_jax.cost.model import Metrics
from metagen_jax.hardware import DeviceProfile
from metagen_jax.specs.requirements import Requirements

OBJECTIVES = ("params", "latency", "performance", "memory")
DEFAULT_OBJECTIVES = ("params", "latency", "performance")
SYNONYMS = {
    "params": "params", "param": "params", "parameters": "params", "size": "params",
    "latency": "latency", "speed": "latency", "time": "latency",
    "performance": "performance", "accuracy": "performance", "quality": "performance",
    "loss": "performance", "perf": "performance",
    "memory": "memory", "ram": "memory", "mem": "memory", "vram": "memory",
}
_METRIC_OF_OBJECTIVE = {"params": "params", "latency": "latency_ms",
                        "performance": "predicted_loss", "memory": "memory_bytes"}


def parse_objectives(text: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Parse a comma-separated list of objective names or synonyms into canonical names.

    Raises:
        ValueError: a name is unknown or empty, the list is empty, or a name repeats.
    """
    if text is None:
        return DEFAULT_OBJECTIVES
    items = text.split(",") if isinstance(text, str) else list(text)
    names: list[str] = []
    for item in items:
        key = item.strip().lower()
        if not key:
            raise ValueError(f"empty objective name in {text!r}; separate names with single commas")
        if key not in SYNONYMS:
            valid = ", ".join(OBJECTIVES)
            synonyms = ", ".join(sorted(k for k in SYNONYMS if k not in OBJECTIVES))
            raise ValueError(f"unknown objective {item.strip()!r}; valid objectives: {valid} (synonyms: {synonyms})")
        name = SYNONYMS[key]
        if name in names:
            raise ValueError(f"objective {name!r} is given twice in {text!r}")
        names.append(name)
    if not names:
        raise ValueError(f"no objective in {text!r}; valid objectives: {', '.join(OBJECTIVES)}")
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class Constraints:
    """Feasibility limits of one search; None means unconstrained.

    Attributes:
        min_params, max_params: parameter budget.
        memory_limit_bytes: the spec's memory budget, or the device's capacity without one.
        latency_ms: latency bound of the spec (explicit or from its latency class).
        throughput: required throughput in the model's unit (tokens/s or requests/s).
    """

    min_params: float | None = None
    max_params: float | None = None
    memory_limit_bytes: float | None = None
    latency_ms: float | None = None
    throughput: float | None = None

    @classmethod
    def from_requirements(cls, requirements: Requirements, device: DeviceProfile) -> Constraints:
        memory = requirements.memory_budget_bytes
        return cls(
            min_params=_as_float(requirements.min_params),
            max_params=_as_float(requirements.max_params),
            memory_limit_bytes=_as_float(memory if memory is not None else device.memory_capacity),
            latency_ms=_as_float(requirements.latency_ms),
            throughput=_as_float(requirements.throughput),
        )


def _as_float(value: int | float | None) -> float | None:
    # Python ints above 2^31 cannot enter a jitted float32 computation as constants.
    return None if value is None else float(value)


def objective_matrix(metrics: Metrics, objectives: tuple[str, ...], xp=np):
    """Stack the chosen objectives into F of shape (P, M), all minimised."""
    return xp.stack([getattr(metrics, _METRIC_OF_OBJECTIVE[name]) * 1.0 for name in objectives], axis=-1)


def constraint_violation(metrics: Metrics, constraints: Constraints, xp=np):
    """Total relative constraint violation per candidate; 0 means feasible.

    Each broken limit adds its relative excess, for example 0.25 for 10B parameters
    against an 8B maximum. A candidate with a NaN or infinite metric gets +inf.
    """
    zero = 0.0 * metrics.params
    violation = zero
    if constraints.max_params is not None:
        violation = violation + xp.maximum(metrics.params / constraints.max_params - 1.0, 0.0)
    if constraints.min_params is not None and constraints.min_params > 0:
        violation = violation + xp.maximum(1.0 - metrics.params / constraints.min_params, 0.0)
    if constraints.memory_limit_bytes is not None:
        violation = violation + xp.maximum(metrics.memory_bytes / constraints.memory_limit_bytes - 1.0, 0.0)
    if constraints.latency_ms is not None:
        violation = violation + xp.maximum(metrics.latency_ms / constraints.latency_ms - 1.0, 0.0)
    if constraints.throughput is not None and constraints.throughput > 0:
        violation = violation + xp.maximum(1.0 - metrics.throughput / constraints.throughput, 0.0)
    finite = xp.ones_like(zero, dtype=bool)
    for value in metrics:
        finite = finite & xp.isfinite(value)
    return xp.where(finite & xp.isfinite(violation), violation, xp.inf)


def desirability_score(objectives: np.ndarray, reference_mask: np.ndarray) -> np.ndarray:
    """Score each candidate in [0, 1], higher is better, for ordering inside a rank group.

    Each objective column is min-max normalised over the reference candidates (the
    feasible ones, or all when none is feasible) with log10 scaling, because parameters,
    latency and memory span orders of magnitude. The score is 1 minus the mean normalised
    value, so equal weight goes to every objective. Values outside the reference range
    are clipped. A column that is constant over the reference set counts as best for a
    candidate at or below that constant and as worst above it. So a lone feasible
    candidate scores 1, and an infeasible one larger in every objective scores 0.
    """
    objectives = np.asarray(objectives, dtype=np.float64)
    if objectives.shape[0] == 0:
        return np.zeros(0)
    reference = objectives[reference_mask] if reference_mask.any() else objectives
    reference = reference[np.all(np.isfinite(reference), axis=1)]
    if reference.shape[0] == 0:
        return np.zeros(objectives.shape[0])
    scaled = np.log10(np.clip(objectives, 1e-30, None))
    ref_scaled = np.log10(np.clip(reference, 1e-30, None))
    low, high = ref_scaled.min(axis=0), ref_scaled.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    normalised = np.clip((scaled - low) / span, 0.0, 1.0)
    normalised = np.where(high > low, normalised, (scaled > high).astype(np.float64))
    normalised = np.where(np.isfinite(normalised), normalised, 1.0)
    return 1.0 - normalised.mean(axis=1)
