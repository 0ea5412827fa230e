"""Benchmark: 16 prototypes trained as one padded program vs one plain Flax model at a time.

Both sides start from the same weights (each plain model gets its slice of the padded
initialization), see the same batches, and use the same AdamW settings and schedule, the
plain side through `optax.adamw` with `optax.warmup_cosine_decay_schedule`. Times include
compilation: the padded side compiles one set of programs, the plain side compiles an
init, a train step and an evaluation per candidate. The script prints both wall times,
their ratio, the machine, and the largest relative difference between the two sides'
validation losses.

Run: .venv/bin/python benches/prototypes.py [--steps 30] [--candidates 16]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from metagen_jax.prototype.data import synthetic_data
from metagen_jax.prototype.reference import reference_model, slice_candidate_params
from metagen_jax.prototype.scaling import prototype_dims
from metagen_jax.prototype.train import (OptimizerConfig, next_token_loss, train_population,
                                         weight_decay_mask)

LEARNING_RATE = 1e-2
SEED = 0


def mixed_genomes(count: int, seed: int) -> np.ndarray:
    """Sample valid genomes with mixed width, depth, heads, kv heads and FFN multiplier."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        heads = int(rng.choice([8, 16, 32, 64]))
        hidden = heads * int(rng.choice([64, 128]))
        kv_heads = int(rng.choice([1, heads // 4, heads]))
        rows.append((hidden, int(rng.choice([8, 16, 24, 32])), heads, kv_heads,
                     int(rng.choice([8, 12, 16]))))
    return np.array(rows, np.int32)


def train_one_plain(row, init_params, batches, validation, *, vocab_size, steps, warmup, config):
    """Train one unpadded model with plain Flax and optax; return its validation loss."""
    model = reference_model(row, vocab_size=vocab_size, seq_len=batches.shape[-1] - 1)
    jax.jit(model.init)(jax.random.key(SEED), batches[0][:, :-1])  # a plain user's init cost
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, LEARNING_RATE, warmup, steps, LEARNING_RATE * config.final_fraction)
    tx = optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.adamw(schedule, b1=config.b1, b2=config.b2, eps=config.eps,
                    weight_decay=config.weight_decay, mask=weight_decay_mask),
    )

    @jax.jit
    def step(params, opt_state, tokens):
        loss, grads = jax.value_and_grad(
            lambda p: next_token_loss(model.apply({"params": p}, tokens[:, :-1]), tokens))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def evaluate(params, sequences):
        logits = model.apply({"params": params}, sequences[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(logits, sequences[:, 1:]).mean()

    params = init_params
    opt_state = tx.init(params)
    for index in range(steps):
        params, opt_state, _ = step(params, opt_state, batches[index])
    return float(evaluate(params, validation))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per candidate")
    parser.add_argument("--candidates", type=int, default=16, help="population size")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per step")
    parser.add_argument("--seq-len", type=int, default=48, help="input tokens per sequence")
    args = parser.parse_args()

    data = synthetic_data()
    genomes = mixed_genomes(args.candidates, seed=1)
    dims = prototype_dims(genomes)
    config = OptimizerConfig()
    warmup = max(1, args.steps // 10)
    options = dict(steps=args.steps, seed=SEED, data=data, batch_size=args.batch_size,
                   seq_len=args.seq_len, learning_rate=LEARNING_RATE, warmup_steps=warmup,
                   optimizer=config)

    # 1. Padded population, compilation included. CPU time is printed beside wall time
    # because on a shared machine the wall time also measures other processes' load.
    started, started_cpu = time.perf_counter(), time.process_time()
    batched = train_population(dims, **options)
    padded_seconds = time.perf_counter() - started
    padded_cpu = time.process_time() - started_cpu

    # 2. Shared inputs for the plain side, prepared outside its timing: the initial padded
    # weights (from the already compiled programs), every step's batch, the validation set.
    initial = train_population(dims, **{**options, "steps": 0}, keep_params=True).params
    length = args.seq_len + 1
    batches = np.asarray(data.training_block(SEED, 0, args.steps, args.batch_size, length))
    validation = jnp.asarray(data.validation_set(args.batch_size, length, 4 * args.batch_size))

    # 3. One plain model at a time, compilation included.
    started, started_cpu = time.perf_counter(), time.process_time()
    plain_losses = []
    for index in range(dims.size):
        row = {name: int(value[index]) for name, value in dims._asdict().items()}
        params = slice_candidate_params(jax.tree.map(lambda leaf: leaf[index], initial), row)
        plain_losses.append(train_one_plain(row, params, batches, validation,
                                            vocab_size=data.vocab_size, steps=args.steps,
                                            warmup=warmup, config=config))
    plain_seconds = time.perf_counter() - started
    plain_cpu = time.process_time() - started_cpu

    plain_losses = np.array(plain_losses)
    relative = np.abs(batched.validation_loss - plain_losses) / np.abs(plain_losses)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}, jax {jax.__version__} on "
          f"{jax.devices()[0].platform} x{jax.device_count()}")
    print(f"population: {dims.size} candidates, widths {sorted(set(dims.width.tolist()))}, "
          f"depths {sorted(set(dims.depth.tolist()))}, {args.steps} steps, batch "
          f"{args.batch_size} x {args.seq_len} tokens")
    print(f"padded population (one program): {padded_seconds:8.1f} s wall, {padded_cpu:8.1f} s CPU")
    print(f"plain Flax, one model at a time:  {plain_seconds:8.1f} s wall, {plain_cpu:8.1f} s CPU")
    print(f"speed-up: {plain_seconds / padded_seconds:.1f}x wall, {plain_cpu / padded_cpu:.1f}x CPU")
    print(f"validation loss, padded: {np.round(batched.validation_loss, 4).tolist()}")
    print(f"validation loss, plain:  {np.round(plain_losses, 4).tolist()}")
    print(f"max relative difference: {relative.max():.2e} (target <= 1e-4)")


if __name__ == "__main__":
    main()
