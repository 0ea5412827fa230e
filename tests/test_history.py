"""Tests of the search history: storage, faults, spec distance, warm start and the CLI."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from metagen_jax.history import (
    DATABASE_NAME,
    MAX_RUN_ID,
    SCHEMA_VERSION,
    CorruptRunError,
    HistoryError,
    RunNotFoundError,
    SearchHistory,
    SpecFeatures,
    feature_distance,
    spec_features,
    spec_hash,
    warm_start_genomes,
)
from metagen_jax.history.cli import history_app
from metagen_jax.history.schema import APPLICATION_ID
from metagen_jax.specs.requirements import Requirements

TEXT_8B = SpecFeatures(
    modality="text->text",
    task_type="generation",
    family="transformer",
    min_params=None,
    max_params=8_000_000_000,
    context_tokens=4096,
    device="h100",
    training_tokens=1e12,
)
TEXT_70B = SpecFeatures(
    modality="text->text",
    task_type="generation",
    family="transformer",
    min_params=None,
    max_params=70_000_000_000,
    context_tokens=8192,
    device="h100",
    training_tokens=1e12,
)
IMAGE_CLASSIFIER = SpecFeatures(
    modality="image->text",
    task_type="classification",
    family="cnn",
    min_params=None,
    max_params=50_000_000,
    context_tokens=2048,
    device="consumer_gpu",
    training_tokens=None,
)
QUERY_7B = SpecFeatures(
    modality="text->text",
    task_type="generation",
    family="transformer",
    min_params=None,
    max_params=7_000_000_000,
    context_tokens=4096,
    device="h100",
    training_tokens=2e12,
)

FRONT = np.array([[2048, 24, 16, 4, 16], [1024, 12, 8, 8, 32]], dtype=np.int32)
FRONT_METRICS = [
    {"params": 2**62 + 1, "latency_ms": 12.5, "memory_gb": 3.25, "predicted_loss": 2.1, "score": 0.9},
    {
        "params": 123_456_789,
        "latency_ms": float("nan"),
        "memory_gb": np.float32(1.5),
        "predicted_loss": np.float64(2.4),
    },
]


def _open(directory: Path, messages: list[str] | None = None) -> SearchHistory:
    history = SearchHistory.open(directory, on_warning=None if messages is None else messages.append)
    assert history is not None
    return history


def _record(history: SearchHistory, features: SpecFeatures = TEXT_8B, name: str = "llm-8b", seed: int = 0) -> int:
    return history.record_run(features, "hash-" + name, name, "evolution", seed, FRONT, FRONT_METRICS)


def _aside_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"{DATABASE_NAME}.corrupt-*"))


# Storage


def test_record_and_get_round_trip(tmp_path: Path) -> None:
    with _open(tmp_path) as history:
        run_id = _record(history)
        record = history.get_run(run_id)

    assert run_id == 1
    assert record.summary.spec_name == "llm-8b"
    assert record.summary.spec_hash == "hash-llm-8b"
    assert record.summary.strategy == "evolution"
    assert record.summary.features == TEXT_8B
    assert record.summary.front_size == 2
    assert record.summary.created_utc.endswith("+00:00")
    assert record.genomes.dtype == np.int32
    np.testing.assert_array_equal(record.genomes, FRONT)
    assert record.metrics[0]["params"] == 2**62 + 1
    assert isinstance(record.metrics[0]["params"], int)
    assert math.isnan(record.metrics[1]["latency_ms"])
    assert record.metrics[1]["memory_gb"] == 1.5
    assert record.metrics[1]["predicted_loss"] == 2.4


def test_record_empty_front(tmp_path: Path) -> None:
    with _open(tmp_path) as history:
        run_id = history.record_run(TEXT_8B, "h", "empty", "random", 1, np.zeros((0, 5), np.int32), [])
        record = history.get_run(run_id)
    assert record.summary.front_size == 0
    assert record.genomes.shape == (0, 5)


def test_record_rejects_invalid_front(tmp_path: Path) -> None:
    with _open(tmp_path) as history:
        with pytest.raises(ValueError, match=r"shape \(2, 4\)"):
            history.record_run(TEXT_8B, "h", "n", "random", 0, FRONT[:, :4], FRONT_METRICS)
        with pytest.raises(ValueError, match="dtype float"):
            history.record_run(TEXT_8B, "h", "n", "random", 0, FRONT.astype(float), FRONT_METRICS)
        with pytest.raises(ValueError, match="1 entries for 2 genomes"):
            history.record_run(TEXT_8B, "h", "n", "random", 0, FRONT, FRONT_METRICS[:1])
        with pytest.raises(TypeError, match="metric 'params' of front member 1"):
            history.record_run(TEXT_8B, "h", "n", "random", 0, FRONT, [{"params": 1}, {"params": [1, 2]}])
        assert history.list_runs() == []


def test_record_is_one_transaction(tmp_path: Path) -> None:
    with _open(tmp_path) as history:
        saboteur = sqlite3.connect(history.path)
        saboteur.execute(
            "CREATE TRIGGER reject_second BEFORE INSERT ON front_members WHEN NEW.position = 1 "
            "BEGIN SELECT RAISE(ABORT, 'rejected by test trigger'); END"
        )
        saboteur.commit()
        saboteur.close()

        with pytest.raises(HistoryError, match="rejected by test trigger"):
            _record(history)
        runs = history.list_runs()

    connection = sqlite3.connect(tmp_path / DATABASE_NAME)
    member_count = connection.execute("SELECT count(*) FROM front_members").fetchone()[0]
    connection.close()
    assert runs == []
    assert member_count == 0


def test_get_run_unknown_id(tmp_path: Path) -> None:
    with _open(tmp_path) as history:
        _record(history)
        with pytest.raises(RunNotFoundError, match="run 7 not found"):
            history.get_run(7)


def test_clear_keeps_ids_increasing(tmp_path: Path) -> None:
    with _open(tmp_path) as history:
        _record(history, seed=1)
        _record(history, seed=2)
        deleted = history.clear()
        remaining = history.list_runs()
        next_id = _record(history, seed=3)
    assert deleted == 2
    assert remaining == []
    assert next_id == 3


def test_schema_version_recorded(tmp_path: Path) -> None:
    _open(tmp_path).close()
    connection = sqlite3.connect(tmp_path / DATABASE_NAME)
    user_version = connection.execute("PRAGMA user_version").fetchone()[0]
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    journal_mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    connection.close()
    assert SCHEMA_VERSION == 1
    assert user_version == 1
    assert application_id == 0x4D47454E
    assert journal_mode == "wal"
    assert {"runs", "front_members"} <= tables


def test_empty_file_initialized_in_place(tmp_path: Path) -> None:
    (tmp_path / DATABASE_NAME).write_bytes(b"")
    messages: list[str] = []
    with _open(tmp_path, messages) as history:
        run_id = _record(history)
    assert run_id == 1
    assert messages == []
    assert _aside_files(tmp_path) == []


def test_reopen_keeps_runs(tmp_path: Path) -> None:
    with _open(tmp_path) as history:
        _record(history, name="first")
    with _open(tmp_path) as history:
        names = [run.spec_name for run in history.list_runs()]
    assert names == ["first"]


# Faults


def _record_from_worker(directory: str, worker: int, runs: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait()
    history = SearchHistory.open(Path(directory))
    if history is None:
        raise SystemExit(3)
    for index in range(runs):
        history.record_run(TEXT_8B, "hash", f"worker-{worker}", "random", worker * 1000 + index, FRONT, FRONT_METRICS)
    history.close()


def test_concurrent_writers_lose_no_record(tmp_path: Path) -> None:
    workers, runs_per_worker = 8, 10
    directory = tmp_path / "fresh" / ".metagen"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    processes = [
        context.Process(target=_record_from_worker, args=(str(directory), worker, runs_per_worker, barrier))
        for worker in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    exit_codes = [process.exitcode for process in processes]

    with _open(directory) as history:
        runs = history.list_runs()
    connection = sqlite3.connect(directory / DATABASE_NAME)
    member_count = connection.execute("SELECT count(*) FROM front_members").fetchone()[0]
    connection.close()

    assert exit_codes == [0] * workers
    assert len(runs) == workers * runs_per_worker
    assert len({run.run_id for run in runs}) == workers * runs_per_worker
    expected_seeds = {worker * 1000 + index for worker in range(workers) for index in range(runs_per_worker)}
    assert {run.seed for run in runs} == expected_seeds
    assert member_count == workers * runs_per_worker * FRONT.shape[0]
    assert _aside_files(directory) == []


@pytest.mark.parametrize("page", [0, 1, 2, 3, 4, 5])
def test_corrupt_file_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture, page: int) -> None:
    with _open(tmp_path) as history:
        _record(history)
    path = tmp_path / DATABASE_NAME
    data = bytearray(path.read_bytes())
    page_size = 4096
    assert len(data) >= 6 * page_size
    if page == 0:
        # The first 16 bytes are the "SQLite format 3" magic string.
        data[0:16] = b"this is garbage!"
    else:
        data[page * page_size : page * page_size + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))

    messages: list[str] = []
    with caplog.at_level(logging.WARNING, logger="metagen_jax.history"):
        history = _open(tmp_path, messages)
    with history:
        runs_after = history.list_runs()
        new_id = _record(history)

    aside = _aside_files(tmp_path)
    assert len(aside) == 1
    assert aside[0].read_bytes() == bytes(data)
    assert len(messages) == 1
    assert str(aside[0]) in messages[0]
    assert any(str(aside[0]) in record.getMessage() for record in caplog.records)
    assert runs_after == []
    assert new_id == 1


def test_text_file_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_NAME
    path.write_text("notes that someone saved under the wrong name\n" * 100)
    messages: list[str] = []
    with _open(tmp_path, messages) as history:
        run_id = _record(history)

    aside = _aside_files(tmp_path)
    assert run_id == 1
    assert len(aside) == 1
    assert aside[0].read_text() == "notes that someone saved under the wrong name\n" * 100
    assert "SQLite cannot read it" in messages[0]


def test_foreign_database_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_NAME
    foreign = sqlite3.connect(path)
    foreign.execute("CREATE TABLE users (name TEXT)")
    foreign.execute("INSERT INTO users VALUES ('ada')")
    foreign.commit()
    foreign.close()

    messages: list[str] = []
    with _open(tmp_path, messages) as history:
        run_id = _record(history)

    aside = _aside_files(tmp_path)
    assert run_id == 1
    assert len(aside) == 1
    assert "not a metagen history database" in messages[0]
    moved_database = sqlite3.connect(aside[0])
    assert moved_database.execute("SELECT name FROM users").fetchall() == [("ada",)]
    moved_database.close()


def _write_newer_schema_database(directory: Path) -> Path:
    """Create a history database that claims the next schema version; return its path."""
    path = directory / DATABASE_NAME
    newer = sqlite3.connect(path)
    newer.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.execute("CREATE TABLE future (x INTEGER)")
    newer.commit()
    newer.close()
    return path


def test_newer_schema_turns_history_off(tmp_path: Path) -> None:
    path = _write_newer_schema_database(tmp_path)
    before = path.read_bytes()

    messages: list[str] = []
    history = SearchHistory.open(tmp_path, on_warning=messages.append)

    assert history is None
    assert "search history is off" in messages[0]
    assert "newer" in messages[0]
    assert path.read_bytes() == before
    assert _aside_files(tmp_path) == []


def test_folder_under_regular_file_turns_history_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file where a folder is expected")
    messages: list[str] = []
    with caplog.at_level(logging.WARNING, logger="metagen_jax.history"):
        history = SearchHistory.open(blocker / ".metagen", on_warning=messages.append)
    assert history is None
    assert "cannot create folder" in messages[0]
    assert any("search history is off" in record.getMessage() for record in caplog.records)


def test_database_path_is_folder(tmp_path: Path) -> None:
    (tmp_path / DATABASE_NAME).mkdir()
    messages: list[str] = []
    history = SearchHistory.open(tmp_path, on_warning=messages.append)
    assert history is None
    assert "not a regular file" in messages[0]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_turns_history_off(tmp_path: Path) -> None:
    directory = tmp_path / "history"
    with _open(directory) as history:
        _record(history)
    directory.chmod(0o500)
    try:
        messages: list[str] = []
        history = SearchHistory.open(directory, on_warning=messages.append)
    finally:
        directory.chmod(0o700)
    assert history is None
    assert "search history is off" in messages[0]


def test_open_without_create(tmp_path: Path) -> None:
    history = SearchHistory.open(tmp_path / "absent", create=False)
    assert history is None
    assert not (tmp_path / "absent").exists()


# Spec features and distance


def test_spec_features_from_requirements() -> None:
    requirements = Requirements(
        name="vlm",
        modality_inputs=("text", "image"),
        modality_outputs=("text",),
        task_type="generation",
        family="transformer",
        min_params=1_000_000_000,
        max_params=3_000_000_000,
        context_tokens=8192,
        device="h100",
        training_tokens=5e11,
    )
    features = spec_features(requirements)
    assert features == SpecFeatures(
        modality="image+text->text",
        task_type="generation",
        family="transformer",
        min_params=1_000_000_000,
        max_params=3_000_000_000,
        context_tokens=8192,
        device="h100",
        training_tokens=5e11,
    )


def test_spec_hash_canonical() -> None:
    spec = {"b": [1, 2], "a": {"y": "\u00e9", "x": 1.5}}
    reordered = {"a": {"x": 1.5, "y": "\u00e9"}, "b": [1, 2]}
    expected = hashlib.sha256('{"a":{"x":1.5,"y":"\u00e9"},"b":[1,2]}'.encode()).hexdigest()
    assert spec_hash(spec) == expected
    assert spec_hash(reordered) == expected
    assert spec_hash({"a": {"x": 1.5, "y": "e"}, "b": [1, 2]}) != expected
    with pytest.raises(ValueError):
        spec_hash({"a": float("nan")})


def test_feature_distance_hand_values() -> None:
    # log10(8/7) = 0.0579919, log10(2) = 0.3010300, log10(7e9 / 5e7) = log10(140) = 2.1461280.
    assert feature_distance(QUERY_7B, TEXT_8B) == pytest.approx(0.0579919 / 2 + 0.5 * 0.3010300, abs=1e-6)
    assert feature_distance(QUERY_7B, TEXT_70B) == pytest.approx(1.0 / 2 + 0.5 * 0.3010300 + 0.5 * 0.3010300, abs=1e-6)
    # Modality 2 + family 2 + task 1 + device 0.5, params 2.146128 / 2, context 0.5 * log10(2),
    # training data known on one side only: 0.5 x one decade.
    expected_image = 2 + 2 + 1 + 0.5 + 2.1461280 / 2 + 0.5 * 0.3010300 + 0.5
    assert feature_distance(QUERY_7B, IMAGE_CLASSIFIER) == pytest.approx(expected_image, abs=1e-6)
    assert feature_distance(TEXT_8B, TEXT_8B) == 0.0
    assert feature_distance(TEXT_8B, QUERY_7B) == feature_distance(QUERY_7B, TEXT_8B)


def test_nearest_runs_picks_closest(tmp_path: Path) -> None:
    with _open(tmp_path) as history:
        id_8b = _record(history, TEXT_8B, "llm-8b")
        id_image = _record(history, IMAGE_CLASSIFIER, "classifier")
        id_70b = _record(history, TEXT_70B, "llm-70b")

        nearest = history.nearest_runs(QUERY_7B, k=3)
        only_first = history.nearest_runs(QUERY_7B, k=1)
        everything = history.nearest_runs(QUERY_7B, k=3, max_distance=100.0)

    assert [summary.run_id for summary, _ in nearest] == [id_8b, id_70b]
    assert nearest[0][1] == pytest.approx(0.1795109, abs=1e-6)
    assert nearest[1][1] == pytest.approx(0.8010300, abs=1e-6)
    assert [summary.run_id for summary, _ in only_first] == [id_8b]
    assert [summary.run_id for summary, _ in everything] == [id_8b, id_70b, id_image]


def test_nearest_runs_prefers_newer_on_tie(tmp_path: Path) -> None:
    with _open(tmp_path) as history:
        _record(history, TEXT_8B, "old")
        newer_id = _record(history, TEXT_8B, "new")
        nearest = history.nearest_runs(TEXT_8B, k=1)
    assert nearest[0][0].run_id == newer_id


# Warm start


def _clip_and_fix(genomes: np.ndarray) -> np.ndarray:
    """Repair into a small space: hidden 256..2048, layers 4..24, heads 4..32, ffn quarters 8..16."""
    repaired = np.array(genomes, dtype=np.int64)
    for row in repaired:
        hidden = int(np.clip(row[0], 256, 2048)) // 64 * 64
        heads = int(np.clip(row[2], 4, 32))
        while hidden % heads:
            heads -= 1
        kv_heads = int(np.clip(row[3], 1, heads))
        while heads % kv_heads:
            kv_heads -= 1
        row[:] = (hidden, np.clip(row[1], 4, 24), heads, kv_heads, np.clip(row[4], 8, 16))
    return repaired.astype(np.int32)


def _is_valid_small_space(genome: np.ndarray) -> bool:
    hidden, layers, heads, kv_heads, ffn_quarters = (int(gene) for gene in genome)
    return (
        256 <= hidden <= 2048
        and hidden % 64 == 0
        and 4 <= layers <= 24
        and 4 <= heads <= 32
        and hidden % heads == 0
        and 1 <= kv_heads <= heads
        and heads % kv_heads == 0
        and 8 <= ffn_quarters <= 16
    )


def _record_front(history: SearchHistory, features: SpecFeatures, name: str, front: list[list[int]]) -> int:
    genomes = np.array(front, dtype=np.int32)
    metrics = [{"params": index} for index in range(len(front))]
    return history.record_run(features, "h-" + name, name, "evolution", 0, genomes, metrics)


def test_warm_start_repairs_other_space(tmp_path: Path) -> None:
    with _open(tmp_path) as history:
        near = _record_front(history, TEXT_8B, "near", [[8192, 48, 64, 8, 32], [1000, 10, 12, 3, 10]])
        farther = _record_front(
            history, TEXT_70B, "farther", [[4096, 30, 48, 6, 24], [2048, 24, 40, 8, 20], [320, 2, 20, 7, 4]]
        )
        _record_front(history, IMAGE_CLASSIFIER, "unrelated", [[512, 8, 8, 8, 8]])

        warm = warm_start_genomes(history, QUERY_7B, count=10, repair=_clip_and_fix)
        capped = warm_start_genomes(history, QUERY_7B, count=2, repair=_clip_and_fix)

    # Repaired by hand. Row 1: hidden 8192 -> 2048 and 64 heads -> 32. Row 2: hidden 1000 -> 960,
    # which 12 heads divide. Row 3: 48 heads -> 32, and 6 kv heads -> 4, the largest divisor of
    # 32 not above 6. Row 4 repairs to the same genome as row 1 and is dropped. Row 5: 20 heads
    # divide 320, and 7 kv heads -> 5, the largest divisor of 20 not above 7.
    expected = np.array(
        [[2048, 24, 32, 8, 16], [960, 10, 12, 3, 10], [2048, 24, 32, 4, 16], [320, 4, 20, 5, 8]],
        dtype=np.int32,
    )
    assert warm.genomes.dtype == np.int32
    np.testing.assert_array_equal(warm.genomes, expected)
    assert warm.source_run_ids == [near, farther]
    assert all(_is_valid_small_space(genome) for genome in warm.genomes)
    np.testing.assert_array_equal(capped.genomes, expected[:2])
    assert capped.source_run_ids == [near]


def test_warm_start_without_history() -> None:
    warm = warm_start_genomes(None, QUERY_7B, count=8, repair=_clip_and_fix)
    assert warm.genomes.shape == (0, 5)
    assert warm.genomes.dtype == np.int32
    assert warm.source_run_ids == []


def test_warm_start_no_near_run(tmp_path: Path) -> None:
    with _open(tmp_path) as history:
        _record_front(history, IMAGE_CLASSIFIER, "unrelated", [[512, 8, 8, 8, 8]])
        warm = warm_start_genomes(history, QUERY_7B, count=8, repair=_clip_and_fix)
    assert warm.genomes.shape == (0, 5)
    assert warm.source_run_ids == []


def test_warm_start_rejects_bad_repair(tmp_path: Path) -> None:
    with _open(tmp_path) as history:
        _record_front(history, TEXT_8B, "near", [[1024, 12, 16, 4, 16]])
        with pytest.raises(ValueError, match="repair returned shape"):
            warm_start_genomes(history, QUERY_7B, count=4, repair=lambda genomes: genomes[:, :4])
        with pytest.raises(ValueError, match="repair returned dtype"):
            warm_start_genomes(history, QUERY_7B, count=4, repair=lambda genomes: genomes.astype(float))
        with pytest.raises(ValueError, match="count is -1"):
            warm_start_genomes(history, QUERY_7B, count=-1, repair=_clip_and_fix)


# CLI


@pytest.fixture
def populated(tmp_path: Path) -> Path:
    directory = tmp_path / ".metagen"
    with _open(directory) as history:
        _record(history, TEXT_8B, "llm-8b", seed=7)
        _record(history, TEXT_70B, "llm-70b", seed=8)
    return directory


def test_cli_list_table(populated: Path) -> None:
    result = CliRunner().invoke(history_app, ["list", "--history-dir", str(populated)])
    assert result.exit_code == 0, result.output
    assert "llm-8b" in result.stdout
    assert "llm-70b" in result.stdout
    assert "evolution" in result.stdout


def test_cli_list_json(populated: Path) -> None:
    result = CliRunner().invoke(history_app, ["list", "--json", "--history-dir", str(populated)])
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    assert [run["run_id"] for run in runs] == [1, 2]
    assert [run["spec_name"] for run in runs] == ["llm-8b", "llm-70b"]
    assert [run["seed"] for run in runs] == [7, 8]
    assert runs[0]["front_size"] == 2
    assert runs[1]["features"]["max_params"] == 70_000_000_000


def test_cli_list_missing_history(tmp_path: Path) -> None:
    directory = tmp_path / "none"
    result = CliRunner().invoke(history_app, ["list", "--json", "--history-dir", str(directory)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    assert not directory.exists()


def test_cli_show_json(populated: Path) -> None:
    result = CliRunner().invoke(history_app, ["show", "1", "--json", "--history-dir", str(populated)])
    assert result.exit_code == 0, result.output
    run_json = json.loads(result.stdout)
    assert run_json["run"]["spec_name"] == "llm-8b"
    assert run_json["run"]["features"]["device"] == "h100"
    assert run_json["front"][0]["genome"] == {
        "hidden_size": 2048,
        "num_layers": 24,
        "num_heads": 16,
        "num_kv_heads": 4,
        "ffn_quarters": 16,
    }
    assert run_json["front"][0]["metrics"]["params"] == 2**62 + 1
    assert run_json["front"][1]["metrics"]["latency_ms"] is None


def test_cli_show_table(populated: Path) -> None:
    result = CliRunner().invoke(history_app, ["show", "2", "--history-dir", str(populated)])
    assert result.exit_code == 0, result.output
    assert "llm-70b" in result.stdout
    assert "2048" in result.stdout
    assert "123.5M" in result.stdout
    assert "4.61e+18" in result.stdout


def test_cli_show_unknown_run(populated: Path) -> None:
    result = CliRunner().invoke(history_app, ["show", "999", "--history-dir", str(populated)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "run 999 not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_show_non_integer_run(populated: Path) -> None:
    result = CliRunner().invoke(history_app, ["show", "abc", "--history-dir", str(populated)])
    assert result.exit_code == 2


def test_cli_clear_asks_first(populated: Path) -> None:
    declined = CliRunner().invoke(history_app, ["clear", "--history-dir", str(populated)], input="n\n")
    with _open(populated) as history:
        after_decline = len(history.list_runs())
    accepted = CliRunner().invoke(history_app, ["clear", "--history-dir", str(populated)], input="y\n")
    with _open(populated) as history:
        after_accept = len(history.list_runs())

    assert declined.exit_code == 1
    assert after_decline == 2
    assert accepted.exit_code == 0, accepted.output
    assert "Deleted 2 runs" in accepted.stdout
    assert after_accept == 0


def test_cli_clear_yes(populated: Path) -> None:
    result = CliRunner().invoke(history_app, ["clear", "--yes", "--history-dir", str(populated)])
    with _open(populated) as history:
        remaining = len(history.list_runs())
    assert result.exit_code == 0, result.output
    assert "Deleted 2 runs" in result.stdout
    assert remaining == 0


# Unusable files and corrupt rows


def _corrupt(directory: Path, *statements: str) -> None:
    """Change stored rows behind the store's back, the way a bad tool or disk would."""
    connection = sqlite3.connect(directory / DATABASE_NAME)
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    connection.close()


