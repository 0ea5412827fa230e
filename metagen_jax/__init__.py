"""metagen_jax: vectorized architecture search on JAX, from a model spec to a Pareto front.

    >>> from metagen_jax import ArchitectureSearchEngine, load_spec
    >>> spec, _ = load_spec("specs/tiny_text_lm.yaml")
    >>> result = ArchitectureSearchEngine(spec=spec, budget=200, seed=42).search()

Names are imported on first use, so `import metagen_jax.specs` does not import JAX.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ArchitectureSearchEngine": "metagen_jax.engine",
    "SearchError": "metagen_jax.engine",
    "Candidate": "metagen_jax.result",
    "SearchResult": "metagen_jax.result",
    "load_spec": "metagen_jax.specs",
    "parse_spec": "metagen_jax.specs",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'metagen_jax' has no attribute {name!r}")
