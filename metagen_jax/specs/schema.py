"""MSL 1.0 spec sections as msgspec Structs, and the JSON Schema of the file format.

The Structs hold values the way the user wrote them, so unit strings such as "8B" stay
strings until `resolve_requirements` turns them into numbers. Every section has a default,
so a file may leave any of them out. The loader (`normalize.py`) brings the shorthand
forms into these shapes first: a scalar where a list is expected, a single value for
`parameter_budget`, a name→settings mapping for `architecture.components`.
"""

import copy
from typing import Annotated, Any

import msgspec
from msgspec import Meta

MSL_VERSION = "1.0"

# Value types of the unit fields: YAML and JSON give "8B" as str, 8000000000 as int, 8e9 as float.
UnitValue = str | int | float | None

# Largest size field (classes, vocabulary, image side, ...). The engine rejects larger
# sizes because the cost model turns them into int32 constants inside jitted code.
MAX_SIZE = 2**30
PositiveInt = Annotated[int, Meta(ge=1, le=MAX_SIZE)]


def _described(kind: Any, description: str, examples: list[Any] | None = None) -> Any:
    """Attach a JSON Schema description (and examples) to a field type."""
    if examples is None:
        return Annotated[kind, Meta(description=description)]
    return Annotated[kind, Meta(description=description, examples=examples)]


class _Section(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=False):
    """Base of all spec sections: keyword-only, immutable."""


class Modality(_Section):
    """Input and output modalities of the model."""

    inputs: _described(
        list[str],
        "Input modalities: text, image, audio, video, time_series, tabular, graph, "
        "multimodal, 3d, point_cloud. Default [text].",
        [["text"], ["text", "image"]],
    ) = msgspec.field(default_factory=lambda: ["text"])
    outputs: _described(
        list[str],
        "Output modalities, or the output kind (label, embedding, action). Default [text].",
        [["text"], ["label"]],
    ) = msgspec.field(default_factory=lambda: ["text"])


class Task(_Section):
    """Task type and domain, and the sizes of the task-specific heads."""

    type: _described(
        str,
        "Task type such as generation, classification, embedding, regression, "
        "time_series_forecast. Default generation.",
    ) = "generation"
    domain: _described(str, "Application domain, free text. Default general.") = "general"
    num_classes: _described(PositiveInt | None, "Classes of a classifier head.") = None
    num_outputs: _described(PositiveInt | None, "Outputs of a regression or forecasting head.") = None
    horizon: _described(PositiveInt | None, "Forecast horizon in steps.") = None
    lookback: _described(PositiveInt | None, "Forecast input window in steps.") = None
    embedding_dim: _described(PositiveInt | None, "Output size of an embedding model.") = None
    action_dim: _described(PositiveInt | None, "Action size of a policy model.") = None
    action_space: _described(str | None, "Action space of a policy model: discrete or continuous.") = None


class ParameterBudget(_Section):
    """Bounds on the parameter count. A spec may also give one value, read as the maximum."""

    min: _described(UnitValue, "Minimum parameter count.", ["6B", "50M", 1000000]) = None
    max: _described(UnitValue, "Maximum parameter count.", ["9B", "350M", "1.5T"]) = None