def _single_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def _files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


# Each case corrupts run 1 of the `populated` history and names the fault that reading it reports.
CORRUPT_ROWS = {
    "feature text": ("UPDATE runs SET max_params = 'abc' WHERE run_id = 1", "column max_params contains 'abc'"),
    "training tokens text": (
        "UPDATE runs SET training_tokens = 'lots' WHERE run_id = 1",
        "column training_tokens contains 'lots'",
    ),
    "metrics not json": (
        "UPDATE front_members SET metrics_json = '{not json' WHERE run_id = 1 AND position = 1",
        "metrics_json of front member 1 is not valid JSON",
    ),
    "metrics json array": (
        "UPDATE front_members SET metrics_json = '[1, 2]' WHERE run_id = 1 AND position = 0",
        "metrics_json of front member 0 is a JSON list",
    ),
    "gene blob": (
        "UPDATE front_members SET num_heads = X'0102' WHERE run_id = 1 AND position = 0",
        "column num_heads of front member 0 contains b'\\x01\\x02'",
    ),
    "gene fraction": (
        "UPDATE front_members SET hidden_size = 10.5 WHERE run_id = 1 AND position = 1",
        "column hidden_size of front member 1 contains 10.5",
    ),
    "member missing": (
        "DELETE FROM front_members WHERE run_id = 1 AND position = 1",
        "it has 1 front members; expected front_size 2",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_ROWS))
