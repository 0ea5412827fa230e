"""Cost model: exact parameters, FLOPs, memory, roofline latency and predicted loss."""

from metagen_jax.cost.architecture import ArchitectureConfig, Dims, config_from_requirements
from metagen_jax.cost.model import CostModel, Metrics
from metagen_jax.cost.quality import QualityModel

__all__ = ["ArchitectureConfig", "CostModel", "Dims", "Metrics", "QualityModel", "config_from_requirements"]
