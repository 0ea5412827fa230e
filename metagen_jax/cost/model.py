"""The cost model: every metric of a batch of architectures in one pure function."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from metagen_jax.cost import params as param_formulas
from metagen_jax.cost import roofline
from metagen_jax.cost.architecture import ArchitectureConfig, Dims
from metagen_jax.cost.quality import QualityModel, predicted_loss
from metagen_jax.hardware import DeviceProfile

# Exact counts stay below this, far enough from 2^63 that no int64 term of the formula wraps.
INT64_SAFE_LIMIT = 2**62


class Metrics(NamedTuple):
    """Metrics of a batch of architectures, each an array of shape (P,).

    Units: params in parameters, FLOPs per token, bytes, milliseconds, throughput in
    tokens/s for generative models and requests/s otherwise, loss in nats per token.
    `kv_cache_bytes` covers the attention layers and `state_bytes` the fixed-size decode
    state of the Mamba layers; `memory_bytes` includes both.
    """

    params: object
    flops_per_token: object
    train_flops_per_token: object
    weight_bytes: object
    kv_cache_bytes: object
    state_bytes: object
    activation_bytes: object
    memory_bytes: object
    prefill_ms: object
    latency_ms: object
    throughput: object
    predicted_loss: object


@dataclasses.dataclass(frozen=True)
class CostModel:
    """Everything fixed for one search: architecture choices, device and data size.

    Hashable, so jitted functions take it as a static argument and compile once per search.
    """

    config: ArchitectureConfig
    device: DeviceProfile
    quality: QualityModel

    def evaluate(self, dims: Dims, xp=np) -> Metrics:
        """Compute every metric for `dims` with array module `xp` (jax.numpy or numpy)."""
        config, device = self.config, self.device
        params = param_formulas.parameter_count(dims, config) * 1.0
        matmul = param_formulas.matmul_params_per_token(dims, config) * 1.0

        forward = (2.0 * matmul + roofline.attention_flops_per_token(dims, config)
                   + roofline.scan_flops_per_token(dims, config))
        weights = params * config.weight_bytes
        kv = roofline.kv_cache_bytes(dims, config)
        state = roofline.state_bytes(dims, config)
        activations = roofline.activation_bytes(dims, config) * 1.0
        memory = weights + kv + state + activations

        sequence_flops = roofline.sequence_forward_flops(matmul, dims, config)
        if config.causal:
            # Prefill writes the KV cache and the final state once. Decode reads the KV
            # cache, and reads and writes back the state.
            prefill = roofline.roofline_seconds(sequence_flops, weights + kv + state, device, xp)
            latency = roofline.roofline_seconds(forward, weights + kv + 2.0 * state, device, xp)
        else:
            prefill = roofline.roofline_seconds(sequence_flops, weights + activations, device, xp)
            latency = prefill
        latency_ms = latency * 1e3

        loss = predicted_loss(
            params, dims.hidden * 1.0, dims.layers * 1.0,
            dataclasses.replace(self.quality, shape_penalty=self.quality.shape_penalty and config.has_attention),
            xp,
        )
        return Metrics(
            params=params,
            flops_per_token=forward,
            train_flops_per_token=3.0 * forward,
            weight_bytes=weights,
            kv_cache_bytes=kv,
            state_bytes=state,
            activation_bytes=activations,
            memory_bytes=memory,
            prefill_ms=prefill * 1e3,
            latency_ms=latency_ms,
            throughput=1e3 / latency_ms,
            predicted_loss=loss,
        )

    def exact_params(self, dims: Dims) -> np.ndarray:
        """Exact parameter counts on the host as int64.

        Raises:
            OverflowError: a count reaches 2^62, where the int64 arithmetic could wrap.
        """
        approximate = param_formulas.parameter_count(Dims(*(np.asarray(value, dtype=np.float64) for value in dims)),
                                                     self.config)
        if np.any(np.asarray(approximate) >= INT64_SAFE_LIMIT):
            raise OverflowError(f"the parameter count is about {float(np.max(approximate)):.3g}, beyond the "
                                f"{INT64_SAFE_LIMIT:,} that exact int64 counting supports")
        as_int = Dims(*(np.asarray(value, dtype=np.int64) for value in dims))
        return np.asarray(param_formulas.parameter_count(as_int, self.config), dtype=np.int64)