def test_get_run_reports_corrupt_run(populated: Path, case: str) -> None:
    statement, fault = CORRUPT_ROWS[case]
    _corrupt(populated, statement)
    with SearchHistory.open_existing(populated) as history:
        with pytest.raises(CorruptRunError, match=f"run 1 in {populated / DATABASE_NAME} is corrupt") as caught:
            history.get_run(1)
        other = history.get_run(2)
    assert fault in str(caught.value)
    assert caught.value.run_id == 1
    assert other.summary.spec_name == "llm-70b"


def test_list_runs_skips_corrupt_row(populated: Path, caplog: pytest.LogCaptureFixture) -> None:
    _corrupt(populated, "UPDATE runs SET context_tokens = 'abc' WHERE run_id = 1")
    messages: list[str] = []
    with caplog.at_level(logging.WARNING, logger="metagen_jax.history"):
        with SearchHistory.open_existing(populated, on_warning=messages.append) as history:
            runs = history.list_runs()
    assert [run.run_id for run in runs] == [2]
    assert len(messages) == 1
    assert "run 1 in" in messages[0]
    assert "column context_tokens contains 'abc'; expected an integer" in messages[0]
    assert any("run 1 in" in record.getMessage() for record in caplog.records)


def test_list_runs_counts_many_corrupt_rows(tmp_path: Path) -> None:
    with _open(tmp_path) as history:
        for seed in range(6):
            _record(history, seed=seed)
    _corrupt(tmp_path, "UPDATE runs SET seed = 'x' WHERE run_id <= 5")
    messages: list[str] = []
    with SearchHistory.open_existing(tmp_path, on_warning=messages.append) as history:
        runs = history.list_runs()
    # Runs 1 to 3 are reported one by one and runs 4 and 5 in one line.
    assert [run.run_id for run in runs] == [6]
    assert len(messages) == 4
    assert [message.split(" in ")[0] for message in messages[:3]] == ["run 1", "run 2", "run 3"]
    assert messages[3].startswith("skipped 2 more corrupt runs")
    assert messages[3].endswith("ids 4 to 5")


