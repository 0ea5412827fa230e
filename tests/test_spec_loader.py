"""Spec loading: bundled specs, old and foreign layouts, shorthand forms, located errors."""

from __future__ import annotations

import json
import logging
import os
import textwrap
import threading
from pathlib import Path

import msgspec
import pytest
import yaml

from metagen_jax.specs import (
    Requirements,
    Spec,
    SpecError,
    SpecWarning,
    load_spec,
    parse_spec,
    resolve_requirements,
    spec_json_schema,
)
from metagen_jax.specs import normalize as normalize_module
from metagen_jax.specs.files import MAX_SPEC_BYTES, read_text_file
from metagen_jax.specs.loader import MAX_WARNINGS, parse_spec_data, resolved_spec_dict
from metagen_jax.specs.schema import Constraints, ParameterBudget

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "specs"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "specs"

GIB = 1024**3


def write_spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def spec_error(path: Path) -> str:
    with pytest.raises(SpecError) as raised:
        parse_spec(path)
    message = str(raised.value)
    assert "\n" not in message
    assert "Traceback" not in message
    return message


# Bundled specs ---------------------------------------------------------------------------

BUNDLED_EXPECTED = {
    "text_llm_8b": dict(
        modality_inputs=("text",),
        modality_outputs=("text",),
        task_type="generation",
        family="transformer",
        min_params=6_000_000_000,
        max_params=9_000_000_000,
        memory_budget_bytes=24 * GIB,
        context_tokens=262_144,
        latency_ms=200.0,
        latency_class="near-real-time",
        device="consumer_gpu",
        throughput=40.0,
        throughput_unit="tok/s",
        training_tokens=2e12,
        training_data_unit="tokens",
        vocab_size=128_256,
        weight_dtype="int4",
        seed=42,
        objectives=("autoregressive",),
    ),
    "tiny_text_lm": dict(
        family="transformer",
        min_params=10_000_000,
        max_params=60_000_000,
        memory_budget_bytes=2_000_000_000,
        context_tokens=1024,
        latency_ms=1000.0,
        latency_class="interactive",
        device="cpu",
        throughput=200.0,
        throughput_unit="tok/s",
        training_tokens=3e8,
        vocab_size=8192,
        weight_dtype="fp32",
        seed=7,
    ),
    "vit_image_classifier": dict(
        modality_inputs=("image",),
        modality_outputs=("label",),
        task_type="classification",
        family="transformer",
        min_params=70_000_000,
        max_params=100_000_000,
        memory_budget_bytes=16_000_000_000,
        context_tokens=197,  # (224 / 16)^2 patches + 1 class token
        latency_ms=100.0,
        latency_class=None,
        device="a100",
        throughput=1000.0,
        throughput_unit="img/s",
        training_tokens=1.28e6,
        training_data_unit="images",
        num_classes=1000,
        image_size=224,
        patch_size=16,
        num_channels=3,
        weight_dtype="bf16",
        seed=0,
    ),
    "bert_text_classifier": dict(
        modality_outputs=("label",),
        task_type="classification",
        family="transformer",
        min_params=None,
        max_params=130_000_000,
        memory_budget_bytes=2_000_000_000,
        context_tokens=512,
        latency_ms=20.0,
        device="l4",
        throughput=300.0,
        throughput_unit="req/s",
        num_classes=2,
        vocab_size=30_522,
        weight_dtype="fp16",
        objectives=("masked", "classification"),
    ),
    "edge_model": dict(
        modality_inputs=("image",),
        family="cnn",
        min_params=1_000_000,
        max_params=5_000_000,
        memory_budget_bytes=256 * 1024**2,
        context_tokens=197,  # stride-16 positions of a 224 px image + 1
        latency_ms=50.0,
        latency_class="real-time",
        device="edge",
        throughput=30.0,
        throughput_unit="fps",
        training_tokens=1.2e5,
        training_data_unit="images",
        num_classes=20,
        image_size=224,
        patch_size=None,
        weight_dtype="int8",
        seed=3,
    ),
    "long_context": dict(
        family="hybrid",
        min_params=3_000_000_000,
        max_params=14_000_000_000,
        memory_budget_bytes=80 * GIB,
        context_tokens=1_048_576,
        latency_ms=1000.0,
        latency_class="interactive",
        device="h100",
        throughput=30.0,
        training_tokens=4e12,
        vocab_size=65_536,
        weight_dtype="bf16",
        seed=2024,
    ),
}


@pytest.mark.parametrize("name", sorted(BUNDLED_EXPECTED))
def test_bundled_spec_resolves(name):
    parsed = parse_spec(BUNDLED / f"{name}.yaml")
    assert parsed.warnings == []
    assert parsed.requirements.name == name
    for field, expected in BUNDLED_EXPECTED[name].items():
        assert getattr(parsed.requirements, field) == expected, field


def test_bundled_specs_all_checked():
    assert {path.stem for path in BUNDLED.glob("*.yaml")} == set(BUNDLED_EXPECTED)


@pytest.mark.parametrize("name", sorted(BUNDLED_EXPECTED))
def test_bundled_spec_raw_matches_yaml(name):
    path = BUNDLED / f"{name}.yaml"
    spec, raw = load_spec(path)
    assert raw == yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(spec, Spec)


