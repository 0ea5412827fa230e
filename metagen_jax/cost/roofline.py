"""FLOPs, memory and roofline latency of each architecture on one device.

Conventions (all per single request, batch 1):
- Forward FLOPs per token follow Kaplan et al. (2020), table 1: 2 FLOPs per weight a token
  multiplies through, plus 2 * layers * context * d_attn for attention over the context.
  Training FLOPs are three times the forward (forward plus a backward of twice its cost).
  Only attention layers attend. A Mamba layer adds its selective scan instead, a cost per
  token that does not grow with the context (`ssm.SCAN_FLOPS_PER_STATE`).
- Generative (causal) models: `latency` is the decode time of one new token with a full KV
  cache at the context window, `prefill` the time to first token for a prompt that fills
  the context (causal attention: 2 * attention layers * context^2 * d_attn FLOPs). Other
  models: both are one forward pass over the sequence (bidirectional: 4 * attention
  layers * S^2 * d_attn).
- Each phase takes max(FLOPs / sustained FLOP/s, bytes moved / sustained bandwidth): the
  roofline of Williams, Waterman and Patterson (2009), "Roofline: an insightful visual
  performance model for multicore architectures". Bytes moved are the weights plus the KV
  cache read (decode) or written (prefill). Mamba layers keep a fixed-size decode state
  instead of a KV cache, which decode reads and writes back and prefill writes once.
- Activations: the largest live tensors at batch 1. Decode keeps one layer's vectors, the
  attention scores over the context and the float32 logits. A full forward keeps one
  layer's activations for every position plus one layer's attention score matrix, as
  without a fused attention kernel.
"""

from __future__ import annotations

from metagen_jax.cost import ssm
from metagen_jax.cost.architecture import ArchitectureConfig, Dims
from metagen_jax.cost.params import exact_quotient
from metagen_jax.hardware import DeviceProfile

ACTIVATION_BYTES = 2.0  # bf16 activations
LOGIT_BYTES = 4.0  # float32 logits


def kv_cache_bytes(dims: Dims, config: ArchitectureConfig):
    """Keys and values of every attention layer at the full context, batch 1.

    0 without a KV cache: encoders, and families without attention layers.
    """
    if not (config.causal and config.has_attention):
        return 0.0 * dims.hidden
    attention_layers, _ = ssm.layer_counts(dims.layers, config)
    kv_dim = dims.kv_heads * exact_quotient(dims.hidden, dims.heads)
    return 2.0 * attention_layers * kv_dim * config.sequence_length * config.kv_bytes


def state_bytes(dims: Dims, config: ArchitectureConfig):
    """Decode state (SSM and conv state) of every Mamba layer, batch 1, at any context.

    0 for encoders (no decode) and for families without Mamba layers. Stored at the KV
    cache's precision, as the reference implementation allocates it in the model dtype.
    """
    if not (config.causal and config.has_state_space):
        return 0.0 * dims.hidden
    _, mamba_layers = ssm.layer_counts(dims.layers, config)
    return 1.0 * mamba_layers * ssm.decode_state_elements(dims.hidden, config) * config.kv_bytes


def activation_bytes(dims: Dims, config: ArchitectureConfig):
    """Peak live activations during inference at batch 1."""
    h, f = dims.hidden, dims.ffn_hidden
    ffn_live = 2 * f if config.ffn_type == "gated" else f
    if not config.has_ffn:
        ffn_live = 0 * f
    if config.has_state_space:
        # A Mamba layer's widest live tensor: in_proj's two halves, x and the gate z.
        ffn_live = ffn_live + 2 * ssm.inner_width(h, config)
    seq = config.sequence_length
    heads = dims.heads if config.has_attention else 0 * dims.heads
    if config.causal:
        per_token = (4 * h + ffn_live + heads * seq) * ACTIVATION_BYTES
        logits = config.vocab_size * LOGIT_BYTES if config.head == "lm" else 0.0
        return per_token + logits
    return (seq * (4 * h + ffn_live) + heads * seq * seq) * ACTIVATION_BYTES


def attention_flops_per_token(dims: Dims, config: ArchitectureConfig):
    """Attention FLOPs of one token attending over the whole context (Kaplan et al. 2020)."""
    if not config.has_attention:
        return 0.0 * dims.hidden
    attention_layers, _ = ssm.layer_counts(dims.layers, config)
    return 2.0 * attention_layers * config.sequence_length * dims.hidden


def scan_flops_per_token(dims: Dims, config: ArchitectureConfig):
    """Selective-scan FLOPs of one token through every Mamba layer."""
    if not config.has_state_space:
        return 0.0 * dims.hidden
    _, mamba_layers = ssm.layer_counts(dims.layers, config)
    return 1.0 * mamba_layers * ssm.scan_flops_per_token(dims.hidden, config)


def roofline_seconds(flops, bytes_moved, device: DeviceProfile, xp):
    """Time of one phase: the slower of compute and memory traffic at sustained rates."""
    compute = flops / (device.peak_flops * device.flops_efficiency)
    memory = bytes_moved / (device.memory_bandwidth * device.bandwidth_efficiency)
    return xp.maximum(compute, memory)


def sequence_forward_flops(matmul_params, dims: Dims, config: ArchitectureConfig):
    """FLOPs of one pass over the whole sequence (prefill, or an encoder forward)."""
    seq = float(config.sequence_length)
    total = 2.0 * matmul_params * seq + seq * scan_flops_per_token(dims, config)
    if not config.has_attention:
        return total
    attention_layers, _ = ssm.layer_counts(dims.layers, config)
    quadratic = 2.0 if config.causal else 4.0
    return total + quadratic * attention_layers * seq * seq * dims.hidden
