"""Every cost-model figure for one concrete architecture (the `metagen estimate` command)."""

from __future__ import annotations

from typing import Any

import numpy as np

from metagen_jax.architecture_file import ArchitectureFile
from metagen_jax.cost.architecture import Dims
from metagen_jax.cost.model import CostModel
from metagen_jax.cost.quality import QualityModel
from metagen_jax.hardware import resolve_device
from metagen_jax.problem import training_tokens_of
from metagen_jax.specs.requirements import Requirements

GIGA = 1e9


def estimate_architecture(architecture: ArchitectureFile, requirements: Requirements | None,
                          device_name: str | None) -> dict[str, Any]:
    """Evaluate one architecture on the host in float64, with an exact parameter count.

    Raises:
        KeyError: the device name is unknown.
    """
    device = resolve_device(device_name or (requirements.device if requirements else "datacenter_gpu"))
    config = architecture.config
    tokens = training_tokens_of(requirements, config.sequence_length) if requirements else None
    model = CostModel(config=config, device=device, quality=QualityModel(training_tokens=tokens))
    dims = Dims(*(np.asarray([value], dtype=np.float64) for value in architecture.dims))
    metrics = model.evaluate(dims, np)
    params = int(model.exact_params(Dims(*(np.asarray([v], dtype=np.int64) for v in architecture.dims)))[0])

    def scalar(array) -> float:
        return float(np.asarray(array).reshape(-1)[0])

    return {
        "name": architecture.name,
        "device": device.name,
        "context_tokens": config.sequence_length,
        "params": params,
        "params_billion": params / GIGA,
        "flops_per_token": scalar(metrics.flops_per_token),
        "train_flops_per_token": scalar(metrics.train_flops_per_token),
        "weights_bytes": scalar(metrics.weight_bytes),
        "kv_cache_bytes": scalar(metrics.kv_cache_bytes),
        "state_bytes": scalar(metrics.state_bytes),
        "activation_bytes": scalar(metrics.activation_bytes),
        "memory_gb": scalar(metrics.memory_bytes) / GIGA,
        "prefill_ms": scalar(metrics.prefill_ms),
        "latency_ms": scalar(metrics.latency_ms),
        "throughput": scalar(metrics.throughput),
        "throughput_unit": "tokens/s" if config.causal else "requests/s",
        "predicted_loss": scalar(metrics.predicted_loss),
        "training_tokens": tokens if tokens is not None else 20.0 * params,
    }
