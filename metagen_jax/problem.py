"""The search problem: a space, a cost model, constraints and objectives, built from a spec.

`Problem` is hashable, so the jitted evaluation takes it as a static argument: one compile
per search and population shape, none per call.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metagen_jax.cost.architecture import config_from_requirements
from metagen_jax.cost.model import CostModel, Metrics
from metagen_jax.cost.quality import QualityModel
from metagen_jax.hardware import DeviceProfile, resolve_device
from metagen_jax.objectives import Constraints, constraint_violation, objective_matrix
from metagen_jax.space import GeneBounds, SearchSpace, decode, narrow_bounds
from metagen_jax.specs.requirements import Requirements

# Populations are padded to the next power of two of at least this size, so a search
# compiles the evaluation for a handful of shapes rather than for every budget.
MIN_EVALUATION_BUCKET = 1024


class Evaluation(NamedTuple):
    """Cost-model output for a population of P genomes.

    Attributes:
        metrics: every metric, each (P,) float32.
        objectives: (P, M) float32, all minimised.
        violation: (P,) float32 total relative constraint violation, 0 when feasible.
    """

    metrics: Metrics
    objectives: jax.Array
    violation: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """Everything a strategy needs to generate and score genomes for one spec."""

    requirements: Requirements
    space: SearchSpace
    cost_model: CostModel
    constraints: Constraints
    objectives: tuple[str, ...]

    def __hash__(self) -> int:
        return hash((self.requirements, self.space.fingerprint(), self.cost_model, self.constraints, self.objectives))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Problem) and hash(self) == hash(other) and (
            self.requirements == other.requirements and self.cost_model == other.cost_model
            and self.constraints == other.constraints and self.objectives == other.objectives
            and self.space.fingerprint() == other.space.fingerprint())

    @property
    def device(self) -> DeviceProfile:
        return self.cost_model.device

    def evaluate(self, genomes: jax.Array) -> Evaluation:
        """Score a population inside traced code (no padding, no host transfer)."""
        return _evaluate(genomes, self)

    def evaluate_host(self, genomes: np.ndarray) -> Evaluation:
        """Score a host population, padded to a bucket size, and return NumPy arrays."""
        genomes = np.asarray(genomes, dtype=np.int32)
        count = genomes.shape[0]
        bucket = max(MIN_EVALUATION_BUCKET, 1 << max(0, (count - 1).bit_length()))
        padded = np.empty((bucket, genomes.shape[1]), dtype=np.int32)
        padded[:count] = genomes
        padded[count:] = genomes[:1] if count else self.space.genomes_at([0])
        result = jax.device_get(_evaluate_jit(padded, self))
        return jax.tree.map(lambda array: np.asarray(array)[:count], result)


def _evaluate(genomes, problem: Problem) -> Evaluation:
    dims = decode(genomes.astype(jnp.float32), jnp)
    metrics = problem.cost_model.evaluate(dims, jnp)
    objectives = objective_matrix(metrics, problem.objectives, jnp)
    violation = constraint_violation(metrics, problem.constraints, jnp)
    return Evaluation(metrics, objectives.astype(jnp.float32), violation.astype(jnp.float32))


_evaluate_jit = jax.jit(_evaluate, static_argnames=("problem",))


def build_problem(requirements: Requirements, objectives: tuple[str, ...],
                  device_name: str | None = None) -> Problem:
    """Derive the space, cost model and constraints of a spec.

    Raises:
        KeyError: the device name is unknown.
    """
    device = resolve_device(device_name or requirements.device)
    config = config_from_requirements(requirements)
    quality = QualityModel(training_tokens=training_tokens_of(requirements, config.sequence_length))
    cost_model = CostModel(config=config, device=device, quality=quality)
    constraints = Constraints.from_requirements(requirements, device)
    bounds = narrow_bounds(
        _starting_bounds(config), cost_model,
        max_params=requirements.max_params, min_params=requirements.min_params,
        memory_limit_bytes=constraints.memory_limit_bytes,
    )
    return Problem(requirements, SearchSpace.from_bounds(bounds), cost_model, constraints, objectives)


def _starting_bounds(config) -> GeneBounds:
    """Gene bounds before the budgets narrow them: genes the family does not use are pinned.

    Without attention (mlp, cnn, gnn, ssm) `GeneBounds` pins the head genes. Without an FFN
    (ssm: a Mamba-1 block is the whole layer) the FFN gene is pinned to its smallest value,
    so the space does not repeat every architecture once per FFN step.
    """
    bounds = GeneBounds(attention=config.has_attention)
    if not config.has_ffn:
        bounds = dataclasses.replace(bounds, ffn_quarters_max=bounds.ffn_quarters_min)
    return bounds


# Conversions of non-token training data to tokens, estimates for the scaling law only.
# About 4 bytes of English text per BPE token (the GPT-2/Llama tokenizers average 3.5-4.5).
BYTES_PER_TOKEN = 4.0
# Whisper's encoder sees 50 frames per second of audio (1,500 frames per 30 s window).
AUDIO_FRAMES_PER_SECOND = 50.0
WORDS_TO_TOKENS = 1.3


def training_tokens_of(requirements: Requirements, sequence_length: int) -> float | None:
    """Training data in tokens, the D of the scaling law.

    Tokens and frames count as they are, bytes at 4 per token, words at 1.3 tokens each,
    hours of audio at 50 frames per second, and every other unit (images, samples,
    documents, clips...) as one full sequence of `sequence_length` tokens each. All but
    the first are estimates.
    """
    amount = requirements.training_tokens
    if amount is None:
        return None
    unit = (requirements.training_data_unit or "tokens").lower()
    if unit in ("tokens", "frames"):
        return float(amount)
    if unit == "bytes":
        return float(amount) / BYTES_PER_TOKEN
    if unit == "words":
        return float(amount) * WORDS_TO_TOKENS
    if unit == "hours":
        return float(amount) * 3600.0 * AUDIO_FRAMES_PER_SECOND
    return float(amount) * sequence_length
