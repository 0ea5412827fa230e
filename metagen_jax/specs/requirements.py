"""Requirements: the numbers that the search space and the cost model read from a spec.

The loader resolves every unit string of an MSL spec ("8B", "16GB", "256k", "120 tok/s",
"interactive") into plain numbers here, so no other module parses units.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from metagen_jax import hardware
from metagen_jax.specs import units
from metagen_jax.specs.errors import KeyPath, SpecError, SpecWarning, format_key_path
from metagen_jax.specs.schema import Constraints, ParameterBudget, Spec

_T = TypeVar("_T")

# Context length used when a text-like spec gives no context window, in tokens.
DEFAULT_CONTEXT_TOKENS = 2048


@dataclasses.dataclass(frozen=True)
class Requirements:
    """Resolved constraints and task facts of one spec. Hashable, so it can be a static jit argument.

    Attributes:
        name: the spec's name.
        modality_inputs: input modalities, lower case ("text", "image", "audio", "video",
            "time_series", "tabular", "graph", "multimodal").
        modality_outputs: output modalities, lower case.
        task_type: lower-case task type ("generation", "classification", "embedding", ...).
        family: architecture family after aliasing: one of transformer, diffusion, hybrid, ssm,
            mlp, cnn, gnn.
        min_params, max_params: parameter budget bounds (exact counts), or None when open.
        memory_budget_bytes: memory budget in bytes, or None.
        context_tokens: context window in tokens (sequence length for encoders).
        latency_ms: latency bound in milliseconds, explicit or from the latency class, or None.
        latency_class: the MSL latency class name when one was given, else None.
        device: device profile name or class, lower case ("consumer_gpu", "h100", ...).
        throughput: required throughput, or None.
        throughput_unit: "tok/s", "img/s", "fps", "req/s" or "samples/s", or None.
        training_tokens: training data size in tokens (or samples for non-token data), or None.
        training_data_unit: unit of training_tokens ("tokens", "images", "samples", ...), or None.
        num_classes: classifier classes, or None.
        num_outputs: regression or forecasting outputs, or None.
        embedding_dim: output embedding size for embedding tasks, or None.
        vocab_size: vocabulary size when the spec fixes one, or None.
        image_size, patch_size, num_channels: vision input geometry when given, or None.
        weight_dtype: deployment weight dtype: "bf16" (default), "fp16", "fp32", "fp8",
            "int8" or "int4".
        seed: reproducibility seed (the CLI's --seed overrides it).
        horizon, lookback: forecasting horizon and input window in steps, or None.
        objectives: training objectives, lower case ("autoregressive", "masked", ...).
    """

    name: str
    modality_inputs: tuple[str, ...] = ("text",)
    modality_outputs: tuple[str, ...] = ("text",)
    task_type: str = "generation"
    family: str = "transformer"
    min_params: int | None = None
    max_params: int | None = None
    memory_budget_bytes: int | None = None
    context_tokens: int = DEFAULT_CONTEXT_TOKENS
    latency_ms: float | None = None
    latency_class: str | None = None
    device: str = "datacenter_gpu"
    throughput: float | None = None
    throughput_unit: str | None = None
    training_tokens: float | None = None
    training_data_unit: str | None = None
    num_classes: int | None = None
    num_outputs: int | None = None
    embedding_dim: int | None = None
    vocab_size: int | None = None
    image_size: int | None = None
    patch_size: int | None = None
    num_channels: int | None = None
    weight_dtype: str = "bf16"
    seed: int = 42
    horizon: int | None = None
    lookback: int | None = None
    objectives: tuple[str, ...] = ()


# Architecture families the engine models, and the names a spec may use for each.
FAMILY_ALIASES: dict[str, str] = {
    **dict.fromkeys(
        (
            "transformer", "decoder", "llm", "gpt", "encoder", "bert", "vit",
            "transformer_decoder", "transformer_encoder", "decoder_only", "encoder_only",
            "encoder_decoder", "seq2seq", "t5",
        ),
        "transformer",
    ),
    **dict.fromkeys(("diffusion", "unet", "dit", "latent_diffusion"), "diffusion"),
    "hybrid": "hybrid",
    **dict.fromkeys(("ssm", "mamba", "mamba2", "state_space"), "ssm"),
    **dict.fromkeys(("cnn", "convnet", "resnet", "conv", "convolutional"), "cnn"),
    **dict.fromkeys(("mlp", "feedforward", "feed_forward"), "mlp"),
    **dict.fromkeys(("gnn", "graph", "gcn", "gat"), "gnn"),
}
# Names of pure state-space models (Mamba blocks only, no attention): the ssm family.
STATE_SPACE_FAMILY_NAMES = frozenset({"ssm", "mamba", "mamba2", "state_space"})
DEFAULT_FAMILY = "transformer"
# Largest context the cost model supports: 2^30 tokens, the engine's limit on every size.
MAX_CONTEXT_TOKENS = 2**30
DEFAULT_DEVICE = "datacenter_gpu"
DEFAULT_WEIGHT_DTYPE = "bf16"
# Patch side assumed for a patch-based family when a spec gives an image size without one.
DEFAULT_PATCH_SIZE = 16
_PATCH_FAMILIES = frozenset({"transformer", "hybrid", "ssm", "diffusion"})

KNOWN_INPUT_MODALITIES = frozenset(
    {"text", "image", "audio", "video", "time_series", "tabular", "graph", "multimodal", "3d",
     "point_cloud"}
)
KNOWN_OUTPUT_MODALITIES = KNOWN_INPUT_MODALITIES | {
    "label", "classification", "embedding", "action", "regression", "score", "anomaly_score",
    "ranking", "bounding_boxes", "segmentation", "mask",
}
_MODALITY_SYNONYMS = {
    "texts": "text", "images": "image", "img": "image", "speech": "audio", "videos": "video",
    "timeseries": "time_series", "pointcloud": "point_cloud", "labels": "label",
    "embeddings": "embedding", "actions": "action",
}
# Unit of a throughput given as a plain number, by the first input modality.
_DEFAULT_THROUGHPUT_UNITS = {"text": "tok/s", "image": "img/s", "video": "fps"}
_NO_QUANTIZATION = frozenset({"none", "no", "off", "false", ""})


def canonical_family(name: str) -> str | None:
    """Return the family an architecture name stands for ("gpt" -> "transformer"), or None."""
    return FAMILY_ALIASES.get(re.sub(r"[\s-]+", "_", name.strip().lower()))


def is_state_space_family(name: str) -> bool:
    """Return whether an architecture name is that of a state-space model ("mamba", "ssm")."""
    return _fold(name) in STATE_SPACE_FAMILY_NAMES


def resolve_requirements(spec: Spec) -> Requirements:
    """Resolve every unit string and default of a spec into `Requirements`.

    Warnings about approximations (an unbounded context, an unknown family or modality)
    are issued as `SpecWarning`. `parse_spec` collects them with their file lines instead.

    Raises:
        SpecError: for an invalid unit value or inconsistent values, with the key path.
    """
    requirements, notes = resolve_with_notes(spec)
    for key_path, message in notes:
        warnings.warn(f"{format_key_path(key_path)}: {message}", SpecWarning, stacklevel=2)
    return requirements


def resolve_with_notes(spec: Spec) -> tuple[Requirements, list[tuple[KeyPath, str]]]:
    """Resolve a spec like `resolve_requirements`, returning the warnings as (key path, message)."""
    notes: list[tuple[KeyPath, str]] = []
    constraints = spec.constraints
    family = _resolve_family(spec.architecture.family, notes)
    inputs = _resolve_modalities(spec.modality.inputs, ("modality", "inputs"), KNOWN_INPUT_MODALITIES, notes)
    outputs = _resolve_modalities(
        spec.modality.outputs, ("modality", "outputs"), KNOWN_OUTPUT_MODALITIES, notes
    )
    min_params, max_params = _resolve_parameter_budget(constraints.parameter_budget)
    geometry = _resolve_geometry(spec, family)
    context_tokens = _resolve_context(spec, inputs, geometry, notes)
    latency = _parse_at(units.parse_latency, constraints.latency, ("constraints", "latency"))
    throughput = _parse_at(units.parse_throughput, constraints.throughput, ("constraints", "throughput"))
    data_size = _parse_at(units.parse_data_size, spec.training.data.size, ("training", "data", "size"))
    memory = _parse_at(units.parse_memory_bytes, constraints.memory_budget, ("constraints", "memory_budget"))
    if memory == 0:
        raise SpecError("the memory budget must be positive.", key_path=("constraints", "memory_budget"))
    device = _resolve_device(constraints.device)
    _note_fixed_sizes(spec, notes)
    throughput_unit = None
    if throughput is not None:
        throughput_unit = throughput.unit or _DEFAULT_THROUGHPUT_UNITS.get(inputs[0], "samples/s")

    requirements = Requirements(
        name=spec.name,
        modality_inputs=inputs,
        modality_outputs=outputs,
        task_type=_fold(spec.task.type) or "generation",
        family=family,
        min_params=min_params,
        max_params=max_params,
        memory_budget_bytes=memory,
        context_tokens=context_tokens,
        latency_ms=latency.ms if latency is not None else None,
        latency_class=latency.latency_class if latency is not None else None,
        device=device,
        throughput=throughput.value if throughput is not None else None,
        throughput_unit=throughput_unit,
        training_tokens=data_size.count if data_size is not None else None,
        training_data_unit=data_size.unit if data_size is not None else None,
        num_classes=spec.task.num_classes,
        num_outputs=spec.task.num_outputs,
        embedding_dim=spec.task.embedding_dim,
        vocab_size=_first_component_value(spec, "vocab_size")[0],
        image_size=geometry.image_size,
        patch_size=geometry.patch_size,
        num_channels=geometry.num_channels,
        weight_dtype=_resolve_weight_dtype(constraints),
        seed=spec.reproducibility.seed,
        horizon=spec.task.horizon,
        lookback=spec.task.lookback,
        objectives=tuple(_fold(objective) for objective in spec.training.objective),
    )
    return requirements, notes


class _Geometry(NamedTuple):
    image_size: int | None
    patch_size: int | None
    num_channels: int | None


def _resolve_family(written: str, notes: list[tuple[KeyPath, str]]) -> str:
    family = canonical_family(written)
    if family is None:
        notes.append(
            (
                ("architecture", "family"),
                f"unknown architecture family {written!r}. Using {DEFAULT_FAMILY}. "
                f"Known families: {', '.join(sorted(set(FAMILY_ALIASES.values())))}.",
            )
        )
        return DEFAULT_FAMILY
    return family


def _resolve_device(written: str | None) -> str:
    """Fold the device name and check that a device profile exists for it."""
    key_path = ("constraints", "device")
    device = _parse_at(units.normalize_device, written, key_path) or DEFAULT_DEVICE
    try:
        hardware.resolve_device(device)
    except KeyError:
        close = hardware.closest_device_names(device)
        hint = f" Did you mean {_join_or(close)}?" if close else ""
        raise SpecError(
            f"unknown device {written!r}.{hint} Known device profiles: "
            f"{', '.join(sorted(hardware.PROFILES))}, or a class such as "
            f"{', '.join(hardware.DEVICE_CLASSES)}.",
            key_path=key_path,
        ) from None
    return device


# Component sizes that the schema accepts but the search does not apply yet.
_UNAPPLIED_COMPONENT_SIZES = ("hidden_size", "num_layers", "num_heads")


def _note_fixed_sizes(spec: Spec, notes: list[tuple[KeyPath, str]]) -> None:
    # TODO: turn these into fixed gene bounds once the search space reads them.
    for index, component in enumerate(spec.architecture.components):
        for field in _UNAPPLIED_COMPONENT_SIZES:
            value = getattr(component, field)
            if value is not None:
                notes.append(
                    (
                        ("architecture", "components", index, field),
                        f"the fixed {field} {value} is not applied, because the search space "
                        f"does not read component sizes yet. The search varies {field} over "
                        "its whole range.",
                    )
                )


def _resolve_modalities(
    written: list[str],
    key_path: KeyPath,
    known: frozenset[str],
    notes: list[tuple[KeyPath, str]],
) -> tuple[str, ...]:
    resolved: list[str] = []
    for index, name in enumerate(written):
        modality = _fold(name)
        modality = _MODALITY_SYNONYMS.get(modality.replace("_", ""), modality)
        if modality not in known:
            notes.append(
                (
                    (*key_path, index),
                    f"unknown modality {name!r}, kept as written. Known: {', '.join(sorted(known))}.",
                )
            )
        if modality and modality not in resolved:
            resolved.append(modality)
    if not resolved:
        notes.append((key_path, "no modality given. Using text."))
        resolved.append("text")
    return tuple(resolved)


def _resolve_parameter_budget(budget: ParameterBudget | None) -> tuple[int | None, int | None]:
    if budget is None:
        return None, None
    key_path = ("constraints", "parameter_budget")
    min_params = _parse_at(units.parse_param_count, budget.min, (*key_path, "min"))
    max_params = _parse_at(units.parse_param_count, budget.max, (*key_path, "max"))
    if max_params == 0:
        raise SpecError("the maximum parameter count must be at least 1.", key_path=(*key_path, "max"))
    if min_params is not None and max_params is not None and min_params > max_params:
        raise SpecError(
            f"the minimum {budget.min!r} ({min_params:,} parameters) is larger than the "
            f"maximum {budget.max!r} ({max_params:,}). Swap them or widen the range.",
            key_path=key_path,
        )
    return min_params, max_params


def _resolve_geometry(spec: Spec, family: str) -> _Geometry:
    """Find the vision input geometry: components first, then the older constraints keys."""
    image_size, image_path = _first_component_value(spec, "image_size")
    if image_size is None and spec.constraints.image_size is not None:
        image_size, image_path = spec.constraints.image_size, ("constraints", "image_size")
    patch_size, patch_path = _first_component_value(spec, "patch_size")
    if patch_size is None and spec.constraints.patch_size is not None:
        patch_size, patch_path = spec.constraints.patch_size, ("constraints", "patch_size")
    num_channels, _ = _first_component_value(spec, "num_channels")
    if image_size is not None and patch_size is None and family in _PATCH_FAMILIES:
        patch_size = DEFAULT_PATCH_SIZE
    if image_size is not None and patch_size is not None and image_size % patch_size:
        default_note = "" if patch_path else f" (the default for the {family} family)"
        raise SpecError(
            f"image_size {image_size} is not a multiple of patch_size {patch_size}{default_note}. "
            "Use an image size that the patches tile exactly, or set patch_size.",
            key_path=patch_path or image_path,
        )
    return _Geometry(image_size, patch_size, num_channels)


def _resolve_context(
    spec: Spec,
    inputs: tuple[str, ...],
    geometry: _Geometry,
    notes: list[tuple[KeyPath, str]],
) -> int:
    """Return the context in tokens: as written, else the patch count + 1 (a class token)
    for image inputs with a known image size, else the lookback for time series, else
    DEFAULT_CONTEXT_TOKENS."""
    written = spec.constraints.context_window
    key_path = ("constraints", "context_window")
    if written is not None:
        tokens = _parse_at(units.parse_context_tokens, written, key_path)
        if tokens > MAX_CONTEXT_TOKENS:
            raise SpecError(f"a context of {tokens:,} tokens is larger than the cost model supports "
                            f"({MAX_CONTEXT_TOKENS:,}).", key_path=key_path)
        if units.is_infinite_context(written):
            notes.append(
                (key_path, f"{written!r} is read as a context of {tokens:,} tokens (1M).")
            )
        return tokens
    if "image" in inputs and geometry.image_size is not None:
        # A family without patches (cnn, mlp, gnn) gets the positions of a stride-16
        # feature map, a size for activation estimates.
        side = -(-geometry.image_size // (geometry.patch_size or DEFAULT_PATCH_SIZE))
        return side**2 + 1
    if "time_series" in inputs and spec.task.lookback is not None:
        return spec.task.lookback
    return DEFAULT_CONTEXT_TOKENS


def _resolve_weight_dtype(constraints: Constraints) -> str:
    quantization = constraints.quantization
    if quantization is False or (
        isinstance(quantization, str) and _fold(quantization) in _NO_QUANTIZATION
    ):
        quantization = None
    if quantization is not None:
        return _parse_at(units.normalize_weight_dtype, quantization, ("constraints", "quantization"))
    if constraints.precision is not None:
        return _parse_at(units.normalize_weight_dtype, constraints.precision, ("constraints", "precision"))
    return DEFAULT_WEIGHT_DTYPE


def _first_component_value(spec: Spec, field: str) -> tuple[Any, KeyPath]:
    for index, component in enumerate(spec.architecture.components):
        value = getattr(component, field)
        if value is not None:
            return value, ("architecture", "components", index, field)
    return None, ()


def _parse_at(parser: Callable[[Any], _T], value: Any, key_path: KeyPath) -> _T | None:
    """Apply a unit parser to a value that may be absent, locating its errors at key_path."""
    if value is None:
        return None
    try:
        return parser(value)
    except SpecError as error:
        raise error.located(key_path=key_path) from None


def _join_or(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _fold(text: str) -> str:
    return re.sub(r"[\s-]+", "_", text.strip().lower())
