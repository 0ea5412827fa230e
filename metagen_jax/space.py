"""The search space: integer genomes, their bounds, sampling, enumeration and repair.

A genome is a row of int32 genes and a population an int32 array of shape (P, NUM_GENES):

    HIDDEN        hidden_size, a multiple of 64
    LAYERS        num_layers
    HEADS         num_heads, a divisor of hidden_size with a head size of 32 to 256
    KV_HEADS      num_kv_heads (grouped-query attention), a divisor of num_heads
    FFN_QUARTERS  4 * ffn_multiplier, so the multiplier moves in quarter steps

Valid genomes are numbered: the (hidden, heads, kv heads) combinations form a table of
"attention layouts", and genome number i is layout i // (L * Q), then depth, then FFN step,
for L depths and Q FFN steps. That numbering gives the space's exact size, uniform
sampling and streaming enumeration without ever listing all genomes.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from metagen_jax.cost.architecture import Dims
from metagen_jax.cost.model import CostModel
from metagen_jax.cost.params import exact_quotient

HIDDEN, LAYERS, HEADS, KV_HEADS, FFN_QUARTERS = range(5)
NUM_GENES = 5
GENE_NAMES = ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "ffn_quarters")

HIDDEN_STEP = 64


@dataclasses.dataclass(frozen=True)
class GeneBounds:
    """Inclusive bounds of each gene. Hidden sizes step by 64, FFN multipliers by 0.25."""

    hidden_min: int = 256
    hidden_max: int = 8192
    layers_min: int = 4
    layers_max: int = 64
    heads_min: int = 4
    heads_max: int = 128
    ffn_quarters_min: int = 8
    ffn_quarters_max: int = 32
    attention: bool = True
    # Head size limits: published models use 64 to 256 (GPT-2, BERT and ViT 64, Llama 128,
    # Gemma 256), and attention kernels want a multiple of 8. Smaller heads would make the KV
    # cache look cheap while the loss model cannot see their cost in quality.
    head_dim_min: int = 32
    head_dim_max: int = 256
    head_dim_multiple: int = 8

    def __post_init__(self) -> None:
        if self.hidden_min % HIDDEN_STEP or self.hidden_max % HIDDEN_STEP:
            raise ValueError(f"hidden bounds must be multiples of {HIDDEN_STEP}, got {self.hidden_min}..{self.hidden_max}")
        for low, high, name in (
            (self.hidden_min, self.hidden_max, "hidden_size"),
            (self.layers_min, self.layers_max, "num_layers"),
            (self.heads_min, self.heads_max, "num_heads"),
            (self.ffn_quarters_min, self.ffn_quarters_max, "ffn_quarters"),
        ):
            if not 0 < low <= high:
                raise ValueError(f"empty or invalid range for {name}: {low}..{high}")


def attention_layouts(bounds: GeneBounds) -> np.ndarray:
    """List every valid (hidden, heads, kv_heads) row within `bounds`, in lexicographic order.

    Without attention (mlp, cnn, gnn) the heads genes carry no meaning and are pinned to
    the smallest head count that divides every width, so each width has one layout.
    """
    rows = []
    for hidden in range(bounds.hidden_min, bounds.hidden_max + 1, HIDDEN_STEP):
        if not bounds.attention:
            rows.append((hidden, bounds.heads_min, bounds.heads_min))
            continue
        for heads in range(bounds.heads_min, min(bounds.heads_max, hidden) + 1):
            if hidden % heads:
                continue
            head_dim = hidden // heads
            if not bounds.head_dim_min <= head_dim <= bounds.head_dim_max or head_dim % bounds.head_dim_multiple:
                continue
            rows.extend((hidden, heads, kv) for kv in range(1, heads + 1) if heads % kv == 0)
    if not rows:
        raise ValueError(f"no valid attention layout in {bounds}")
    return np.asarray(rows, dtype=np.int32)


def _nearest_valid(values: jax.Array, valid: jax.Array) -> jax.Array:
    """Nearest allowed integer per row; `valid` is a (P, V) mask over the integers 0..V-1."""
    candidates = jnp.arange(valid.shape[-1], dtype=jnp.int32)
    distance = jnp.abs(candidates[None, :] - values[:, None])
    # Ties go to the smaller value: distance * 2 plus one for the larger side.
    distance = distance * 2 + (candidates[None, :] > values[:, None])
    distance = jnp.where(valid, distance, jnp.iinfo(jnp.int32).max)
    return jnp.argmin(distance, axis=-1).astype(jnp.int32)


@dataclasses.dataclass(frozen=True, eq=False)
class SearchSpace:
    """Valid genomes of one search: bounds plus the table of attention layouts.

    Attributes:
        bounds: inclusive gene bounds.
        layouts: (T, 3) int32 table of valid (hidden, heads, kv_heads).
    """

    bounds: GeneBounds
    layouts: np.ndarray

    @classmethod
    def from_bounds(cls, bounds: GeneBounds) -> SearchSpace:
        return cls(bounds=bounds, layouts=attention_layouts(bounds))

    # Sizes ------------------------------------------------------------------------------

    @property
    def num_depths(self) -> int:
        return self.bounds.layers_max - self.bounds.layers_min + 1

    @property
    def num_ffn_steps(self) -> int:
        return self.bounds.ffn_quarters_max - self.bounds.ffn_quarters_min + 1

    @property
    def size(self) -> int:
        """Exact number of valid genomes."""
        return len(self.layouts) * self.num_depths * self.num_ffn_steps

    def fingerprint(self) -> str:
        """Return a short string that identifies the space, for checkpoints and caches."""
        b = self.bounds
        return (f"h{b.hidden_min}-{b.hidden_max}:l{b.layers_min}-{b.layers_max}:"
                f"a{b.heads_min}-{b.heads_max}:f{b.ffn_quarters_min}-{b.ffn_quarters_max}:"
                f"att{int(b.attention)}:n{self.size}")

    # Enumeration and sampling ------------------------------------------------------------

    def genomes_at(self, indices) -> np.ndarray:
        """Decode genome numbers (any integer array below `size`) on the host."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.size):
            raise IndexError(f"genome index out of range 0..{self.size - 1}")
        per_layout = self.num_depths * self.num_ffn_steps
        layout = self.layouts[indices // per_layout]
        rest = indices % per_layout
        return self._assemble(np, layout, rest // self.num_ffn_steps, rest % self.num_ffn_steps)

    def genomes_from_parts(self, layout_index, depth_index, ffn_index) -> jax.Array:
        """Build genomes from a layout row number, a depth step and an FFN step (jit-able)."""
        layout = jnp.asarray(self.layouts)[layout_index]
        return self._assemble(jnp, layout, depth_index, ffn_index)

    def _assemble(self, xp, layout, depth_index, ffn_index):
        b = self.bounds
        columns = [None] * NUM_GENES
        columns[HIDDEN] = layout[..., 0]
        columns[LAYERS] = (depth_index + b.layers_min).astype(xp.int32)
        columns[HEADS] = layout[..., 1]
        columns[KV_HEADS] = layout[..., 2]
        columns[FFN_QUARTERS] = (ffn_index + b.ffn_quarters_min).astype(xp.int32)
        return xp.stack([xp.asarray(c, dtype=xp.int32) for c in columns], axis=-1)

    def sample(self, key: jax.Array, count: int) -> jax.Array:
        """Draw `count` genomes uniformly from the valid ones, with replacement."""
        layout_key, depth_key, ffn_key = jax.random.split(key, 3)
        layout = jax.random.randint(layout_key, (count,), 0, len(self.layouts))
        depth = jax.random.randint(depth_key, (count,), 0, self.num_depths)
        ffn = jax.random.randint(ffn_key, (count,), 0, self.num_ffn_steps)
        return self.genomes_from_parts(layout, depth, ffn)

    # Repair ------------------------------------------------------------------------------

    @functools.cached_property
    def _head_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Masks: heads allowed for each width step, kv heads allowed for each head count."""
        b = self.bounds
        widths = (b.hidden_max - b.hidden_min) // HIDDEN_STEP + 1
        heads_ok = np.zeros((widths, b.heads_max + 1), dtype=bool)
        kv_ok = np.zeros((b.heads_max + 1, b.heads_max + 1), dtype=bool)
        for hidden, heads, kv in self.layouts:
            heads_ok[(hidden - b.hidden_min) // HIDDEN_STEP, heads] = True
            kv_ok[heads, kv] = True
        return heads_ok, kv_ok

    def repair(self, genomes: jax.Array) -> jax.Array:
        """Map any int genomes to the nearest valid genomes of this space (jit-able).

        Width snaps to the nearest multiple of 64 inside the bounds, depth and FFN steps are
        clipped, heads move to the nearest head count that divides the width, and kv heads
        to the nearest divisor of the heads. Valid genomes come back unchanged.
        """
        b = self.bounds
        genomes = jnp.asarray(genomes, dtype=jnp.int32)
        hidden = jnp.clip(genomes[:, HIDDEN], b.hidden_min, b.hidden_max)
        width_step = (hidden - b.hidden_min + HIDDEN_STEP // 2) // HIDDEN_STEP
        hidden = b.hidden_min + width_step * HIDDEN_STEP
        layers = jnp.clip(genomes[:, LAYERS], b.layers_min, b.layers_max)
        ffn = jnp.clip(genomes[:, FFN_QUARTERS], b.ffn_quarters_min, b.ffn_quarters_max)

        heads_ok, kv_ok = (jnp.asarray(table) for table in self._head_tables)
        heads = _nearest_valid(jnp.clip(genomes[:, HEADS], 0, b.heads_max), heads_ok[width_step])
        kv = _nearest_valid(jnp.clip(genomes[:, KV_HEADS], 0, b.heads_max), kv_ok[heads])

        columns = [None] * NUM_GENES
        columns[HIDDEN], columns[LAYERS], columns[HEADS] = hidden, layers, heads
        columns[KV_HEADS], columns[FFN_QUARTERS] = kv, ffn
        return jnp.stack(columns, axis=-1).astype(jnp.int32)

    def is_valid(self, genomes) -> np.ndarray:
        """Host check that each genome lies in this space."""
        genomes = np.asarray(genomes)
        b = self.bounds
        hidden, heads, kv = genomes[:, HIDDEN], genomes[:, HEADS], genomes[:, KV_HEADS]
        in_range = (
            (hidden >= b.hidden_min) & (hidden <= b.hidden_max) & (hidden % HIDDEN_STEP == 0)
            & (genomes[:, LAYERS] >= b.layers_min) & (genomes[:, LAYERS] <= b.layers_max)
            & (genomes[:, FFN_QUARTERS] >= b.ffn_quarters_min) & (genomes[:, FFN_QUARTERS] <= b.ffn_quarters_max)
        )
        keys = {tuple(row) for row in self.layouts.tolist()}
        layout_ok = np.array([(int(h), int(a), int(k)) in keys for h, a, k in zip(hidden, heads, kv)], dtype=bool)
        return in_range & layout_ok


def decode(genomes, xp=jnp) -> Dims:
    """Turn genomes into architecture sizes (struct of arrays)."""
    hidden = genomes[..., HIDDEN]
    return Dims(
        hidden=hidden,
        layers=genomes[..., LAYERS],
        heads=genomes[..., HEADS],
        kv_heads=genomes[..., KV_HEADS],
        ffn_hidden=exact_quotient(hidden * genomes[..., FFN_QUARTERS], 4),
    )


def narrow_bounds(bounds: GeneBounds, cost_model: CostModel, max_params: int | None,
                  min_params: int | None, memory_limit_bytes: float | None) -> GeneBounds:
    """Drop widths and depths that cannot meet the parameter or memory budget.

    A width is dropped when even its smallest model (fewest layers, smallest FFN, one kv
    head of the smallest head size) exceeds the maximum budget or the memory limit, or
    when its largest model (kv width equal to the width) falls short of the minimum budget.
    The depth range is then cut the same way at the narrowest and widest surviving widths. Bounds are never narrowed to nothing: when no width fits,
    the smallest width and depth remain, and the search reports every candidate infeasible.
    """
    config = cost_model.config
    widths = np.arange(bounds.hidden_min, bounds.hidden_max + 1, HIDDEN_STEP, dtype=np.int64)

    # kv width = kv_heads * (hidden // heads). With heads = hidden, kv_heads sets it directly:
    # the smallest is one head of the smallest head size, the largest is the whole width.
    def params(hidden, layers, kv_width, quarters):
        return cost_model.exact_params(Dims(hidden, layers, hidden, kv_width, hidden * quarters // 4))

    smallest_kv = np.int64(bounds.head_dim_min)
    smallest = params(widths, np.int64(bounds.layers_min), smallest_kv, np.int64(bounds.ffn_quarters_min))
    largest = params(widths, np.int64(bounds.layers_max), widths, np.int64(bounds.ffn_quarters_max))
    keep = np.ones(len(widths), dtype=bool)
    if max_params is not None:
        keep &= smallest <= max_params
    if min_params is not None:
        keep &= largest >= min_params
    if memory_limit_bytes is not None:
        keep &= smallest * config.weight_bytes <= memory_limit_bytes
    if not keep.any():
        return dataclasses.replace(bounds, hidden_max=bounds.hidden_min, layers_max=bounds.layers_min)
    kept = widths[keep]
    hidden_min, hidden_max = int(kept.min()), int(kept.max())

    depths = np.arange(bounds.layers_min, bounds.layers_max + 1, dtype=np.int64)
    narrow = np.full_like(depths, hidden_min)
    wide = np.full_like(depths, hidden_max)
    smallest_by_depth = params(narrow, depths, smallest_kv, np.int64(bounds.ffn_quarters_min))
    largest_by_depth = params(wide, depths, wide, np.int64(bounds.ffn_quarters_max))
    depth_keep = np.ones(len(depths), dtype=bool)
    if max_params is not None:
        depth_keep &= smallest_by_depth <= max_params
    if min_params is not None:
        depth_keep &= largest_by_depth >= min_params
    if not depth_keep.any():
        depth_keep[0] = True
    kept_depths = depths[depth_keep]
    return dataclasses.replace(
        bounds, hidden_min=hidden_min, hidden_max=hidden_max,
        layers_min=int(kept_depths.min()), layers_max=int(kept_depths.max()),
    )