class Constraints(_Section):
    """Deployment constraints. Each one left out is unconstrained."""

    parameter_budget: _described(
        ParameterBudget | None,
        "Parameter budget: {min, max}, or one value such as \"8B\" read as the maximum.",
    ) = None
    memory_budget: _described(
        UnitValue,
        "Memory budget for inference: KB/MB/GB/TB = 1000^n bytes, KiB/MiB/GiB/TiB = 1024^n "
        "bytes, a plain number is bytes.",
        ["16GB", "24GiB", "512MB"],
    ) = None
    context_window: _described(
        UnitValue,
        "Context window in tokens, with k = 1024 and M = 1024^2. \"∞\"/\"inf\"/\"infinite\" "
        "reads as 1,048,576 tokens with a warning. Default: (image_size / patch_size)^2 + 1 "
        "for image inputs with a known image size, task.lookback for time series, else 2048.",
        ["8k", "256k", "1M", 4096],
    ) = None
    latency: _described(
        UnitValue,
        "Latency bound: a class (real-time = 50 ms, near-real-time = 200 ms, "
        "interactive = 1 s, batch = 60 s, offline = none) or a time. A plain number is ms.",
        ["near-real-time", "10ms", "0.5s"],
    ) = None
    device: _described(
        str | None,
        "Target device or device class, such as consumer_gpu, datacenter_gpu, h100, "
        "tpu-v5e, cpu. Default datacenter_gpu.",
    ) = None
    throughput: _described(
        UnitValue,
        "Required throughput: tok/s, img/s, fps, req/s or samples/s.",
        ["120 tok/s", "30fps", "2 img/s"],
    ) = None
    precision: _described(
        str | None,
        "Weight dtype at inference: bf16, fp16, fp32, fp8, int8, int4. Default bf16.",
    ) = None
    quantization: _described(
        str | bool | None,
        "Weight quantization (int8, int4, fp8, ...), which overrides precision. false or none "
        "means no quantization.",
    ) = None
    image_size: _described(
        PositiveInt | None,
        "Input image side in pixels, where older specs wrote it. A value in "
        "architecture.components takes precedence.",
    ) = None
    patch_size: _described(
        PositiveInt | None,
        "Patch side in pixels, where older specs wrote it. A value in "
        "architecture.components takes precedence.",
    ) = None


class TrainingData(_Section):
    """Training data: where it comes from, how much, and how it is governed."""

    sources: _described(list[str], "Data sources, free text.") = msgspec.field(default_factory=list)
    size: _described(
        UnitValue,
        "Data size: a count with a unit (K/M/B/T = 10^3/10^6/10^9/10^12). A plain number "
        "counts tokens.",
        ["2T tokens", "1.2M images", "50k samples"],
    ) = None
    governance: _described(
        dict[str, Any], "Governance statements (pii, copyright, license, ...), free-form."
    ) = msgspec.field(default_factory=dict)


class TrainingCompute(_Section):
    """Compute used for training, as free text."""

    hardware: _described(str | None, "Training hardware, such as 256xH100.") = None
    duration: _described(str | None, "Training duration, such as 21 days.") = None


class Alignment(_Section):
    """Post-training alignment."""

    method: _described(list[str], "Alignment methods, such as sft, dpo, rlhf.") = msgspec.field(
        default_factory=list
    )
    policy: _described(str | None, "Alignment policy, free text.") = None


class Training(_Section):
    """Training setup: objectives, data, compute, alignment and hyperparameters."""

    objective: _described(
        list[str],
        "Training objectives, such as autoregressive, masked, classification, diffusion, "
        "contrastive.",
    ) = msgspec.field(default_factory=list)
    data: TrainingData = msgspec.field(default_factory=TrainingData)
    compute: TrainingCompute = msgspec.field(default_factory=TrainingCompute)
    alignment: Alignment = msgspec.field(default_factory=Alignment)
    config: _described(
        dict[str, Any], "Training hyperparameters (batch_size, learning_rate, ...), free-form."
    ) = msgspec.field(default_factory=dict)


class Component(_Section):
    """One named part of the architecture, with the sizes that the spec fixes for it."""

    name: _described(str | None, "Component name.") = None
    type: _described(str | None, "Component type, such as transformer_decoder or patch_embedding.") = None
    vocab_size: _described(PositiveInt | None, "Vocabulary size of a token embedding.") = None
    image_size: _described(PositiveInt | None, "Input image side in pixels.") = None
    patch_size: _described(PositiveInt | None, "Patch side in pixels.") = None
    num_channels: _described(PositiveInt | None, "Input image channels.") = None
    hidden_size: _described(
        PositiveInt | None, "Fixed model width. Not applied by the search yet, so the loader warns."
    ) = None
    num_layers: _described(
        PositiveInt | None, "Fixed layer count. Not applied by the search yet, so the loader warns."
    ) = None
    num_heads: _described(
        PositiveInt | None, "Fixed attention head count. Not applied by the search yet, so the loader warns."
    ) = None
    options: _described(
        dict[str, Any], "Any other settings of the component, free-form."
    ) = msgspec.field(default_factory=dict)


