"""Unit parsers of the spec language: every accepted form with its exact value, and rejections."""

from __future__ import annotations

import math

import pytest

from metagen_jax.specs.errors import SpecError
from metagen_jax.specs.units import (
    INFINITE_CONTEXT_TOKENS,
    DataSize,
    LatencyBound,
    Throughput,
    is_infinite_context,
    normalize_device,
    normalize_weight_dtype,
    parse_context_tokens,
    parse_data_size,
    parse_latency,
    parse_memory_bytes,
    parse_param_count,
    parse_throughput,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50K", 50_000),
        ("50k", 50_000),
        ("350M", 350_000_000),
        ("350m", 350_000_000),
        ("8B", 8_000_000_000),
        ("8b", 8_000_000_000),
        ("1.5T", 1_500_000_000_000),
        ("0.35B", 350_000_000),
        ("8 B", 8_000_000_000),
        ("8B params", 8_000_000_000),
        ("8B parameters", 8_000_000_000),
        ("125M Params", 125_000_000),
        ("7 billion", 7_000_000_000),
        ("~8B", 8_000_000_000),
        ("about 8B", 8_000_000_000),
        ("1e9", 1_000_000_000),
        ("1.5e9", 1_500_000_000),
        ("8000000000", 8_000_000_000),
        ("8,000,000,000", 8_000_000_000),
        ("8_000_000_000", 8_000_000_000),
        (8_000_000_000, 8_000_000_000),
        (1e9, 1_000_000_000),
        (1.5e12, 1_500_000_000_000),
        (0, 0),
    ],
)
def test_param_count_forms(text, expected):
    assert parse_param_count(text) == expected


def test_param_count_is_exact_beyond_float():
    # 2^53 + 1 has no float64 representation, so an exact parser must not go through float.
    assert parse_param_count(str(2**53 + 1)) == 2**53 + 1
    assert parse_param_count("9007199.254740993B") == 9_007_199_254_740_993


@pytest.mark.parametrize("value", ["8X", "", "B", "eight billion", "1.5.2B", "8 GB", "-5M", -1, True, None, [8], {"max": 1}])
def test_param_count_rejects(value):
    with pytest.raises(SpecError) as raised:
        parse_param_count(value)
    message = str(raised.value)
    assert "\n" not in message
    assert "parameter count" in message
    assert repr(value)[:20] in message


def test_param_count_message_lists_forms():
    with pytest.raises(SpecError) as raised:
        parse_param_count("8X")
    message = str(raised.value)
    assert "'8X'" in message
    for form in ("50K", "350M", "8B", "1.5T", "1e9"):
        assert form in message


def test_spec_error_is_value_error():
    with pytest.raises(ValueError):
        parse_param_count("lots")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512MB", 512_000_000),
        ("16GB", 16_000_000_000),
        ("24 GB", 24_000_000_000),
        ("24gb", 24_000_000_000),
        ("1TB", 10**12),
        ("2PB", 2 * 10**15),
        ("1KB", 1000),
        ("1KiB", 1024),
        ("1 MiB", 1_048_576),
        ("4GiB", 4_294_967_296),
        ("24GiB", 25_769_803_776),
        ("1.5TiB", 1_649_267_441_664),
        ("1PiB", 2**50),
        ("1.1KiB", 1126),  # 1126.4 rounds to 1126
        ("1024", 1024),
        ("1024 bytes", 1024),
        ("1024B", 1024),
        ("1 byte", 1),
        (1024, 1024),
        (16e9, 16_000_000_000),
    ],
)
def test_memory_forms(text, expected):
    assert parse_memory_bytes(text) == expected


@pytest.mark.parametrize("value", ["16G", "16 gigs", "GB", "-1GB", "16GBs", "sixteen GB", True, [16], float("nan")])
def test_memory_rejects(value):
    with pytest.raises(SpecError) as raised:
        parse_memory_bytes(value)
    message = str(raised.value)
    assert "\n" not in message
    assert "memory size" in message