@pytest.mark.parametrize("run_id", [MAX_RUN_ID + 1, 10**20, -(2**63) - 1])
def test_get_run_id_outside_sqlite_range(populated: Path, run_id: int) -> None:
    with SearchHistory.open_existing(populated) as history:
        with pytest.raises(RunNotFoundError, match=f"run {run_id} not found"):
            history.get_run(run_id)


@pytest.mark.parametrize("case", ["feature text", "metrics not json", "gene blob", "member missing"])
def test_warm_start_skips_corrupt_run(tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str) -> None:
    with _open(tmp_path) as history:
        corrupt = _record_front(history, TEXT_8B, "near", [[8192, 48, 64, 8, 32], [1000, 10, 12, 3, 10]])
        farther = _record_front(history, TEXT_70B, "farther", [[4096, 30, 48, 6, 24]])
    assert corrupt == 1
    statement, fault = CORRUPT_ROWS[case]
    _corrupt(tmp_path, statement)

    messages: list[str] = []
    with caplog.at_level(logging.WARNING, logger="metagen_jax.history"):
        with _open(tmp_path, messages) as history:
            warm = warm_start_genomes(history, QUERY_7B, count=10, repair=_clip_and_fix, on_warning=messages.append)

    # The farther run's genome, repaired by hand as in test_warm_start_repairs_other_space.
    np.testing.assert_array_equal(warm.genomes, np.array([[2048, 24, 32, 4, 16]], dtype=np.int32))
    assert warm.source_run_ids == [farther]
    assert len(messages) == 1
    assert f"run 1 in {tmp_path / DATABASE_NAME} is corrupt" in messages[0]
    assert fault in messages[0]
    assert any(fault in record.getMessage() for record in caplog.records)


