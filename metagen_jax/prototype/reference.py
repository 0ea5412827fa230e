"""Plain, unpadded transformer with one candidate's exact sizes, for checking the padded model.

`ReferenceTransformer` is written with standard Flax layers and no masks, so it is an
independent statement of the architecture in `metagen_jax.prototype.model`.
`slice_candidate_params` cuts one candidate's parameters out of the padded ones in the
layout this module expects.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from metagen_jax.prototype.model import RMS_NORM_EPSILON


class ReferenceBlock(nn.Module):
    """Pre-norm block: RMSNorm, causal grouped-query attention, RMSNorm, GELU MLP."""

    width: int
    heads: int
    kv_heads: int
    ffn: int

    @nn.compact
    def __call__(self, x):
        head_dim = self.width // self.heads
        group_size = self.heads // self.kv_heads
        batch, length, _ = x.shape

        y = nn.RMSNorm(epsilon=RMS_NORM_EPSILON, name="attention_norm")(x)
        q = nn.DenseGeneral((self.heads, head_dim), use_bias=False, name="query")(y)
        k = nn.DenseGeneral((self.kv_heads, head_dim), use_bias=False, name="key")(y)
        v = nn.DenseGeneral((self.kv_heads, head_dim), use_bias=False, name="value")(y)
        # Query head h = g * group_size + j belongs to key/value head g.
        q = q.reshape(batch, length, self.kv_heads, group_size, head_dim)
        logits = jnp.einsum("bqgjd,bsgd->bgjqs", q, k) / np.sqrt(head_dim)
        causal = jnp.tril(jnp.ones((length, length), bool))
        logits = jnp.where(causal, logits, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(logits, axis=-1)
        attended = jnp.einsum("bgjqs,bsgd->bqgjd", weights, v)
        attended = attended.reshape(batch, length, self.heads, head_dim)
        x = x + nn.DenseGeneral(self.width, axis=(-2, -1), use_bias=False, name="output")(attended)

        y = nn.RMSNorm(epsilon=RMS_NORM_EPSILON, name="mlp_norm")(x)
        hidden = jax.nn.gelu(nn.Dense(self.ffn, use_bias=False, name="up")(y))
        return x + nn.Dense(self.width, use_bias=False, name="down")(hidden)


class ReferenceTransformer(nn.Module):
    """Decoder-only transformer with exactly one candidate's sizes."""

    vocab_size: int
    seq_len: int
    width: int
    depth: int
    heads: int
    kv_heads: int
    ffn: int

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(self.vocab_size, self.width, name="token_embedding")(tokens)
        positions = self.param("position_embedding", nn.initializers.normal(0.02),
                               (self.seq_len, self.width))
        x = x + positions[: tokens.shape[-1]]
        for index in range(self.depth):
            x = ReferenceBlock(self.width, self.heads, self.kv_heads, self.ffn,
                               name=f"block_{index}")(x)
        x = nn.RMSNorm(epsilon=RMS_NORM_EPSILON, name="final_norm")(x)
        return nn.Dense(self.vocab_size, use_bias=False, name="unembed")(x)


def reference_model(dims_row: dict[str, int], *, vocab_size: int, seq_len: int) -> ReferenceTransformer:
    """Build the unpadded model for one candidate; `dims_row` maps PrototypeDims fields to ints."""
    return ReferenceTransformer(
        vocab_size=vocab_size, seq_len=seq_len, width=dims_row["width"], depth=dims_row["depth"],
        heads=dims_row["heads"], kv_heads=dims_row["kv_heads"], ffn=dims_row["ffn"],
    )


def slice_candidate_params(padded, dims_row: dict[str, int]) -> dict:
    """Cut one candidate's parameters out of its padded parameters.

    Args:
        padded: the `params` collection of `PaddedTransformer` for one candidate (no
            candidate axis).
        dims_row: that candidate's sizes, a dict of ints keyed by PrototypeDims fields.

    Returns:
        A `params` collection for `reference_model(dims_row, ...)`.
    """
    d, h, kv = dims_row["width"], dims_row["heads"], dims_row["kv_heads"]
    e, f = dims_row["head_dim"], dims_row["ffn"]
    blocks = padded["blocks"]
    params = {
        "token_embedding": {"embedding": padded["token_embedding"][:, :d]},
        "position_embedding": padded["position_embedding"][:, :d],
        "final_norm": {"scale": padded["final_norm"][:d]},
        "unembed": {"kernel": padded["unembed"][:d, :]},
    }
    for index in range(dims_row["depth"]):
        params[f"block_{index}"] = {
            "attention_norm": {"scale": blocks["attention_norm"][index, :d]},
            "query": {"kernel": blocks["query"][index, :d, :h, :e]},
            "key": {"kernel": blocks["key"][index, :d, :kv, :e]},
            "value": {"kernel": blocks["value"][index, :d, :kv, :e]},
            "output": {"kernel": blocks["output"][index, :h, :e, :d]},
            "mlp_norm": {"scale": blocks["mlp_norm"][index, :d]},
            "up": {"kernel": blocks["up"][index, :d, :f]},
            "down": {"kernel": blocks["down"][index, :f, :d]},
        }
    return params