def test_memory_message_lists_forms():
    with pytest.raises(SpecError) as raised:
        parse_memory_bytes("16G")
    message = str(raised.value)
    for form in ("512MB", "16GB", "1.5TiB", "1000^n", "1024^n"):
        assert form in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512", 512),
        (512, 512),
        (4096.0, 4096),
        ("8k", 8192),
        ("8K", 8192),
        ("4k tokens", 4096),
        ("128k", 131_072),
        ("256k", 262_144),
        ("1M", 1_048_576),
        ("1m", 1_048_576),
        ("1.5k", 1536),
        ("128000", 128_000),
        ("32,768", 32_768),
    ],
)
def test_context_forms(text, expected):
    assert parse_context_tokens(text) == expected


@pytest.mark.parametrize("value", ["∞", "inf", "INF", "infinite", "Infinity", "unlimited", "unbounded", "∞ tokens", math.inf])
def test_context_infinite_forms(value):
    assert is_infinite_context(value)
    assert parse_context_tokens(value) == INFINITE_CONTEXT_TOKENS == 1_048_576


@pytest.mark.parametrize("value", ["8k", 8192, "1M", -math.inf, "information"])
def test_context_finite_is_not_infinite(value):
    assert not is_infinite_context(value)


@pytest.mark.parametrize("value", ["0", 0, "8q", "-8k", "lots", "8 GB", True, [8192], -math.inf, "information"])
def test_context_rejects(value):
    with pytest.raises(SpecError) as raised:
        parse_context_tokens(value)
    assert "context window" in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("120 tok/s", Throughput(120.0, "tok/s")),
        ("120tok/s", Throughput(120.0, "tok/s")),
        ("120 tokens/s", Throughput(120.0, "tok/s")),
        ("120 tokens per second", Throughput(120.0, "tok/s")),
        ("120 tokens/sec", Throughput(120.0, "tok/s")),
        ("1.2k tok/s", Throughput(1200.0, "tok/s")),
        ("30fps", Throughput(30.0, "fps")),
        ("30 FPS", Throughput(30.0, "fps")),
        ("24 frames/s", Throughput(24.0, "fps")),
        ("2 img/s", Throughput(2.0, "img/s")),
        ("2 images per second", Throughput(2.0, "img/s")),
        ("10 req/s", Throughput(10.0, "req/s")),
        ("10 qps", Throughput(10.0, "req/s")),
        ("500 samples/s", Throughput(500.0, "samples/s")),
        ("0.5 samples/s", Throughput(0.5, "samples/s")),
        (100, Throughput(100.0, None)),
        ("100", Throughput(100.0, None)),
    ],
)
def test_throughput_forms(text, expected):
    assert parse_throughput(text) == expected


@pytest.mark.parametrize("value", ["5 furlongs/s", "fast", "0 tok/s", "-3 fps", "tok/s", 0, True, [30]])
def test_throughput_rejects(value):
    with pytest.raises(SpecError) as raised:
        parse_throughput(value)
    assert "throughput" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("real-time", LatencyBound(50.0, "real-time")),
        ("realtime", LatencyBound(50.0, "real-time")),
        ("real_time", LatencyBound(50.0, "real-time")),
        ("Real Time", LatencyBound(50.0, "real-time")),
        ("near-real-time", LatencyBound(200.0, "near-real-time")),
        ("near_real_time", LatencyBound(200.0, "near-real-time")),
        ("NEAR REAL-TIME", LatencyBound(200.0, "near-real-time")),
        ("nearrealtime", LatencyBound(200.0, "near-real-time")),
        ("interactive", LatencyBound(1000.0, "interactive")),
        ("batch", LatencyBound(60_000.0, "batch")),
        ("offline", LatencyBound(None, "offline")),
        ("10ms", LatencyBound(10.0, None)),
        ("10 ms", LatencyBound(10.0, None)),
        ("0.5s", LatencyBound(500.0, None)),
        ("2 min", LatencyBound(120_000.0, None)),
        ("1h", LatencyBound(3_600_000.0, None)),
        ("150us", LatencyBound(0.15, None)),
        ("150µs", LatencyBound(0.15, None)),
        ("<100ms", LatencyBound(100.0, None)),
        ("<= 2s", LatencyBound(2000.0, None)),
        (250, LatencyBound(250.0, None)),
        (12.5, LatencyBound(12.5, None)),
        ("250", LatencyBound(250.0, None)),
    ],
)
def test_latency_forms(text, expected):
    result = parse_latency(text)
    assert result.latency_class == expected.latency_class
    if expected.ms is None:
        assert result.ms is None
    else:
        assert result.ms == pytest.approx(expected.ms, rel=1e-12)


