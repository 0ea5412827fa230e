"""Load MSL spec files: read, normalize, validate, and resolve them into Requirements.

    >>> parsed = parse_spec("specs/text_llm_8b.yaml")
    >>> parsed.requirements.max_params
    9000000000

Every problem with the input raises `SpecError` with a one-line message that names the
file, the line, the key path, the value and the accepted forms. A spec that loads but
deserves attention (an unknown key, a key from another MetaGen version, an unbounded
context) gets one warning line per finding in `ParsedSpec.warnings`, up to MAX_WARNINGS
lines and then one line with the count of the rest. `load_spec` also issues each one as
a `SpecWarning` and logs it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from metagen_jax.specs import units
from metagen_jax.specs.errors import KeyPath, SpecError, SpecWarning, describe_value, format_located
from metagen_jax.specs.normalize import NormalizedSpec, Note, normalize_spec_data
from metagen_jax.specs.requirements import Requirements, resolve_with_notes
from metagen_jax.specs.schema import Spec
from metagen_jax.specs.source import SpecSource, read_spec_source, source_from_data

logger = logging.getLogger(__name__)

# Unit fields, by normalized key path, with the parser whose message lists their forms.
_UNIT_PARSERS: dict[KeyPath, Callable[[Any], Any]] = {
    ("constraints", "parameter_budget", "min"): units.parse_param_count,
    ("constraints", "parameter_budget", "max"): units.parse_param_count,
    ("constraints", "parameter_budget"): units.parse_param_count,
    ("constraints", "memory_budget"): units.parse_memory_bytes,
    ("constraints", "context_window"): units.parse_context_tokens,
    ("constraints", "latency"): units.parse_latency,
    ("constraints", "throughput"): units.parse_throughput,
    ("training", "data", "size"): units.parse_data_size,
}
# Warnings kept per spec, in file order. One more line counts the rest, so that a file of
# many unknown keys cannot flood the terminal or the results file.
MAX_WARNINGS = 20
_MSGSPEC_LOCATION = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_MSGSPEC_PATH_PART = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")
_MSGSPEC_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "null": "null",
}


@dataclasses.dataclass(frozen=True)
class ParsedSpec:
    """A loaded spec.

    Attributes:
        spec: the validated spec, in MSL 1.0 shape, values as written.
        raw: the top-level mapping as read from the file.
        warnings: one line per warning, each starting with ``FILE:LINE: KEY.PATH:``, at
            most MAX_WARNINGS of them plus a line that counts the rest.
        requirements: the resolved numbers.
        path: the file it was read from, or a label for data built in Python.
    """

    spec: Spec
    raw: dict[str, Any]
    warnings: list[str]
    requirements: Requirements
    path: str | None = None


def parse_spec(path: str | os.PathLike[str]) -> ParsedSpec:
    """Read, validate and resolve a YAML or JSON spec file.

    Raises:
        SpecError: for a missing, unreadable or malformed file, a value of the wrong type,
            or a unit value that does not parse.
    """
    source = read_spec_source(path)
    return _parse_source(source, default_name=Path(source.file).stem)


def parse_spec_data(data: Mapping[str, Any], *, source: str = "<spec data>") -> ParsedSpec:
    """Validate and resolve a spec given as a mapping, as `parse_spec` does for a file.

    Args:
        data: the spec mapping, as a YAML or JSON reader would return it.
        source: a label for messages in place of a file name.
    """
    mapping = dict(data) if isinstance(data, Mapping) else data
    return _parse_source(source_from_data(mapping, file=source), default_name="unnamed")


def load_spec(path: str | os.PathLike[str]) -> tuple[Spec, dict[str, Any]]:
    """Load a spec file and return ``(spec, raw)``.

    Each warning is issued as a `SpecWarning` and logged at WARNING level on the
    ``metagen_jax.specs.loader`` logger.

    Raises:
        SpecError: as `parse_spec`.
    """
    parsed = parse_spec(path)
    for message in parsed.warnings:
        logger.warning("%s", message)
        warnings.warn(message, SpecWarning, stacklevel=2)
    return parsed.spec, parsed.raw


def resolved_spec_dict(parsed: ParsedSpec) -> dict[str, Any]:
    """Return a JSON-serializable view of a parsed spec: source, spec, requirements, warnings."""
    requirements = {
        field.name: _json_value(getattr(parsed.requirements, field.name))
        for field in dataclasses.fields(parsed.requirements)
    }
    return {
        "source": parsed.path,
        "name": parsed.spec.name,
        "metagen_version": parsed.spec.metagen_version,
        "spec": msgspec.to_builtins(parsed.spec, str_keys=True),
        "requirements": requirements,
        "warnings": list(parsed.warnings),
    }


def _parse_source(source: SpecSource, *, default_name: str) -> ParsedSpec:
    normalized = normalize_spec_data(source.data, default_name=default_name)
    located: list[tuple[int, KeyPath, Note]] = [
        (line, key_path, f"duplicate key. The value on line {line} replaces the earlier one.")
        for key_path, line in source.duplicate_keys
    ]
    located += [
        (source.line_of(key_path) or 0, key_path, message) for key_path, message in normalized.notes
    ]

    spec = _convert(normalized, source)
    try:
        requirements, notes = resolve_with_notes(spec)
    except SpecError as error:
        raise _locate(error, normalized, source) from None
    for key_path, message in notes:
        raw_path = normalized.origin_of(key_path)
        located.append((source.line_of(raw_path) or 0, raw_path, message))

    # Sort warnings into file order. Without line numbers they keep the order of discovery.
    located.sort(key=lambda entry: entry[0])
    messages = [
        format_located(
            message() if callable(message) else message,
            file=source.file,
            line=line or None,
            key_path=key_path,
        )
        for line, key_path, message in located[:MAX_WARNINGS]
    ]
    if len(located) > MAX_WARNINGS:
        messages.append(
            format_located(
                f"{len(located) - MAX_WARNINGS:,} more warnings not shown. Fix the ones above "
                "and validate the spec again to see the rest.",
                file=source.file,
            )
        )
    return ParsedSpec(
        spec=spec,
        raw=source.data,
        warnings=messages,
        requirements=requirements,
        path=source.file,
    )


def _convert(normalized: NormalizedSpec, source: SpecSource) -> Spec:
    try:
        return msgspec.convert(normalized.data, Spec, strict=False)
    except msgspec.ValidationError as error:
        match = _MSGSPEC_LOCATION.match(" ".join(str(error).split()))
        assert match is not None  # the pattern matches any text
        key_path: KeyPath = tuple(
            int(index) if index else name
            for name, index in _MSGSPEC_PATH_PART.findall(match["path"] or "")
        )
        value = _value_at(normalized.data, key_path)
        reason = _type_error_reason(match["reason"], key_path, value)
        raise _locate(SpecError(reason, key_path=key_path), normalized, source) from None


def _type_error_reason(msgspec_reason: str, key_path: KeyPath, value: Any) -> str:
    parser = _UNIT_PARSERS.get(key_path)
    if parser is not None:
        try:
            parser(value)
        except SpecError as unit_error:
            return unit_error.reason
    reason = re.sub(r"`([^`]+)`", _plain_type_names, msgspec_reason)
    reason = reason[:1].lower() + reason[1:]
    return f"invalid value {describe_value(value)}: {reason}."


def _plain_type_names(match: re.Match[str]) -> str:
    """Turn msgspec's "`int | null`" into "an integer or null"."""
    names = [name.strip() for name in match[1].split("|")]
    return " or ".join(_MSGSPEC_TYPE_NAMES.get(name, name) for name in names)


def _locate(error: SpecError, normalized: NormalizedSpec, source: SpecSource) -> SpecError:
    """Point an error at the key path and line as written in the file."""
    key_path = normalized.origin_of(error.key_path) if error.key_path is not None else None
    line = source.line_of(key_path) if key_path is not None else None
    return SpecError(error.reason, file=source.file, line=line, key_path=key_path or None)


def _value_at(data: Any, key_path: KeyPath) -> Any:
    for part in key_path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
