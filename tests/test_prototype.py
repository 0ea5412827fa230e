"""Tests of prototype training: exact masking, the scaling rule, data, and batched training."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from metagen_jax.prototype.data import (SyntheticTask, load_prototype_data, markov_entropy_rate,
                                        quick_compile_options, synthetic_data)
from metagen_jax.prototype.model import PaddedTransformer
from metagen_jax.prototype.reference import reference_model, slice_candidate_params
from metagen_jax.prototype.scaling import (PaddedShape, PrototypeDims, prototype_dims,
                                           validate_dims)
from metagen_jax.prototype.train import (PrototypeResults, train_population,
                                         warmup_cosine_learning_rate)


def make_dims(rows) -> PrototypeDims:
    """Build PrototypeDims from (width, depth, heads, kv_heads, head_dim, ffn) rows."""
    return validate_dims(PrototypeDims(*(np.array(column) for column in zip(*rows))))


def row_of(dims: PrototypeDims, index: int) -> dict[str, int]:
    return {name: int(value[index]) for name, value in dims._asdict().items()}


def assert_zero_outside(params, dims: PrototypeDims, index: int) -> None:
    """Assert that candidate `index` has no nonzero parameter outside its own slice."""
    candidate = jax.tree.map(lambda leaf: np.asarray(leaf[index], np.float64), params)
    sliced = slice_candidate_params(candidate, row_of(dims, index))
    total = sum(np.sum(leaf**2) for leaf in jax.tree.leaves(candidate))
    inside = sum(np.sum(leaf**2) for leaf in jax.tree.leaves(sliced))
    assert total == pytest.approx(inside, rel=1e-12), f"candidate {row_of(dims, index)}"


# Training tests share one padded shape (width 32, depth 2, heads 4, kv 3, head_dim 8,
# ffn 64, vocab 256, seq_len 24), so the train program compiles once for the module.
TRAIN_DIMS = make_dims([
    (16, 1, 2, 1, 8, 32),
    (24, 2, 3, 3, 8, 48),
    (32, 2, 4, 2, 8, 64),
    (16, 2, 2, 2, 8, 64),
])
OTHER_MIX = make_dims([
    (32, 1, 4, 1, 8, 32),
    (24, 2, 3, 3, 8, 64),
    (16, 2, 2, 1, 8, 16),
    (32, 2, 4, 2, 8, 48),
])
# Vocabulary 256 matches byte-level text, so the text-file test reuses the train program.
TASK = SyntheticTask(vocab_size=256, pairs=4, queries=4)
SEQ_LEN = 24
BATCH = 4
STEPS = 30
BLOCK = 10
LOG_VOCAB = math.log(256)


@contextlib.contextmanager
def count_compiles():
    """Count XLA compilations: total, and per jitted function name, inside the block."""
    counts = {"total": 0, "names": []}

    def on_event(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            counts["total"] += 1

    class Handler(logging.Handler):
        def emit(self, record):
            match = re.search(r"Finished XLA compilation of (\S+)", record.getMessage())
            if match:
                counts["names"].append(match.group(1))

    handler = Handler()
    logger = logging.getLogger("jax")
    # A CLI test in the same session may have raised the root level to ERROR, which would
    # drop log_compiles' WARNING records before they reach this handler.
    previous_level = logger.level
    logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        with jax.log_compiles():
            yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(on_event)
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def train(dims=TRAIN_DIMS, **options) -> PrototypeResults:
    settings = dict(steps=STEPS, seed=0, data=synthetic_data(TASK), batch_size=BATCH,
                    seq_len=SEQ_LEN, learning_rate=1e-2, block_steps=BLOCK, quick_compile=True)
    settings.update(options)
    return train_population(dims, **settings)


@pytest.fixture(scope="module")
def trained():
    """The module's first training run, with the compilations it triggered."""
    with count_compiles() as counts:
        results = train(keep_params=True)
    return results, counts


# Scaling rule.