def test_search_goes_on_past_corrupt_run(tmp_path: Path) -> None:
    from metagen_jax.engine import ArchitectureSearchEngine

    spec = Path(__file__).resolve().parent.parent / "specs" / "tiny_text_lm.yaml"
    first = ArchitectureSearchEngine(spec, budget=24, strategy="random", seed=1, history_dir=tmp_path).search()
    assert not any(warning.startswith("history:") for warning in first.warnings)
    _corrupt(tmp_path, "UPDATE front_members SET metrics_json = 'oops' WHERE run_id = 1")

    second = ArchitectureSearchEngine(spec, budget=24, strategy="random", seed=2, history_dir=tmp_path).search()

    assert second.summary["evaluated"] == 24
    assert second.extras["history"] == {"warm_start_candidates": 0, "source_runs": []}
    history_warnings = [warning for warning in second.warnings if warning.startswith("history:")]
    assert len(history_warnings) == 1
    assert history_warnings[0].startswith(f"history: run 1 in {tmp_path / DATABASE_NAME} is corrupt")
    with SearchHistory.open_existing(tmp_path) as history:
        assert [run.run_id for run in history.list_runs()] == [1, 2]


@pytest.mark.parametrize("case", sorted(CORRUPT_ROWS))
def test_cli_show_corrupt_run(populated: Path, case: str) -> None:
    statement, fault = CORRUPT_ROWS[case]
    _corrupt(populated, statement)
    for extra in ([], ["--json"]):
        result = CliRunner().invoke(history_app, ["show", "1", *extra, "--history-dir", str(populated)])
        assert result.exit_code == 2
        assert result.stdout == ""
        line = _single_error_line(result.stderr)
        assert f"run 1 in {populated / DATABASE_NAME} is corrupt" in line
        assert fault in line


