"""Read a spec file into Python data plus the line of every key, for located errors.

YAML is read with PyYAML's safe loader: the document is composed into a node tree once,
the tree gives each key path its line, and the same tree is constructed into dicts and
lists. `safe_yaml.load_yaml` rejects alias bombs, recursive aliases and integers of more
than 4,300 digits before anything is constructed. JSON is read with the standard `json` module. Its line numbers come from composing the
same text as YAML, because JSON is nearly a YAML subset. A JSON file that PyYAML cannot
compose still loads, but its messages carry no line numbers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml

from metagen_jax.specs.errors import KeyPath, SpecError, describe_value
from metagen_jax.specs.files import MAX_SPEC_BYTES, read_text_file
from metagen_jax.specs.safe_yaml import MAX_INT_DIGITS, load_yaml

__all__ = ["MAX_SPEC_BYTES", "SpecSource", "read_spec_source", "source_from_data"]

_YAML_SUFFIXES = frozenset({".yaml", ".yml"})
_JSON_SUFFIXES = frozenset({".json"})
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclasses.dataclass(frozen=True)
class SpecSource:
    """The data of one spec file and where each part of it sits.

    Attributes:
        file: the path as the caller gave it, for messages.
        data: the top-level mapping as read.
        lines: 1-based line of each key path (mapping keys and list items).
        duplicate_keys: (key path, line) of each repeated key in one mapping. The later
            value is the one kept.
        format: "yaml" or "json".
    """

    file: str
    data: dict[Any, Any]
    lines: dict[KeyPath, int]
    duplicate_keys: tuple[tuple[KeyPath, int], ...]
    format: Literal["yaml", "json"]

    def line_of(self, key_path: KeyPath) -> int | None:
        """Return the line of a key path, or of its nearest ancestor that has one."""
        path = tuple(key_path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


def read_spec_source(path: str | os.PathLike[str]) -> SpecSource:
    """Read and parse a YAML or JSON spec file.

    The format follows the suffix (.yaml/.yml or .json). For any other suffix, text that
    starts with '{' is read as JSON and everything else as YAML.

    Raises:
        SpecError: when the file is missing, is a directory, cannot be read, is not UTF-8
            or UTF-16 text, is empty, does not parse, or its top level is not a mapping.
    """
    file = os.fspath(path)
    text = read_text_file(file)
    if not text.strip():
        raise SpecError("the spec file is empty. Expected a mapping of MSL sections.", file=file)
    suffix = Path(file).suffix.lower()
    if suffix in _JSON_SUFFIXES or (suffix not in _YAML_SUFFIXES and text.lstrip().startswith("{")):
        source = _parse_json(text, file)
    else:
        source = _parse_yaml(text, file)
    if not isinstance(source.data, dict):
        raise SpecError(
            f"the top level is {_kind_name(source.data)} {describe_value(source.data)}. "
            "Expected a mapping of MSL sections such as 'name:', 'modality:', 'constraints:'.",
            file=file,
            line=1,
        )
    return source


def source_from_data(data: dict[Any, Any], *, file: str) -> SpecSource:
    """Wrap a mapping built in Python (no file, so no line numbers) as a SpecSource."""
    if not isinstance(data, dict):
        raise SpecError(
            f"the top level is {_kind_name(data)}. Expected a mapping of MSL sections.", file=file
        )
    return SpecSource(file=file, data=data, lines={}, duplicate_keys=(), format="yaml")


def _parse_yaml(text: str, file: str) -> SpecSource:
    data, node = load_yaml(text, file)
    if node is None:
        raise SpecError(
            "the spec file has no YAML document, only comments or blank lines.", file=file
        )
    lines, duplicates = _map_lines(node)
    return SpecSource(file, data, lines, duplicates, "yaml")


class _LongInteger(ValueError):
    """A JSON integer literal longer than MAX_INT_DIGITS, which int() would reject."""

    def __init__(self, literal: str) -> None:
        super().__init__(literal)
        self.literal = literal


def _parse_json_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise _LongInteger(literal)
    return int(literal)


def _parse_json(text: str, file: str) -> SpecSource:
    try:
        data = json.loads(text, parse_int=_parse_json_int)
    except _LongInteger as error:
        raise _long_json_integer_error(text, error.literal, file) from None
    except json.JSONDecodeError as error:
        raise SpecError(
            f"invalid JSON: {error.msg} (column {error.colno}).", file=file, line=error.lineno
        ) from error
    except RecursionError as error:
        raise SpecError("invalid JSON: the document is nested too deeply.", file=file) from error
    lines: dict[KeyPath, int] = {}
    duplicates: tuple[tuple[KeyPath, int], ...] = ()
    # YAML forbids tabs in indentation but JSON allows them, and JSON strings cannot hold
    # a literal tab, so replacing tabs keeps every line number and every value.
    loader = _SafeLoader(text.replace("\t", " "))
    try:
        node = loader.get_single_node()
        if node is not None:
            lines, duplicates = _map_lines(node)
    except (yaml.YAMLError, RecursionError):
        pass  # NOTE: this JSON file loads without line numbers in its messages.
    finally:
        loader.dispose()
    return SpecSource(file, data, lines, duplicates, "json")


def _long_json_integer_error(text: str, literal: str, file: str) -> SpecError:
    # NOTE: the line is that of the first such literal after ':', '[' or ','. A string that
    # contains the same digits after one of those characters would be found first.
    match = re.search(rf"[:\[,]\s*({re.escape(literal)})(?![\d.eE])", text)
    line = text[: match.start(1)].count("\n") + 1 if match else None
    return SpecError(
        f"invalid integer: it has {len(literal.lstrip('-')):,} digits, more than the "
        f"{MAX_INT_DIGITS:,} that a number may have.",
        file=file,
        line=line,
    )


def _map_lines(
    root: yaml.Node,
) -> tuple[dict[KeyPath, int], tuple[tuple[KeyPath, int], ...]]:
    """Walk a composed YAML tree and record the 1-based line of each key path.

    An alias node is a second reference to a node already visited, so it is walked once:
    this keeps the walk linear on "billion laughs" documents and finite on recursive ones.
    """
    lines: dict[KeyPath, int] = {(): root.start_mark.line + 1}
    duplicates: list[tuple[KeyPath, int]] = []
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, KeyPath]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = key_node.value
                child = (*path, key)
                line = key_node.start_mark.line + 1
                if key in seen:
                    duplicates.append((child, line))
                seen.add(key)
                lines[child] = line
                stack.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = (*path, index)
                lines[child] = item.start_mark.line + 1
                stack.append((item, child))
    return lines, tuple(sorted(duplicates, key=lambda entry: entry[1]))


def _kind_name(value: Any) -> str:
    names = {list: "a list", str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), f"a value of type {type(value).__name__}")