@pytest.mark.parametrize("name", sorted(BUNDLED_EXPECTED))
def test_bundled_spec_fits_json_schema(name):
    # jsonschema is not a dependency, so check the parts that bundled specs use: every
    # key is a schema property and every unit value's JSON type is one the schema allows.
    schema = spec_json_schema()
    definitions = schema["$defs"]
    raw = yaml.safe_load((BUNDLED / f"{name}.yaml").read_text(encoding="utf-8"))
    assert set(raw) <= set(definitions["Spec"]["properties"])
    for key in raw.get("constraints", {}):
        assert key in definitions["Constraints"]["properties"], key
    json_types = {str: "string", int: "integer", float: "number", dict: "object"}
    for key, value in raw.get("constraints", {}).items():
        prop = definitions["Constraints"]["properties"][key]
        allowed = {form.get("type") for form in prop.get("anyOf", [prop])}
        if isinstance(value, dict):
            assert any("$ref" in form for form in prop["anyOf"]), key
        else:
            assert json_types[type(value)] in allowed, key


# Defaults and resolution -----------------------------------------------------------------


def test_minimal_spec_takes_defaults(tmp_path):
    parsed = parse_spec(write_spec(tmp_path, "name: minimal\n"))
    assert parsed.requirements == Requirements(name="minimal")
    assert parsed.requirements.context_tokens == 2048
    assert parsed.requirements.device == "datacenter_gpu"
    assert parsed.requirements.weight_dtype == "bf16"
    assert parsed.requirements.seed == 42
    assert parsed.spec.metagen_version == "1.0"
    assert parsed.spec.modality.inputs == ["text"]
    assert parsed.spec.architecture.family == "transformer"
    assert len(parsed.warnings) == 1
    assert "missing key 'metagen_version'" in parsed.warnings[0]


def test_missing_name_uses_file_name(tmp_path):
    parsed = parse_spec(write_spec(tmp_path, 'metagen_version: "1.0"\n', name="my_model.yaml"))
    assert parsed.spec.name == "my_model"
    assert any("missing key 'name'" in warning for warning in parsed.warnings)


def test_null_sections_take_defaults(tmp_path):
    path = write_spec(
        tmp_path,
        """
        metagen_version: "1.0"
        name: nulls
        modality:
        task: ~
        constraints: null
        training:
          data:
        reproducibility:
          seed:
        """,
    )
    parsed = parse_spec(path)
    assert parsed.warnings == []
    assert parsed.requirements == Requirements(name="nulls")


