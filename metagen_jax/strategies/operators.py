"""Variation and selection operators of the evolutionary search, as pure array functions.

Every operator takes an explicit PRNG key and whole populations (int32 arrays of shape
(P, NUM_GENES)). None loops over candidates in Python, and all run under `jax.jit`,
`jax.vmap` and `lax.scan`. The space is a static Python object: its tables enter traced
code as constants.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from metagen_jax.pareto._keys import float_key, int_key, lexsort, position_bits
from metagen_jax.pareto.ranking import feasibility
from metagen_jax.space import FFN_QUARTERS, HEADS, HIDDEN, HIDDEN_STEP, KV_HEADS, LAYERS, NUM_GENES, SearchSpace

# Genome numbers are int32 on device (x64 is off), so spaces must stay below this size.
MAX_SPACE_SIZE = np.iinfo(np.int32).max


@dataclasses.dataclass(frozen=True)
class VariationSettings:
    """Rates and step sizes of crossover and mutation (hashable, so it can be static).

    Attributes:
        crossover_rate: probability that a child mixes two parents; otherwise it copies
            the first parent before mutation.
        crossover_eta: distribution index of simulated binary crossover; larger values
            keep children closer to their parents.
        gene_mutation_rate: probability that each gene mutates. A child whose draw selects
            no gene still mutates one gene chosen at random, so no child is a plain copy.
        width_scale: factor by which a multiplicative width step multiplies or divides
            the hidden size.
        max_width_steps: an additive width step moves by 1..max_width_steps times 64.
        max_depth_step: depth moves by 1..max_depth_step layers.
        scale_width_with_depth: when depth mutates, also scale the width and the heads by
            sqrt(old depth / new depth) in place of any width step, so the parameter count
            (about depth x width^2) and the head size stay about the same.
        max_head_step: heads move by 1..max_head_step places among the head counts that
            divide the width.
        max_kv_step: kv heads move by 1..max_kv_step places among the divisors of the heads.
        max_ffn_step: the FFN multiplier moves by 1..max_ffn_step quarter steps.
        duplicate_rounds: rounds of redrawing duplicate children (see `replace_duplicates`).
    """

    crossover_rate: float = 0.9
    crossover_eta: float = 5.0
    gene_mutation_rate: float = 0.1
    width_scale: float = 1.25
    max_width_steps: int = 4
    max_depth_step: int = 3
    scale_width_with_depth: bool = True
    max_head_step: int = 2
    max_kv_step: int = 1
    max_ffn_step: int = 2
    duplicate_rounds: int = 8

    def __post_init__(self) -> None:
        for name in ("crossover_rate", "gene_mutation_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if not self.crossover_eta >= 0.0:
            raise ValueError(f"crossover_eta must be at least 0, got {self.crossover_eta}")
        if not isinstance(self.scale_width_with_depth, bool):
            raise ValueError(f"scale_width_with_depth must be a bool, got {self.scale_width_with_depth!r}")
        if self.width_scale <= 1.0:
            raise ValueError(f"width_scale must be greater than 1, got {self.width_scale}")
        for name in ("max_width_steps", "max_depth_step", "max_head_step", "max_kv_step",
                     "max_ffn_step", "duplicate_rounds"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")


# Genome numbers ------------------------------------------------------------------------


def _layout_keys(space: SearchSpace) -> np.ndarray:
    """Sorted int32 key of each layout row, in the same order as `space.layouts`."""
    radix = space.bounds.heads_max + 1
    layouts = space.layouts.astype(np.int64)
    keys = (layouts[:, 0] // HIDDEN_STEP * radix + layouts[:, 1]) * radix + layouts[:, 2]
    if keys.max() > MAX_SPACE_SIZE:
        raise ValueError(f"layout keys exceed int32 for bounds {space.bounds}")
    # The layout table is listed in lexicographic order, so the keys are already sorted.
    return keys.astype(np.int32)


def genome_numbers(space: SearchSpace, genomes: jax.Array) -> jax.Array:
    """Map valid genomes to their numbers in the space (the inverse of `genomes_at`), int32.

    Used as the packed sort key of duplicate detection. Invalid genomes get an arbitrary
    number, so repair them first.

    Raises:
        ValueError: the space has more than 2^31 - 1 genomes.
    """
    if space.size > MAX_SPACE_SIZE:
        raise ValueError(f"the search space has {space.size} genomes, more than the int32 limit {MAX_SPACE_SIZE}")
    radix = space.bounds.heads_max + 1
    keys = jnp.asarray(_layout_keys(space))
    genome_keys = (genomes[:, HIDDEN] // HIDDEN_STEP * radix + genomes[:, HEADS]) * radix + genomes[:, KV_HEADS]
    layout = jnp.clip(jnp.searchsorted(keys, genome_keys), 0, keys.shape[0] - 1).astype(jnp.int32)
    depth = genomes[:, LAYERS] - space.bounds.layers_min
    ffn = genomes[:, FFN_QUARTERS] - space.bounds.ffn_quarters_min
    return (layout * space.num_depths + depth) * space.num_ffn_steps + ffn


def sample_uniform(key: jax.Array, space: SearchSpace, count: int) -> jax.Array:
    """Draw `count` genomes uniformly from the space, with replacement, in one random draw.

    The same distribution as `SearchSpace.sample`, with one draw of random bits instead of
    three. Each separate threefry draw added about 0.5 to 1 s of XLA:CPU compile time
    (measured with JAX 0.10.2 on a 2-core VM). The modulo bias is below
    space_size / 2^32 per genome.
    """
    bits = jax.random.bits(key, (count, 3), dtype=jnp.uint32)
    sizes = jnp.asarray([len(space.layouts), space.num_depths, space.num_ffn_steps], dtype=jnp.uint32)
    parts = (bits % sizes).astype(jnp.int32)
    return space.genomes_from_parts(parts[:, 0], parts[:, 1], parts[:, 2])


# Selection -----------------------------------------------------------------------------


def argsort_bits(bits: jax.Array) -> jax.Array:
    """Return, for each row of random uint32 `bits` (R, S), the permutation that sorts it.

    Each row sorts one int32 per element that packs the high random bits above the
    element's index, a single-operand sort that XLA:CPU runs several times faster than
    `argsort` (measured with jax 0.10.2: the tournament of 1,000 took 0.4 ms instead of
    1.0 ms). Elements whose high bits are equal keep index order; with 1,000 elements and
    21 high bits that happens about once in four rows, and otherwise the result equals
    `jnp.argsort(bits, axis=1)`.
    """
    size = bits.shape[1]
    index_bits = position_bits(size)
    if index_bits > 30:
        raise ValueError(f"argsort_bits supports at most 2**30 elements, got {size}")
    packed = ((bits >> (index_bits + 1)) << index_bits).astype(jnp.int32) | jnp.arange(size, dtype=jnp.int32)
    return lax.sort(packed, dimension=1) & ((1 << index_bits) - 1)


def binary_tournament(key: jax.Array, objectives: jax.Array, violation: jax.Array, crowding: jax.Array,
                      count: int) -> jax.Array:
    """Pick `count` parent indices, each the winner of a binary tournament, as pymoo's NSGA-II does.

    Contestants are paired off from consecutive random permutations of the population, so
    every individual enters ceil(2 * count / P) or one fewer tournaments. When either
    contestant is infeasible, the smaller violation wins (a feasible one counts as 0).
    Between two feasible contestants, one that Pareto-dominates the other wins, and
    otherwise the larger crowding distance. Remaining ties go to either contestant with
    probability 1/2. Drawing contestants without replacement and comparing by dominance
    instead of rank raised the final hypervolume (figures in `evolution`'s module docstring).

    Source: pymoo 0.6.2, `TournamentSelection` and `binary_tournament` in
    pymoo/algorithms/moo/nsga2.py with its default "comp_by_dom_and_crowding".

    Args:
        key: PRNG key.
        objectives: (P, M) float32 objectives, all minimised.
        violation: (P,) float32 constraint violation, 0 or less when feasible. NaN, or a
            non-finite objective, counts as violation +inf.
        crowding: (P,) float32 crowding distance.
        count: number of winners.

    Returns:
        (count,) int32 indices into the population.
    """
    size = objectives.shape[0]
    permutations = -(-2 * count // size)
    # One draw: sort keys for the permutations, then one coin per tournament.
    bits = jax.random.bits(key, (permutations * size + count,), dtype=jnp.uint32)
    order = argsort_bits(bits[: permutations * size].reshape(permutations, size))
    pairs = order.reshape(-1)[: 2 * count].reshape(count, 2)
    first, second = pairs[:, 0], pairs[:, 1]
    coin = bits[permutations * size:] < jnp.uint32(1 << 31)

    feasible, violation = feasibility(objectives, violation)
    excess = jnp.where(feasible, 0.0, violation)
    by_violation = (excess[first] < excess[second]) | ((excess[first] == excess[second]) & coin)

    a, b = objectives[first], objectives[second]
    first_dominates = jnp.all(a <= b, axis=1) & jnp.any(a < b, axis=1)
    second_dominates = jnp.all(b <= a, axis=1) & jnp.any(b < a, axis=1)
    more_crowded = (crowding[first] > crowding[second]) | ((crowding[first] == crowding[second]) & coin)
    by_dominance = first_dominates | (~second_dominates & more_crowded)

    first_wins = jnp.where(feasible[first] & feasible[second], by_dominance, by_violation)
    return jnp.where(first_wins, first, second)


def survivor_order(ranks: jax.Array, crowding: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Order a population for elitist survival: by rank, then by decreasing crowding.

    With `key`, rows with equal rank and crowding come in random order, as in pymoo 0.6.2's
    `RankAndCrowding` survival, so neither parents nor children win ties such as those
    among the +inf boundary points. Without it the sort is stable and earlier rows win ties.
    """
    keys = [int_key(ranks), float_key(-jnp.asarray(crowding, jnp.float32))]
    bits = [32, 32]
    if key is not None:
        keys.append(jax.random.bits(key, ranks.shape, dtype=jnp.uint32) >> 16)
        bits.append(16)
    return lexsort(keys, key_bits=bits)


# Crossover -----------------------------------------------------------------------------


def _gene_coordinates(space: SearchSpace) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound of each gene in crossover coordinates (the width in 64-steps)."""
    b = space.bounds
    lower = np.zeros(NUM_GENES, dtype=np.float32)
    upper = np.zeros(NUM_GENES, dtype=np.float32)
    lower[HIDDEN], upper[HIDDEN] = 0, (b.hidden_max - b.hidden_min) // HIDDEN_STEP
    lower[LAYERS], upper[LAYERS] = b.layers_min, b.layers_max
    lower[HEADS], upper[HEADS] = b.heads_min, b.heads_max
    lower[KV_HEADS], upper[KV_HEADS] = 1, b.heads_max
    lower[FFN_QUARTERS], upper[FFN_QUARTERS] = b.ffn_quarters_min, b.ffn_quarters_max
    return lower, upper


def _spread_factor(uniform: jax.Array, room: jax.Array, eta: float) -> jax.Array:
    """Bounded SBX spread factor for uniforms in [0, 1) and the room to the bound in gaps."""
    beta = 1.0 + 2.0 * room
    alpha = 2.0 - beta ** -(eta + 1.0)
    inside = uniform * alpha
    exponent = 1.0 / (eta + 1.0)
    return jnp.where(uniform <= 1.0 / alpha, inside ** exponent, (1.0 / (2.0 - inside)) ** exponent)


def simulated_binary_crossover(key: jax.Array, space: SearchSpace, first: jax.Array, second: jax.Array,
                               rate: float, eta: float) -> jax.Array:
    """Cross two parent populations gene by gene with bounded simulated binary crossover.

    The width is crossed in 64-steps, the other genes as integers. With probability
    `rate` a child crosses its parents; then each gene where they differ is crossed with
    probability 1/2: the child lands at (y1 + y2) / 2 -/+ beta * (y2 - y1) / 2, on the
    lower or upper side with equal chance, with the spread factor beta drawn so that
    P(beta > b) = b^-(eta + 1) / 2 away from the bounds and never past them, then rounded.
    Other genes copy `first`. Heads and kv heads may no longer divide the width: mutation
    repairs them.

    Reference: Deb and Agrawal (1995), "Simulated binary crossover for continuous search
    space", Complex Systems 9(2), with the bounded form of Deb's NSGA-II code.

    Args:
        key: PRNG key.
        space: the search space, for the gene bounds.
        first, second: (P, NUM_GENES) int32 parents.
        rate: crossover probability per child.
        eta: distribution index (0 spreads widely; 20 stays close to the parents).

    Returns:
        (P, NUM_GENES) int32 children, possibly invalid until repaired.
    """
    lower, upper = (jnp.asarray(bound) for bound in _gene_coordinates(space))
    shift = jnp.zeros(NUM_GENES, dtype=jnp.float32).at[HIDDEN].set(space.bounds.hidden_min)
    scale = jnp.ones(NUM_GENES, dtype=jnp.float32).at[HIDDEN].set(HIDDEN_STEP)
    x1 = (first.astype(jnp.float32) - shift) / scale
    x2 = (second.astype(jnp.float32) - shift) / scale

    uniform = jax.random.uniform(key, (first.shape[0], 3 * NUM_GENES + 1))
    spread_draw, gene_draw, side_draw = (uniform[:, i * NUM_GENES:(i + 1) * NUM_GENES] for i in range(3))
    crossed = (uniform[:, -1:] < rate) & (gene_draw < 0.5) & (x1 != x2)

    low, high = jnp.minimum(x1, x2), jnp.maximum(x1, x2)
    gap = jnp.where(high > low, high - low, 1.0)
    # The side is drawn first, so only its spread factor is computed (powers are costly on
    # XLA:CPU).
    below = side_draw < 0.5
    room = jnp.where(below, low - lower, upper - high) / gap
    spread = _spread_factor(spread_draw, room, eta) * gap
    child = jnp.clip(0.5 * (low + high + jnp.where(below, -spread, spread)), lower, upper)
    child = jnp.where(crossed, jnp.rint(child), x1)
    return (child * scale + shift).astype(jnp.int32)


# Mutation ------------------------------------------------------------------------------


def _signed_steps(uniform: jax.Array, max_step: int) -> jax.Array:
    """Turn uniforms in [0, 1) into int32 steps spread evenly over -max_step..-1 and 1..max_step."""
    slot = jnp.minimum(jnp.floor(uniform * (2 * max_step)).astype(jnp.int32), 2 * max_step - 1)
    return jnp.where(slot < max_step, slot + 1, max_step - 1 - slot)


class AllowedTable(NamedTuple):
    """Allowed integers 0..V-1 of each of R rows, for moving among them by gathers only.

    Attributes:
        values: (R, V) int32, row r's allowed integers in increasing order, padded with 0.
        place: (R, V) int32, the place in `values[r]` of integer v, or of the allowed
            integer nearest to v when v is not allowed (ties go to the smaller one).
        count: (R,) int32 number of allowed integers of each row.
    """

    values: np.ndarray
    place: np.ndarray
    count: np.ndarray


def allowed_table(allowed: np.ndarray) -> AllowedTable:
    """Build the table of a (R, V) bool mask on the host."""
    allowed = np.asarray(allowed, dtype=bool)
    rows, width = allowed.shape
    candidates = np.arange(width)
    values = np.zeros((rows, width), dtype=np.int32)
    place = np.zeros((rows, width), dtype=np.int32)
    count = allowed.sum(axis=1).astype(np.int32)
    for row in np.flatnonzero(count):
        members = candidates[allowed[row]]
        values[row, : len(members)] = members
        # Same rule as SearchSpace.repair: the nearest allowed integer, ties to the smaller.
        distance = 2 * np.abs(members[None, :] - candidates[:, None]) + (members[None, :] > candidates[:, None])
        place[row] = np.argmin(distance, axis=1)
    return AllowedTable(values, place, count)


def step_among_allowed(table: AllowedTable, rows: jax.Array, current: jax.Array, steps: jax.Array) -> jax.Array:
    """Move each value by `steps` places along the allowed integers of its row.

    A value that is not allowed first snaps to the nearest allowed one, so a step of 0
    repairs it.

    Args:
        table: allowed integers per row, from `allowed_table`.
        rows: (P,) int32 row of each value; every row must allow at least one integer.
        current: (P,) int32 values in 0..V-1.
        steps: (P,) int32 signed number of places to move.

    Returns:
        (P,) int32 allowed values, clipped to the smallest and largest allowed one.
    """
    values, place, count = (jnp.asarray(array) for array in table)
    target = jnp.clip(place[rows, current] + steps, 0, count[rows] - 1)
    return values[rows, target]


@functools.lru_cache(maxsize=16)
def head_tables(space: SearchSpace) -> tuple[AllowedTable, AllowedTable]:
    """Tables of the head counts allowed for each width step and the kv heads for each head count."""
    heads_ok, kv_ok = space._head_tables
    return allowed_table(heads_ok), allowed_table(kv_ok)


def _scale_width_with_depth(space: SearchSpace, moved: jax.Array, genomes: jax.Array, new_layers: jax.Array,
                            depth_chosen: jax.Array) -> jax.Array:
    """Scale the width and heads of `genomes` by sqrt(old depth / new depth) where depth mutates.

    The new depth is clipped to its bounds first, so a step that repair would undo scales
    nothing. Width and heads are rounded here and snapped to the space by the caller's repair.
    """
    b = space.bounds
    old_layers = genomes[:, LAYERS].astype(jnp.float32)
    ratio = jnp.sqrt(old_layers / jnp.clip(new_layers, b.layers_min, b.layers_max).astype(jnp.float32))
    hidden = jnp.round(genomes[:, HIDDEN] * ratio).astype(jnp.int32)
    heads = jnp.round(genomes[:, HEADS] * ratio).astype(jnp.int32)
    moved = moved.at[:, HIDDEN].set(jnp.where(depth_chosen, hidden, moved[:, HIDDEN]))
    return moved.at[:, HEADS].set(jnp.where(depth_chosen, heads, moved[:, HEADS]))


def mutate(key: jax.Array, space: SearchSpace, genomes: jax.Array, settings: VariationSettings) -> jax.Array:
    """Mutate each gene with steps suited to that gene, and return valid genomes.

    Width steps multiply or divide the hidden size by `width_scale` or add a few multiples
    of 64. Depth and FFN steps are small signed moves. With `scale_width_with_depth`, a
    depth step from L to L' layers also multiplies the width and the heads by
    sqrt(L / L'), replacing any width step of that child. Under a parameter budget the
    feasible genomes lie along a band of about constant L * width^2, which a depth or width
    step alone mostly leaves. After those steps, `space.repair` maps the genomes into the
    space. Heads then move to a nearby head count that divides the width, and kv heads
    snap to the nearest divisor of the new heads and may move to a nearby one, so the
    result is valid without a second repair.

    Args:
        key: PRNG key.
        space: the search space.
        genomes: (P, NUM_GENES) int32 genomes, for example crossover children; they need
            not be valid.
        settings: rates and step sizes.

    Returns:
        (P, NUM_GENES) int32 valid genomes.
    """
    count = genomes.shape[0]
    # One draw for every random choice, because each separate draw adds compile time (see sample_uniform).
    uniform = jax.random.uniform(key, (count, 13))

    # 1. Choose the genes to mutate, at least one per child.
    chosen = uniform[:, :NUM_GENES] < settings.gene_mutation_rate
    forced_gene = jnp.minimum(jnp.floor(uniform[:, 5] * NUM_GENES).astype(jnp.int32), NUM_GENES - 1)
    forced = jax.nn.one_hot(forced_gene, NUM_GENES, dtype=jnp.bool_)
    chosen = jnp.where(chosen.any(axis=1, keepdims=True), chosen, forced)

    # 2. Width, depth and FFN steps; repair snaps the width to the grid and the bounds.
    hidden = genomes[:, HIDDEN]
    scaled = jnp.where(uniform[:, 6] < 0.5, hidden * settings.width_scale, hidden / settings.width_scale)
    shifted = hidden + HIDDEN_STEP * _signed_steps(uniform[:, 7], settings.max_width_steps)
    new_hidden = jnp.where(uniform[:, 8] < 0.5, jnp.round(scaled).astype(jnp.int32), shifted)
    new_layers = genomes[:, LAYERS] + _signed_steps(uniform[:, 9], settings.max_depth_step)
    new_ffn = genomes[:, FFN_QUARTERS] + _signed_steps(uniform[:, 10], settings.max_ffn_step)
    moved = genomes.at[:, HIDDEN].set(jnp.where(chosen[:, HIDDEN], new_hidden, hidden))
    if settings.scale_width_with_depth:
        moved = _scale_width_with_depth(space, moved, genomes, new_layers, chosen[:, LAYERS])
    moved = moved.at[:, LAYERS].set(jnp.where(chosen[:, LAYERS], new_layers, genomes[:, LAYERS]))
    moved = moved.at[:, FFN_QUARTERS].set(jnp.where(chosen[:, FFN_QUARTERS], new_ffn, genomes[:, FFN_QUARTERS]))
    moved = space.repair(moved)

    # 3. Heads and kv heads step along the divisors allowed by the (possibly new) width.
    heads_table, kv_table = head_tables(space)
    width_index = (moved[:, HIDDEN] - space.bounds.hidden_min) // HIDDEN_STEP
    head_steps = jnp.where(chosen[:, HEADS], _signed_steps(uniform[:, 11], settings.max_head_step), 0)
    heads = step_among_allowed(heads_table, width_index, moved[:, HEADS], head_steps)
    kv_steps = jnp.where(chosen[:, KV_HEADS], _signed_steps(uniform[:, 12], settings.max_kv_step), 0)
    kv = step_among_allowed(kv_table, heads, moved[:, KV_HEADS], kv_steps)
    return moved.at[:, HEADS].set(heads).at[:, KV_HEADS].set(kv)


# Duplicates ----------------------------------------------------------------------------


def duplicate_mask(space: SearchSpace, children: jax.Array, parents: jax.Array) -> jax.Array:
    """Mark children equal to a parent or to an earlier child, by sorting genome numbers.

    Args:
        space: the search space.
        children: (C, NUM_GENES) int32 valid genomes.
        parents: (P, NUM_GENES) int32 valid genomes.

    Returns:
        (C,) bool, True for every child to replace. Of several equal children the first
        is kept.
    """
    child_numbers = genome_numbers(space, children)
    if parents.shape[0]:
        parent_numbers = jnp.sort(genome_numbers(space, parents))
        place = jnp.clip(jnp.searchsorted(parent_numbers, child_numbers), 0, parent_numbers.shape[0] - 1)
        in_parents = parent_numbers[place] == child_numbers
    else:
        in_parents = jnp.zeros(child_numbers.shape, dtype=bool)

    # A child repeats an earlier one when another child with its number has a smaller
    # index. Sorting the numbers alone (one int32 operand) and marking the smallest index
    # per number costs less on XLA:CPU than a stable argsort.
    count = child_numbers.shape[0]
    slot = jnp.searchsorted(jnp.sort(child_numbers), child_numbers).astype(jnp.int32)
    index = jnp.arange(count, dtype=jnp.int32)
    first = jnp.full((count,), count, dtype=jnp.int32).at[slot].min(index)
    return in_parents | (first[slot] != index)


def replace_duplicates(key: jax.Array, space: SearchSpace, children: jax.Array, parents: jax.Array,
                       rounds: int) -> jax.Array:
    """Replace duplicate children (see `duplicate_mask`) by fresh uniform samples.

    Redraws run until no duplicate remains or for `rounds` rounds. In a space with fewer
    than C + P genomes, or after `rounds` unlucky rounds, some duplicates remain.

    Args:
        key: PRNG key.
        space: the search space.
        children: (C, NUM_GENES) int32 valid genomes.
        parents: (P, NUM_GENES) int32 valid genomes; use a (0, NUM_GENES) array for none.
        rounds: maximum number of redraw rounds.

    Returns:
        (C, NUM_GENES) int32 valid genomes.
    """
    def duplicates(genomes):
        return duplicate_mask(space, genomes, parents)

    def redraw(carry):
        round_index, genomes, mask = carry
        fresh = sample_uniform(jax.random.fold_in(key, round_index), space, genomes.shape[0])
        genomes = jnp.where(mask[:, None], fresh, genomes)
        return round_index + 1, genomes, duplicates(genomes)

    def pending(carry):
        round_index, _, mask = carry
        return (round_index < rounds) & mask.any()

    _, children, _ = jax.lax.while_loop(pending, redraw, (jnp.int32(0), children, duplicates(children)))
    return children