def test_prototype_dims_hand_values():
    genomes = np.array([
        [4096, 32, 32, 8, 16],   # kv group 4 kept: 4 heads, 1 kv head
        [8192, 64, 64, 8, 12],   # largest: sets both scale factors (1/128 width, 1/16 depth)
        [2048, 24, 16, 16, 12],  # multi-head attention stays multi-head
        [1024, 16, 8, 1, 8],     # width 8 clamps to 16; multi-query stays multi-query
        [6144, 48, 48, 3, 10],   # group 16 cannot fit 6 heads: falls back to 1 kv head
    ], np.int32)
    dims = prototype_dims(genomes, max_width=64, max_depth=4)
    assert dims.width.tolist() == [32, 64, 16, 16, 48]
    assert dims.depth.tolist() == [2, 4, 2, 1, 3]
    assert dims.heads.tolist() == [4, 8, 2, 2, 6]
    assert dims.kv_heads.tolist() == [1, 1, 2, 1, 1]
    assert dims.head_dim.tolist() == [8, 8, 8, 8, 8]
    assert dims.ffn.tolist() == [128, 192, 48, 32, 120]


def test_prototype_dims_keeps_ratios():
    genomes = np.array([[4096, 32, 32, 8, 16], [2048, 16, 16, 4, 16]], np.int32)
    dims = prototype_dims(genomes, max_width=128, max_depth=8)
    ffn_multiplier = dims.ffn / dims.width
    assert ffn_multiplier.tolist() == [4.0, 4.0]
    assert (dims.heads // dims.kv_heads).tolist() == [4, 4]
    assert (dims.width[0] / dims.width[1], dims.depth[0] / dims.depth[1]) == (2.0, 2.0)


def test_prototype_dims_reference_makes_batch_independent():
    genome = np.array([[2048, 16, 16, 4, 16]], np.int32)
    with_bigger = np.concatenate([genome, [[8192, 64, 64, 8, 16]]])
    alone = prototype_dims(genome, reference_hidden=8192, reference_layers=64)
    in_batch = prototype_dims(with_bigger, reference_hidden=8192, reference_layers=64)
    assert [int(field[0]) for field in alone] == [int(field[0]) for field in in_batch]


@pytest.mark.parametrize("genomes, message", [
    (np.zeros((3,), np.int32), r"shape \(P, 5\)"),
    (np.array([[256, 4, 3, 1, 16]]), "num_heads must divide hidden_size"),
    (np.array([[256, 4, 8, 3, 16]]), "num_kv_heads must divide num_heads"),
    (np.array([[256.0, 4, 8, 8, 16]]), "integer dtype"),
    (np.array([[256, 0, 8, 8, 16]]), ">= 1"),
])
def test_prototype_dims_rejects_bad_genomes(genomes, message):
    with pytest.raises(ValueError, match=message):
        prototype_dims(genomes)


# Model.

def test_masked_model_equals_unpadded():
    dims = make_dims([
        (32, 2, 4, 2, 8, 64),
        (24, 3, 3, 1, 8, 48),
        (16, 1, 2, 2, 8, 96),
        (32, 3, 8, 4, 4, 32),
    ])
    vocab, length = 50, 12
    shape = PaddedShape.covering(dims, vocab_size=vocab, seq_len=length)
    model = PaddedTransformer(shape)
    tokens = jax.random.randint(jax.random.key(1), (2, length), 0, vocab)
    keys = jax.random.split(jax.random.key(0), dims.size)
    # Backend optimization changes no result, only compile time and speed.
    quick = quick_compile_options()
    init = jax.jit(jax.vmap(model.init, in_axes=(0, None, 0)), compiler_options=quick)
    params = jax.device_get(init(keys, tokens, dims))["params"]
    for index in range(dims.size):
        assert_zero_outside(params, dims, index)

    # The output layer starts at zero and norm scales at one; randomize the active entries
    # so that every parameter affects the comparison.
    rng = np.random.default_rng(0)
    width_mask = (np.arange(shape.width)[None, :] < dims.width[:, None]).astype(np.float32)
    params["unembed"] = 0.3 * rng.standard_normal(params["unembed"].shape) * width_mask[:, :, None]
    params["final_norm"] = (1 + 0.5 * rng.standard_normal(width_mask.shape)) * width_mask
    for name in ("attention_norm", "mlp_norm"):
        scale = 1 + 0.5 * rng.standard_normal(params["blocks"][name].shape)
        params["blocks"][name] = (scale * params["blocks"][name]).astype(np.float32)
    params = jax.tree.map(lambda leaf: np.asarray(leaf, np.float32), params)

    apply = jax.jit(jax.vmap(model.apply, in_axes=(0, None, 0)), compiler_options=quick)
    padded_logits = np.asarray(apply({"params": params}, tokens, dims))
    for index in range(dims.size):
        row = row_of(dims, index)
        candidate = jax.tree.map(lambda leaf: leaf[index], params)
        sliced = slice_candidate_params(candidate, row)
        reference = reference_model(row, vocab_size=vocab, seq_len=length)
        expected = jax.jit(reference.apply, compiler_options=quick)({"params": sliced}, tokens)
        np.testing.assert_allclose(padded_logits[index], expected, atol=1e-5, rtol=0,
                                   err_msg=f"candidate {row}")


# Schedule and data.

def test_schedule_matches_optax():
    reference = optax.warmup_cosine_decay_schedule(0.0, 2e-3, 7, 50, 2e-4)
    for step in (0, 3, 7, 8, 30, 49, 50, 60):
        ours = warmup_cosine_learning_rate(step, 2e-3, 7, 50, 0.1)
        assert float(ours) == pytest.approx(float(reference(step)), rel=1e-5, abs=1e-9)


def test_synthetic_recall_structure():
    data = synthetic_data(TASK)
    sequences = data.validation_set(BATCH, SEQ_LEN + 1, 16)
    states = TASK.markov_states
    assert sequences.shape == (16, SEQ_LEN + 1)
    for sequence in sequences:
        keys, values = sequence[0 : 2 * TASK.pairs : 2], sequence[1 : 2 * TASK.pairs : 2]
        assert len(set(keys.tolist())) == TASK.pairs
        assert np.all((keys >= states) & (keys < states + TASK.key_tokens))
        assert np.all(values >= states + TASK.key_tokens)
        answer = dict(zip(keys.tolist(), values.tolist()))
        rest = sequence[2 * TASK.pairs :]
        query_positions = np.flatnonzero((rest >= states) & (rest < states + TASK.key_tokens))
        assert len(query_positions) == TASK.queries
        for position in query_positions:
            assert rest[position + 1] == answer[int(rest[position])]
        is_markov = np.ones(rest.shape, bool)
        is_markov[query_positions] = False
        is_markov[query_positions + 1] = False
        assert np.all(rest[is_markov] < states)


def test_validation_split_differs_from_training():
    data = synthetic_data(TASK)
    validation = data.validation_set(BATCH, SEQ_LEN + 1, 8)
    training = np.asarray(data.training_block(data.seed, 0, BLOCK, BATCH, SEQ_LEN + 1))
    assert not np.any(np.all(training.reshape(-1, SEQ_LEN + 1)[:, None] == validation[None], -1))


def test_markov_entropy_rate_two_states():
    # Zipf weights over 2 states with exponent 1 are (1, 1/2): probabilities (2/3, 1/3) for
    # every state, so the entropy rate is that of a (2/3, 1/3) coin.
    task = SyntheticTask(vocab_size=4, key_tokens=1, value_tokens=1, pairs=1, queries=1,
                         zipf_exponent=1.0)
    expected = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert markov_entropy_rate(synthetic_data(task)) == pytest.approx(expected, rel=1e-6)


def test_load_text_and_token_files(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("héllo wörld " * 100, encoding="utf-8")
    data = load_prototype_data(text)
    total = len(("héllo wörld " * 100).encode("utf-8"))
    assert data.vocab_size == 256
    assert data.train_tokens.shape[1] + data.validation_tokens.shape[1] == total
    assert data.validation_tokens.shape[1] == round(total * 0.1)

    rows = tmp_path / "rows.npy"
    np.save(rows, np.arange(20 * 30).reshape(20, 30) % 97)
    data = load_prototype_data(rows)
    assert data.vocab_size == 97
    assert data.train_tokens.shape == (18, 30)
    assert data.validation_tokens.shape == (2, 30)


@pytest.mark.parametrize("name, content, message", [
    ("bad.txt", b"abc\xff\xfe", "not valid UTF-8"),
    ("empty.txt", b"", "empty"),
    ("floats.npy", np.ones(10, np.float32), "integer token ids"),
    ("negative.npy", np.array([1, -2, 3]), "non-negative"),
    ("cube.npy", np.zeros((2, 2, 2), np.int32), "1-D or 2-D"),
    ("sparse_ids.npy", np.array([1, 2, 1 << 20]), "below 1,048,576"),
    ("text.npy", b"plain words, not an array", "not a .npy file"),
])
def test_load_rejects_bad_files(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content)
    with pytest.raises(ValueError, match=message) as error:
        load_prototype_data(path)
    assert name in str(error.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_prototype_data(tmp_path / "missing.txt")


# Training.

def test_population_compiles_once(trained):
    _, counts = trained
    assert counts["names"].count("jit(train_block)") == 1
    with count_compiles() as again:
        shape = PaddedShape.covering(TRAIN_DIMS, vocab_size=TASK.vocab_size, seq_len=SEQ_LEN)
        results = train(OTHER_MIX, shape=shape)
    assert again["total"] == 0, again["names"]
    assert not results.failed.any()


def test_untrained_loss_is_log_vocab():
    results = train(steps=0)
    # The output layer starts at zero, so every prediction is uniform over 256 tokens.
    np.testing.assert_allclose(results.validation_loss, LOG_VOCAB, rtol=1e-6)


def test_loss_decreases_on_synthetic_task(trained):
    results, _ = trained
    assert not results.failed.any()
    assert np.all(results.validation_loss < LOG_VOCAB - 0.5), results.validation_loss


def test_padded_entries_stay_zero(trained):
    # Any nonzero gradient on a padded entry would move it away from zero under AdamW.
    results, _ = trained
    for index in range(TRAIN_DIMS.size):
        assert_zero_outside(results.params, TRAIN_DIMS, index)


def test_diverging_candidate_does_not_stop_others(trained):
    baseline, _ = trained
    rates = np.array([1e-2, 1e35, 1e-2, 1e-2], np.float32)
    results = train(learning_rate=rates)
    assert results.failed.tolist() == [False, True, False, False]
    reason = results.failure_reason[1]
    assert re.fullmatch(r"(loss became (NaN|infinite)|gradient became non-finite) at step \d+",
                        reason), reason
    assert 2 <= int(reason.split()[-1]) <= STEPS
    assert np.isnan(results.validation_loss[1])
    healthy = [0, 2, 3]
    np.testing.assert_array_equal(results.validation_loss[healthy],
                                  baseline.validation_loss[healthy])
    assert results.ranking()[-1] == 1


def test_training_on_text_file(tmp_path, trained):
    words = ["the cat sat on the mat. ", "a dog ran in the park. ", "we read a good book. "]
    rng = np.random.default_rng(0)
    path = tmp_path / "story.txt"
    path.write_text("".join(rng.choice(words, 400)), encoding="utf-8")
    data = load_prototype_data(path)
    with count_compiles() as counts:
        results = train(data=data, steps=20)
    assert "jit(train_block)" not in counts["names"]
    assert not results.failed.any()
    assert np.all(results.validation_loss < LOG_VOCAB - 1.0), results.validation_loss


def test_seq_len_too_long_for_file(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("tiny text", encoding="utf-8")
    with pytest.raises(ValueError, match="seq_len"):
        train(data=load_prototype_data(path), steps=1)


TWO_DEVICE_SCRIPT = """
import json
import numpy as np
from tests.test_prototype import TRAIN_DIMS, train
dims = TRAIN_DIMS.take([0, 1, 2])
losses = {str(per_device): train(dims, steps=12, candidates_per_device=per_device)
          .validation_loss.tolist() for per_device in (None, 1)}
print(json.dumps(losses))
"""


@pytest.mark.slow
def test_two_devices_match_one_device():
    # Three candidates on two devices: padded to four, and with one candidate per device
    # trained in two chunks. Both must reproduce the single-device losses exactly.
    environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    output = subprocess.run([sys.executable, "-c", TWO_DEVICE_SCRIPT], env=environment,
                            cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                            text=True, check=True, timeout=900)
    losses = json.loads(output.stdout.strip().splitlines()[-1])
    expected = train(TRAIN_DIMS.take([0, 1, 2]), steps=12).validation_loss
    np.testing.assert_array_equal(losses["None"], expected)
    np.testing.assert_array_equal(losses["1"], expected)
