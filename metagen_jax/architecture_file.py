"""Read a concrete architecture from a YAML file, for `metagen estimate`.

Fields (all optional except hidden_size and num_layers): family, hidden_size, num_layers,
num_heads, num_kv_heads, ffn_hidden_size or ffn_multiplier, ffn_type (plain or gated),
vocab_size, tie_embeddings, norm (layernorm or rmsnorm), bias, position (learned, rotary or
none), max_position_embeddings, context_length, type_vocab_size, embedding_norm,
final_norm, pooler, task (lm, classifier, embedding, regression), num_classes,
embedding_dim, causal, and for vision image_size, patch_size, num_channels. State-space
layers take the Hugging Face MambaConfig names state_size, expand, conv_kernel and
time_step_rank ("auto" for ceil(hidden_size / 16)), and a hybrid takes JambaConfig's
attn_layer_period (layers per attention layer, 8 by default).

family accepts the spec's family names and aliases (gpt, bert, vit, resnet, ...). The
state-space names (ssm, mamba, mamba2, state_space) describe a pure Mamba model here,
every layer a Mamba block without FFN, while a spec reads them as the hybrid family.
Write family: hybrid for attention and Mamba layers mixed as in Jamba.

The context (sequence length) that the model is costed at comes from the first of these
that is given: the `context_length` argument (`metagen estimate --context-length`), the
file's context_length, the patch count plus one for a file with image_size, the spec's
context window, the file's max_position_embeddings, and 2048 tokens.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from metagen_jax.cost.architecture import (
    BYTES_PER_WEIGHT,
    DEFAULT_TEXT_VOCAB,
    STATE_SPACE_FAMILIES,
    ArchitectureConfig,
    Dims,
    config_from_requirements,
)
from metagen_jax.specs.errors import SpecError, describe_value
from metagen_jax.specs.files import MAX_SPEC_BYTES, read_text_file
from metagen_jax.specs.requirements import Requirements, canonical_family, is_state_space_family
from metagen_jax.specs.safe_yaml import load_yaml

KNOWN_FIELDS = {
    "name", "family", "hidden_size", "num_layers", "num_heads", "num_kv_heads", "ffn_hidden_size",
    "ffn_multiplier", "ffn_type", "vocab_size", "tie_embeddings", "norm", "bias", "position",
    "max_position_embeddings", "context_length", "type_vocab_size", "embedding_norm", "final_norm",
    "pooler", "task", "num_classes", "embedding_dim", "causal", "image_size", "patch_size",
    "num_channels", "weight_dtype", "state_size", "expand", "conv_kernel", "time_step_rank",
    "attn_layer_period",
}
# Fields of the Mamba block, with the ArchitectureConfig attribute each sets.
STATE_SPACE_FIELDS = {
    "state_size": "ssm_state_size", "expand": "ssm_expand", "conv_kernel": "ssm_conv_kernel",
    "time_step_rank": "ssm_dt_rank",
}
CHOICES = {
    "ffn_type": ("plain", "gated"),
    "norm": ("layernorm", "rmsnorm"),
    "position": ("learned", "rotary", "none"),
    "task": ("lm", "classifier", "embedding", "regression", "none"),
    "weight_dtype": tuple(BYTES_PER_WEIGHT),
}


FAMILIES = ("transformer", "diffusion", "hybrid", "ssm", "mlp", "cnn", "gnn")
_SUPPORTED_FAMILIES = (
    f"Supported families: {', '.join(FAMILIES)}, or an alias such as gpt, bert, vit, mamba "
    "or resnet"
)

# Largest size a field may take: far above any published model, and small enough that every
# exact parameter count stays inside int64.
MAX_FIELD_VALUE = 2**24


class ArchitectureFileError(ValueError):
    """An architecture file that cannot be read; the message names the file and field."""


@dataclasses.dataclass(frozen=True)
class ArchitectureFile:
    name: str
    dims: Dims
    config: ArchitectureConfig
    unknown_fields: tuple[str, ...]


def _field(data: dict[str, Any], path: Path, key: str, kind: type, default: Any = None, minimum: int | None = None):
    value = data.get(key, default)
    if value is None:
        return None
    if kind is bool:
        if not isinstance(value, bool):
            raise ArchitectureFileError(f"{path}: {key}: expected true or false, got {describe_value(value)}")
        return value
    if kind is int:
        # Finiteness is checked on floats only: math.isfinite raises OverflowError for an
        # int too large for a float.
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or (isinstance(value, float) and not math.isfinite(value))
                or abs(value) > MAX_FIELD_VALUE or int(value) != value):
            raise ArchitectureFileError(
                f"{path}: {key}: expected a whole number up to {MAX_FIELD_VALUE:,}, got {describe_value(value)}")
        value = int(value)
        if minimum is not None and value < minimum:
            raise ArchitectureFileError(f"{path}: {key}: expected at least {minimum}, got {value}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_FIELD_VALUE:
            raise ArchitectureFileError(
                f"{path}: {key}: expected a positive number up to {MAX_FIELD_VALUE:,}, got {describe_value(value)}")
        return float(value)
    text = str(value).strip().lower()
    if key in CHOICES and text not in CHOICES[key]:
        raise ArchitectureFileError(
            f"{path}: {key}: expected one of {', '.join(CHOICES[key])}, got {describe_value(value)}")
    return text


def _family_field(data: dict[str, Any], path: Path) -> str | None:
    value = data.get("family")
    if value is None:
        return None
    if not isinstance(value, str):
        raise ArchitectureFileError(
            f"{path}: family: expected a string, got {describe_value(value)}. {_SUPPORTED_FAMILIES}.")
    if is_state_space_family(value):
        return "ssm"
    family = canonical_family(value)
    if family is None:
        raise ArchitectureFileError(
            f"{path}: family: unknown family {describe_value(value)}. {_SUPPORTED_FAMILIES}.")
    return family


def read_architecture_file(path: Path, requirements: Requirements | None = None, *,
                           context_length: int | None = None) -> ArchitectureFile:
    """Parse and check an architecture file.

    Fields the file leaves out come from the spec's defaults when `requirements` is given
    (context window, vocabulary, task head, precision), else from a Llama-style decoder.
    `context_length`, when given, overrides every other source of the context (see the
    module docstring for the order).

    Raises:
        ArchitectureFileError: missing file, broken YAML, or an invalid field.
        ValueError: `context_length` is below 1 or above MAX_FIELD_VALUE.
    """
    if context_length is not None and not 1 <= context_length <= MAX_FIELD_VALUE:
        raise ValueError(f"context_length must be from 1 to {MAX_FIELD_VALUE:,}, got {context_length}")
    try:
        text = read_text_file(str(path), label="architecture file", max_bytes=MAX_SPEC_BYTES)
        data, _ = load_yaml(text, str(path))
    except SpecError as error:
        raise ArchitectureFileError(str(error)) from None
    if not isinstance(data, dict):
        raise ArchitectureFileError(f"{path}: expected a mapping of architecture fields, got {type(data).__name__}")

    hidden = _field(data, path, "hidden_size", int, minimum=1)
    layers = _field(data, path, "num_layers", int, minimum=1)
    if hidden is None or layers is None:
        raise ArchitectureFileError(f"{path}: hidden_size and num_layers are required")
    heads = _field(data, path, "num_heads", int, default=max(1, hidden // 64), minimum=1)
    kv_heads = _field(data, path, "num_kv_heads", int, default=heads, minimum=1)
    if hidden % heads:
        raise ArchitectureFileError(f"{path}: num_heads: {heads} does not divide hidden_size {hidden}")
    if heads % kv_heads:
        raise ArchitectureFileError(f"{path}: num_kv_heads: {kv_heads} does not divide num_heads {heads}")
    ffn_hidden = _field(data, path, "ffn_hidden_size", int, minimum=1)
    if ffn_hidden is None:
        multiplier = _field(data, path, "ffn_multiplier", float, default=4.0)
        ffn_hidden = int(round(hidden * multiplier))

    base = config_from_requirements(requirements) if requirements is not None else ArchitectureConfig(
        vocab_size=DEFAULT_TEXT_VOCAB, head_outputs=DEFAULT_TEXT_VOCAB)
    config = _config_from_fields(data, path, base, spec_given=requirements is not None,
                                 context_length=context_length)
    unknown = tuple(sorted(str(key) for key in data if key not in KNOWN_FIELDS))
    dims = Dims(hidden, layers, heads, kv_heads, ffn_hidden)
    return ArchitectureFile(str(data.get("name") or path.stem), dims, config, unknown)


def _config_from_fields(data: dict[str, Any], path: Path, base: ArchitectureConfig,
                        spec_given: bool, context_length: int | None) -> ArchitectureConfig:
    changes: dict[str, Any] = {}
    family = _family_field(data, path)
    if family is not None:
        changes["family"] = family
    for key, attribute, kind in (
        ("vocab_size", "vocab_size", int), ("tie_embeddings", "tie_embeddings", bool),
        ("norm", "norm", str), ("bias", "bias", bool), ("position", "position", str),
        ("ffn_type", "ffn_type", str), ("type_vocab_size", "type_vocab_size", int),
        ("embedding_norm", "embedding_norm", bool), ("final_norm", "final_norm", bool),
        ("pooler", "pooler", bool), ("causal", "causal", bool),
    ):
        value = _field(data, path, key, kind, minimum=0 if kind is int else None)
        if value is not None:
            changes[attribute] = value
    dtype = _field(data, path, "weight_dtype", str)
    if dtype is not None:
        changes["weight_bytes"] = BYTES_PER_WEIGHT[dtype]

    image_size = _field(data, path, "image_size", int, minimum=1)
    if image_size is not None:
        patch = _field(data, path, "patch_size", int, default=16, minimum=1)
        channels = _field(data, path, "num_channels", int, default=3, minimum=1)
        tokens = (image_size // patch) ** 2
        changes.update(input_stem="patches", patch_dim=patch * patch * channels, prefix_tokens=1,
                       max_positions=tokens + 1, sequence_length=tokens + 1, causal=False,
                       position=changes.get("position", "learned"))
        changes.setdefault("head", "classifier")

    task = _field(data, path, "task", str)
    if task is not None:
        changes["head"] = task
    head = changes.get("head", base.head)
    if head == "classifier":
        changes["head_outputs"] = _field(data, path, "num_classes", int, default=base.head_outputs or 2, minimum=1)
        if "causal" not in changes:
            changes["causal"] = False
    elif head == "embedding":
        changes["head_outputs"] = _field(data, path, "embedding_dim", int, default=base.head_outputs or 768, minimum=1)
    elif head == "lm":
        changes["head_outputs"] = changes.get("vocab_size", base.vocab_size)

    context = _field(data, path, "context_length", int, minimum=1)
    positions = _field(data, path, "max_position_embeddings", int, minimum=1)
    if positions is not None:
        changes["max_positions"] = positions
    if context_length is not None:
        changes["sequence_length"] = context_length
    elif context is not None:
        changes["sequence_length"] = context
    elif positions is not None and "sequence_length" not in changes and not spec_given:
        # Without a spec, the model's own position limit is the context it is costed at.
        changes["sequence_length"] = positions
    changes.update(_state_space_fields(data, path, changes.get("family", base.family)))
    config = dataclasses.replace(base, **changes)
    if config.position == "learned" and config.max_positions == 0:
        config = dataclasses.replace(config, max_positions=config.sequence_length)
    return config


def _state_space_fields(data: dict[str, Any], path: Path, family: str) -> dict[str, Any]:
    """Read the Mamba block sizes and the hybrid's attention period into config changes."""
    changes: dict[str, Any] = {}
    present = [key for key in (*STATE_SPACE_FIELDS, "attn_layer_period") if data.get(key) is not None]
    if present and family not in STATE_SPACE_FAMILIES:
        raise ArchitectureFileError(
            f"{path}: {present[0]}: applies only to the ssm and hybrid families, but the family is "
            f"{family}. Set family: mamba or family: hybrid, or remove {present[0]}.")
    rank = data.get("time_step_rank")
    if isinstance(rank, str):
        if rank.strip().lower() != "auto":
            raise ArchitectureFileError(
                f"{path}: time_step_rank: expected a whole number or auto, got {describe_value(rank)}")
        # 0 is the config's value for the reference's "auto" rank, ceil(hidden_size / 16).
        changes["ssm_dt_rank"] = 0
    for key, attribute in STATE_SPACE_FIELDS.items():
        if attribute in changes:
            continue
        value = _field(data, path, key, int, minimum=1)
        if value is not None:
            changes[attribute] = value
    period = _field(data, path, "attn_layer_period", int, minimum=1)
    if period is not None:
        if family != "hybrid":
            raise ArchitectureFileError(
                f"{path}: attn_layer_period: applies only to the hybrid family, but the family is "
                f"{family}. Set family: hybrid, or remove attn_layer_period.")
        changes["attention_period"] = period
    return changes
