"""Bring a spec mapping as read from a file into the shapes of the MSL 1.0 Structs.

This is the compatibility layer. It folds keys from other MetaGen versions into MSL 1.0
(`version` -> `metagen_version`, `constraints.params` -> `constraints.parameter_budget`,
`task.kind` -> `task.type`, ...), expands the shorthand forms (a scalar where a list is
expected, one value for a parameter budget, a name->settings mapping of components),
drops null sections so that they take their defaults, and turns numbers given for text
fields into text. It raises no errors. Unknown keys and every rewrite become notes that
the loader reports as warnings. Type and unit errors are left to msgspec and to
`resolve_requirements`, which report them against the key path recorded in `origins`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from msgspec import inspect as msgspec_inspect

from metagen_jax.specs import schema
from metagen_jax.specs.errors import KeyPath, describe_value, format_key_path

# Other names for MSL 1.0 keys, by section. A value is the MSL 1.0 field, or a path of
# fields inside that section. Only names whose intent is certain belong here.
KEY_ALIASES: dict[type, dict[str, str | tuple[str, ...]]] = {
    schema.Spec: {
        "version": "metagen_version",
        "spec_version": "metagen_version",
        "msl_version": "metagen_version",
        "schema_version": "metagen_version",
        "model_name": "name",
        "desc": "description",
    },
    schema.Modality: {"input": "inputs", "output": "outputs"},
    schema.Task: {
        "kind": "type",
        "task_type": "type",
        "num_labels": "num_classes",
        "n_classes": "num_classes",
        "output_dim": "num_outputs",
        "forecast_horizon": "horizon",
        "prediction_length": "horizon",
        "lookback_window": "lookback",
        "embed_dim": "embedding_dim",
        "embedding_size": "embedding_dim",
    },
    schema.Constraints: {
        "params": "parameter_budget",
        "parameters": "parameter_budget",
        "param_budget": "parameter_budget",
        "parameter_count": "parameter_budget",
        "max_params": ("parameter_budget", "max"),
        "min_params": ("parameter_budget", "min"),
        "memory": "memory_budget",
        "max_memory": "memory_budget",
        "memory_limit": "memory_budget",
        "context": "context_window",
        "context_length": "context_window",
        "context_size": "context_window",
        "max_context": "context_window",
        "max_seq_len": "context_window",
        "seq_len": "context_window",
        "sequence_length": "context_window",
        "max_sequence_length": "context_window",
        "max_latency": "latency",
        "latency_budget": "latency",
        "latency_target": "latency",
        "target_device": "device",
        "hardware": "device",
        "dtype": "precision",
        "weight_dtype": "precision",
        "quant": "quantization",
    },
    schema.ParameterBudget: {"minimum": "min", "maximum": "max"},
    schema.Training: {"objectives": "objective", "hyperparameters": "config"},
    schema.TrainingData: {"dataset_size": "size", "datasets": "sources"},
    schema.Alignment: {"methods": "method"},
    schema.Architecture: {"type": "family"},
    schema.Component: {"kind": "type"},
    schema.Reproducibility: {"random_seed": "seed", "deterministic": "determinism"},
}

# Sections that keep keys they do not define, in this field, instead of warning.
_OPEN_SECTIONS: dict[type, str] = {schema.Component: "options"}

_OMIT = object()

# A warning message, or a function that builds it when it is shown.
Note = str | Callable[[], str]


@dataclasses.dataclass
class NormalizedSpec:
    """A spec mapping in MSL 1.0 shape, ready for `msgspec.convert(data, Spec, strict=False)`.

    Attributes:
        data: the rewritten mapping.
        origins: for each key path of `data`, the key path the value was read from.
        notes: (key path as written, message) for each unknown key and each rewrite. A
            message may be a function that builds it, so that unshown ones cost nothing.
    """

    data: dict[str, Any]
    origins: dict[KeyPath, KeyPath]
    notes: list[tuple[KeyPath, Note]]

    def origin_of(self, key_path: KeyPath) -> KeyPath:
        """Return the written key path of a normalized one.

        A path below the deepest recorded ancestor keeps its remaining parts, so an error in
        list item 2 of a renamed key points at item 2 of the key as written.
        """
        path = tuple(key_path)
        for cut in range(len(path), 0, -1):
            if path[:cut] in self.origins:
                return (*self.origins[path[:cut]], *path[cut:])
        return path


def normalize_spec_data(raw: Mapping[Any, Any], *, default_name: str) -> NormalizedSpec:
    """Rewrite a spec mapping into MSL 1.0 shape, as the module docstring describes.

    Args:
        raw: the top-level mapping as read.
        default_name: the name to use when the spec has none (the loader passes the file
            name without its suffix).
    """
    walker = _Walker()
    data = walker.section(raw, schema.Spec, (), ())
    if "name" not in data:
        walker.note((), f"missing key 'name'. Using the file name {default_name!r}.")
        data["name"] = default_name
    _check_version(data, walker)
    return NormalizedSpec(data=data, origins=walker.origins, notes=walker.notes)


def _check_version(data: dict[str, Any], walker: _Walker) -> None:
    version = data.get("metagen_version")
    if version is None:
        walker.note((), f"missing key 'metagen_version'. Reading the spec as MSL {schema.MSL_VERSION}.")
        return
    if isinstance(version, str) and version.strip().split(".")[0] != schema.MSL_VERSION.split(".")[0]:
        walker.note(
            walker.origins.get(("metagen_version",), ("metagen_version",)),
            f"the spec declares MSL version {version!r}. Reading it as MSL {schema.MSL_VERSION}, "
            "so keys that version defines differently may be read differently.",
        )


class _Walker:
    def __init__(self) -> None:
        self.origins: dict[KeyPath, KeyPath] = {}
        self.notes: list[tuple[KeyPath, Note]] = []

    def note(self, raw_path: KeyPath, message: Note) -> None:
        self.notes.append((raw_path, message))

    def section(
        self,
        raw: Mapping[Any, Any],
        cls: type[msgspec.Struct],
        raw_path: KeyPath,
        norm_path: KeyPath,
        *,
        synthesized: bool = False,
    ) -> dict[str, Any]:
        """Normalize one mapping against the Struct `cls`.

        `synthesized` marks a mapping built from a shorthand value: its keys are not in the
        file, so their written key path is the shorthand's own.
        """
        fields = {field.name: field.type for field in msgspec_inspect.type_info(cls).fields}
        aliases = KEY_ALIASES.get(cls, {})
        out: dict[str, Any] = {}
        extras: dict[str, Any] = {}

        # MSL 1.0 names first, so that they win over any alias of the same field.
        entries = [(str(key), value) for key, value in raw.items()]
        ordered = [entry for entry in entries if entry[0] in fields]
        ordered += [entry for entry in entries if entry[0] not in fields]
        for key, value in ordered:
            raw_child = raw_path if synthesized else (*raw_path, key)
            target = _target(key, fields, aliases)
            if target is None:
                if cls in _OPEN_SECTIONS:
                    extras[key] = value
                    self.origins[(*norm_path, _OPEN_SECTIONS[cls], key)] = raw_child
                else:
                    self._note_unknown(key, fields, aliases, raw_child)
                continue
            self._store(out, key, target, value, cls, fields, raw_child, norm_path)

        if extras:
            field_name = _OPEN_SECTIONS[cls]
            explicit_options = out.get(field_name)
            if isinstance(explicit_options, dict):
                out[field_name] = {**extras, **explicit_options}
            else:
                out[field_name] = extras
        return out

    def _store(
        self,
        out: dict[str, Any],
        key: str,
        target: tuple[str, ...],
        value: Any,
        cls: type[msgspec.Struct],
        fields: Mapping[str, Any],
        raw_child: KeyPath,
        norm_path: KeyPath,
    ) -> None:
        name = target[0]
        norm_child = (*norm_path, name)
        if len(target) > 1:
            # An alias for a key inside a subsection, such as min_params -> parameter_budget.min.
            section = out.setdefault(name, {})
            self.origins.setdefault(norm_child, raw_child)
            if not isinstance(section, dict):
                self.note(raw_child, f"ignored, because {name!r} is also given.")
                return
            if target[1] in section:
                self.note(raw_child, f"ignored, because {format_key_path(target)!r} is also given.")
                return
            section[target[1]] = value
            self.origins[(*norm_child, target[1])] = raw_child
            self._note_renamed(raw_child, target)
            return
        if name in out:
            self.note(raw_child, f"ignored, because {name!r} is also given.")
            return
        if key != name:
            self._note_renamed(raw_child, target)
        self.origins[norm_child] = raw_child
        normalized = self.value(value, fields[name], raw_child, norm_child, owner=(cls, name))
        if normalized is not _OMIT:
            out[name] = normalized

    def value(
        self,
        value: Any,
        kind: Any,
        raw_path: KeyPath,
        norm_path: KeyPath,
        *,
        owner: tuple[type, str],
    ) -> Any:
        """Normalize one value against its msgspec type info. _OMIT means "use the default"."""
        kind = _unwrap(kind)
        if value is None:
            return None if _allows_none(kind) else _OMIT
        if owner == (schema.Architecture, "components"):
            return self._components(value, raw_path, norm_path)
        struct_cls = _struct_of(kind)
        if struct_cls is not None:
            mapping, synthesized = self._expand_shorthand(value, struct_cls, raw_path)
            if mapping is None:
                return value  # msgspec reports the wrong type at this key path
            return self.section(mapping, struct_cls, raw_path, norm_path, synthesized=synthesized)
        if _is_string_list(kind):
            return _as_string_list(value)
        if _accepts(kind, msgspec_inspect.StrType) and _is_number(value):
            return str(value)
        if _accepts(kind, msgspec_inspect.IntType) and isinstance(value, str):
            return _clean_int_text(value)
        return value

    def _expand_shorthand(
        self, value: Any, cls: type, raw_path: KeyPath
    ) -> tuple[Mapping[Any, Any] | None, bool]:
        """Return the mapping that a section value stands for, and whether it was built here."""
        if isinstance(value, Mapping):
            return value, False
        scalar = isinstance(value, str) or _is_number(value)
        if cls is schema.ParameterBudget and scalar:
            return {"max": value}, True
        if cls is schema.Modality and (isinstance(value, str) or isinstance(value, list)):
            self.note(raw_path, f"read {describe_value(value)} as both the inputs and the outputs.")
            return {"inputs": value, "outputs": value}, True
        if cls is schema.Task and isinstance(value, str):
            return {"type": value}, True
        if cls is schema.Architecture and isinstance(value, str):
            return {"family": value}, True
        if cls is schema.Outputs and (isinstance(value, str) or isinstance(value, list)):
            return {"artifacts": value}, True
        return None, False

    def _components(self, value: Any, raw_path: KeyPath, norm_path: KeyPath) -> Any:
        """Normalize architecture.components: a list of settings or names, or name->settings."""
        if isinstance(value, str):
            value = [value]
        if isinstance(value, Mapping):
            items = []
            for name, settings in value.items():
                if isinstance(settings, Mapping):
                    settings = {"name": str(name), **settings}
                elif isinstance(settings, str):
                    settings = {"name": str(name), "type": settings}
                elif settings is None:
                    settings = {"name": str(name)}
                items.append(((*raw_path, str(name)), settings))
        elif isinstance(value, list):
            items = [((*raw_path, index), item) for index, item in enumerate(value)]
        else:
            return value

        components = []
        for raw_item, item in items:
            norm_item = (*norm_path, len(components))
            self.origins[norm_item] = raw_item
            if item is None:
                continue
            if isinstance(item, str) or _is_number(item):
                components.append({"name": str(item)})
            elif isinstance(item, Mapping):
                components.append(self.section(item, schema.Component, raw_item, norm_item))
            else:
                components.append(item)  # msgspec reports the wrong type
        return components

    def _note_renamed(self, raw_child: KeyPath, target: tuple[str, ...]) -> None:
        self.note(raw_child, f"read as {format_key_path(target)!r}, the MSL {schema.MSL_VERSION} name.")

    def _note_unknown(
        self,
        key: str,
        fields: Mapping[str, Any],
        aliases: Mapping[str, str | tuple[str, ...]],
        raw_child: KeyPath,
    ) -> None:
        # The loader shows only the first warnings of a file, so the difflib hint (slow for
        # a file of many thousands of unknown keys) is built only for those it shows.
        self.note(raw_child, functools.partial(_unknown_key_message, key, tuple(fields), aliases))


def _unknown_key_message(
    key: str, fields: tuple[str, ...], aliases: Mapping[str, str | tuple[str, ...]]
) -> str:
    # Aliases count as spellings of their field, so "latncy_budget" suggests latency.
    spellings = {name: name for name in fields}
    for alias, target in aliases.items():
        spellings.setdefault(alias, target if isinstance(target, str) else format_key_path(target))
    close = difflib.get_close_matches(key.lower(), list(spellings), n=1, cutoff=0.6)
    if close:
        hint = f"Did you mean {spellings[close[0]]!r}?"
    else:
        hint = f"Known keys here: {', '.join(fields)}."
    return f"unknown key, ignored. {hint}"


def _target(
    key: str,
    fields: Mapping[str, Any],
    aliases: Mapping[str, str | tuple[str, ...]],
) -> tuple[str, ...] | None:
    """Return the field path a key is read as: itself, its folded spelling or its alias."""
    if key in fields:
        return (key,)
    folded = re.sub(r"[\s-]+", "_", key.strip().lower())
    target = folded if folded in fields else aliases.get(key, aliases.get(folded))
    if target is None:
        return None
    return (target,) if isinstance(target, str) else tuple(target)


def _unwrap(kind: Any) -> Any:
    """Strip the Metadata layer (descriptions, bounds) that `Annotated` fields carry."""
    while isinstance(kind, msgspec_inspect.Metadata):
        kind = kind.type
    if isinstance(kind, msgspec_inspect.UnionType):
        return msgspec_inspect.UnionType(types=tuple(_unwrap(member) for member in kind.types))
    return kind


def _struct_of(kind: Any) -> type | None:
    if isinstance(kind, msgspec_inspect.StructType):
        return kind.cls
    if isinstance(kind, msgspec_inspect.UnionType):
        for member in kind.types:
            if isinstance(member, msgspec_inspect.StructType):
                return member.cls
    return None


def _allows_none(kind: Any) -> bool:
    return _accepts(kind, msgspec_inspect.NoneType)


def _accepts(kind: Any, member_type: type) -> bool:
    if isinstance(kind, msgspec_inspect.UnionType):
        return any(isinstance(member, member_type) for member in kind.types)
    return isinstance(kind, member_type)


def _is_string_list(kind: Any) -> bool:
    return isinstance(kind, msgspec_inspect.ListType) and isinstance(
        _unwrap(kind.item_type), msgspec_inspect.StrType
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_string_list(value: Any) -> Any:
    """Read "text, image", "text" or 3 as a list of strings. Other shapes go to msgspec as they are."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if _is_number(value):
        return [str(value)]
    if isinstance(value, list):
        return [str(item) if _is_number(item) else item for item in value if item is not None]
    return value


def _clean_int_text(text: str) -> str:
    return re.sub(r"(?<=\d)[,_](?=\d{3}(?!\d))", "", text.strip())