@pytest.mark.parametrize("value", ["fast", "low-latency", "10 parsecs", "-5ms", "0s", True, [10]])
def test_latency_rejects(value):
    with pytest.raises(SpecError) as raised:
        parse_latency(value)
    assert "latency" in str(raised.value)


def test_latency_message_lists_classes():
    with pytest.raises(SpecError) as raised:
        parse_latency("fast")
    message = str(raised.value)
    for part in ("real-time = 50 ms", "near-real-time = 200 ms", "interactive = 1 s", "batch = 60 s", "offline", "10ms"):
        assert part in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2T tokens", DataSize(2e12, "tokens")),
        ("2t Tokens", DataSize(2e12, "tokens")),
        ("100M tokens", DataSize(1e8, "tokens")),
        ("3.3B tokens", DataSize(3.3e9, "tokens")),
        ("1.2M images", DataSize(1.2e6, "images")),
        ("1.28M image", DataSize(1.28e6, "images")),
        ("50k samples", DataSize(5e4, "samples")),
        ("2 thousand tokens", DataSize(2000.0, "tokens")),
        ("10M transitions", DataSize(1e7, "transitions")),
        ("5M rows", DataSize(5e6, "rows")),
        ("2 tokens", DataSize(2.0, "tokens")),
        ("2T", DataSize(2e12, "tokens")),
        ("500GB", DataSize(5e11, "bytes")),
        ("1TiB", DataSize(float(2**40), "bytes")),
        (2e12, DataSize(2e12, "tokens")),
        (1000, DataSize(1000.0, "tokens")),
    ],
)
def test_data_size_forms(text, expected):
    result = parse_data_size(text)
    assert result.unit == expected.unit
    assert result.count == pytest.approx(expected.count, rel=1e-12)


@pytest.mark.parametrize("value", ["unknown but large", "2T furlongs", "tokens", "-5 tokens", True, ["2T"]])
def test_data_size_rejects(value):
    with pytest.raises(SpecError) as raised:
        parse_data_size(value)
    assert "training data size" in str(raised.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("consumer_gpu", "consumer_gpu"),
        ("Consumer GPU", "consumer_gpu"),
        ("consumer-gpu", "consumer_gpu"),
        ("RTX-4090", "rtx_4090"),
        ("H100", "h100"),
        ("Jetson  Orin-Nano", "jetson_orin_nano"),
        ("tpu-v5e", "tpu-v5e"),
        ("TPU v5e", "tpu-v5e"),
        ("tpu_v5p", "tpu-v5p"),
        ("TPUv4", "tpu-v4"),
    ],
)
def test_device_normalization(name, expected):
    assert normalize_device(name) == expected


@pytest.mark.parametrize("value", ["", "  ", 4090, None])
def test_device_rejects(value):
    with pytest.raises(SpecError):
        normalize_device(value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bf16", "bf16"),
        ("bfloat16", "bf16"),
        ("FP16", "fp16"),
        ("half", "fp16"),
        ("float32", "fp32"),
        ("fp8", "fp8"),
        ("fp8_e4m3", "fp8"),
        ("int8", "int8"),
        ("8-bit", "int8"),
        ("INT4", "int4"),
        ("4bit", "int4"),
        ("nf4", "int4"),
    ],
)
def test_weight_dtype_names(name, expected):
    assert normalize_weight_dtype(name) == expected


@pytest.mark.parametrize("value", ["int3", "double", 16, True])
def test_weight_dtype_rejects(value):
    with pytest.raises(SpecError) as raised:
        normalize_weight_dtype(value)
    assert "bf16, fp16, fp32, fp8, int8, int4" in str(raised.value)
