"""Parsers for the unit strings of MSL specs.

Every parser is a pure function of one user value. It accepts the value as YAML or JSON
delivers it (a string, an int or a float), and raises `SpecError` with a message that lists
the accepted forms. Unit letters and words are case-insensitive everywhere.

Conventions chosen by this project:

* Parameter counts and data sizes use decimal multipliers: K = 10^3, M = 10^6,
  B = 10^9, T = 10^12 ("350M" = 350,000,000).
* Context windows use binary multipliers, as LLM configs do: k = 1024, M = 1024^2
  ("8k" = 8192, "256k" = 262,144, "1M" = 1,048,576). A context of "∞", "inf",
  "infinite" or "unlimited" stands for `INFINITE_CONTEXT_TOKENS` (1M tokens).
* Memory uses KB/MB/GB/TB/PB = 1000^n bytes and KiB/MiB/GiB/TiB/PiB = 1024^n bytes.
  A bare "G" or "Gb" is rejected as ambiguous unless written as GB, GiB or bytes.
* Latency classes are bounds in milliseconds: real-time 50, near-real-time 200,
  interactive 1000, batch 60,000, offline unbounded. A plain number is milliseconds.
* Counts with a fractional part after scaling ("1.1KiB") are rounded to the nearest
  integer, halves to even.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import NamedTuple

from metagen_jax.specs.errors import SpecError, describe_value

# Tokens that an unbounded context ("∞", "infinite", ...) resolves to.
INFINITE_CONTEXT_TOKENS = 1_048_576

# Largest count or size accepted. It is far above any real budget, and rejecting larger
# values early keeps "1e999999999" from being expanded into a billion-digit integer.
MAX_QUANTITY = 10**24

PARAM_COUNT_FORMS = (
    "a count such as 50K, 350M, 8B or 1.5T (K = 10^3, M = 10^6, B = 10^9, T = 10^12), "
    "optionally followed by 'params', or a plain number such as 8000000000 or 1e9"
)
MEMORY_FORMS = (
    "a size such as 512MB, 16GB, 24 GiB or 1.5TiB (KB/MB/GB/TB/PB = 1000^n bytes, "
    "KiB/MiB/GiB/TiB/PiB = 1024^n bytes), or a plain number of bytes"
)
CONTEXT_FORMS = (
    "a token count such as 512, 8k, 256k or 1M (k = 1024, M = 1024^2), "
    "or one of '∞', 'inf', 'infinite', 'unlimited' (read as 1,048,576 tokens)"
)
THROUGHPUT_FORMS = (
    "a rate such as '120 tok/s', '30fps', '2 img/s', '10 req/s' or '500 samples/s', "
    "or a plain number in the modality's default unit"
)
LATENCY_FORMS = (
    "a class (real-time = 50 ms, near-real-time = 200 ms, interactive = 1 s, "
    "batch = 60 s, offline = no bound) or a time such as 150us, 10ms, 0.5s or 2 min "
    "(a plain number is milliseconds)"
)
DATA_SIZE_FORMS = (
    "a count with a unit such as '2T tokens', '100M tokens', '1.2M images' or "
    "'50k samples' (K = 10^3, M = 10^6, B = 10^9, T = 10^12), a byte size such as "
    "'500GB', or a plain number of tokens"
)
WEIGHT_DTYPE_FORMS = "one of bf16, fp16, fp32, fp8, int8, int4 (or bfloat16, float16, 8bit, 4bit, ...)"

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?"
_THOUSANDS_SEPARATOR = re.compile(r"(?<=\d)[,_](?=\d{3}(?!\d))")
_APPROXIMATE_PREFIX = re.compile(r"^(?:~|≈|about\s+|approx\.?\s+|approximately\s+|around\s+)")

_DECIMAL_MULTIPLIERS = {
    "": 1,
    "k": 10**3,
    "thousand": 10**3,
    "m": 10**6,
    "million": 10**6,
    "b": 10**9,
    "billion": 10**9,
    "t": 10**12,
    "trillion": 10**12,
}
_COUNT_PATTERN = re.compile(
    rf"^(?P<number>{_NUMBER})\s*(?P<suffix>k|m|b|t|thousand|million|billion|trillion)?$"
)
_PARAM_WORDS = re.compile(r"\s*(?:params?|parameters?)$")

_BYTE_MULTIPLIERS = {
    "": 1,
    "b": 1,
    "byte": 1,
    "bytes": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "pb": 1000**5,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "pib": 1024**5,
}
_MEMORY_PATTERN = re.compile(rf"^(?P<number>{_NUMBER})\s*(?P<unit>[kmgtp]i?b|b|bytes?)?$")

_BINARY_CONTEXT_MULTIPLIERS = {"": 1, "k": 1024, "m": 1024**2}
_CONTEXT_PATTERN = re.compile(rf"^(?P<number>{_NUMBER})\s*(?P<suffix>k|m)?(?:\s*(?:tokens?|tok))?$")
_INFINITE_WORDS = frozenset(
    {"∞", "+∞", "inf", "+inf", ".inf", "infinite", "infinity", "unlimited", "unbounded"}
)

_THROUGHPUT_UNITS = {
    "tok/s": "tok/s",
    "toks/s": "tok/s",
    "token/s": "tok/s",
    "tokens/s": "tok/s",
    "t/s": "tok/s",
    "tps": "tok/s",
    "img/s": "img/s",
    "imgs/s": "img/s",
    "image/s": "img/s",
    "images/s": "img/s",
    "fps": "fps",
    "frame/s": "fps",
    "frames/s": "fps",
    "req/s": "req/s",
    "reqs/s": "req/s",
    "request/s": "req/s",
    "requests/s": "req/s",
    "query/s": "req/s",
    "queries/s": "req/s",
    "rps": "req/s",
    "qps": "req/s",
    "sample/s": "samples/s",
    "samples/s": "samples/s",
}
_THROUGHPUT_PATTERN = re.compile(
    rf"^(?P<number>{_NUMBER})\s*(?:(?P<suffix>k|m)(?![a-z]))?\s*(?P<unit>[a-z]+(?:/s)?)?$"
)

LATENCY_CLASS_MS: dict[str, float | None] = {
    "real-time": 50.0,
    "near-real-time": 200.0,
    "interactive": 1000.0,
    "batch": 60_000.0,
    "offline": None,
}
_LATENCY_CLASS_KEYS = {re.sub(r"[\s_-]", "", name): name for name in LATENCY_CLASS_MS}
_TIME_UNITS_MS = {
    "us": 1e-3,
    "µs": 1e-3,
    "μs": 1e-3,
    "usec": 1e-3,
    "microsecond": 1e-3,
    "microseconds": 1e-3,
    "ms": 1.0,
    "msec": 1.0,
    "millisecond": 1.0,
    "milliseconds": 1.0,
    "s": 1000.0,
    "sec": 1000.0,
    "secs": 1000.0,
    "second": 1000.0,
    "seconds": 1000.0,
    "min": 60_000.0,
    "mins": 60_000.0,
    "minute": 60_000.0,
    "minutes": 60_000.0,
    "h": 3_600_000.0,
    "hr": 3_600_000.0,
    "hrs": 3_600_000.0,
    "hour": 3_600_000.0,
    "hours": 3_600_000.0,
}
_LATENCY_PATTERN = re.compile(rf"^(?:<=|<|≤)?\s*(?P<number>{_NUMBER})\s*(?P<unit>[a-zµμ]+)?$")

# Count nouns accepted after a training data size, mapped to the reported unit.
_DATA_UNITS = {
    "token": "tokens",
    "tokens": "tokens",
    "tok": "tokens",
    "toks": "tokens",
    "image": "images",
    "images": "images",
    "img": "images",
    "imgs": "images",
    "sample": "samples",
    "samples": "samples",
    "example": "examples",
    "examples": "examples",
    "row": "rows",
    "rows": "rows",
    "record": "records",
    "records": "records",
    "document": "documents",
    "documents": "documents",
    "doc": "documents",
    "docs": "documents",
    "sequence": "sequences",
    "sequences": "sequences",
    "word": "words",
    "words": "words",
    "frame": "frames",
    "frames": "frames",
    "video": "videos",
    "videos": "videos",
    "clip": "clips",
    "clips": "clips",
    "hour": "hours",
    "hours": "hours",
    "utterance": "utterances",
    "utterances": "utterances",
    "pair": "pairs",
    "pairs": "pairs",
    "graph": "graphs",
    "graphs": "graphs",
    "transition": "transitions",
    "transitions": "transitions",
    "step": "steps",
    "steps": "steps",
    "episode": "episodes",
    "episodes": "episodes",
}
_DATA_COUNT_PATTERN = re.compile(
    rf"^(?P<number>{_NUMBER})\s*"
    r"(?:(?P<suffix>k|m|b|t|thousand|million|billion|trillion)(?![a-z]))?\s*(?P<unit>[a-z]+)?$"
)
_DATA_BYTES_PATTERN = re.compile(rf"^(?P<number>{_NUMBER})\s*(?P<unit>[kmgtp]i?b|bytes?)$")

_WEIGHT_DTYPES = {
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp16": "fp16",
    "float16": "fp16",
    "f16": "fp16",
    "half": "fp16",
    "fp32": "fp32",
    "float32": "fp32",
    "f32": "fp32",
    "float": "fp32",
    "full": "fp32",
    "fp8": "fp8",
    "float8": "fp8",
    "e4m3": "fp8",
    "fp8e4m3": "fp8",
    "e5m2": "fp8",
    "fp8e5m2": "fp8",
    "int8": "int8",
    "i8": "int8",
    "8bit": "int8",
    "q8": "int8",
    "w8a8": "int8",
    "int4": "int4",
    "i4": "int4",
    "4bit": "int4",
    "q4": "int4",
    "nf4": "int4",
    "w4a16": "int4",
}

# Google spells TPU parts with a hyphen ("tpu-v5e"), and normalize_device keeps that spelling.
_TPU_PART = re.compile(r"^tpu[\s_-]*(?P<generation>v\d+[a-z]*)$")


class Throughput(NamedTuple):
    """A required throughput: value per second and its unit (None for a plain number)."""

    value: float
    unit: str | None


class LatencyBound(NamedTuple):
    """A latency bound in milliseconds (None when offline) and the class it came from."""

    ms: float | None
    latency_class: str | None


class DataSize(NamedTuple):
    """A training data size: the count and the unit that it counts ("tokens", "images", ...)."""

    count: float
    unit: str


def parse_param_count(value: object) -> int:
    """Parse a parameter count such as "350M", "8B", "1.5T", "50K params" or 8e9.

    Raises:
        SpecError: for a value of another type, a negative count or another form.
    """
    kind = "parameter count"
    if isinstance(value, str):
        text = _clean(value)
        text = _APPROXIMATE_PREFIX.sub("", text)
        text = _PARAM_WORDS.sub("", text).strip()
        match = _COUNT_PATTERN.match(text)
        if match is None:
            raise _invalid(kind, value, PARAM_COUNT_FORMS)
        number = _to_decimal(match["number"]) * _DECIMAL_MULTIPLIERS[match["suffix"] or ""]
    else:
        number = _number_value(value, kind, PARAM_COUNT_FORMS)
    return _whole_non_negative(number, value, kind)


def parse_memory_bytes(value: object) -> int:
    """Parse a memory size such as "512MB", "16GB", "24 GiB" or "1.5TiB" into bytes.

    Raises:
        SpecError: for a value of another type, a negative size or another form.
    """
    kind = "memory size"
    if isinstance(value, str):
        match = _MEMORY_PATTERN.match(_clean(value))
        if match is None:
            raise _invalid(kind, value, MEMORY_FORMS)
        number = _to_decimal(match["number"]) * _BYTE_MULTIPLIERS[match["unit"] or ""]
    else:
        number = _number_value(value, kind, MEMORY_FORMS)
    return _whole_non_negative(number, value, kind)


def is_infinite_context(value: object) -> bool:
    """Return whether a context value requests an unbounded context ("∞", "inf", +inf)."""
    if isinstance(value, float):
        return math.isinf(value) and value > 0
    if isinstance(value, str):
        return _clean(value).replace(" ", "").removesuffix("tokens") in _INFINITE_WORDS
    return False


def parse_context_tokens(value: object) -> int:
    """Parse a context window such as 512, "8k" (8192), "256k" or "1M" (1,048,576).

    An unbounded context ("∞", "inf", "infinite", "unlimited", YAML .inf) returns
    `INFINITE_CONTEXT_TOKENS`. Callers that warn about it test `is_infinite_context`.

    Raises:
        SpecError: for a value of another type, a count below 1 or another form.
    """
    kind = "context window"
    if is_infinite_context(value):
        return INFINITE_CONTEXT_TOKENS
    if isinstance(value, str):
        match = _CONTEXT_PATTERN.match(_clean(value))
        if match is None:
            raise _invalid(kind, value, CONTEXT_FORMS)
        number = _to_decimal(match["number"]) * _BINARY_CONTEXT_MULTIPLIERS[match["suffix"] or ""]
    else:
        number = _number_value(value, kind, CONTEXT_FORMS)
    tokens = _whole_non_negative(number, value, kind)
    if tokens < 1:
        raise SpecError(f"invalid {kind} {describe_value(value)}: it must be at least 1 token.")
    return tokens


def parse_throughput(value: object) -> Throughput:
    """Parse a throughput such as "120 tok/s", "30fps", "2 img/s", "10 req/s" or 500.

    Unit spellings are folded to one of tok/s, img/s, fps, req/s, samples/s, and
    "per second", "/sec" and "/second" read as "/s". A plain number returns the unit None.

    Raises:
        SpecError: for a value of another type, a rate that is not positive or another form.
    """
    kind = "throughput"
    if isinstance(value, str):
        text = _clean(value)
        text = re.sub(r"\s*(?:per\s+second|per\s+sec|/\s*sec(?:ond)?s?|/\s*s)$", "/s", text)
        match = _THROUGHPUT_PATTERN.match(text)
        unit_text = match["unit"] if match else None
        if match is None or (unit_text is not None and unit_text not in _THROUGHPUT_UNITS):
            raise _invalid(kind, value, THROUGHPUT_FORMS)
        number = _to_decimal(match["number"]) * {"": 1, "k": 10**3, "m": 10**6}[match["suffix"] or ""]
        unit = _THROUGHPUT_UNITS[unit_text] if unit_text else None
    else:
        number = _number_value(value, kind, THROUGHPUT_FORMS)
        unit = None
    rate = float(number)
    if not rate > 0 or rate > MAX_QUANTITY:
        raise SpecError(f"invalid {kind} {describe_value(value)}: the rate must be positive and at most 10^24.")
    return Throughput(rate, unit)


def parse_latency(value: object) -> LatencyBound:
    """Parse a latency class ("real-time", "interactive", ...) or a time ("10ms", "0.5s").

    Class names ignore case, spaces, '-' and '_', so "Near_Real_Time" is near-real-time.
    A leading "<", "<=" or "≤" on a time is accepted and ignored.

    Raises:
        SpecError: for a value of another type, a time that is not positive or another form.
    """
    kind = "latency"
    if isinstance(value, str):
        text = _clean(value)
        class_name = _LATENCY_CLASS_KEYS.get(re.sub(r"[\s_-]", "", text))
        if class_name is not None:
            return LatencyBound(LATENCY_CLASS_MS[class_name], class_name)
        match = _LATENCY_PATTERN.match(text)
        unit = match["unit"] if match else None
        if match is None or (unit is not None and unit not in _TIME_UNITS_MS):
            raise _invalid(kind, value, LATENCY_FORMS)
        ms = float(_to_decimal(match["number"])) * _TIME_UNITS_MS[unit or "ms"]
    else:
        ms = float(_number_value(value, kind, LATENCY_FORMS))
    if not ms > 0 or ms > MAX_QUANTITY:
        raise SpecError(f"invalid {kind} {describe_value(value)}: the time must be positive and at most 10^24 ms.")
    return LatencyBound(ms, None)


def parse_data_size(value: object) -> DataSize:
    """Parse a training data size such as "2T tokens", "1.2M images", "50k samples" or 2e12.

    A plain number counts tokens. A byte size ("500GB") returns the unit "bytes". Unit nouns
    may be singular or plural and are reported in the plural ("1 image" -> "images").

    Raises:
        SpecError: for a value of another type, a negative count or another form.
    """
    kind = "training data size"
    if isinstance(value, str):
        text = _clean(value)
        byte_match = _DATA_BYTES_PATTERN.match(text)
        if byte_match is not None:
            count = parse_memory_bytes(text)
            return DataSize(float(count), "bytes")
        match = _DATA_COUNT_PATTERN.match(text)
        unit_text = match["unit"] if match else None
        if match is None or (unit_text is not None and unit_text not in _DATA_UNITS):
            raise _invalid(kind, value, DATA_SIZE_FORMS)
        number = _to_decimal(match["number"]) * _DECIMAL_MULTIPLIERS[match["suffix"] or ""]
        unit = _DATA_UNITS[unit_text] if unit_text else "tokens"
    else:
        number = _number_value(value, kind, DATA_SIZE_FORMS)
        unit = "tokens"
    _check_range(number, value, kind)
    return DataSize(float(number), unit)


def normalize_weight_dtype(value: object) -> str:
    """Fold a precision or quantization name ("bfloat16", "4bit", "INT8") to a dtype name.

    Returns one of "bf16", "fp16", "fp32", "fp8", "int8", "int4".

    Raises:
        SpecError: for a value of another type or an unknown name.
    """
    if isinstance(value, str):
        key = re.sub(r"[\s_-]", "", _clean(value))
        if key in _WEIGHT_DTYPES:
            return _WEIGHT_DTYPES[key]
    raise _invalid("weight dtype", value, WEIGHT_DTYPE_FORMS)


def normalize_device(value: object) -> str:
    """Fold a device name to its profile key: lower case, runs of spaces and '-' as '_'.

    TPU parts keep Google's hyphenated spelling: "TPU v5e", "tpu_v5e" and "TPU-V5E" all
    become "tpu-v5e". Everything else follows the underscore rule: "Consumer GPU" ->
    "consumer_gpu", "RTX-4090" -> "rtx_4090", "Jetson Orin Nano" -> "jetson_orin_nano".

    Raises:
        SpecError: for a value that is not a non-empty string.
    """
    if not isinstance(value, str) or not value.strip():
        raise _invalid(
            "device", value, "a device name or class such as consumer_gpu, h100, tpu-v5e or cpu"
        )
    text = _clean(value)
    tpu = _TPU_PART.match(text)
    if tpu is not None:
        return f"tpu-{tpu['generation']}"
    return re.sub(r"[\s_-]+", "_", text).strip("_")


def _clean(text: str) -> str:
    text = text.strip().lower()
    text = _THOUSANDS_SEPARATOR.sub("", text)
    return " ".join(text.split())


def _to_decimal(text: str) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation as error:  # the patterns only pass numbers, so this is a bug
        raise SpecError(f"invalid number {text!r}") from error
    # Clamp extreme exponents ("1e999999999") so that scaling cannot overflow the decimal
    # context. The range checks then reject the large side, and the small side rounds to 0.
    if number.adjusted() > 40:
        return Decimal(10) ** 41
    if number.adjusted() < -40:
        return Decimal(0)
    return number


def _number_value(value: object, kind: str, forms: str) -> Decimal:
    # bool is a subclass of int, but `true` in a spec is never a count.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(kind, value, forms)
    if isinstance(value, float) and not math.isfinite(value):
        raise _invalid(kind, value, forms)
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _whole_non_negative(number: Decimal, value: object, kind: str) -> int:
    _check_range(number, value, kind)
    return int(number.to_integral_value(rounding=ROUND_HALF_EVEN))


def _check_range(number: Decimal, value: object, kind: str) -> None:
    if number < 0:
        raise SpecError(f"invalid {kind} {describe_value(value)}: it must not be negative.")
    if number > MAX_QUANTITY:
        raise SpecError(f"invalid {kind} {describe_value(value)}: it must not exceed 10^24.")


def _invalid(kind: str, value: object, forms: str) -> SpecError:
    return SpecError(f"invalid {kind} {describe_value(value)}. Expected {forms}.")
