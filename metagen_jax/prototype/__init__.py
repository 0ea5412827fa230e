"""Prototype training: train a tiny version of each candidate and rank them by real loss.

The whole population trains as one compiled program: parameters are padded to the largest
candidate, and per-candidate masks make the padded model compute each smaller one exactly.
"""

from metagen_jax.prototype.data import (PrototypeData, SyntheticTask, load_prototype_data,
                                        synthetic_data)
from metagen_jax.prototype.model import PaddedTransformer
from metagen_jax.prototype.scaling import PaddedShape, PrototypeDims, prototype_dims
from metagen_jax.prototype.train import (OptimizerConfig, PrototypeResults, train_population,
                                         train_prototypes)

__all__ = [
    "OptimizerConfig",
    "PaddedShape",
    "PaddedTransformer",
    "PrototypeData",
    "PrototypeDims",
    "PrototypeResults",
    "SyntheticTask",
    "load_prototype_data",
    "prototype_dims",
    "synthetic_data",
    "train_population",
    "train_prototypes",
]
