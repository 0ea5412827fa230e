"""Cost model: published parameter counts, hand-worked memory and roofline figures."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import REPO
from metagen_jax.architecture_file import ArchitectureFileError, read_architecture_file
from metagen_jax.cli import app
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


# Mamba-1 language models (state-spaces/mamba-*-hf): RMSNorm, no FFN, vocabulary 50,277
# padded to 50,280, LM head tied to the embedding.
MAMBA = ArchitectureConfig(family="ssm", vocab_size=50280, head_outputs=50280, tie_embeddings=True,
                           position="none")
# Jamba-v0.1's shape with a dense FFN in every layer (the release has a mixture of experts in
# every other layer, which the cost model does not price).
JAMBA_DIMS = (4096, 32, 32, 8, 14336)
JAMBA_LIKE = ArchitectureConfig(family="hybrid", vocab_size=65536, head_outputs=65536,
                                sequence_length=1_048_576)
ARCHITECTURES = REPO / "tests" / "fixtures" / "architectures"

# Parameter counts of the released Mamba checkpoints (sum of tensor sizes of the Hugging Face
# state-spaces/mamba-*-hf weights, the tied head counted once).
PUBLISHED_MAMBA = [
    ("mamba-130m", Dims(768, 24, 12, 12, 3072), 129_135_360),
    ("mamba-370m", Dims(1024, 48, 16, 16, 4096), 371_516_416),
    ("mamba-790m", Dims(1536, 48, 24, 24, 6144), 793_204_224),
    ("mamba-1.4b", Dims(2048, 48, 32, 32, 8192), 1_372_178_432),
    ("mamba-2.8b", Dims(2560, 64, 40, 40, 10240), 2_768_345_600),
]


def one(*values):
    return Dims(*(np.array([v], dtype=np.float64) for v in values))


@pytest.mark.parametrize(("name", "dims", "expected"), PUBLISHED_MAMBA, ids=[p[0] for p in PUBLISHED_MAMBA])
def test_published_mamba_parameter_counts(name, dims, expected):
    assert parameter_count(dims, MAMBA) == expected
    exact = CostModel(MAMBA, PROFILES["h100"], QualityModel()).exact_params(dims)
    assert exact == expected


def test_mamba_130m_count_by_hand():
    # d = 768, E * d = 1536, N = 16, K = 4, R = ceil(768 / 16) = 48. Per layer:
    #   in_proj  768 * 3072          = 2,359,296
    #   conv1d   1536 * 4 + 1536     =     7,680
    #   x_proj   1536 * (48 + 2*16)  =   122,880
    #   dt_proj  48 * 1536 + 1536    =    75,264
    #   A_log    1536 * 16           =    24,576
    #   D        1536                =     1,536
    #   out_proj 1536 * 768          = 1,179,648
    #   RMSNorm  768                 =       768
    #   layer total                  = 3,771,648
    # 24 layers = 90,519,552, embedding 50280 * 768 = 38,615,040 (head tied), final norm 768.
    per_layer = 2_359_296 + 7_680 + 122_880 + 75_264 + 24_576 + 1_536 + 1_179_648 + 768
    assert per_layer == 3_771_648
    total = 24 * per_layer + 50280 * 768 + 768
    assert total == 129_135_360
    assert parameter_count(Dims(768, 24, 12, 12, 3072), MAMBA) == total


def test_mamba_ignores_heads_and_ffn():
    model = CostModel(dataclasses.replace(MAMBA, sequence_length=8192), PROFILES["h100"], QualityModel())
    base = model.evaluate(one(1024, 24, 16, 16, 4096), np)
    other = model.evaluate(one(1024, 24, 4, 1, 2048), np)
    for name, value in base._asdict().items():
        assert getattr(other, name)[0] == value[0], name


def test_mamba_decode_state_and_latency_by_hand():
    h100 = PROFILES["h100"]
    dims = one(768, 24, 12, 12, 3072)
    short = CostModel(dataclasses.replace(MAMBA, sequence_length=2048), h100, QualityModel()).evaluate(dims, np)
    long = CostModel(dataclasses.replace(MAMBA, sequence_length=1_048_576), h100, QualityModel()).evaluate(dims, np)

    # Per layer: SSM state 1536 * 16 = 24,576 plus conv state 1536 * (4 - 1) = 4,608, so
    # 29,184 elements. 24 layers at 2 bytes: 1,400,832 bytes, the same at any context.
    state = 24 * (1536 * 16 + 1536 * 3) * 2
    assert state == 1_400_832
    assert short.state_bytes[0] == state
    assert long.state_bytes[0] == state
    assert short.kv_cache_bytes[0] == 0
    assert long.kv_cache_bytes[0] == 0
    assert long.memory_bytes[0] == 129_135_360 * 2 + state + long.activation_bytes[0]

    # FLOPs per token: 2 * (blocks 24 * 3,771,648 + tied LM head 50280 * 768) plus the scan,
    # 9 FLOPs per inner channel and state element in each of the 24 layers.
    flops = 2 * (24 * 3_771_648 + 50280 * 768) + 24 * 9 * 1536 * 16
    assert flops == 263_577_600
    assert short.flops_per_token[0] == flops
    assert long.flops_per_token[0] == flops

    # Decode is memory bound: weights plus the state read and written, over 80% of 3.35 TB/s.
    expected_ms = (129_135_360 * 2 + 2 * state) / (3.35e12 * 0.8) * 1e3
    assert short.latency_ms[0] == pytest.approx(expected_ms, rel=1e-12)
    assert long.latency_ms[0] == pytest.approx(expected_ms, rel=1e-12)
    assert long.latency_ms[0] == pytest.approx(0.0974, abs=0.0001)


def test_hybrid_parameter_count_by_hand():
    dims = Dims(*JAMBA_DIMS)
    transformer = parameter_count(dims, dataclasses.replace(JAMBA_LIKE, family="transformer"))
    # Attention of width 4096 with 8 of 32 kv heads: 2 * 4096^2 + 2 * 4096 * 1024.
    attention = 2 * 4096**2 + 2 * 4096 * 1024
    assert attention == 41_943_040
    # Mamba mixer at d = 4096 (E * d = 8192, N = 16, K = 4, R = 256): in_proj 4096 * 16384,
    # conv 8192 * 5, x_proj 8192 * 288, dt_proj 256 * 8192 + 8192, A_log 8192 * 16, D 8192,
    # out_proj 8192 * 4096.
    mixer = (4096 * 16384 + 8192 * 5 + 8192 * 288 + 256 * 8192 + 8192 + 8192 * 16 + 8192
             + 8192 * 4096)
    assert mixer == 105_308_160
    # One attention layer in 8: layers 0, 8, 16 and 24 keep attention, the other 28 swap it
    # for a Mamba mixer and keep their FFN and both norms.
    assert parameter_count(dims, JAMBA_LIKE) == transformer + 28 * (mixer - attention)
    assert parameter_count(dims, JAMBA_LIKE) == 9_290_682_368


@pytest.mark.parametrize(("layers", "attention_layers"), [(32, 4), (30, 4), (4, 1), (9, 2)])
def test_hybrid_kv_cache_is_attention_share(layers, attention_layers):
    h100 = PROFILES["h100"]
    dims = one(4096, layers, 32, 8, 14336)
    hybrid = CostModel(JAMBA_LIKE, h100, QualityModel()).evaluate(dims, np)
    transformer_config = dataclasses.replace(JAMBA_LIKE, family="transformer")
    transformer = CostModel(transformer_config, h100, QualityModel()).evaluate(dims, np)
    assert hybrid.kv_cache_bytes[0] == transformer.kv_cache_bytes[0] * attention_layers / layers
    # 2 (K and V) * attention layers * 1024 kv width * 2^20 tokens * 2 bytes.
    assert hybrid.kv_cache_bytes[0] == 2 * attention_layers * 1024 * 1_048_576 * 2
    # Every other layer keeps a Mamba state: 8192 * (16 + 3) elements of 2 bytes.
    assert hybrid.state_bytes[0] == (layers - attention_layers) * 8192 * 19 * 2
    assert transformer.state_bytes[0] == 0


def test_hybrid_attention_period_override():
    dims = one(4096, 32, 32, 8, 14336)
    every_fourth = dataclasses.replace(JAMBA_LIKE, attention_period=4)
    metrics = CostModel(every_fourth, PROFILES["h100"], QualityModel()).evaluate(dims, np)
    assert metrics.kv_cache_bytes[0] == 2 * 8 * 1024 * 1_048_576 * 2
    every_layer = dataclasses.replace(JAMBA_LIKE, attention_period=1)
    transformer = dataclasses.replace(JAMBA_LIKE, family="transformer")
    assert parameter_count(Dims(*JAMBA_DIMS), every_layer) == parameter_count(Dims(*JAMBA_DIMS), transformer)
    with pytest.raises(ValueError, match="attention_period"):
        dataclasses.replace(JAMBA_LIKE, attention_period=0)


def test_hybrid_decode_at_1m_context_far_below_transformer():
    h100 = PROFILES["h100"]
    dims = one(*JAMBA_DIMS)
    hybrid = CostModel(JAMBA_LIKE, h100, QualityModel()).evaluate(dims, np)
    transformer_config = dataclasses.replace(JAMBA_LIKE, family="transformer")
    transformer = CostModel(transformer_config, h100, QualityModel()).evaluate(dims, np)

    # Transformer: 15.0 GB of weights plus a 128 GiB KV cache (32 layers) per decoded token.
    kv_all = 2 * 32 * 1024 * 1_048_576 * 2
    assert transformer.kv_cache_bytes[0] == kv_all
    transformer_ms = (7_516_459_008 * 2 + kv_all) / (3.35e12 * 0.8) * 1e3
    assert transformer.latency_ms[0] == pytest.approx(transformer_ms, rel=1e-12)

    # Hybrid: 18.6 GB of weights, a 16 GiB KV cache (4 layers) and 28 Mamba states read and
    # written back.
    state = 28 * 8192 * 19 * 2
    hybrid_ms = (9_290_682_368 * 2 + kv_all / 8 + 2 * state) / (3.35e12 * 0.8) * 1e3
    assert hybrid.latency_ms[0] == pytest.approx(hybrid_ms, rel=1e-12)
    assert hybrid.latency_ms[0] < 0.25 * transformer.latency_ms[0]
    assert hybrid.prefill_ms[0] < 0.25 * transformer.prefill_ms[0]
    assert hybrid.memory_bytes[0] < 0.25 * transformer.memory_bytes[0]
    # FLOPs: 2 per weight of the blocks and the LM head (all weights but the embedding lookup
    # and the final norm), attention over 2^20 tokens in 4 layers only, and 28 layers of scan.
    matmul = 9_290_682_368 - 65536 * 4096 - 4096
    scan = 28 * 9 * 8192 * 16
    assert hybrid.flops_per_token[0] == 2 * matmul + 2 * 4 * 1_048_576 * 4096 + scan


@pytest.mark.parametrize("family", ["hybrid", "ssm"])
def test_state_space_jax_matches_numpy(family):
    config = dataclasses.replace(JAMBA_LIKE, family=family, sequence_length=131072)
    model = CostModel(config, PROFILES["h100"], QualityModel())
    rng = np.random.default_rng(1)
    hidden = rng.integers(4, 129, 512) * 64
    dims = Dims(hidden, rng.integers(4, 65, 512), np.full(512, 8), np.full(512, 2), hidden * 3)
    evaluate = jax.jit(lambda d: model.evaluate(Dims(*(x.astype(jnp.float32) for x in d)), jnp))
    on_device = evaluate(Dims(*(jnp.asarray(d) for d in dims)))
    reference = model.evaluate(Dims(*(d.astype(np.float64) for d in dims)), np)
    for name, value in on_device._asdict().items():
        np.testing.assert_allclose(np.asarray(value), getattr(reference, name), rtol=2e-5, err_msg=name)


def test_estimate_mamba_130m_file():
    result = CliRunner().invoke(app, ["estimate", str(ARCHITECTURES / "mamba_130m.yaml"), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["params"] == 129_135_360
    assert report["kv_cache_bytes"] == 0
    assert report["flops_per_token"] == 263_577_600


def test_architecture_file_state_space_fields(tmp_path):
    path = tmp_path / "hybrid.yaml"
    path.write_text("family: hybrid\nhidden_size: 4096\nnum_layers: 32\nnum_heads: 32\nnum_kv_heads: 8\n"
                    "ffn_hidden_size: 14336\nvocab_size: 65536\nattn_layer_period: 4\nstate_size: 8\n"
                    "expand: 1\nconv_kernel: 2\ntime_step_rank: 64\n")
    config = read_architecture_file(path).config
    assert config.family == "hybrid"
    assert (config.attention_period, config.ssm_state_size, config.ssm_expand) == (4, 8, 1)
    assert (config.ssm_conv_kernel, config.ssm_dt_rank) == (2, 64)
    # Mamba mixer at d = 4096, E = 1, N = 8, K = 2, R = 64: in_proj 4096 * 8192, conv
    # 4096 * 3, x_proj 4096 * 80, dt_proj 64 * 4096 + 4096, A_log and D 4096 * 9, out_proj
    # 4096^2. 24 of 32 layers swap attention (2 * 4096^2 + 2 * 4096 * 1024) for it.
    mixer = 4096 * 8192 + 4096 * 3 + 4096 * 80 + 64 * 4096 + 4096 + 4096 * 9 + 4096**2
    transformer = parameter_count(Dims(*JAMBA_DIMS), dataclasses.replace(config, family="transformer"))
    attention = 2 * 4096**2 + 2 * 4096 * 1024
    assert parameter_count(Dims(*JAMBA_DIMS), config) == transformer + 24 * (mixer - attention)


@pytest.mark.parametrize(("text", "message"), [
    ("family: transformer\nstate_size: 16\n", "state_size: applies only to the ssm and hybrid families"),
    ("family: mamba\nattn_layer_period: 8\n", "attn_layer_period: applies only to the hybrid family"),
    ("family: mamba\ntime_step_rank: big\n", "time_step_rank: expected a whole number or auto, got 'big'"),
    ("family: mamba\nexpand: 0\n", "expand: expected at least 1, got 0"),
])
def test_architecture_file_state_space_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text("hidden_size: 768\nnum_layers: 24\n" + text)
    with pytest.raises(ArchitectureFileError, match=message):
        read_architecture_file(path)
