"""Decoder-only transformer whose padded, masked weights compute any smaller candidate exactly.

Every parameter has the batch's padded shape (`PaddedShape`). Each candidate's sizes become
masks, and the forward pass multiplies every weight by its mask, so that:

- RMSNorm statistics run over the candidate's active features only;
- padded query heads, key/value heads, head features and FFN units contribute exactly zero;
- query head h reads key/value head h // (heads / kv_heads), as in grouped-query attention;
- blocks at index >= depth return their input unchanged.

Masks multiply the weights and inactive blocks are skipped with a select, so the gradient
of every padded entry is exactly zero. Padded entries start at zero and stay zero under
AdamW. A candidate's slice of the padded parameters therefore follows the same training
trajectory as the unpadded model (`metagen_jax.prototype.reference`), up to float rounding.

Architecture: learned token and position embeddings, pre-norm blocks (RMSNorm, causal
grouped-query attention, GELU MLP, no biases), a final RMSNorm and an untied output layer.
Initialization uses the candidate's own sizes: kernels are normal with std 1/sqrt(fan_in),
divided by sqrt(2 * depth) for the two projections into the residual stream, embeddings
have std 0.02, norm scales start at one and the output layer at zero.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from metagen_jax.prototype.scaling import PaddedShape, PrototypeDims

RMS_NORM_EPSILON = 1e-6
EMBEDDING_STD = 0.02


class CandidateMasks(NamedTuple):
    """Float masks (1.0 active, 0.0 padded) of one candidate inside a padded shape.

    Attributes:
        width: (width,) active residual features.
        heads: (heads,) active query heads.
        kv_heads: (kv_heads,) active key/value heads.
        head_dim: (head_dim,) active features per head.
        ffn: (ffn,) active FFN units.
        layers: (depth,) bool, active blocks.
        kv_assignment: (heads, kv_heads) one-hot map from query head to its key/value head;
            rows of padded query heads are zero.
    """

    width: jax.Array
    heads: jax.Array
    kv_heads: jax.Array
    head_dim: jax.Array
    ffn: jax.Array
    layers: jax.Array
    kv_assignment: jax.Array


def candidate_masks(dims: PrototypeDims, shape: PaddedShape) -> CandidateMasks:
    """Build the masks of one candidate; `dims` fields are int32 scalars (use under vmap)."""
    def active(count, size):
        return (jnp.arange(size) < count).astype(jnp.float32)

    heads = active(dims.heads, shape.heads)
    group_size = dims.heads // dims.kv_heads
    kv_index = jnp.arange(shape.heads) // group_size
    kv_assignment = (kv_index[:, None] == jnp.arange(shape.kv_heads)[None, :]).astype(jnp.float32)
    return CandidateMasks(
        width=active(dims.width, shape.width),
        heads=heads,
        kv_heads=active(dims.kv_heads, shape.kv_heads),
        head_dim=active(dims.head_dim, shape.head_dim),
        ffn=active(dims.ffn, shape.ffn),
        layers=jnp.arange(shape.depth) < dims.depth,
        kv_assignment=kv_assignment * heads[:, None],
    )


def masked_normal(key, shape, std, mask):
    """Initializer: normal(0, std) on the active entries, zero on padded ones."""
    return std * mask * jax.random.normal(key, shape, jnp.float32)


def masked_ones(key, shape, mask):
    """Initializer: one on the active entries, zero on padded ones."""
    del key
    return jnp.ones(shape, jnp.float32) * mask


def masked_rms_norm(x, scale, width_mask, width):
    """RMSNorm whose mean square runs over the `width` active features only."""
    mean_square = jnp.sum(jnp.square(x) * width_mask, axis=-1, keepdims=True) / width
    return x * jax.lax.rsqrt(mean_square + RMS_NORM_EPSILON) * (scale * width_mask)


def _outer(*vectors):
    """Outer product of 1-D masks, giving a mask with one axis per vector."""
    result = vectors[0]
    for vector in vectors[1:]:
        result = result[..., None] * vector
    return result


class PaddedBlock(nn.Module):
    """One pre-norm transformer block in the padded shape; identity when the layer is inactive."""

    shape: PaddedShape

    @nn.compact
    def __call__(self, x, layer_active, dims: PrototypeDims, masks: CandidateMasks):
        s = self.shape
        width = dims.width.astype(jnp.float32)
        # Blocks past the candidate's depth are initialized to zero, like other padding.
        layer_scale = layer_active.astype(jnp.float32)
        residual_std = jax.lax.rsqrt(2.0 * dims.depth.astype(jnp.float32)) * layer_scale
        input_std = jax.lax.rsqrt(width) * layer_scale
        norm_mask = masks.width * layer_scale
        query_mask = _outer(masks.width, masks.heads, masks.head_dim)
        kv_mask = _outer(masks.width, masks.kv_heads, masks.head_dim)
        output_mask = _outer(masks.heads, masks.head_dim, masks.width)
        up_mask = _outer(masks.width, masks.ffn)
        down_mask = _outer(masks.ffn, masks.width)

        attention_scale = self.param("attention_norm", masked_ones, (s.width,), norm_mask)
        query = self.param("query", masked_normal, query_mask.shape, input_std, query_mask)
        key = self.param("key", masked_normal, kv_mask.shape, input_std, kv_mask)
        value = self.param("value", masked_normal, kv_mask.shape, input_std, kv_mask)
        output = self.param("output", masked_normal, output_mask.shape, input_std * residual_std,
                            output_mask)
        mlp_scale = self.param("mlp_norm", masked_ones, (s.width,), norm_mask)
        up = self.param("up", masked_normal, up_mask.shape, input_std, up_mask)
        down = self.param("down", masked_normal, down_mask.shape,
                          jax.lax.rsqrt(dims.ffn.astype(jnp.float32)) * residual_std, down_mask)

        # Attention. Key/value heads are copied to their query heads by a one-hot matmul.
        y = masked_rms_norm(x, attention_scale, masks.width, width)
        q = jnp.einsum("btd,dhe->bthe", y, query * query_mask)
        k = jnp.einsum("btd,dke->btke", y, key * kv_mask)
        v = jnp.einsum("btd,dke->btke", y, value * kv_mask)
        k = jnp.einsum("btke,hk->bthe", k, masks.kv_assignment)
        v = jnp.einsum("btke,hk->bthe", v, masks.kv_assignment)
        logits = jnp.einsum("bqhe,bshe->bhqs", q, k) * jax.lax.rsqrt(dims.head_dim.astype(jnp.float32))
        length = x.shape[-2]
        causal = jnp.tril(jnp.ones((length, length), bool))
        logits = jnp.where(causal, logits, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(logits, axis=-1)
        attended = jnp.einsum("bhqs,bshe->bqhe", weights, v)
        h = x + jnp.einsum("bqhe,hed->bqd", attended, output * output_mask)

        # MLP.
        y = masked_rms_norm(h, mlp_scale, masks.width, width)
        hidden = jax.nn.gelu(jnp.einsum("btd,df->btf", y, up * up_mask))
        h = h + jnp.einsum("btf,fd->btd", hidden, down * down_mask)
        return jnp.where(layer_active, h, x), None


class PaddedTransformer(nn.Module):
    """Decoder-only transformer over a padded shape; `dims` picks the candidate it computes.

    Apply it to one candidate (int32 scalar `dims` fields); `jax.vmap` over parameters and
    dims runs a population. Blocks are stacked with `nn.scan`, so block parameters carry a
    leading axis of length `shape.depth`.

    Example:
        >>> shape = PaddedShape(vocab_size=64, seq_len=16, width=32, depth=2, heads=4,
        ...                     kv_heads=2, head_dim=8, ffn=64)
        >>> dims = PrototypeDims(*map(jnp.int32, (32, 2, 4, 2, 8, 64)))
        >>> tokens = jnp.zeros((3, 16), jnp.int32)
        >>> model = PaddedTransformer(shape)
        >>> params = model.init(jax.random.key(0), tokens, dims)
        >>> model.apply(params, tokens, dims).shape
        (3, 16, 64)
    """

    shape: PaddedShape

    @nn.compact
    def __call__(self, tokens, dims: PrototypeDims):
        s = self.shape
        masks = candidate_masks(dims, s)
        width_row = masks.width[None, :]
        token_embedding = self.param("token_embedding", masked_normal, (s.vocab_size, s.width),
                                     EMBEDDING_STD, width_row)
        position_embedding = self.param("position_embedding", masked_normal, (s.seq_len, s.width),
                                        EMBEDDING_STD, width_row)
        x = (token_embedding * width_row)[tokens]
        x = x + (position_embedding * width_row)[: tokens.shape[-1]]

        blocks = nn.scan(
            PaddedBlock,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=(0, nn.broadcast, nn.broadcast),
            length=s.depth,
        )
        x, _ = blocks(s, name="blocks")(x, masks.layers, dims, masks)

        final_scale = self.param("final_norm", masked_ones, (s.width,), masks.width)
        x = masked_rms_norm(x, final_scale, masks.width, dims.width.astype(jnp.float32))
        # Zero-initialized output layer, so every candidate starts at loss log(vocab_size),
        # as in muP (Yang et al. 2021, "Tensor Programs V", arXiv:2203.03466).
        unembed = self.param("unembed", nn.initializers.zeros, (s.width, s.vocab_size), jnp.float32)
        return x @ (unembed * masks.width[:, None])
