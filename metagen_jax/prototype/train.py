"""Train a population of prototypes together as one compiled program and rank them by loss.

Each candidate's parameters are padded to the population's largest sizes
(`metagen_jax.prototype.model`), so one train step, vmapped over the candidate axis, trains
every candidate. `jax.shard_map` splits that axis over the devices of a one-axis mesh, in
the manner of `pmap`. The init, train-block and validation programs are compiled once per
padded shape, batch layout and optimizer settings. The number of steps, learning rates,
warm-up and the mix of candidates are runtime values, so changing them does not recompile.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, PartitionSpec

from metagen_jax.prototype.data import PrototypeData, quick_compile_options, synthetic_data
from metagen_jax.prototype.model import PaddedTransformer
from metagen_jax.prototype.scaling import PaddedShape, PrototypeDims, prototype_dims, validate_dims

CANDIDATE_AXIS = "candidates"
# Input tokens per training sequence. Each sequence contains one more token, the last target.
DEFAULT_SEQ_LEN = 64
# Tag folded into the seed's key for parameter initialization; data.py uses 0 and 1.
INIT_STREAM = 2
FAILURE_MESSAGES = {
    1: "loss became NaN at step {step}",
    2: "loss became infinite at step {step}",
    3: "gradient became non-finite at step {step}",
}


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """AdamW settings shared by every candidate; hashable, so part of the jit cache key.

    Attributes:
        b1, b2, eps: Adam moment decay rates and denominator offset.
        weight_decay: decoupled weight decay; norm scales are not decayed.
        clip_norm: global gradient norm clip applied before AdamW.
        final_fraction: the cosine schedule ends at this fraction of the peak rate.
    """

    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    clip_norm: float = 1.0
    final_fraction: float = 0.1


class TrainState(NamedTuple):
    """Training state of a population; every field has a leading candidate axis (C,).

    Attributes:
        params: padded model parameters.
        opt_state: optax state of the clip-then-AdamW chain.
        failed: bool, training stopped because of a non-finite loss or gradient.
        failure_step: int32, 1-based step at which it failed, 0 if it did not.
        failure_code: int32, key of FAILURE_MESSAGES, 0 if it did not fail.
        loss: float32, training loss of the last step taken.
    """

    params: dict
    opt_state: tuple
    failed: jax.Array
    failure_step: jax.Array
    failure_code: jax.Array
    loss: jax.Array


@dataclasses.dataclass(frozen=True)
class PrototypeResults:
    """Outcome of prototype training, one entry per candidate in input order.

    Attributes:
        validation_loss: float64 (P,), mean next-token cross-entropy in nats on the validation
            split; NaN for failed candidates.
        train_loss: float64 (P,), training loss of the last step each candidate took.
        failed: bool (P,), True when training or validation produced a non-finite value.
        failure_reason: per candidate, None or a message such as "loss became NaN at step 37".
        seconds: wall time of the whole call, compilation included.
        steps: optimizer steps per candidate.
        dims: the prototype sizes that were trained.
        params: with `keep_params=True`, the trained padded parameters with a leading
            candidate axis (P, ...); otherwise None.
    """

    validation_loss: np.ndarray
    train_loss: np.ndarray
    failed: np.ndarray
    failure_reason: list[str | None]
    seconds: float
    steps: int
    dims: PrototypeDims
    params: dict | None = None

    def ranking(self) -> np.ndarray:
        """Return candidate indices from best to worst validation loss, failed ones last."""
        key = np.where(self.failed, np.inf, self.validation_loss)
        return np.argsort(key, kind="stable")


def warmup_cosine_learning_rate(step, peak, warmup_steps, total_steps, final_fraction):
    """Return the learning rate of 0-based update `step`: linear warm-up, then cosine decay.

    Equals `optax.warmup_cosine_decay_schedule(0, peak, warmup_steps, total_steps,
    peak * final_fraction)`, but accepts traced step counts, so changing the number of steps
    does not recompile.
    """
    step = jnp.asarray(step, jnp.float32)
    warmup = jnp.asarray(warmup_steps, jnp.float32)
    decay = jnp.maximum(jnp.asarray(total_steps, jnp.float32) - warmup, 1.0)
    warming = peak * step / jnp.maximum(warmup, 1.0)
    progress = jnp.clip((step - warmup) / decay, 0.0, 1.0)
    cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    decayed = peak * ((1.0 - final_fraction) * cosine + final_fraction)
    return jnp.where(step < warmup, warming, decayed)


def weight_decay_mask(params):
    """Decay every parameter except RMSNorm scales (any path entry whose name has "norm")."""
    def decays(path, _):
        return not any("norm" in str(getattr(entry, "key", "")) for entry in path)
    return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(config: OptimizerConfig) -> optax.GradientTransformation:
    """Build global-norm clipping followed by AdamW whose learning rate is set every step."""
    adamw = optax.inject_hyperparams(optax.adamw, static_args=("mask",))
    return optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        adamw(learning_rate=0.0, b1=config.b1, b2=config.b2, eps=config.eps,
              weight_decay=config.weight_decay, mask=weight_decay_mask),
    )


def next_token_loss(logits, tokens):
    """Return the mean next-token cross-entropy of `logits` for `tokens` (B, T+1).

    The inputs were tokens[:, :-1], so the targets are tokens[:, 1:].
    """
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()


def train_prototypes(
    genomes,
    *,
    steps: int = 100,
    seed: int = 0,
    data: PrototypeData | None = None,
    batch_size: int = 8,
    seq_len: int = DEFAULT_SEQ_LEN,
    learning_rate: float | np.ndarray = 1e-2,
    warmup_steps: int | None = None,
    progress: Callable[[int], None] | None = None,
    max_width: int = 64,
    max_depth: int = 4,
    candidates_per_device: int | None = None,
    block_steps: int = 10,
    quick_compile: bool = False,
    optimizer: OptimizerConfig = OptimizerConfig(),
) -> PrototypeResults:
    """Scale full-size genomes to prototypes (`prototype_dims`), train them and validate.

    The default sizes suit a CPU. On a shared 2-core machine, 16 prototypes of width <= 64
    took about 3 s per step together (benches/prototypes.py). On an accelerator, raise
    `max_width` and `batch_size`.

    Args:
        genomes: int array (P, 5) in the genome layout.
        steps: optimizer steps per candidate.
        seed: seed of parameter initialization and training batches.
        data: token data; None uses `synthetic_data()`.
        batch_size: sequences per step, shared by all candidates.
        seq_len: input tokens per sequence.
        learning_rate: peak AdamW learning rate, a scalar or one per candidate (P,).
        warmup_steps: linear warm-up steps; None uses max(1, steps // 10).
        progress: called from the host after each block of steps with the number of steps
            done, counted over all chunks (it ends at `steps` when there is one chunk).
        max_width, max_depth: prototype size limits passed to `prototype_dims`.
        candidates_per_device: train at most this many candidates per device at a time;
            None trains the whole population in one chunk.
        block_steps: steps per call of the compiled train program.
        quick_compile: on CPU, compile the train program without backend optimization.
            On a shared 2-core machine this cut its compile time about 5x and made each
            step 2-3x slower, so it pays off for runs of a few dozen steps.
        optimizer: AdamW and schedule settings.

    Returns:
        PrototypeResults in the order of `genomes`.

    Example:
        >>> genomes = np.array([[4096, 32, 32, 8, 16], [2048, 24, 16, 16, 12]], np.int32)
        >>> results = train_prototypes(genomes, steps=20)  # doctest: +SKIP
        >>> results.ranking()  # doctest: +SKIP
        array([0, 1])
    """
    dims = prototype_dims(genomes, max_width=max_width, max_depth=max_depth)
    return train_population(
        dims, steps=steps, seed=seed, data=data, batch_size=batch_size, seq_len=seq_len,
        learning_rate=learning_rate, warmup_steps=warmup_steps, progress=progress,
        candidates_per_device=candidates_per_device, block_steps=block_steps,
        quick_compile=quick_compile, optimizer=optimizer,
    )


def train_population(
    dims: PrototypeDims,
    *,
    steps: int = 100,
    seed: int = 0,
    data: PrototypeData | None = None,
    batch_size: int = 8,
    seq_len: int = DEFAULT_SEQ_LEN,
    learning_rate: float | np.ndarray = 1e-2,
    warmup_steps: int | None = None,
    progress: Callable[[int], None] | None = None,
    candidates_per_device: int | None = None,
    block_steps: int = 10,
    quick_compile: bool = False,
    optimizer: OptimizerConfig = OptimizerConfig(),
    validation_sequences: int | None = None,
    shape: PaddedShape | None = None,
    keep_params: bool = False,
) -> PrototypeResults:
    """Train prototypes of the given sizes together and return their validation losses.

    Takes the arguments of `train_prototypes`, with prototype sizes in place of genomes
    and without the size limits, plus:

    Args:
        validation_sequences: validation sequences; None uses 4 * batch_size.
        shape: padded shape to compile for; None uses the smallest one that contains `dims`.
            A fixed shape lets populations with different maxima share one program.
        keep_params: also return the trained padded parameters.

    Raises:
        ValueError: on invalid sizes or options, naming the option and the expected value.
    """
    started = time.perf_counter()
    dims = validate_dims(dims)
    data = data if data is not None else synthetic_data()
    num_candidates = dims.size
    _check_options(steps, batch_size, seq_len, block_steps, candidates_per_device)
    peak = np.asarray(learning_rate, np.float32)
    if (peak.shape not in ((), (num_candidates,)) or not np.all(np.isfinite(peak))
            or np.any(peak <= 0)):
        raise ValueError(f"learning_rate must be a positive finite scalar or an array of shape "
                         f"({num_candidates},), got {learning_rate!r}")
    peak = np.broadcast_to(peak, (num_candidates,))
    warmup = max(1, steps // 10) if warmup_steps is None else int(warmup_steps)
    if warmup < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    length = seq_len + 1
    data.check_length(length)
    validation = data.validation_set(batch_size, length, validation_sequences or 4 * batch_size)

    covering = PaddedShape.covering(dims, vocab_size=data.vocab_size, seq_len=seq_len)
    shape = shape or covering
    _check_shape_covers(shape, covering)
    # NOTE: the mesh spans jax.devices(); only single-process runs have been tested.
    mesh = Mesh(np.array(jax.devices()), (CANDIDATE_AXIS,))
    programs = _compiled_programs(shape, mesh, optimizer, batch_size, block_steps, quick_compile)

    # Chunks of equal size, a multiple of the device count; padding slots repeat candidate 0.
    devices = mesh.devices.size
    per_chunk = devices * (candidates_per_device or math.ceil(num_candidates / devices))
    num_chunks = math.ceil(num_candidates / per_chunk)
    slots = np.arange(num_chunks * per_chunk)
    source = np.where(slots < num_candidates, slots, 0)
    slot_dims = dims.take(source)
    slot_peak = peak[source]

    init_root = jax.random.fold_in(jax.random.key(seed), INIT_STREAM)
    init_keys = jax.vmap(lambda i: jax.random.fold_in(init_root, i))(source)
    validation_batches, validation_weights = _batch_validation(validation, batch_size)

    outputs, kept_params = [], []
    for chunk in range(num_chunks):
        part = slice(chunk * per_chunk, (chunk + 1) * per_chunk)
        chunk_dims = PrototypeDims(*(jnp.asarray(field[part]) for field in slot_dims))
        state = programs.init(init_keys[part], chunk_dims)
        done = 0
        while done < steps:
            count = min(block_steps, steps - done)
            tokens = data.training_block(seed, done, block_steps, batch_size, length)
            state = programs.train_block(state, chunk_dims, jnp.asarray(slot_peak[part]), tokens,
                                         jnp.int32(done), jnp.int32(count), jnp.int32(steps),
                                         jnp.int32(warmup))
            done += count
            if progress is not None:
                jax.block_until_ready(state.loss)
                progress(chunk * steps + done)
        loss = programs.evaluate(state.params, chunk_dims, validation_batches, validation_weights)
        outputs.append(jax.device_get((loss, state.loss, state.failed, state.failure_step,
                                       state.failure_code)))
        if keep_params:
            kept_params.append(jax.device_get(state.params))

    stacked = [np.concatenate(field)[:num_candidates] for field in zip(*outputs)]
    params = None
    if keep_params:
        params = jax.tree.map(lambda *parts: np.concatenate(parts)[:num_candidates], *kept_params)
    return _collect_results(*stacked, steps=steps, dims=dims, params=params,
                            seconds=time.perf_counter() - started)


def _collect_results(validation_loss, train_loss, failed, failure_step, failure_code, *, steps,
                     dims, params, seconds) -> PrototypeResults:
    validation_loss = validation_loss.astype(np.float64)
    reasons: list[str | None] = []
    failed = failed.astype(bool).copy()
    for index in range(failed.shape[0]):
        if failed[index]:
            reasons.append(FAILURE_MESSAGES[int(failure_code[index])].format(
                step=int(failure_step[index])))
        elif not np.isfinite(validation_loss[index]):
            failed[index] = True
            reasons.append(f"validation loss is {validation_loss[index]} after {steps} steps")
        else:
            reasons.append(None)
    validation_loss = np.where(failed, np.nan, validation_loss)
    return PrototypeResults(
        validation_loss=validation_loss, train_loss=train_loss.astype(np.float64), failed=failed,
        failure_reason=reasons, seconds=seconds, steps=steps, dims=dims, params=params,
    )


def _check_options(steps, batch_size, seq_len, block_steps, candidates_per_device) -> None:
    for name, value, least in (("steps", steps, 0), ("batch_size", batch_size, 1),
                               ("seq_len", seq_len, 1), ("block_steps", block_steps, 1)):
        if not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if candidates_per_device is not None and candidates_per_device < 1:
        raise ValueError(f"candidates_per_device must be >= 1 or None, got {candidates_per_device}")


def _check_shape_covers(shape: PaddedShape, covering: PaddedShape) -> None:
    for field in dataclasses.fields(PaddedShape):
        if field.name in ("vocab_size", "seq_len"):
            if getattr(shape, field.name) != getattr(covering, field.name):
                raise ValueError(f"shape.{field.name} must equal {getattr(covering, field.name)} "
                                 f"(from the data and seq_len), got {getattr(shape, field.name)}")
        elif getattr(shape, field.name) < getattr(covering, field.name):
            raise ValueError(f"shape.{field.name}={getattr(shape, field.name)} is smaller than "
                             f"the largest candidate's {getattr(covering, field.name)}")


def _batch_validation(sequences: np.ndarray, batch_size: int):
    """Pad validation sequences to whole batches; return tokens (N, B, L) and weights (N, B)."""
    count = sequences.shape[0]
    batches = math.ceil(count / batch_size)
    padded = np.zeros((batches * batch_size, sequences.shape[1]), np.int32)
    padded[:count] = sequences
    weights = (np.arange(batches * batch_size) < count).astype(np.float32)
    return (jnp.asarray(padded.reshape(batches, batch_size, -1)),
            jnp.asarray(weights.reshape(batches, batch_size)))


class _Programs(NamedTuple):
    init: Callable
    train_block: Callable
    evaluate: Callable


@functools.lru_cache(maxsize=16)
def _compiled_programs(shape: PaddedShape, mesh: Mesh, optimizer: OptimizerConfig,
                       batch_size: int, block_steps: int, quick_compile: bool) -> _Programs:
    """Build the jitted init, train-block and validation programs for one padded shape."""
    model = PaddedTransformer(shape)
    tx = make_optimizer(optimizer)
    sample_tokens = jnp.zeros((batch_size, shape.seq_len), jnp.int32)
    per_candidate = PartitionSpec(CANDIDATE_AXIS)
    replicated = PartitionSpec()

    def init_one(key, dims):
        params = model.init(key, sample_tokens, dims)["params"]
        return TrainState(params=params, opt_state=tx.init(params), failed=jnp.bool_(False),
                          failure_step=jnp.int32(0), failure_code=jnp.int32(0),
                          loss=jnp.float32(jnp.nan))

    def loss_fn(params, tokens, dims):
        logits = model.apply({"params": params}, tokens[:, :-1], dims)
        return next_token_loss(logits, tokens)

    def step_one(state: TrainState, dims, peak, tokens, step, total_steps, warmup_steps):
        loss, grads = jax.value_and_grad(loss_fn)(state.params, tokens, dims)
        rate = warmup_cosine_learning_rate(step, peak, warmup_steps, total_steps,
                                           optimizer.final_fraction)
        clip_state, adamw_state = state.opt_state
        hyperparams = {**adamw_state.hyperparams, "learning_rate": rate}
        adamw_state = adamw_state._replace(hyperparams=hyperparams)
        updates, opt_state = tx.update(grads, (clip_state, adamw_state), state.params)
        params = optax.apply_updates(state.params, updates)

        # A candidate whose loss or gradient is not finite keeps its last finite parameters
        # and takes no further updates. Candidates are independent along the vmapped axis,
        # so a NaN in one never reaches the others.
        grad_norm = optax.tree.norm(grads)
        code = jnp.where(jnp.isnan(loss), 1,
                         jnp.where(jnp.isinf(loss), 2, jnp.where(jnp.isfinite(grad_norm), 0, 3)))
        newly_failed = jnp.logical_and(~state.failed, code > 0)
        frozen = jnp.logical_or(state.failed, newly_failed)
        keep = functools.partial(jax.tree.map, lambda old, new: jnp.where(frozen, old, new))
        return TrainState(
            params=keep(state.params, params),
            opt_state=keep(state.opt_state, opt_state),
            failed=frozen,
            failure_step=jnp.where(newly_failed, step + 1, state.failure_step),
            failure_code=jnp.where(newly_failed, code, state.failure_code),
            loss=jnp.where(frozen, state.loss, loss),
        )

    def train_block(state, dims, peak, tokens, start, count, total_steps, warmup_steps):
        step_all = jax.vmap(step_one, in_axes=(0, 0, 0, None, None, None, None))

        def body(offset, carry):
            return step_all(carry, dims, peak, tokens[offset], start + offset, total_steps,
                            warmup_steps)

        return jax.lax.fori_loop(0, count, body, state)

    def evaluate(params, dims, batches, weights):
        def loss_one(params, dims):
            def batch_loss(total, batch):
                tokens, weight = batch
                logits = model.apply({"params": params}, tokens[:, :-1], dims)
                per_token = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])
                return total + jnp.sum(per_token.mean(axis=1) * weight), None

            # The zero starts from a per-candidate value, so its shard_map type is varying.
            zero = jnp.zeros_like(dims.width, jnp.float32)
            total, _ = jax.lax.scan(batch_loss, zero, (batches, weights))
            return total / jnp.sum(weights)

        return jax.vmap(loss_one)(params, dims)

    def sharded(fn, in_specs, out_specs):
        return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs)

    return _Programs(
        init=jax.jit(sharded(jax.vmap(init_one), (per_candidate, per_candidate), per_candidate),
                     compiler_options=quick_compile_options()),
        train_block=jax.jit(
            sharded(train_block,
                    (per_candidate, per_candidate, per_candidate, replicated, replicated,
                     replicated, replicated, replicated),
                    per_candidate),
            donate_argnums=0,
            compiler_options=quick_compile_options() if quick_compile else None,
        ),
        evaluate=jax.jit(sharded(evaluate, (per_candidate, per_candidate, replicated, replicated),
                                 per_candidate),
                         compiler_options=quick_compile_options()),
    )
