"""Scaling rule from full-size candidates to small prototypes that are cheap to train.

A prototype keeps the shape of its candidate at a much smaller size. Width and depth shrink
by two factors shared by the whole batch, so candidates keep their order and their relative
sizes. The other genes are ratios, and the rule keeps them unchanged whenever the small
width allows it.

What `prototype_dims` preserves, up to rounding and the clamps listed below:

- The FFN multiplier ffn / width: exact, because ffn = width * ffn_quarters // 4 and the
  prototype width is a multiple of 4.
- The number of heads, hence head_dim / width = 1 / heads, while the prototype head
  dimension stays at or above `min_head_dim`. Otherwise the head count drops to the largest
  one that keeps head_dim >= min_head_dim.
- The grouped-query ratio num_heads / num_kv_heads, whenever some head count allowed by the
  point above is a multiple of it and divides the width. Otherwise kv heads become the
  largest divisor of the head count not above heads / ratio (1 when the ratio is larger
  than the head count, so multi-query attention stays multi-query).
- Width ratios and depth ratios between candidates of one batch. So each candidate's
  depth-to-width ratio is kept up to a factor, depth_scale / width_scale, that is the same
  for the whole batch. Ratios of non-embedding parameter counts (which scale as
  depth * width^2) are kept too.

What it does not preserve: absolute sizes, the absolute depth-to-width ratio, the share of
embedding parameters, tokens per parameter, and any difference between candidates that
rounding to `width_multiple`, the clamps `min_width` and depth >= 1, or the head dimension
floor remove. By default the widest and deepest candidate of the batch sets the two scale
factors, so a candidate's prototype depends on the rest of its batch; pass
`reference_hidden` and `reference_layers` (for example the search space's upper bounds) to
make the mapping independent of the batch.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from metagen_jax.space import FFN_QUARTERS, HEADS, HIDDEN, KV_HEADS, LAYERS, NUM_GENES


class PrototypeDims(NamedTuple):
    """Sizes of a batch of prototypes, one int32 array of shape (P,) per field.

    Being a NamedTuple, it is a pytree: `jax.vmap` maps over its fields together.

    Attributes:
        width: model width (residual stream features).
        depth: number of transformer blocks.
        heads: query heads.
        kv_heads: key and value heads; divides `heads`.
        head_dim: features per head; heads * head_dim == width.
        ffn: hidden units of the feed-forward block.
    """

    width: np.ndarray
    depth: np.ndarray
    heads: np.ndarray
    kv_heads: np.ndarray
    head_dim: np.ndarray
    ffn: np.ndarray

    @property
    def size(self) -> int:
        """Number of prototypes."""
        return int(np.shape(self.width)[0])

    def take(self, indices) -> PrototypeDims:
        """Select prototypes by index along the candidate axis."""
        return PrototypeDims(*(np.asarray(field)[indices] for field in self))


@dataclasses.dataclass(frozen=True)
class PaddedShape:
    """Padded parameter shape that contains every prototype of a batch; hashable for jit caches.

    Attributes:
        vocab_size: tokens in the vocabulary.
        seq_len: tokens per training sequence (the learned position table has this length).
        width, depth, heads, kv_heads, head_dim, ffn: the maximum of each size over the batch.
    """

    vocab_size: int
    seq_len: int
    width: int
    depth: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int

    @classmethod
    def covering(cls, dims: PrototypeDims, *, vocab_size: int, seq_len: int) -> PaddedShape:
        """Return the smallest padded shape that contains every prototype in `dims`."""
        sizes = {name: int(np.max(getattr(dims, name))) for name in PrototypeDims._fields}
        return cls(vocab_size=int(vocab_size), seq_len=int(seq_len), **sizes)


def validate_genomes(genomes) -> np.ndarray:
    """Check a population of genomes and return it as an int64 array of shape (P, 5).

    Raises:
        ValueError: when the array is not an integer (P, 5) array with P >= 1, a gene is not
            positive, heads do not divide hidden_size or kv heads do not divide heads.
    """
    array = np.asarray(genomes)
    if array.ndim != 2 or array.shape[1] != NUM_GENES or array.shape[0] < 1:
        raise ValueError(f"genomes: expected an integer array of shape (P, {NUM_GENES}) with P >= 1, "
                         f"got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"genomes: expected an integer dtype, got {array.dtype}")
    array = array.astype(np.int64)
    bad_rows = np.flatnonzero(np.any(array < 1, axis=1))
    if bad_rows.size:
        row = int(bad_rows[0])
        raise ValueError(f"genomes: every gene must be >= 1, row {row} is {array[row].tolist()}")
    checks = (
        (array[:, HIDDEN] % array[:, HEADS] != 0, "num_heads must divide hidden_size"),
        (array[:, HEADS] % array[:, KV_HEADS] != 0, "num_kv_heads must divide num_heads"),
    )
    for failing, rule in checks:
        if np.any(failing):
            row = int(np.flatnonzero(failing)[0])
            raise ValueError(f"genomes: {rule}, row {row} is {array[row].tolist()}")
    return array


def validate_dims(dims: PrototypeDims) -> PrototypeDims:
    """Check prototype sizes and return them as int32 numpy arrays of one shape (P,).

    Raises:
        ValueError: when the fields differ in shape, a size is not positive,
            heads * head_dim != width, or kv_heads does not divide heads.
    """
    fields = [np.asarray(field) for field in dims]
    shapes = {field.shape for field in fields}
    if len(shapes) != 1 or len(fields[0].shape) != 1 or fields[0].shape[0] < 1:
        raise ValueError(f"dims: expected fields of one shape (P,) with P >= 1, got shapes "
                         f"{[field.shape for field in fields]}")
    if not all(np.issubdtype(field.dtype, np.integer) for field in fields):
        raise ValueError(f"dims: expected integer fields, got dtypes "
                         f"{[str(field.dtype) for field in fields]}")
    dims = PrototypeDims(*(field.astype(np.int32) for field in fields))
    checks = (
        (np.any(np.stack(dims) < 1, axis=0), "every size must be >= 1"),
        (dims.heads * dims.head_dim != dims.width, "heads * head_dim must equal width"),
        (dims.heads % dims.kv_heads != 0, "kv_heads must divide heads"),
    )
    for failing, rule in checks:
        if np.any(failing):
            row = int(np.flatnonzero(failing)[0])
            raise ValueError(f"dims: {rule}, prototype {row} is "
                             f"{ {name: int(value[row]) for name, value in dims._asdict().items()} }")
    return dims


def prototype_dims(
    genomes,
    *,
    max_width: int = 64,
    max_depth: int = 4,
    min_width: int = 16,
    min_head_dim: int = 8,
    width_multiple: int = 8,
    reference_hidden: int | None = None,
    reference_layers: int | None = None,
) -> PrototypeDims:
    """Map full-size genomes to prototype sizes that keep their shape ratios.

    Width scales by width_scale = min(1, max_width / reference_hidden) and depth by
    depth_scale = min(1, max_depth / reference_layers), with both references defaulting to
    the batch maximum. The module docstring lists what this keeps and what it loses.

    Args:
        genomes: int array (P, 5) in the genome layout (hidden_size, num_layers, num_heads,
            num_kv_heads, ffn_quarters).
        max_width: width of a candidate whose hidden_size equals reference_hidden; must be a
            multiple of width_multiple.
        max_depth: depth of a candidate whose num_layers equals reference_layers.
        min_width: smallest prototype width; a multiple of width_multiple, <= max_width.
        min_head_dim: smallest head dimension; head counts drop to respect it.
        width_multiple: prototype widths are rounded to a multiple of this (a multiple of 4).
        reference_hidden: hidden_size that maps to max_width; None uses the batch maximum.
        reference_layers: num_layers that maps to max_depth; None uses the batch maximum.

    Returns:
        PrototypeDims with int32 arrays of shape (P,).

    Raises:
        ValueError: on invalid genomes or options, naming the option and the expected value.
    """
    genomes = validate_genomes(genomes)
    _check_scaling_options(max_width, max_depth, min_width, min_head_dim, width_multiple)
    hidden = genomes[:, HIDDEN]
    layers = genomes[:, LAYERS]
    heads = genomes[:, HEADS]
    kv_heads = genomes[:, KV_HEADS]
    if reference_hidden is None:
        reference_hidden = int(hidden.max())
    if reference_layers is None:
        reference_layers = int(layers.max())
    if reference_hidden < 1 or reference_layers < 1:
        raise ValueError(f"reference_hidden and reference_layers must be >= 1, got "
                         f"{reference_hidden} and {reference_layers}")

    # 1. Width and depth: one scale factor each for the whole batch.
    width_scale = min(1.0, max_width / reference_hidden)
    depth_scale = min(1.0, max_depth / reference_layers)
    width = np.round(hidden * width_scale / width_multiple) * width_multiple
    width = np.clip(width, min_width, max_width).astype(np.int64)
    depth = np.clip(np.round(layers * depth_scale), 1, max_depth).astype(np.int64)

    # 2. Heads: keep the head count, capped so head_dim >= min_head_dim, and prefer counts
    # that are a multiple of the kv grouping ratio. Vectorized over candidate head counts.
    group = heads // kv_heads
    head_limit = np.minimum(heads, width // min_head_dim)
    options = np.arange(1, max_width // min_head_dim + 1)[None, :]
    divides_width = (width[:, None] % options == 0) & (options <= head_limit[:, None])
    keeps_group = divides_width & (options % group[:, None] == 0)
    best_any = np.max(np.where(divides_width, options, 0), axis=1)
    best_grouped = np.max(np.where(keeps_group, options, 0), axis=1)
    new_heads = np.where(best_grouped > 0, best_grouped, best_any)

    # 3. Kv heads: heads / group when the group survived, else the largest divisor of the
    # head count not above heads // group (at least 1).
    kv_target = np.maximum(1, new_heads // group)
    divisor_options = np.arange(1, options.shape[1] + 1)[None, :]
    is_divisor = (new_heads[:, None] % divisor_options == 0) & (divisor_options <= kv_target[:, None])
    new_kv_heads = np.max(np.where(is_divisor, divisor_options, 0), axis=1)

    ffn = width * genomes[:, FFN_QUARTERS] // 4
    return validate_dims(PrototypeDims(
        width=width, depth=depth, heads=new_heads, kv_heads=new_kv_heads,
        head_dim=width // new_heads, ffn=ffn,
    ))


def _check_scaling_options(max_width, max_depth, min_width, min_head_dim, width_multiple) -> None:
    if width_multiple < 4 or width_multiple % 4 != 0:
        raise ValueError(f"width_multiple must be a positive multiple of 4, got {width_multiple}")
    if max_width < width_multiple or max_width % width_multiple != 0:
        raise ValueError(f"max_width must be a positive multiple of width_multiple={width_multiple}, "
                         f"got {max_width}")
    if min_width < width_multiple or min_width % width_multiple != 0 or min_width > max_width:
        raise ValueError(f"min_width must be a multiple of width_multiple={width_multiple} in "
                         f"[{width_multiple}, max_width={max_width}], got {min_width}")
    if max_depth < 1:
        raise ValueError(f"max_depth must be >= 1, got {max_depth}")
    if not 1 <= min_head_dim <= min_width:
        raise ValueError(f"min_head_dim must be in [1, min_width={min_width}], got {min_head_dim}")