def test_cli_list_skips_corrupt_run(populated: Path) -> None:
    _corrupt(populated, "UPDATE runs SET max_params = 'abc' WHERE run_id = 1")
    table = CliRunner().invoke(history_app, ["list", "--history-dir", str(populated)])
    as_json = CliRunner().invoke(history_app, ["list", "--json", "--history-dir", str(populated)])

    assert table.exit_code == 0, table.output
    assert "llm-70b" in table.stdout
    assert "llm-8b" not in table.stdout
    assert as_json.exit_code == 0, as_json.output
    assert [run["run_id"] for run in json.loads(as_json.stdout)] == [2]
    warning = as_json.stderr.strip()
    assert warning.startswith("warning: run 1 in ")
    assert "column max_params contains 'abc'" in warning


@pytest.mark.parametrize("run_id", ["99999999999999999999", str(MAX_RUN_ID + 1), "-5", "0"])
def test_cli_show_invalid_run_id(populated: Path, run_id: str) -> None:
    result = CliRunner().invoke(history_app, ["show", run_id, "--history-dir", str(populated)])
    assert result.exit_code == 2
    assert result.stdout == ""
    line = _single_error_line(result.stderr)
    assert f"invalid run id {run_id}" in line
    assert f"from 1 to {MAX_RUN_ID}" in line


