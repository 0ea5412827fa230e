"""Spec features, the spec hash and the distance that decides which past runs seed a search.

Distance between two specs (lower is closer). Each term adds to the sum:

==================  ==========================================================================
feature             term
==================  ==========================================================================
modality            2.0 when the input->output modalities differ
family              2.0 when the architecture families differ
task_type           1.0 when the task types differ
device              0.5 when the devices differ
parameter budget    1.0 x the mean over the min and max bound of |log10(a / b)|
context_tokens      0.5 x |log10(a / b)|
training_tokens     0.5 x |log10(a / b)|
==================  ==========================================================================

A numeric bound set in one spec and open in the other counts as one decade apart, so
``|log10(a / b)|`` is replaced by 1.0. Values below 1 are raised to 1 before the logarithm.
Runs farther than ``MAX_WARM_START_DISTANCE`` (1.5) do not seed a search. That threshold lets a
different task or device through when the sizes are close, but never a different modality or
family on its own, because their genomes come from another kind of model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from metagen_jax.specs.requirements import Requirements

MODALITY_WEIGHT = 2.0
FAMILY_WEIGHT = 2.0
TASK_WEIGHT = 1.0
DEVICE_WEIGHT = 0.5
PARAMS_WEIGHT_PER_DECADE = 1.0
CONTEXT_WEIGHT_PER_DECADE = 0.5
TRAINING_WEIGHT_PER_DECADE = 0.5
# Gap in decades between a numeric bound that one spec sets and the other leaves open.
OPEN_BOUND_GAP_DECADES = 1.0
MAX_WARM_START_DISTANCE = 1.5


@dataclasses.dataclass(frozen=True)
class SpecFeatures:
    """Spec facts that the history stores per run and compares between specs.

    Attributes:
        modality: input and output modalities as ``"in1+in2->out"``, each side sorted.
        task_type: lower-case task type, e.g. ``"generation"``.
        family: architecture family, e.g. ``"transformer"``.
        min_params, max_params: parameter budget bounds (exact counts), or None when open.
        context_tokens: context window in tokens.
        device: device profile name, e.g. ``"h100"``.
        training_tokens: training data size in tokens (or samples), or None when unknown.
    """

    modality: str
    task_type: str
    family: str
    min_params: int | None
    max_params: int | None
    context_tokens: int
    device: str
    training_tokens: float | None


def spec_features(requirements: Requirements) -> SpecFeatures:
    """Extract the features of a resolved spec."""
    inputs = "+".join(sorted(requirements.modality_inputs))
    outputs = "+".join(sorted(requirements.modality_outputs))
    return SpecFeatures(
        modality=f"{inputs}->{outputs}",
        task_type=requirements.task_type,
        family=requirements.family,
        min_params=requirements.min_params,
        max_params=requirements.max_params,
        context_tokens=requirements.context_tokens,
        device=requirements.device,
        training_tokens=requirements.training_tokens,
    )


def spec_hash(spec: Mapping[str, Any]) -> str:
    """Return the SHA-256 hex digest of the spec dict's canonical JSON.

    Canonical JSON sorts keys, has no whitespace and keeps non-ASCII characters. Values that
    JSON cannot encode (YAML dates, for example) are hashed through ``str``.

    Raises:
        ValueError: when the spec contains NaN or infinity.
    """
    text = json.dumps(
        spec,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=str,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _decade_gap(a: float | None, b: float | None) -> float:
    if a is None and b is None:
        return 0.0
    if a is None or b is None:
        return OPEN_BOUND_GAP_DECADES
    return abs(math.log10(max(float(a), 1.0)) - math.log10(max(float(b), 1.0)))


def feature_distance(a: SpecFeatures, b: SpecFeatures) -> float:
    """Compute the distance between two specs' features (the table in the module docstring)."""
    distance = 0.0
    distance += MODALITY_WEIGHT * (a.modality != b.modality)
    distance += FAMILY_WEIGHT * (a.family != b.family)
    distance += TASK_WEIGHT * (a.task_type != b.task_type)
    distance += DEVICE_WEIGHT * (a.device != b.device)

    params_gap = (_decade_gap(a.min_params, b.min_params) + _decade_gap(a.max_params, b.max_params)) / 2
    distance += PARAMS_WEIGHT_PER_DECADE * params_gap
    distance += CONTEXT_WEIGHT_PER_DECADE * _decade_gap(a.context_tokens, b.context_tokens)
    distance += TRAINING_WEIGHT_PER_DECADE * _decade_gap(a.training_tokens, b.training_tokens)
    return distance
