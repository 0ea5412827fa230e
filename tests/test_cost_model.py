"""Cost model: published parameter counts, hand-worked memory and roofline figures."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metagen_jax.cost.architecture import ArchitectureConfig, Dims
from metagen_jax.cost.model import CostModel
from metagen_jax.cost.params import parameter_count
from metagen_jax.cost.quality import QualityModel, predicted_loss
from metagen_jax.hardware import PROFILES, resolve_device

GPT2 = ArchitectureConfig(vocab_size=50257, position="learned", max_positions=1024, norm="layernorm",
                          bias=True, ffn_type="plain", head="lm", tie_embeddings=True)
LLAMA2 = ArchitectureConfig(vocab_size=32000)
LLAMA3 = ArchitectureConfig(vocab_size=128256)
BERT = ArchitectureConfig(vocab_size=30522, position="learned", max_positions=512, type_vocab_size=2,
                          embedding_norm=True, final_norm=False, norm="layernorm", bias=True,
                          ffn_type="plain", head="none", pooler=True, causal=False)
VIT = ArchitectureConfig(input_stem="patches", patch_dim=16 * 16 * 3, prefix_tokens=1, position="learned",
                         max_positions=197, norm="layernorm", bias=True, ffn_type="plain",
                         head="classifier", head_outputs=1000, causal=False, sequence_length=197)

# Counts from the models' released checkpoints (Hugging Face configs and weights, timm for ViT).
PUBLISHED = [
    ("gpt2", GPT2, Dims(768, 12, 12, 12, 3072), 124_439_808),
    ("gpt2-medium", GPT2, Dims(1024, 24, 16, 16, 4096), 354_823_168),
    ("llama-2-7b", LLAMA2, Dims(4096, 32, 32, 32, 11008), 6_738_415_616),
    ("llama-2-13b", LLAMA2, Dims(5120, 40, 40, 40, 13824), 13_015_864_320),
    ("mistral-7b-v0.1", dataclasses.replace(LLAMA2), Dims(4096, 32, 32, 8, 14336), 7_241_732_096),
    ("llama-3-8b", LLAMA3, Dims(4096, 32, 32, 8, 14336), 8_030_261_248),
    ("bert-base-uncased", BERT, Dims(768, 12, 12, 12, 3072), 109_482_240),
    ("bert-large-uncased", BERT, Dims(1024, 24, 16, 16, 4096), 335_141_888),
    ("vit-base-patch16-224", VIT, Dims(768, 12, 12, 12, 3072), 86_567_656),
    ("vit-large-patch16-224", VIT, Dims(1024, 24, 16, 16, 4096), 304_326_632),
]


@pytest.mark.parametrize(("name", "config", "dims", "expected"), PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_published_parameter_counts(name, config, dims, expected):
    assert parameter_count(dims, config) == expected


def test_exact_params_above_int32():
    model = CostModel(LLAMA2, PROFILES["h100"], QualityModel())
    dims = Dims(np.array([4096, 8192]), np.array([32, 64]), np.array([32, 64]), np.array([32, 8]),
                np.array([11008, 28672]))
    exact = model.exact_params(dims)
    assert exact.dtype == np.int64
    assert exact[0] == 6_738_415_616
    # 8192 wide, 64 layers, GQA 8 of 64 heads, FFN 28672, vocab 32000 (a Llama-2-70B-like shape
    # at 64 layers): 64 * (2*8192^2 + 2*8192*1024 + 3*8192*28672 + 2*8192) + 2*32000*8192 + 8192.
    expected = 64 * (2 * 8192**2 + 2 * 8192 * 1024 + 3 * 8192 * 28672 + 2 * 8192) + 2 * 32000 * 8192 + 8192
    assert exact[1] == expected


def test_llama2_7b_kv_cache_and_decode_roofline():
    config = dataclasses.replace(LLAMA2, sequence_length=4096)
    h100 = PROFILES["h100"]
    model = CostModel(config, h100, QualityModel())
    dims = Dims(*(np.array([v], dtype=np.float64) for v in (4096, 32, 32, 32, 11008)))
    metrics = model.evaluate(dims, np)

    # KV cache: 2 (K and V) * 32 layers * 4096 kv width * 4096 tokens * 2 bytes = 2 GiB.
    assert metrics.kv_cache_bytes[0] == 2 * 32 * 4096 * 4096 * 2
    weights = 6_738_415_616 * 2
    assert metrics.weight_bytes[0] == weights

    # Decode is memory bound: weights plus KV cache over 80% of 3.35 TB/s.
    expected_ms = (weights + 2 * 32 * 4096 * 4096 * 2) / (3.35e12 * 0.8) * 1e3
    assert metrics.latency_ms[0] == pytest.approx(expected_ms, rel=1e-9)
    assert metrics.latency_ms[0] == pytest.approx(5.830, abs=0.001)

    # Forward FLOPs: 2 * (blocks + LM head) + 2 * layers * context * width.
    matmul = 32 * 202_383_360 + 32000 * 4096
    assert metrics.flops_per_token[0] == 2 * matmul + 2 * 32 * 4096 * 4096
    assert metrics.train_flops_per_token[0] == 3 * metrics.flops_per_token[0]
    assert metrics.throughput[0] == pytest.approx(1e3 / expected_ms)


def test_prefill_is_compute_bound_at_long_context():
    config = dataclasses.replace(LLAMA2, sequence_length=4096)
    model = CostModel(config, PROFILES["h100"], QualityModel())
    dims = Dims(*(np.array([v], dtype=np.float64) for v in (4096, 32, 32, 32, 11008)))
    metrics = model.evaluate(dims, np)
    matmul = 32 * 202_383_360 + 32000 * 4096
    flops = 2 * matmul * 4096 + 2 * 32 * 4096**2 * 4096
    assert metrics.prefill_ms[0] == pytest.approx(flops / (989.4e12 * 0.6) * 1e3, rel=1e-9)


def test_mistral_gqa_kv_cache():
    config = dataclasses.replace(LLAMA2, sequence_length=32768)
    model = CostModel(config, PROFILES["a100"], QualityModel())
    dims = Dims(*(np.array([v], dtype=np.float64) for v in (4096, 32, 32, 8, 14336)))
    # 8 kv heads of 128 dims: 2 * 32 * 1024 * 32768 * 2 bytes = 4 GiB.
    assert model.evaluate(dims, np).kv_cache_bytes[0] == 4 * 1024**3


def test_encoder_has_no_kv_cache():
    model = CostModel(dataclasses.replace(BERT, sequence_length=512), PROFILES["h100"], QualityModel())
    dims = Dims(*(np.array([v], dtype=np.float64) for v in (768, 12, 12, 12, 3072)))
    metrics = model.evaluate(dims, np)
    assert metrics.kv_cache_bytes[0] == 0
    assert metrics.latency_ms[0] == metrics.prefill_ms[0]


def test_int4_weights_are_quarter_of_bf16():
    dims = Dims(*(np.array([v], dtype=np.float64) for v in (4096, 32, 32, 32, 11008)))
    bf16 = CostModel(LLAMA2, PROFILES["h100"], QualityModel()).evaluate(dims, np)
    int4 = CostModel(dataclasses.replace(LLAMA2, weight_bytes=0.5), PROFILES["h100"], QualityModel()).evaluate(dims, np)
    assert int4.weight_bytes[0] * 4 == bf16.weight_bytes[0]


def test_chinchilla_loss_at_chinchilla_size():
    # Hoffmann et al. (2022) eq. 10 at N = 70e9, D = 1.4e12 (Chinchilla), no shape penalty.
    loss = predicted_loss(np.array([70e9]), np.array([8192.0]), np.array([80.0]),
                          QualityModel(training_tokens=1.4e12, shape_penalty=False), np)
    expected = 1.69 + 406.4 / 70e9**0.34 + 410.7 / 1.4e12**0.28
    assert loss[0] == pytest.approx(expected, rel=1e-12)
    assert loss[0] == pytest.approx(1.937, abs=0.001)


def test_shape_penalty_matches_kaplan_three_percent():
    model = QualityModel(training_tokens=1e10, shape_penalty=True)
    plain = QualityModel(training_tokens=1e10, shape_penalty=False)
    params = np.array([1e8, 1e8])
    shaped = predicted_loss(params, np.array([4288.0, 1600.0]), np.array([6.0, 48.0]), model, np)
    base = predicted_loss(params, np.array([4288.0, 1600.0]), np.array([6.0, 48.0]), plain, np)
    assert shaped[0] / shaped[1] == pytest.approx(1.03, abs=0.002)
    assert base[0] == base[1]


def test_jax_and_numpy_agree_and_compile_once():
    model = CostModel(dataclasses.replace(LLAMA2, sequence_length=8192), resolve_device("rtx4090"), QualityModel(2e12))
    rng = np.random.default_rng(0)
    hidden = rng.integers(4, 129, 4096) * 64
    genomes_dims = Dims(hidden, rng.integers(4, 65, 4096), np.full(4096, 8), np.full(4096, 2), hidden * 3)
    traces = []

    @jax.jit
    def evaluate(dims):
        traces.append(1)
        return model.evaluate(Dims(*(d.astype(jnp.float32) for d in dims)), jnp)

    first = evaluate(Dims(*(jnp.asarray(d) for d in genomes_dims)))
    evaluate(Dims(*(jnp.asarray(d + 0) for d in genomes_dims)))
    assert len(traces) == 1
    reference = model.evaluate(Dims(*(d.astype(np.float64) for d in genomes_dims)), np)
    for name, value in first._asdict().items():
        np.testing.assert_allclose(np.asarray(value), getattr(reference, name), rtol=2e-5, err_msg=name)


def test_device_aliases_and_unknown_device():
    assert resolve_device("consumer_gpu").name == "rtx4090"
    assert resolve_device("TPU-v5e").name == "tpu-v5e"
    assert resolve_device("tpu_v5p").name == "tpu-v5p"
    assert resolve_device("H100").name == "h100"
    with pytest.raises(KeyError, match="h100"):
        resolve_device("h10")
    for profile in PROFILES.values():
        assert profile.source
        assert profile.peak_flops > 0
        assert profile.memory_bandwidth > 0
        assert profile.memory_capacity > 0