def test_cli_show_largest_run_id(populated: Path) -> None:
    result = CliRunner().invoke(history_app, ["show", str(MAX_RUN_ID), "--history-dir", str(populated)])
    assert result.exit_code == 2
    assert f"run {MAX_RUN_ID} not found" in _single_error_line(result.stderr)


def _page_corrupted_history(directory: Path) -> bytes:
    with _open(directory) as history:
        _record(history)
    path = directory / DATABASE_NAME
    data = bytearray(path.read_bytes())
    data[0:16] = b"this is garbage!"
    path.write_bytes(bytes(data))
    return bytes(data)


def _text_history(directory: Path) -> bytes:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DATABASE_NAME).write_text("not a database")
    return b"not a database"


def _foreign_history(directory: Path) -> bytes:
    directory.mkdir(parents=True, exist_ok=True)
    foreign = sqlite3.connect(directory / DATABASE_NAME)
    foreign.execute("CREATE TABLE users (name TEXT)")
    foreign.commit()
    foreign.close()
    return (directory / DATABASE_NAME).read_bytes()


@pytest.mark.parametrize("make_file", [_page_corrupted_history, _text_history, _foreign_history])
@pytest.mark.parametrize("command", [["list"], ["list", "--json"], ["show", "1"], ["clear", "--yes"]])
def test_cli_leaves_unusable_file_in_place(tmp_path: Path, make_file, command: list[str]) -> None:
    directory = tmp_path / ".metagen"
    before = make_file(directory)
    files_before = _files(directory)

    result = CliRunner().invoke(history_app, [*command, "--history-dir", str(directory)])

    assert result.exit_code == 2
    assert result.stdout == ""
    line = _single_error_line(result.stderr)
    assert f"{directory / DATABASE_NAME} is unusable because" in line
    assert "the next search moves it aside" in line
    assert (directory / DATABASE_NAME).read_bytes() == before
    assert _aside_files(directory) == []
    assert _files(directory) == files_before


