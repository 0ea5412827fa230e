"""The MetaGen Specification Language (MSL 1.0): spec Structs, file loading, unit parsing.

    >>> from metagen_jax.specs import parse_spec
    >>> parse_spec("specs/text_llm_8b.yaml").requirements.context_tokens
    262144
"""

from metagen_jax.specs.errors import SpecError, SpecWarning
from metagen_jax.specs.loader import (
    ParsedSpec,
    load_spec,
    parse_spec,
    parse_spec_data,
    resolved_spec_dict,
)
from metagen_jax.specs.requirements import Requirements, resolve_requirements
from metagen_jax.specs.schema import Spec, spec_json_schema

__all__ = [
    "ParsedSpec",
    "Requirements",
    "Spec",
    "SpecError",
    "SpecWarning",
    "load_spec",
    "parse_spec",
    "parse_spec_data",
    "resolve_requirements",
    "resolved_spec_dict",
    "spec_json_schema",
]
