"""Exact parameter counts, written once for every array backend.

The functions use only `+`, `*`, `exact_quotient` and the floor division of
`ssm.ceil_quotient` on their inputs, so the same formula runs on JAX float32 arrays inside
the jitted cost model (exact below 2^24, ample for ranking) and on Python or NumPy int64
integers on the host, where the count reported to users is exact.
"""

from __future__ import annotations

from metagen_jax.cost import ssm
from metagen_jax.cost.architecture import ArchitectureConfig, Dims


def exact_quotient(numerator, denominator):
    """Divide where the quotient is known to be whole: `//` on integers, `/` on floats.

    Float floor division costs several extra operations per element under XLA, and the
    quotients here (head size from width and heads) are whole because the search space
    only contains head counts that divide the width.
    """
    is_float = isinstance(numerator, float) or getattr(getattr(numerator, "dtype", None), "kind", "") == "f"
    return numerator / denominator if is_float else numerator // denominator


def norm_params(width, config: ArchitectureConfig):
    """Weights of one norm: LayerNorm has a scale and a bias, RMSNorm a scale only."""
    return 2 * width if config.norm == "layernorm" else width


def embedding_params(dims: Dims, config: ArchitectureConfig):
    """Input stem, position table, segment table, prefix tokens and embedding norm."""
    h = dims.hidden
    if config.input_stem == "tokens":
        total = config.vocab_size * h
    elif config.input_stem == "patches":
        total = config.patch_dim * h + h
    else:
        total = config.feature_dim * h + h
    if config.position == "learned":
        total = total + config.max_positions * h
    total = total + config.type_vocab_size * h + config.prefix_tokens * h
    if config.embedding_norm:
        total = total + norm_params(h, config)
    return total


def attention_params(dims: Dims, config: ArchitectureConfig):
    """Weights of one attention mixer: Q and O of width h, K and V of the kv width."""
    h = dims.hidden
    kv_dim = dims.kv_heads * exact_quotient(h, dims.heads)
    attention = 2 * h * h + 2 * h * kv_dim
    if config.bias:
        attention = attention + 2 * h + 2 * kv_dim
    return attention


def ffn_params(dims: Dims, config: ArchitectureConfig):
    """Weights of one FFN: plain (two matrices) or gated (three, SwiGLU style)."""
    h, f = dims.hidden, dims.ffn_hidden
    if config.ffn_type == "gated":
        return 3 * h * f + (2 * f + h if config.bias else 0)
    return 2 * h * f + (f + h if config.bias else 0)


def blocks_params(dims: Dims, config: ArchitectureConfig):
    """Weights of all blocks (layers) together.

    Attention layers are attention, FFN and two norms. A Mamba layer of the ssm family is
    one norm and the Mamba mixer (Mamba-1 has no FFN). A Mamba layer of a hybrid is the
    mixer, the FFN and two norms, as in Jamba. `ssm.layer_counts` sets how many of each.
    """
    h, f = dims.hidden, dims.ffn_hidden
    if not (config.has_attention or config.has_state_space):
        # Width-by-depth block of the non-attention families: a pre-norm residual MLP
        # (mlp; gnn as a GIN layer whose update is that MLP) or an isotropic ConvNeXt block
        # (cnn: 7x7 depthwise conv, LayerNorm, two pointwise layers, layer scale).
        mlp = h * f + f + f * h + h
        if config.family == "cnn":
            return dims.layers * (49 * h + h + 2 * h + mlp + h)
        return dims.layers * (norm_params(h, config) + mlp)

    attention_layers, mamba_layers = ssm.layer_counts(dims.layers, config)
    ffn_and_norms = ffn_params(dims, config) + 2 * norm_params(h, config)
    if not config.has_ffn:
        ffn_and_norms = norm_params(h, config)
    total = attention_layers * (attention_params(dims, config) + ffn_and_norms)
    if config.has_state_space:
        total = total + mamba_layers * (ssm.mamba_mixer_params(h, config) + ffn_and_norms)
    return total


def head_params(dims: Dims, config: ArchitectureConfig):
    """Final norm, pooler and task head."""
    h = dims.hidden
    total = norm_params(h, config) if config.final_norm else 0 * h
    if config.pooler:
        total = total + h * h + h
    outputs = config.head_outputs
    if config.head == "lm":
        if not config.tie_embeddings or config.input_stem != "tokens":
            total = total + config.vocab_size * h
    elif config.head in ("classifier", "regression"):
        total = total + h * outputs + outputs
    elif config.head == "embedding":
        total = total + h * outputs
    return total


def parameter_count(dims: Dims, config: ArchitectureConfig):
    """Total trainable parameters of each architecture."""
    return embedding_params(dims, config) + blocks_params(dims, config) + head_params(dims, config)


def matmul_params_per_token(dims: Dims, config: ArchitectureConfig):
    """Weights that each position multiplies through: blocks, stem projection and LM head.

    A token lookup costs no multiply, but an LM head does even when it is tied.
    """
    h = dims.hidden
    total = blocks_params(dims, config)
    if config.input_stem == "patches":
        total = total + config.patch_dim * h
    elif config.input_stem == "features":
        total = total + config.feature_dim * h
    if config.head == "lm":
        total = total + config.vocab_size * h
    return total