def test_vision_context_from_geometry(tmp_path):
    path = write_spec(
        tmp_path,
        """
        metagen_version: "1.0"
        name: vit_large_384
        modality: {inputs: [image], outputs: [label]}
        architecture:
          family: vit
          components:
            - {name: patches, image_size: 384, patch_size: 16}
        """,
    )
    requirements = parse_spec(path).requirements
    assert requirements.context_tokens == (384 // 16) ** 2 + 1 == 577
    assert requirements.patch_size == 16


def test_vision_default_patch_size(tmp_path):
    path = write_spec(
        tmp_path,
        """
        metagen_version: "1.0"
        name: vit_default_patch
        modality: {inputs: [image], outputs: [label]}
        architecture: {family: transformer, components: [{image_size: 256}]}
        """,
    )
    requirements = parse_spec(path).requirements
    assert requirements.patch_size == 16
    assert requirements.context_tokens == 16 * 16 + 1


def test_vision_without_size_uses_default(tmp_path):
    path = write_spec(tmp_path, "name: img\nmodality: {inputs: [image], outputs: [label]}\n")
    assert parse_spec(path).requirements.context_tokens == 2048


def test_explicit_context_wins_over_geometry(tmp_path):
    path = write_spec(
        tmp_path,
        """
        name: vlm
        modality: {inputs: [text, image], outputs: [text]}
        constraints: {context_window: 32k}
        architecture: {components: [{image_size: 336, patch_size: 14}]}
        """,
    )
    assert parse_spec(path).requirements.context_tokens == 32_768


def test_quantization_overrides_precision(tmp_path):
    path = write_spec(tmp_path, "name: q\nconstraints: {precision: bfloat16, quantization: 4bit}\n")
    assert parse_spec(path).requirements.weight_dtype == "int4"


@pytest.mark.parametrize("value", ["false", "no", "none", "'none'", "null"])
def test_quantization_off_keeps_precision(tmp_path, value):
    path = write_spec(tmp_path, f"name: q\nconstraints: {{precision: FP16, quantization: {value}}}\n")
    assert parse_spec(path).requirements.weight_dtype == "fp16"


@pytest.mark.parametrize(("inputs", "unit"), [("text", "tok/s"), ("image", "img/s"), ("video", "fps"), ("audio", "samples/s")])
def test_plain_throughput_unit_follows_modality(tmp_path, inputs, unit):
    path = write_spec(tmp_path, f"name: t\nmodality: {{inputs: [{inputs}]}}\nconstraints: {{throughput: 25}}\n")
    requirements = parse_spec(path).requirements
    assert requirements.throughput == 25.0
    assert requirements.throughput_unit == unit


@pytest.mark.parametrize(
    ("written", "family"),
    [
        ("transformer", "transformer"), ("decoder", "transformer"), ("LLM", "transformer"),
        ("gpt", "transformer"), ("encoder", "transformer"), ("BERT", "transformer"),
        ("vit", "transformer"), ("transformer_decoder", "transformer"),
        ("transformer-decoder", "transformer"), ("unet", "diffusion"), ("DiT", "diffusion"),
        ("latent_diffusion", "diffusion"), ("ssm", "ssm"), ("Mamba", "ssm"),
        ("hybrid", "hybrid"), ("convnet", "cnn"), ("ResNet", "cnn"), ("cnn", "cnn"),
        ("mlp", "mlp"), ("feedforward", "mlp"), ("gnn", "gnn"), ("graph", "gnn"),
    ],
)
def test_family_aliases(written, family):
    parsed = parse_spec_data({"name": "f", "metagen_version": "1.0", "architecture": {"family": written}})
    assert parsed.requirements.family == family
    assert parsed.warnings == []


def test_unknown_family_warns_and_uses_transformer(tmp_path):
    path = write_spec(tmp_path, 'metagen_version: "1.0"\nname: f\narchitecture:\n  family: liquid_net\n')
    parsed = parse_spec(path)
    assert parsed.requirements.family == "transformer"
    assert len(parsed.warnings) == 1
    warning = parsed.warnings[0]
    assert warning.startswith(f"{path}:4: architecture.family: unknown architecture family 'liquid_net'")
    assert "Using transformer" in warning


def test_unknown_modality_warns(tmp_path):
    path = write_spec(tmp_path, 'metagen_version: "1.0"\nname: m\nmodality:\n  outputs: [text, taste]\n')
    parsed = parse_spec(path)
    assert parsed.requirements.modality_outputs == ("text", "taste")
    assert len(parsed.warnings) == 1
    assert f"{path}:4: modality.outputs[1]: unknown modality 'taste'" in parsed.warnings[0]


def test_infinite_context_warns(tmp_path):
    parsed = parse_spec(FIXTURES / "infinite_context.yaml")
    assert parsed.requirements.context_tokens == 1_048_576
    assert parsed.requirements.family == "ssm"
    assert len(parsed.warnings) == 1
    assert f"{FIXTURES / 'infinite_context.yaml'}:10: constraints.context_window:" in parsed.warnings[0]
    assert "1,048,576 tokens" in parsed.warnings[0]


@pytest.mark.parametrize("written", ["inf", "infinite", "unlimited", ".inf"])
def test_infinite_context_spellings(tmp_path, written):
    path = write_spec(tmp_path, f"name: c\nconstraints:\n  context_window: {written}\n")
    assert parse_spec(path).requirements.context_tokens == 1_048_576


def test_device_normalized_in_requirements(tmp_path):
    path = write_spec(tmp_path, "name: d\nconstraints: {device: TPU v5e}\n")
    assert parse_spec(path).requirements.device == "tpu-v5e"


def test_resolve_requirements_on_python_spec():
    spec = Spec(
        name="built",
        constraints=Constraints(parameter_budget=ParameterBudget(min="1B", max="3B"), context_window="∞"),
    )
    with pytest.warns(SpecWarning, match="constraints.context_window"):
        requirements = resolve_requirements(spec)
    assert requirements.min_params == 1_000_000_000
    assert requirements.max_params == 3_000_000_000
    assert requirements.context_tokens == 1_048_576


def test_resolve_requirements_error_names_key():
    spec = Spec(name="bad", constraints=Constraints(memory_budget="16 gigs"))
    with pytest.raises(SpecError, match=r"^constraints\.memory_budget: invalid memory size '16 gigs'"):
        resolve_requirements(spec)


# Compatibility with other versions and shorthand forms -----------------------------------


def test_legacy_spec_loads():
    path = FIXTURES / "legacy_v0_spec.yaml"
    parsed = parse_spec(path)
    requirements = parsed.requirements
    assert requirements.name == "legacy_chat_model"
    assert requirements.task_type == "generation"
    assert requirements.max_params == 7_000_000_000
    assert requirements.min_params is None
    assert requirements.memory_budget_bytes == 16_000_000_000
    assert requirements.context_tokens == 4096
    assert requirements.latency_class == "near-real-time"
    assert requirements.device == "consumer_gpu"
    assert requirements.throughput == 60.0
    assert requirements.throughput_unit == "tok/s"
    assert requirements.training_tokens == 1.5e12
    assert requirements.objectives == ("autoregressive",)
    assert requirements.family == "transformer"
    assert parsed.spec.metagen_version == "0.9"
    assert parsed.spec.training.data.governance == {"pii": "we tried", "copyright": "mostly"}

    expected = [
        f"{path}:2: version: read as 'metagen_version', the MSL 1.0 name.",
        f"{path}:2: version: the spec declares MSL version '0.9'.",
        f"{path}:3: model_name: read as 'name', the MSL 1.0 name.",
        f"{path}:6: modality.input: read as 'inputs', the MSL 1.0 name.",
        f"{path}:7: modality.output: read as 'outputs', the MSL 1.0 name.",
        f"{path}:9: task.kind: read as 'type', the MSL 1.0 name.",
        f"{path}:12: constraints.params: read as 'parameter_budget', the MSL 1.0 name.",
        f"{path}:13: constraints.memory: read as 'memory_budget', the MSL 1.0 name.",
        f"{path}:14: constraints.context_length: read as 'context_window', the MSL 1.0 name.",
        f"{path}:18: constraints.latncy_budget: unknown key, ignored. Did you mean 'latency'?",
        f"{path}:20: training.objectives: read as 'objective', the MSL 1.0 name.",
        f"{path}:31: architecture.type: read as 'family', the MSL 1.0 name.",
        f"{path}:37: tags: unknown key, ignored. Did you mean 'task'?",
    ]
    assert len(parsed.warnings) == len(expected)
    for warning, start in zip(parsed.warnings, expected, strict=True):
        assert warning.startswith(start), (warning, start)


def test_upstream_layout_loads():
    path = FIXTURES / "upstream_vit_spec.yaml"
    parsed = parse_spec(path)
    requirements = parsed.requirements
    assert requirements.name == "ViT-Base/16 Image Classifier"
    assert requirements.num_classes == 1000
    assert requirements.modality_outputs == ("classification",)
    assert requirements.image_size == 224
    assert requirements.patch_size == 16
    assert requirements.context_tokens == 197
    assert requirements.latency_ms == 60_000.0
    assert requirements.min_params == 50_000_000
    assert requirements.training_tokens == 1.28e6
    assert requirements.training_data_unit == "samples"
    assert parsed.spec.training.config == {"batch_size": 256, "learning_rate": 0.001, "epochs": 300}
    assert parsed.spec.metagen_version == "1.0"
    assert parsed.warnings == [f"{path}:5: version: ignored, because 'metagen_version' is also given."]


def test_json_spec_loads():
    path = FIXTURES / "forecaster.json"
    parsed = parse_spec(path)
    requirements = parsed.requirements
    assert requirements.modality_inputs == ("time_series",)
    assert requirements.task_type == "time_series_forecast"
    assert requirements.lookback == 336
    assert requirements.horizon == 24
    assert requirements.num_outputs == 1
    assert requirements.context_tokens == 336
    assert requirements.max_params == 12_000_000
    assert requirements.memory_budget_bytes == 512 * 1024**2
    assert requirements.latency_ms == 500.0
    assert requirements.throughput_unit == "samples/s"
    assert requirements.training_tokens == 5e4
    assert requirements.training_data_unit == "samples"
    assert requirements.family == "mlp"
    assert requirements.seed == 11
    assert parsed.spec.reproducibility.determinism is True
    assert parsed.warnings == []


def test_json_error_has_line(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text('{\n  "name": "x",\n  "constraints": {"memory_budget": "16 gigs"}\n}\n')
    message = spec_error(path)
    assert message.startswith(f"{path}:3: constraints.memory_budget: invalid memory size '16 gigs'")


def test_json_with_tabs_keeps_lines(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text('{\n\t"name": "x",\n\t"constraints": {\n\t\t"latency": "fast"\n\t}\n}\n')
    assert spec_error(path).startswith(f"{path}:4: constraints.latency: invalid latency 'fast'")


def test_json_content_with_other_suffix(tmp_path):
    path = tmp_path / "spec.msl"
    path.write_text(json.dumps({"metagen_version": "1.0", "name": "j", "constraints": {"parameter_budget": "2B"}}))
    assert parse_spec(path).requirements.max_params == 2_000_000_000


def test_yaml_content_with_other_suffix(tmp_path):
    path = write_spec(tmp_path, 'metagen_version: "1.0"\nname: y\nconstraints: {context_window: 16k}\n', name="spec.txt")
    assert parse_spec(path).requirements.context_tokens == 16_384


def test_yaml_with_bom():
    parsed = parse_spec(FIXTURES / "bom_spec.yaml")
    assert parsed.spec.metagen_version == "1.0"
    assert parsed.requirements.name == "bom_spec"
    assert parsed.requirements.max_params == 350_000_000
    assert parsed.warnings == []


def test_utf16_spec(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text('metagen_version: "1.0"\nname: wide\nconstraints: {memory_budget: 8GB}\n', encoding="utf-16")
    assert parse_spec(path).requirements.memory_budget_bytes == 8_000_000_000


def test_shorthand_forms(tmp_path):
    path = write_spec(
        tmp_path,
        """
        metagen_version: 1.0
        name: 12345
        modality: TEXT
        task: Classification
        constraints:
          parameter_budget: ~8B
          context_window: 8K
          latency: REAL-TIME
        training:
          objective: masked, classification
          data: {sources: web, size: 10000}
        architecture: BERT
        evaluation: {benchmarks: glue}
        """,
    )
    parsed = parse_spec(path)
    spec, requirements = parsed.spec, parsed.requirements
    assert spec.metagen_version == "1.0"
    assert spec.name == "12345"
    assert spec.modality.inputs == ["TEXT"]
    assert requirements.modality_inputs == ("text",)
    assert requirements.modality_outputs == ("text",)
    assert requirements.task_type == "classification"
    assert requirements.max_params == 8_000_000_000
    assert requirements.context_tokens == 8192
    assert requirements.latency_class == "real-time"
    assert requirements.objectives == ("masked", "classification")
    assert spec.training.data.sources == ["web"]
    assert requirements.training_tokens == 10_000.0
    assert requirements.family == "transformer"
    assert spec.evaluation.benchmarks == ["glue"]
    assert len(parsed.warnings) == 1
    assert f"{path}:3: modality: read 'TEXT' as both the inputs and the outputs." == parsed.warnings[0]


def test_numbers_as_strings(tmp_path):
    path = write_spec(
        tmp_path,
        """
        name: s
        task: {num_classes: "1,000", embedding_dim: " 768 "}
        reproducibility: {seed: "7"}
        architecture: {components: [{vocab_size: "50257", image_size: 224.0}]}
        """,
    )
    requirements = parse_spec(path).requirements
    assert requirements.num_classes == 1000
    assert requirements.embedding_dim == 768
    assert requirements.seed == 7
    assert requirements.vocab_size == 50257
    assert requirements.image_size == 224


def test_components_as_mapping_and_names(tmp_path):
    path = write_spec(
        tmp_path,
        """
        name: c
        architecture:
          family: transformer
          components:
            tokenizer: {vocab_size: 32000, rope_theta: 500000}
            decoder: transformer_decoder
            head:
        """,
    )
    components = parse_spec(path).spec.architecture.components
    assert [component.name for component in components] == ["tokenizer", "decoder", "head"]
    assert components[0].vocab_size == 32000
    assert components[0].options == {"rope_theta": 500000}
    assert components[1].type == "transformer_decoder"
    path = write_spec(tmp_path, "name: c\narchitecture: {components: [encoder, decoder]}\n")
    assert [component.name for component in parse_spec(path).spec.architecture.components] == ["encoder", "decoder"]


def test_param_budget_aliases(tmp_path):
    path = write_spec(tmp_path, 'metagen_version: "1.0"\nname: p\nconstraints:\n  min_params: 1B\n  max_params: 3B\n')
    parsed = parse_spec(path)
    assert parsed.requirements.min_params == 1_000_000_000
    assert parsed.requirements.max_params == 3_000_000_000
    assert parsed.spec.constraints.parameter_budget == ParameterBudget(min="1B", max="3B")
    assert parsed.warnings[0] == f"{path}:4: constraints.min_params: read as 'parameter_budget.min', the MSL 1.0 name."
    assert parsed.warnings[1] == f"{path}:5: constraints.max_params: read as 'parameter_budget.max', the MSL 1.0 name."


def test_canonical_key_wins_over_alias(tmp_path):
    path = write_spec(tmp_path, "name: p\nconstraints:\n  params: 1B\n  parameter_budget: 2B\n")
    parsed = parse_spec(path)
    assert parsed.requirements.max_params == 2_000_000_000
    assert parsed.warnings[-1] == f"{path}:3: constraints.params: ignored, because 'parameter_budget' is also given."


def test_key_case_and_dashes_folded(tmp_path):
    path = write_spec(tmp_path, 'metagen_version: "1.0"\nname: k\nConstraints:\n  Context-Window: 2k\n')
    parsed = parse_spec(path)
    assert parsed.requirements.context_tokens == 2048
    assert parsed.warnings == [
        f"{path}:3: Constraints: read as 'constraints', the MSL 1.0 name.",
        f"{path}:4: Constraints.Context-Window: read as 'context_window', the MSL 1.0 name.",
    ]


def test_unknown_key_names_nearest(tmp_path):
    path = write_spec(
        tmp_path,
        """
        metagen_version: "1.0"
        name: typo
        constraints:
          paramter_budget: 8B
          memory_budget: 16GB
        """,
    )
    parsed = parse_spec(path)
    assert parsed.requirements.max_params is None
    assert parsed.warnings == [
        f"{path}:4: constraints.paramter_budget: unknown key, ignored. Did you mean 'parameter_budget'?"
    ]


def test_unknown_key_without_near_match(tmp_path):
    path = write_spec(tmp_path, 'metagen_version: "1.0"\nname: u\nreproducibility:\n  zzz_custom: 1\n')
    assert parse_spec(path).warnings == [
        f"{path}:4: reproducibility.zzz_custom: unknown key, ignored. Known keys here: seed, determinism."
    ]


def test_duplicate_key_warns(tmp_path):
    path = write_spec(tmp_path, 'metagen_version: "1.0"\nname: d\nconstraints:\n  latency: batch\n  latency: 10ms\n')
    parsed = parse_spec(path)
    assert parsed.requirements.latency_ms == 10.0
    assert parsed.warnings == [f"{path}:5: constraints.latency: duplicate key. The value on line 5 replaces the earlier one."]


def test_future_version_warns(tmp_path):
    path = write_spec(tmp_path, 'metagen_version: "2.0"\nname: v\n')
    parsed = parse_spec(path)
    assert len(parsed.warnings) == 1
    assert parsed.warnings[0].startswith(f"{path}:1: metagen_version: the spec declares MSL version '2.0'")


def test_load_spec_emits_warnings(tmp_path, caplog):
    path = write_spec(tmp_path, 'metagen_version: "1.0"\nname: w\nconstraints:\n  latncy: batch\n')
    with caplog.at_level(logging.WARNING, logger="metagen_jax.specs.loader"):
        with pytest.warns(SpecWarning) as recorded:
            spec, raw = load_spec(path)
    expected = f"{path}:4: constraints.latncy: unknown key, ignored. Did you mean 'latency'?"
    assert [str(warning.message) for warning in recorded] == [expected]
    assert [record.getMessage() for record in caplog.records] == [expected]
    assert spec.name == "w"
    assert raw == {"metagen_version": "1.0", "name": "w", "constraints": {"latncy": "batch"}}


def test_resolved_spec_dict_is_json(tmp_path):
    parsed = parse_spec(BUNDLED / "text_llm_8b.yaml")
    resolved = json.loads(json.dumps(resolved_spec_dict(parsed)))
    assert resolved["name"] == "text_llm_8b"
    assert resolved["source"] == str(BUNDLED / "text_llm_8b.yaml")
    assert resolved["requirements"]["max_params"] == 9_000_000_000
    assert resolved["requirements"]["modality_inputs"] == ["text"]
    assert resolved["spec"]["constraints"]["parameter_budget"] == {"min": "6B", "max": "9B"}
    assert resolved["warnings"] == []


def test_resolved_spec_dict_handles_yaml_types(tmp_path):
    path = write_spec(tmp_path, "name: t\narchitecture: {components: [{name: a, released: 2024-05-01, 7: seven}]}\n")
    resolved = json.loads(json.dumps(resolved_spec_dict(parse_spec(path))))
    assert resolved["spec"]["architecture"]["components"][0]["options"] == {"released": "2024-05-01", "7": "seven"}


def test_json_schema_shape():
    schema = spec_json_schema()
    assert json.loads(json.dumps(schema)) == schema
    definitions = schema["$defs"]
    assert schema["$ref"] == "#/$defs/Spec"
    assert set(definitions["Spec"]["properties"]) == {
        "name", "metagen_version", "description", "modality", "task", "constraints",
        "training", "architecture", "outputs", "evaluation", "reproducibility",
    }
    budget_forms = definitions["Constraints"]["properties"]["parameter_budget"]["anyOf"]
    assert {"$ref": "#/$defs/ParameterBudget"} in budget_forms
    assert {"type": "string"} in budget_forms
    assert {"type": "integer"} in budget_forms
    input_forms = definitions["Modality"]["properties"]["inputs"]["anyOf"]
    assert {"type": "string"} in input_forms
    assert "1024^n" in definitions["Constraints"]["properties"]["memory_budget"]["description"]
    assert definitions["Task"]["properties"]["num_classes"]["anyOf"][0] == {
        "type": "integer", "minimum": 1, "maximum": 2**30
    }


def test_spec_struct_round_trip():
    parsed = parse_spec(BUNDLED / "vit_image_classifier.yaml")
    again = msgspec.convert(msgspec.to_builtins(parsed.spec), Spec)
    assert again == parsed.spec


# Errors ----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert spec_error(path) == f"{path}: spec file not found. Check the path."


def test_directory(tmp_path):
    assert spec_error(tmp_path).startswith(f"{tmp_path}: this is a directory.")


def test_empty_file(tmp_path):
    path = write_spec(tmp_path, "")
    assert spec_error(path).startswith(f"{path}: the spec file is empty.")


def test_comment_only_file(tmp_path):
    path = write_spec(tmp_path, "# nothing here\n\n")
    assert spec_error(path).startswith(f"{path}: the spec file has no YAML document")


def test_broken_yaml_has_line(tmp_path):
    path = write_spec(tmp_path, "name: x\nconstraints:\n  latency: [batch\n  device: cpu\nother: 1\n")
    message = spec_error(path)
    assert message.startswith(f"{path}:4: invalid YAML:")


def test_bad_indentation_has_line(tmp_path):
    path = write_spec(tmp_path, "name: x\nconstraints:\n  latency: batch\n device: cpu\n")
    assert spec_error(path).startswith(f"{path}:4: invalid YAML:")


def test_broken_json_has_line(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text('{\n  "name": "x",\n  "constraints": {"latency": "batch",}\n}\n')
    message = spec_error(path)
    assert message.startswith(f"{path}:3: invalid JSON:")
    assert "column" in message


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "a list"), ("just text\n", "a string"), ("42\n", "an integer")])
def test_top_level_not_mapping(tmp_path, text, kind):
    path = write_spec(tmp_path, text)
    message = spec_error(path)
    assert message.startswith(f"{path}:1: the top level is {kind}")
    assert "Expected a mapping of MSL sections" in message


def test_multiple_documents(tmp_path):
    path = write_spec(tmp_path, "name: a\n---\nname: b\n")
    assert spec_error(path).startswith(f"{path}:2: invalid YAML:")


def test_not_utf8(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"name: x\ndescription: caf\xe9\n")
    assert spec_error(path).startswith(f"{path}:2: the file is not UTF-8 text")


def test_control_character_rejected(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: x\ndescription: a\x00b\n", encoding="utf-8")
    assert spec_error(path) == f"{path}:2: invalid YAML: the control character U+0000 is not allowed in a YAML file."


@pytest.mark.parametrize(
    ("text", "key_path"),
    [
        ("constraints: {parameter_budget: 1e999999999}", "constraints.parameter_budget"),
        ("constraints: {throughput: 1e999999999 tok/s}", "constraints.throughput"),
        ("constraints: {latency: 1e999999999s}", "constraints.latency"),
        ("training: {data: {size: 1e999999999 tokens}}", "training.data.size"),
        ("constraints: {memory_budget: 1e30}", "constraints.memory_budget"),
    ],
)
def test_huge_values_rejected(tmp_path, text, key_path):
    path = write_spec(tmp_path, f"name: x\n{text}\n")
    message = spec_error(path)
    assert message.startswith(f"{path}:2: {key_path}: invalid")
    assert "10^24" in message


def test_unsafe_tag_rejected(tmp_path):
    path = write_spec(tmp_path, "name: !!python/object/apply:os.system ['true']\n")
    assert spec_error(path).startswith(f"{path}:1: invalid YAML:")


LOCATED_ERRORS = [
    # (spec text, line, key path, parts the message must contain)
    (
        "name: x\nconstraints:\n  parameter_budget:\n    min: 1B\n    max: 8X\n",
        5, "constraints.parameter_budget.max", ["invalid parameter count '8X'", "350M", "1.5T"],
    ),
    (
        "name: x\nconstraints:\n  parameter_budget:\n    max: true\n",
        4, "constraints.parameter_budget.max", ["invalid parameter count True", "8B"],
    ),
    (
        "name: x\nconstraints:\n  params: lots\n",
        3, "constraints.params", ["invalid parameter count 'lots'"],
    ),
    (
        "name: x\nconstraints:\n  memory_budget: 16 gigs\n",
        3, "constraints.memory_budget", ["invalid memory size '16 gigs'", "1024^n"],
    ),
    (
        "name: x\nconstraints:\n  memory_budget: [16GB]\n",
        3, "constraints.memory_budget", ["invalid memory size ['16GB']"],
    ),
    (
        "name: x\nconstraints:\n  context_window: lots\n",
        3, "constraints.context_window", ["invalid context window 'lots'", "256k", "infinite"],
    ),
    (
        "name: x\nconstraints:\n  latency: fast\n",
        3, "constraints.latency", ["invalid latency 'fast'", "near-real-time = 200 ms"],
    ),
    (
        "name: x\nconstraints:\n  throughput: 5 furlongs/s\n",
        3, "constraints.throughput", ["invalid throughput '5 furlongs/s'", "tok/s"],
    ),
    (
        "name: x\ntraining:\n  data:\n    size: unknown but large\n",
        4, "training.data.size", ["invalid training data size 'unknown but large'", "2T tokens"],
    ),
    (
        "name: x\nconstraints:\n  precision: int3\n",
        3, "constraints.precision", ["invalid weight dtype 'int3'", "bf16"],
    ),
    (
        "name: x\nconstraints:\n  quantization: yes\n",
        3, "constraints.quantization", ["invalid weight dtype True", "int4"],
    ),
    (
        "name: x\nconstraints:\n  parameter_budget: {min: 9B, max: 6B}\n",
        3, "constraints.parameter_budget", ["minimum '9B' (9,000,000,000 parameters) is larger than the maximum '6B'"],
    ),
    (
        "name: x\nconstraints: fast\n",
        2, "constraints", ["invalid value 'fast': expected a mapping, got a string"],
    ),
    (
        "name: x\nmodality:\n  inputs: {kind: text}\n",
        3, "modality.inputs", ["invalid value {'kind': 'text'}: expected a list, got a mapping"],
    ),
    (
        "name: x\ntask:\n  type: classification\n  num_classes: many\n",
        4, "task.num_classes", ["invalid value 'many'", "an integer"],
    ),
    (
        "name: x\ntask:\n  num_classes: 0\n",
        3, "task.num_classes", ["invalid value 0: expected an integer >= 1"],
    ),
    (
        "name: x\nreproducibility:\n  seed: -1\n",
        3, "reproducibility.seed", ["invalid value -1: expected an integer >= 0"],
    ),
    (
        "name: x\narchitecture:\n  components:\n    - name: a\n    - name: b\n      vocab_size: big\n",
        6, "architecture.components[1].vocab_size", ["invalid value 'big'"],
    ),
    (
        "name: x\narchitecture:\n  components:\n    tok:\n      vocab_size: -5\n",
        5, "architecture.components.tok.vocab_size", ["invalid value -5: expected an integer >= 1"],
    ),
    (
        "name: x\nmodality: {inputs: [image]}\narchitecture:\n  family: vit\n  components:\n    - image_size: 225\n      patch_size: 16\n",
        7, "architecture.components[0].patch_size", ["image_size 225 is not a multiple of patch_size 16"],
    ),
    (
        "name: x\nconstraints:\n  device: ''\n",
        3, "constraints.device", ["invalid device ''"],
    ),
    (
        "name: [x]\n",
        1, "name", ["invalid value ['x']: expected a string, got a list"],
    ),
    (
        "name: x\narchitecture:\n  components:\n    - vocab_size: 1073741825\n",
        4, "architecture.components[0].vocab_size", ["invalid value 1073741825: expected an integer <= 1073741824"],
    ),
]


@pytest.mark.parametrize(("text", "line", "key_path", "parts"), LOCATED_ERRORS)
def test_located_error(tmp_path, text, line, key_path, parts):
    path = write_spec(tmp_path, text)
    message = spec_error(path)
    assert message.startswith(f"{path}:{line}: {key_path}: "), message
    for part in parts:
        assert part in message, (part, message)


def test_error_in_data_without_file():
    with pytest.raises(SpecError) as raised:
        parse_spec_data({"name": "x", "constraints": {"latency": "fast"}}, source="<test>")
    assert str(raised.value).startswith("<test>: constraints.latency: invalid latency 'fast'")


def test_data_not_mapping():
    with pytest.raises(SpecError) as raised:
        parse_spec_data(["name", "x"], source="<test>")
    assert str(raised.value) == "<test>: the top level is a list. Expected a mapping of MSL sections."


def test_recursive_alias_rejected(tmp_path):
    # A value that contains itself has no JSON form, so validate and the spec hash would fail.
    path = write_spec(tmp_path, "name: r\narchitecture:\n  components:\n    - &a {name: loop, extra: *a}\n")
    message = spec_error(path)
    assert message.startswith(f"{path}:4: architecture.components[0]: ")
    assert "recursive alias" in message


def test_deep_nesting_is_spec_error(tmp_path):
    path = write_spec(tmp_path, "name: deep\ntraining:\n  config: " + "[" * 5000 + "]" * 5000 + "\n")
    message = spec_error(path)
    assert message.startswith(f"{path}")
    assert "invalid YAML" in message
    assert "nesting depth" in message


# Hostile input: alias bombs, long integers, special files, many unknown keys ------------


def nested_alias_spec(levels: int, width: int = 9) -> str:
    """A spec whose training.config contains `levels` lists, each repeating the previous one `width` times."""
    lines = ["name: bomb", "training:", "  config:"]
    lines.append("    a0: &a0 [" + ", ".join(["x"] * width) + "]")
    for level in range(1, levels):
        lines.append(f"    a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_rejected(tmp_path):
    # Expanded nodes of level k: E(0) = 1 + 9 = 10 and E(k) = 1 + 9 * E(k - 1), so
    # E(3) = 7,381 and E(4) = 66,430. The file writes fewer than 50 nodes, so level 4 (line 8)
    # is the first to exceed 10,000 nodes beyond those written.
    path = write_spec(tmp_path, nested_alias_spec(9))
    message = spec_error(path)
    assert message.startswith(f"{path}:8: training.config.a4: ")
    assert "more than 10,000 nodes" in message


def test_alias_expansion_under_limit_loads(tmp_path):
    # Four levels expand to 10 + 91 + 820 + 7,381 = 8,302 nodes in all, under the limit.
    path = write_spec(tmp_path, nested_alias_spec(4))
    parsed = parse_spec(path)
    config = parsed.spec.training.config
    assert len(config["a3"]) == 9
    assert config["a3"][8][8][8] == ["x"] * 9
    text = json.dumps(resolved_spec_dict(parsed))
    assert text.count('"x"') == 9 + 9**2 + 9**3 + 9**4


def test_anchor_reuse_loads(tmp_path):
    path = write_spec(
        tmp_path,
        """
        name: reuse
        training:
          config:
            base: &base {batch_size: 32, learning_rate: 0.001}
            warmup: *base
            finetune: *base
        """,
    )
    config = parse_spec(path).spec.training.config
    assert config["warmup"] == {"batch_size": 32, "learning_rate": 0.001}
    assert config["finetune"] == config["base"]


@pytest.mark.parametrize(
    ("section", "line", "key_path"),
    [
        ("reproducibility:\n  seed: ", 3, "reproducibility.seed"),
        ("training:\n  config:\n    lr: ", 4, "training.config.lr"),
        ("training:\n  config:\n    steps: [1, -", 4, "training.config.steps[1]"),
    ],
)
def test_long_integer_rejected(tmp_path, section, line, key_path):
    closing = "]" if section.endswith("-") else ""
    path = write_spec(tmp_path, f"name: x\n{section}{'9' * 5000}{closing}\n")
    message = spec_error(path)
    assert message.startswith(f"{path}:{line}: {key_path}: invalid integer: it has 5,000 digits")
    assert "4,300" in message


def test_integer_of_4300_digits_loads(tmp_path):
    path = write_spec(tmp_path, f"name: x\ntraining:\n  config:\n    big: {'7' * 4300}\n")
    parsed = parse_spec(path)
    assert parsed.spec.training.config["big"] == int("7" * 4300)
    assert len(json.dumps(resolved_spec_dict(parsed))) > 4300
    path = write_spec(tmp_path, f"name: x\ntraining:\n  config:\n    big: {'7' * 4301}\n")
    assert "4,301 digits" in spec_error(path)


def test_long_integer_in_json_rejected(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text('{\n  "name": "x",\n  "note": "9999",\n  "training": {"config": {"lr": ' + "9" * 5000 + "}}\n}\n")
    message = spec_error(path)
    assert message.startswith(f"{path}:4: invalid integer: it has 5,000 digits")


def test_character_device_rejected():
    message = spec_error(Path(os.devnull))
    assert message == (
        f"{os.devnull}: this is a character device, not a regular file. "
        "Expected a .yaml or .json spec file."
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_rejected_without_reading(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def parse() -> None:
        try:
            parse_spec(fifo)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome.append(error)
        else:
            outcome.append(None)

    worker = threading.Thread(target=parse, daemon=True)
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():
        # Open the write end so that a reader blocked in open() returns, then fail.
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("parse_spec blocked on a FIFO")
    assert isinstance(outcome[0], SpecError)
    assert str(outcome[0]) == f"{fifo}: this is a named pipe (FIFO), not a regular file. Expected a .yaml or .json spec file."


def test_oversized_file_rejected(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"name: x\n" + b"#" * MAX_SPEC_BYTES)
    assert spec_error(path) == f"{path}: the file has more than 1,048,576 bytes, the maximum size of a spec file."


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_read_stops_at_limit_when_size_is_unknown():
    # /proc files are regular files that report st_size 0, so only the bounded read stops them.
    status = Path("/proc/self/status")
    assert status.stat().st_size == 0
    with pytest.raises(SpecError) as raised:
        read_text_file(str(status), max_bytes=10)
    assert str(raised.value) == f"{status}: the file has more than 10 bytes, the maximum size of a spec file."


@pytest.mark.parametrize("key", ["device", "hardware"])
def test_unknown_device_located(tmp_path, key):
    path = write_spec(tmp_path, f"name: x\nconstraints:\n  {key}: h900\n")
    message = spec_error(path)
    assert message.startswith(f"{path}:3: constraints.{key}: unknown device 'h900'. Did you mean ")
    assert "h200" in message
    assert "h100" in message
    assert "Known device profiles: a100," in message


@pytest.mark.parametrize(("written", "device"), [("RTX 4090", "rtx_4090"), ("TPU v5e", "tpu-v5e"), ("Edge", "edge")])
def test_known_device_spellings_load(tmp_path, written, device):
    path = write_spec(tmp_path, f"name: x\nconstraints:\n  device: {written}\n")
    assert parse_spec(path).requirements.device == device


def test_many_unknown_keys_capped(tmp_path, monkeypatch):
    hint_calls = []
    real_close_matches = normalize_module.difflib.get_close_matches

    def counting_close_matches(*args, **kwargs):
        hint_calls.append(args[0])
        return real_close_matches(*args, **kwargs)

    monkeypatch.setattr(normalize_module.difflib, "get_close_matches", counting_close_matches)
    keys = "".join(f"  extra_{index}: 1\n" for index in range(5000))
    path = write_spec(tmp_path, f'metagen_version: "1.0"\nname: x\nconstraints:\n{keys}')
    warnings = parse_spec(path).warnings
    assert len(warnings) == MAX_WARNINGS + 1
    assert warnings[0].startswith(f"{path}:4: constraints.extra_0: unknown key, ignored.")
    assert warnings[19].startswith(f"{path}:23: constraints.extra_19: unknown key, ignored.")
    assert warnings[-1] == (
        f"{path}: 4,980 more warnings not shown. Fix the ones above and validate the spec again to see the rest."
    )
    assert len(hint_calls) == MAX_WARNINGS


def test_fixed_component_sizes_warn(tmp_path):
    path = write_spec(
        tmp_path,
        """
        metagen_version: "1.0"
        name: x
        architecture:
          components:
            - name: decoder
              hidden_size: 1024
              num_layers: 12
              vocab_size: 8192
        """,
    )
    parsed = parse_spec(path)
    assert parsed.requirements.vocab_size == 8192
    assert parsed.warnings == [
        f"{path}:6: architecture.components[0].hidden_size: the fixed hidden_size 1024 is not applied, "
        "because the search space does not read component sizes yet. The search varies hidden_size "
        "over its whole range.",
        f"{path}:7: architecture.components[0].num_layers: the fixed num_layers 12 is not applied, "
        "because the search space does not read component sizes yet. The search varies num_layers "
        "over its whole range.",
    ]