def test_search_still_moves_unusable_file_aside(tmp_path: Path) -> None:
    before = _text_history(tmp_path)
    messages: list[str] = []
    with _open(tmp_path, messages) as history:
        run_id = _record(history)
    aside = _aside_files(tmp_path)
    assert run_id == 1
    assert len(aside) == 1
    assert aside[0].read_bytes() == before
    assert "moved it to" in messages[0]


def test_cli_list_leaves_empty_file_empty(tmp_path: Path) -> None:
    (tmp_path / DATABASE_NAME).write_bytes(b"")
    result = CliRunner().invoke(history_app, ["list", "--json", "--history-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    assert (tmp_path / DATABASE_NAME).read_bytes() == b""


def test_cli_list_does_not_write_database(populated: Path) -> None:
    before = (populated / DATABASE_NAME).read_bytes()
    result = CliRunner().invoke(history_app, ["list", "--history-dir", str(populated)])
    assert result.exit_code == 0, result.output
    assert (populated / DATABASE_NAME).read_bytes() == before


def test_cli_show_newer_schema(tmp_path: Path) -> None:
    path = _write_newer_schema_database(tmp_path)
    result = CliRunner().invoke(history_app, ["show", "1", "--history-dir", str(tmp_path)])
    assert result.exit_code == 2
    line = _single_error_line(result.stderr)
    assert f"cannot use {path}" in line
    assert "newer than this metagen's version" in line


def test_open_existing_older_schema(tmp_path: Path) -> None:
    # Our application id with schema version 0: only a search may create the tables.
    path = tmp_path / DATABASE_NAME
    older = sqlite3.connect(path)
    older.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    older.commit()
    older.close()
    with pytest.raises(HistoryError, match="schema version 0 is older"):
        SearchHistory.open_existing(tmp_path)
    with SearchHistory.open_existing(tmp_path, writable=True) as history:
        assert history.list_runs() == []


def test_cli_error_prefix(populated: Path) -> None:
    # Every history error uses the `error: ` prefix of the rest of the CLI.
    unknown = CliRunner().invoke(history_app, ["show", "999", "--history-dir", str(populated)])
    missing = CliRunner().invoke(history_app, ["show", "1", "--history-dir", str(populated / "absent")])
    assert unknown.exit_code == 2
    assert "run 999 not found" in _single_error_line(unknown.stderr)
    assert missing.exit_code == 2
    assert "does not exist" in _single_error_line(missing.stderr)


def test_seeds_ordered_feasible_front_first() -> None:
    import jax

    from metagen_jax.engine_history import order_by_survival
    from metagen_jax.problem import build_problem

    requirements = Requirements(
        name="t", min_params=7_000_000_000, max_params=10_000_000_000, memory_budget_bytes=None,
        context_tokens=8192, device="h100", training_tokens=2e12, training_data_unit="tokens")
    problem = build_problem(requirements, ("params", "latency", "performance"))
    genomes = np.asarray(problem.space.sample(jax.random.key(3), 300))
    ordered = order_by_survival(problem, genomes)

    evaluation = problem.evaluate_host(ordered)
    objectives, violation = np.asarray(evaluation.objectives), np.asarray(evaluation.violation)
    feasible = violation <= 0
    points = objectives[feasible]
    on_front = np.zeros(len(ordered), dtype=bool)
    for row in np.flatnonzero(feasible):
        dominated = np.all(points <= objectives[row], axis=1) & np.any(points < objectives[row], axis=1)
        on_front[row] = not dominated.any()
    front_size = int(on_front.sum())
    assert 0 < front_size < int(feasible.sum()) < len(ordered)
    # The feasible front comes first, then the other feasible genomes, then the infeasible ones.
    assert on_front[:front_size].all()
    assert feasible[: int(feasible.sum())].all()
    assert np.all(np.diff(violation[int(feasible.sum()):]) >= 0)
    assert sorted(map(tuple, ordered.tolist())) == sorted(map(tuple, genomes.tolist()))
