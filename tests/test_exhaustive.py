"""Exhaustive sweep: exact front against a brute-force oracle, devices, processes, resume."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from exhaustive_worker import SWEEP_SETTINGS, small_problem

from metagen_jax.space import GeneBounds, SearchSpace
from metagen_jax.strategies.checkpoint import CHECKPOINT_NAME, CheckpointError, decode_checkpoint, encode_checkpoint
from metagen_jax.strategies.exhaustive import (
    CheckpointMismatchError,
    chunk_genomes,
    dominated_by,
    grid_dominated,
    run_exhaustive,
    split_index,
)

WORKER = Path(__file__).with_name("exhaustive_worker.py")
REPO = WORKER.parent.parent
SUBPROCESS_TIMEOUT = 300


def oracle(problem):
    """Feasible front, feasible count and per-genome objectives by plain NumPy pairwise checks."""
    space = problem.space
    evaluation = problem.evaluate_host(space.genomes_at(np.arange(space.size)))
    objectives = np.asarray(evaluation.objectives)
    violation = np.asarray(evaluation.violation)
    feasible = (violation <= 0) & np.all(np.isfinite(objectives), axis=1)
    index = np.nonzero(feasible)[0]
    points = objectives[index]
    front = []
    for i, point in enumerate(points):
        no_worse = np.all(points <= point, axis=1)
        better = np.any(points < point, axis=1)
        if not np.any(no_worse & better):
            front.append(index[i])
    return np.asarray(front, dtype=np.int64), feasible, objectives, violation


@pytest.fixture(scope="module")
def problem():
    return small_problem()


@pytest.fixture(scope="module")
def expected(problem):
    return oracle(problem)


@pytest.fixture(scope="module")
def full_run(problem, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    return run_exhaustive(problem, out_dir=out, spec_hash="test-spec", **SWEEP_SETTINGS)


def run_worker(out: Path, result: Path, *extra: str, env_devices: int = 1) -> subprocess.Popen:
    command = [sys.executable, str(WORKER), "--out", str(out), "--result", str(result),
               "--devices", str(env_devices), *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=SUBPROCESS_TIMEOUT)
    return output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- kernels ---------------------------------------------------------------------------


def test_dominated_by_matches_pairwise_check():
    rng = np.random.default_rng(0)
    points = rng.integers(0, 6, size=(512, 3)).astype(np.float32)  # many ties and duplicates
    count = 300
    result = np.asarray(dominated_by(jnp.asarray(points), count, jnp.asarray(points), count))
    for i in range(512):
        if i >= count:
            assert not result[i]
            continue
        others = points[:count]
        dominated = np.any(np.all(others <= points[i], axis=1) & np.any(others < points[i], axis=1))
        assert result[i] == dominated, i


def test_grid_filter_marks_only_dominated_points():
    rng = np.random.default_rng(1)
    points = rng.lognormal(size=(4000, 3)).astype(np.float32)
    mask = rng.random(4000) < 0.8
    marked = np.asarray(grid_dominated(jnp.asarray(points), jnp.asarray(mask), cells=1024))
    live = points[mask]
    for i in np.nonzero(marked)[0]:
        assert mask[i]
        assert np.any(np.all(live <= points[i], axis=1) & np.any(live < points[i], axis=1)), i
    assert marked.sum() > 1000  # the filter does drop most dominated points


def test_grid_filter_single_objective_keeps_all_minima():
    values = jnp.asarray([[3.0], [1.0], [1.0], [2.0], [0.5]])
    mask = jnp.asarray([True, True, True, True, False])
    assert np.asarray(grid_dominated(values, mask)).tolist() == [True, False, False, True, False]


# --- exactness -------------------------------------------------------------------------


def test_front_matches_bruteforce_oracle(full_run, expected):
    front, feasible, _, _ = expected
    assert 100 < len(front) < feasible.sum()
    np.testing.assert_array_equal(full_run.front_indices, front)
    assert full_run.feasible == int(feasible.sum())
    assert full_run.evaluated == full_run.space_size == 7056
    assert not full_run.partial
    assert not full_run.interrupted
    assert full_run.exit_code == 0


def test_top_k_holds_best_mean_log_objectives(full_run, expected):
    _, feasible, objectives, _ = expected
    key = np.mean(np.log(np.asarray(objectives, np.float64)), axis=1)
    top = full_run.top_indices
    assert len(top) == SWEEP_SETTINGS["top_k"] == len(np.unique(top))
    assert feasible[top].all()
    outside = np.setdiff1d(np.nonzero(feasible)[0], top)
    # float32 keys inside the sweep: allow one part in a million at the boundary.
    assert key[top].max() <= key[outside].min() + 1e-6 * abs(key[outside].min())
    assert np.all(np.diff(key[top]) >= -1e-6)


def test_outcome_genomes_are_front_then_top_k(full_run, problem, expected):
    _, _, objectives, _ = expected
    assert len(np.unique(full_run.indices)) == len(full_run.indices)
    assert set(full_run.indices) == set(full_run.front_indices) | set(full_run.top_indices)
    np.testing.assert_array_equal(full_run.genomes, problem.space.genomes_at(full_run.indices))
    np.testing.assert_array_equal(full_run.evaluation.objectives, objectives[full_run.indices])


def test_infeasible_space_returns_least_violating(tmp_path):
    problem = small_problem()
    requirements = dataclasses.replace(problem.requirements, max_params=1_000_000, min_params=None)
    from metagen_jax.problem import build_problem

    strict = dataclasses.replace(build_problem(requirements, problem.objectives), space=problem.space)
    outcome = run_exhaustive(strict, out_dir=tmp_path, spec_hash="strict", **SWEEP_SETTINGS)
    _, feasible, _, violation = oracle(strict)
    assert not feasible.any()
    assert len(outcome.front_indices) == 0
    assert outcome.feasible == 0
    top = outcome.top_indices
    assert len(top) == SWEEP_SETTINGS["top_k"]
    rest = np.setdiff1d(np.arange(strict.space.size), top)
    assert violation[top].max() <= violation[rest].min()


def test_buffers_grow_instead_of_dropping(problem, expected, tmp_path, caplog):
    # Only the merge program depends on the front capacity, so this costs one more compile.
    settings = {**SWEEP_SETTINGS, "front_capacity": 256}
    with caplog.at_level(logging.WARNING, logger="metagen_jax.strategies.exhaustive"):
        outcome = run_exhaustive(problem, out_dir=tmp_path, spec_hash="test-spec", **settings)
    np.testing.assert_array_equal(outcome.front_indices, expected[0])
    assert any("front capacity 256 is too small" in record.getMessage() for record in caplog.records)


# --- checkpoints -----------------------------------------------------------------------


def test_sigint_then_resume_equals_full_run(problem, full_run, tmp_path):
    def interrupt(phase, done, total):
        if done == 2048:
            os.kill(os.getpid(), signal.SIGINT)

    partial = run_exhaustive(problem, out_dir=tmp_path, spec_hash="test-spec", progress=interrupt, **SWEEP_SETTINGS)
    assert partial.interrupted
    assert partial.partial
    assert partial.evaluated == 2048
    assert partial.exit_code == 130
    assert "--resume" in partial.message
    assert "SIGINT" in partial.message
    assert (tmp_path / CHECKPOINT_NAME).exists()

    seen = []
    resumed = run_exhaustive(problem, out_dir=tmp_path, spec_hash="test-spec", resume=True,
                             progress=lambda phase, done, total: seen.append(done), **SWEEP_SETTINGS)
    assert seen[0] == 2048
    assert seen[-1] == 7056
    assert not resumed.partial
    assert resumed.exit_code == 0
    np.testing.assert_array_equal(resumed.front_indices, full_run.front_indices)
    np.testing.assert_array_equal(resumed.top_indices, full_run.top_indices)
    assert resumed.feasible == full_run.feasible


def test_resume_of_finished_sweep_evaluates_nothing(problem, full_run):
    seen = []
    again = run_exhaustive(problem, out_dir=full_run.checkpoint_path.parent, spec_hash="test-spec", resume=True,
                           progress=lambda phase, done, total: seen.append(done), **SWEEP_SETTINGS)
    assert seen == [7056]
    np.testing.assert_array_equal(again.front_indices, full_run.front_indices)


def test_checkpoint_of_other_space_rejected(problem, full_run):
    bounds = dataclasses.replace(problem.space.bounds, layers_max=11)
    other = dataclasses.replace(problem, space=SearchSpace.from_bounds(bounds))
    with pytest.raises(CheckpointMismatchError, match="space_fingerprint"):
        run_exhaustive(other, out_dir=full_run.checkpoint_path.parent, spec_hash="test-spec", resume=True,
                       **SWEEP_SETTINGS)


def test_checkpoint_of_other_spec_rejected(problem, full_run):
    with pytest.raises(CheckpointMismatchError, match="spec_hash"):
        run_exhaustive(problem, out_dir=full_run.checkpoint_path.parent, spec_hash="another-spec", resume=True,
                       **SWEEP_SETTINGS)


def _damaged_checkpoint(full_run, folder: Path, damage) -> Path:
    payload = full_run.checkpoint_path.read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CHECKPOINT_NAME).write_bytes(damage(payload))
    return folder


@pytest.mark.parametrize("damage", [
    pytest.param(lambda payload: payload[: len(payload) // 2], id="truncated"),
    pytest.param(lambda payload: b"", id="empty"),
    pytest.param(lambda payload: payload[:30], id="header-only"),
    pytest.param(lambda payload: b"PK\x03\x04" + bytes(200), id="zeroed-zip"),
])
def test_damaged_checkpoint_rejected_in_one_line(problem, full_run, tmp_path, damage):
    folder = _damaged_checkpoint(full_run, tmp_path / "damaged", damage)
    with pytest.raises(CheckpointError, match="unreadable") as caught:
        run_exhaustive(problem, out_dir=folder, spec_hash="test-spec", resume=True, **SWEEP_SETTINGS)
    assert "\n" not in str(caught.value)
    assert str(folder / CHECKPOINT_NAME) in str(caught.value)


def test_checkpoint_with_missing_array_rejected(problem, full_run, tmp_path):
    header, arrays = decode_checkpoint(full_run.checkpoint_path.read_bytes(), full_run.checkpoint_path)
    del arrays["front.genomes"]
    folder = tmp_path / "missing"
    folder.mkdir()
    (folder / CHECKPOINT_NAME).write_bytes(encode_checkpoint(header, arrays))
    with pytest.raises(CheckpointError, match="does not fit this sweep"):
        run_exhaustive(problem, out_dir=folder, spec_hash="test-spec", resume=True, **SWEEP_SETTINGS)


def test_checkpoint_with_wrong_array_shape_rejected(problem, full_run, tmp_path):
    header, arrays = decode_checkpoint(full_run.checkpoint_path.read_bytes(), full_run.checkpoint_path)
    arrays["feasible.genomes"] = arrays["feasible.genomes"][:, :3]
    folder = tmp_path / "shape"
    folder.mkdir()
    (folder / CHECKPOINT_NAME).write_bytes(encode_checkpoint(header, arrays))
    with pytest.raises(CheckpointError, match="feasible.genomes"):
        run_exhaustive(problem, out_dir=folder, spec_hash="test-spec", resume=True, **SWEEP_SETTINGS)


def test_large_genome_numbers_decode_exactly():
    # 3.3 billion genomes: the last genome numbers are above 2^31.
    wide = SearchSpace.from_bounds(GeneBounds(hidden_min=64, hidden_max=16384, layers_min=1, layers_max=1024,
                                              heads_min=1, heads_max=256, ffn_quarters_min=4, ffn_quarters_max=128,
                                              head_dim_min=1, head_dim_multiple=1, head_dim_max=16384))
    assert wide.size > 2**31 + 1000
    start = wide.size - 1000
    layout, offset = split_index(wide, start)
    positions, genomes = jax.jit(chunk_genomes, static_argnums=0)(wide, layout, offset, jnp.arange(1000))
    np.testing.assert_array_equal(np.asarray(genomes), wide.genomes_at(np.arange(start, wide.size)))
    per_layout = wide.num_depths * wide.num_ffn_steps
    numbers = np.asarray(positions, np.int64) @ np.asarray([per_layout, 1])
    np.testing.assert_array_equal(numbers, np.arange(start, wide.size))


# --- devices and processes -------------------------------------------------------------


def test_four_devices_match_one_device(full_run, tmp_path):
    result = tmp_path / "four.npz"
    process = run_worker(tmp_path / "out", result, env_devices=4)
    output = finish(process)
    assert process.returncode == 0, output
    found = np.load(result)
    assert int(found["devices"]) == 4
    np.testing.assert_array_equal(found["front_indices"], full_run.front_indices)
    np.testing.assert_array_equal(found["top_indices"], full_run.top_indices)
    assert int(found["feasible"]) == full_run.feasible


def test_two_processes_match_one_process(full_run, tmp_path):
    port = free_port()
    outs = [tmp_path / "p0", tmp_path / "p1"]
    results = [tmp_path / "p0.npz", tmp_path / "p1.npz"]
    workers = [
        run_worker(outs[i], results[i], "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                   "--process-id", str(i))
        for i in range(2)
    ]
    outputs = [finish(worker) for worker in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output
    found = np.load(results[0])
    assert int(found["processes"]) == 2
    assert int(found["devices"]) == 2
    np.testing.assert_array_equal(found["front_indices"], full_run.front_indices)
    np.testing.assert_array_equal(found["top_indices"], full_run.top_indices)
    # Only process 0 writes.
    assert (outs[0] / CHECKPOINT_NAME).exists()
    assert not (outs[1] / CHECKPOINT_NAME).exists()
    assert not results[1].exists()


def test_sigterm_to_subprocess_then_resume(problem, full_run, tmp_path):
    out, result = tmp_path / "out", tmp_path / "partial.npz"
    process = run_worker(out, result, "--progress-delay", "0.3")
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("progress") and int(line.split()[1]) > 0:
            process.send_signal(signal.SIGTERM)
            break
    lines.append(finish(process))
    assert process.returncode == 143, "".join(lines)
    found = np.load(result)
    assert bool(found["interrupted"])
    assert bool(found["partial"])
    assert 0 < int(found["evaluated"]) < 7056

    resumed = run_exhaustive(problem, out_dir=out, spec_hash="test-spec", resume=True, **SWEEP_SETTINGS)
    assert not resumed.partial
    np.testing.assert_array_equal(resumed.front_indices, full_run.front_indices)
    np.testing.assert_array_equal(resumed.top_indices, full_run.top_indices)


@pytest.mark.slow
def test_bundled_8b_front_is_exact(tmp_path):
    """Every feasible genome of the 8B spec is on the front or dominated by a front point,
    and no front point is dominated by another: with transitivity, that is the exact front."""
    from metagen_jax.objectives import DEFAULT_OBJECTIVES
    from metagen_jax.problem import build_problem
    from metagen_jax.specs import parse_spec

    problem = build_problem(parse_spec(REPO / "specs" / "text_llm_8b.yaml").requirements, DEFAULT_OBJECTIVES)
    outcome = run_exhaustive(problem, out_dir=tmp_path)
    space, front = problem.space, outcome.front_indices
    assert len(front) > 1000

    chunk = 1 << 20
    sources = jnp.asarray(np.pad(problem.evaluate_host(space.genomes_at(front)).objectives,
                                 ((0, -len(front) % 256), (0, 0))))
    feasible_total = 0
    for start in range(0, space.size, chunk):
        index = np.arange(start, min(start + chunk, space.size))
        evaluation = problem.evaluate_host(space.genomes_at(index))
        feasible = (evaluation.violation <= 0) & np.all(np.isfinite(evaluation.objectives), axis=1)
        feasible_total += int(feasible.sum())
        targets = evaluation.objectives[feasible]
        padded = jnp.asarray(np.pad(targets, ((0, -len(targets) % 256), (0, 0))))
        dominated = np.asarray(dominated_by(padded, len(targets), sources, len(front)))[:len(targets)]
        on_front = np.isin(index[feasible], front)
        assert not np.any(on_front & dominated)
        assert np.all(on_front | dominated)
    assert outcome.feasible == feasible_total


def test_mesh_covers_local_devices():
    from metagen_jax.distributed import candidate_mesh

    assert candidate_mesh().size == jax.device_count()