class Architecture(_Section):
    """Architecture family and fixed components."""

    family: _described(
        str,
        "Architecture family: transformer, diffusion, hybrid, cnn, mlp, gnn, or an alias "
        "such as gpt, bert, vit, mamba, resnet. Unknown names fall back to transformer.",
    ) = "transformer"
    components: _described(
        list[Component],
        "Components: a list of {name, type, ...} settings, a list of names, or a mapping "
        "of name to settings.",
    ) = msgspec.field(default_factory=list)


class Outputs(_Section):
    """Artifacts to produce."""

    artifacts: list[str] = msgspec.field(default_factory=list)


class Evaluation(_Section):
    """Benchmarks, baselines and metrics to report."""

    benchmarks: list[str] = msgspec.field(default_factory=list)
    baselines: list[str] = msgspec.field(default_factory=list)
    metrics: list[str] = msgspec.field(default_factory=list)


class Reproducibility(_Section):
    """Seed and determinism."""

    seed: _described(
        Annotated[int, Meta(ge=0, le=2**32 - 1)], "Base random seed, 0 to 2^32 - 1. Default 42."
    ) = 42
    determinism: _described(str | bool | None, "Determinism statement or flag.") = None


class Spec(_Section):
    """An MSL 1.0 model spec."""

    name: _described(str, "Model name. The loader uses the file name when it is missing.")
    metagen_version: _described(str, "MSL version of the file. Default 1.0.") = MSL_VERSION
    description: str = ""
    modality: Modality = msgspec.field(default_factory=Modality)
    task: Task = msgspec.field(default_factory=Task)
    constraints: Constraints = msgspec.field(default_factory=Constraints)
    training: Training = msgspec.field(default_factory=Training)
    architecture: Architecture = msgspec.field(default_factory=Architecture)
    outputs: Outputs = msgspec.field(default_factory=Outputs)
    evaluation: Evaluation = msgspec.field(default_factory=Evaluation)
    reproducibility: Reproducibility = msgspec.field(default_factory=Reproducibility)


_NUMBER_OR_UNIT_STRING = [{"type": "string"}, {"type": "integer"}, {"type": "number"}]


def spec_json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of the spec file format.

    The schema describes what a user may write, so it allows the loader's shorthand forms.
    These are a string where a list of strings is expected, one value for
    `parameter_budget`, a plain string for `modality`, `task` and `architecture`, and
    names or a name→settings mapping for `architecture.components`. Unknown keys are
    allowed because the loader only warns about them.
    """
    schema = copy.deepcopy(msgspec.json.schema(Spec))
    definitions = schema["$defs"]
    for definition in definitions.values():
        for prop in definition.get("properties", {}).values():
            _allow_scalar_for_string_list(prop)

    constraints = definitions["Constraints"]["properties"]
    constraints["parameter_budget"]["anyOf"] = [
        {"$ref": "#/$defs/ParameterBudget"},
        *_NUMBER_OR_UNIT_STRING,
        {"type": "null"},
    ]
    spec_properties = definitions["Spec"]["properties"]
    for section in ("modality", "task", "architecture"):
        ref = spec_properties[section].pop("$ref")
        spec_properties[section]["anyOf"] = [{"$ref": ref}, {"type": "string"}, {"type": "null"}]
    components = definitions["Architecture"]["properties"]["components"]
    components.pop("type")
    item_forms = [{"$ref": "#/$defs/Component"}, {"type": "string"}]
    components["anyOf"] = [
        {"type": "array", "items": {"anyOf": item_forms}},
        {"type": "object", "additionalProperties": {"anyOf": [*item_forms, {"type": "null"}]}},
    ]
    components.pop("items")

    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"MetaGen Specification Language (MSL) {MSL_VERSION}"
    return schema


def _allow_scalar_for_string_list(prop: dict[str, Any]) -> None:
    if prop.get("type") == "array" and prop.get("items") == {"type": "string"}:
        default = prop.pop("default", None)
        items = prop.pop("items")
        prop.pop("type")
        prop["anyOf"] = [{"type": "array", "items": items}, {"type": "string"}]
        if default is not None:
            prop["default"] = default
