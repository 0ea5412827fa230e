"""The metagen CLI through typer's runner: automl, estimate, validate, schema, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import BUNDLED_SPECS, REPO
from metagen_jax.cli import app

ARCHITECTURES = REPO / "tests" / "fixtures" / "architectures"
TINY = REPO / "specs" / "tiny_text_lm.yaml"

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("spec_path", BUNDLED_SPECS, ids=[p.stem for p in BUNDLED_SPECS])
def test_automl_writes_results(spec_path, tmp_path):
    result = invoke("automl", spec_path, "--out", tmp_path, "--search-budget", "64", "--no-history")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "automl_results.json").read_text())
    assert data["strategy"] == "random"
    assert data["search_budget"] == 64
    assert data["objectives"] == ["params", "latency", "performance"]
    assert data["summary"]["evaluated"] <= 64
    for key in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "ffn_multiplier", "params",
                "params_billion", "latency_ms", "memory_gb", "predicted_loss", "score", "feasible",
                "violation", "pareto_rank"):
        assert key in data["candidates"][0], key
    assert all(c["pareto_rank"] == 0 for c in data["pareto_front"])
    assert "candidates evaluated" in result.output


def test_automl_same_seed_same_file(tmp_path):
    outputs = []
    for run in ("a", "b"):
        result = invoke("automl", TINY, "-o", tmp_path / run, "--search-budget", "200", "--seed", "9",
                        "-O", "size,speed,quality,ram", "--no-history")
        assert result.exit_code == 0, result.output
        data = json.loads((tmp_path / run / "automl_results.json").read_text())
        data.pop("timing")
        outputs.append(data)
    assert outputs[0] == outputs[1]
    assert outputs[0]["objectives"] == ["params", "latency", "performance", "memory"]


def _front_by_pairwise_check(spec_path: Path) -> set[tuple[int, ...]]:
    """Genomes of the feasible Pareto front of a whole space, by plain NumPy pairwise checks."""
    from metagen_jax.objectives import DEFAULT_OBJECTIVES
    from metagen_jax.problem import build_problem
    from metagen_jax.specs import parse_spec

    problem = build_problem(parse_spec(spec_path).requirements, DEFAULT_OBJECTIVES)
    genomes = problem.space.genomes_at(np.arange(problem.space.size))
    evaluation = problem.evaluate_host(genomes)
    objectives, violation = np.asarray(evaluation.objectives), np.asarray(evaluation.violation)
    feasible = np.flatnonzero((violation <= 0) & np.all(np.isfinite(objectives), axis=1))
    points = objectives[feasible]
    front = set()
    for row, point in zip(feasible, points, strict=True):
        dominated = np.all(points <= point, axis=1) & np.any(points < point, axis=1)
        if not dominated.any():
            front.add(tuple(int(g) for g in genomes[row]))
    return front


def test_automl_exhaustive_sweep_and_resume(tmp_path):
    spec_path = REPO / "specs" / "edge_model.yaml"
    args = ("automl", spec_path, "-o", tmp_path, "--strategy", "exhaustive", "--chunk-size", "256",
            "--checkpoint-every", "1", "--no-history")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "automl_results.json").read_text())
    assert data["sweep"]["evaluated"] == data["summary"]["space_size"] == 1750
    assert data["sweep"]["partial"] is False
    found = {(c["hidden_size"], c["num_layers"], c["num_heads"], c["num_kv_heads"], round(c["ffn_multiplier"] * 4))
             for c in data["pareto_front"]}
    assert found == _front_by_pairwise_check(spec_path)
    assert (tmp_path / "exhaustive_checkpoint.npz").exists()

    again = invoke(*args, "--resume")
    assert again.exit_code == 0, again.output
    resumed = json.loads((tmp_path / "automl_results.json").read_text())
    assert resumed["pareto_front"] == data["pareto_front"]
    assert not any("no checkpoint" in warning for warning in resumed["warnings"])

    fresh = tmp_path / "fresh"
    started = invoke("automl", spec_path, "-o", fresh, "--strategy", "exhaustive", "--resume", "--no-history")
    assert started.exit_code == 0, started.output
    warnings = json.loads((fresh / "automl_results.json").read_text())["warnings"]
    assert f"resume: no checkpoint in {fresh}; the sweep started from the beginning" in warnings


@pytest.mark.parametrize("device", ["h100", "a100", "mi300x", "tpu-v5p", "cpu"])
def test_automl_device_capacity_as_memory_limit(tmp_path, device):
    # Without a memory budget the device's capacity is the limit; capacities above 2^31
    # bytes once overflowed the jitted violation.
    text = TINY.read_text().replace("  memory_budget: 2GB\n", "").replace("device: cpu", f"device: {device}")
    spec_path = tmp_path / "no_memory_budget.yaml"
    spec_path.write_text(text)
    result = invoke("automl", spec_path, "-o", tmp_path / "out", "--search-budget", "16", "--no-history")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "automl_results.json").read_text())
    assert data["summary"]["evaluated"] == 16


def _error_line(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(("args", "needle"), [
    (["--search-budget", "0"], "--search-budget"),
    (["--top-k", "0"], "--top-k"),
    (["--strategy", "annealing"], "unknown strategy"),
    (["-O", "params,beauty"], "unknown objective"),
    (["--device", "abacus"], "unknown device"),
    (["--strategy", "exhaustive", "--chunk-size", "0"], "--chunk-size"),
    (["--strategy", "exhaustive", "--checkpoint-every", "-1"], "--checkpoint-every"),
    (["--resume"], "--resume applies only to --strategy exhaustive, not 'random'"),
    (["--chunk-size", "256"], "--chunk-size applies only to --strategy exhaustive"),
    (["--strategy", "evolution", "--num-processes", "2"], "--num-processes applies only to --strategy exhaustive"),
    (["--generations", "5"], "--generations applies only to --strategy evolution, not 'random'"),
    (["--strategy", "exhaustive", "--population-size", "8"], "--population-size applies only"),
    (["--strategy", "evolution", "--generations", "0"], "--generations must be at least 1, got 0"),
    (["-O", "params,,latency"], "empty objective name"),
])
def test_automl_bad_options(tmp_path, args, needle):
    result = invoke("automl", TINY, "-o", tmp_path, "--no-history", *args)
    assert result.exit_code == 2
    assert needle in _error_line(result)
    assert not (tmp_path / "automl_results.json").exists()


def test_automl_bad_spec_paths(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nconstraints: [unclosed\n")
    for path, needle in ((tmp_path / "missing.yaml", "missing.yaml"), (tmp_path, str(tmp_path)),
                         (empty, "empty.yaml"), (broken, "broken.yaml")):
        result = invoke("automl", path, "-o", tmp_path / "out", "--no-history")
        assert result.exit_code == 2, path
        assert needle in _error_line(result)
    assert not (tmp_path / "out" / "automl_results.json").exists()


def test_automl_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = invoke("automl", TINY, "-o", blocker, "--no-history")
    assert result.exit_code == 2
    assert "--out" in _error_line(result)
    result = invoke("automl", TINY, "-o", blocker / "below", "--no-history")
    assert result.exit_code == 2
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize(("name", "params"), [
    ("llama2_7b", 6_738_415_616), ("gpt2", 124_439_808), ("vit_b16", 86_567_656), ("bert_base", 109_482_240),
])
def test_estimate_json_params(name, params):
    result = invoke("estimate", ARCHITECTURES / f"{name}.yaml", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["params"] == params
    for key in ("params_billion", "flops_per_token", "weights_bytes", "kv_cache_bytes", "activation_bytes",
                "memory_gb", "prefill_ms", "latency_ms", "throughput", "predicted_loss"):
        assert key in report, key


def test_estimate_llama_on_h100_by_hand():
    result = invoke("estimate", ARCHITECTURES / "llama2_7b.yaml", "--device", "h100", "--json")
    report = json.loads(result.output)
    # 4096-token context from max_position_embeddings: KV cache 2 GiB, decode memory bound.
    assert report["kv_cache_bytes"] == 2 * 32 * 4096 * 4096 * 2
    assert report["latency_ms"] == pytest.approx(5.830, abs=0.001)


def test_estimate_with_spec_uses_its_context():
    result = invoke("estimate", ARCHITECTURES / "llama2_7b.yaml", "--spec", REPO / "specs" / "text_llm_8b.yaml", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["context_tokens"] == 262144
    assert report["kv_cache_bytes"] == 2 * 32 * 4096 * 262144 * 2


def test_estimate_bad_architecture(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hidden_size: 1000\nnum_layers: 4\nnum_heads: 7\n")
    result = invoke("estimate", bad)
    assert result.exit_code == 2
    assert "num_heads" in _error_line(result)
    result = invoke("estimate", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert "not found" in _error_line(result)


def test_validate_and_schema():
    result = invoke("validate", REPO / "specs" / "text_llm_8b.yaml", "--json")
    assert result.exit_code == 0, result.output
    assert "262144" in result.output
    result = invoke("schema")
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert "constraints" in json.dumps(schema)


def test_validate_bad_spec(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nconstraints:\n  parameter_budget:\n    max: lots\n")
    result = invoke("validate", bad)
    assert result.exit_code == 2
    line = _error_line(result)
    assert "constraints.parameter_budget.max" in line
    assert "bad.yaml" in line


def test_automl_interrupt_swallowed_by_search_writes_nothing(tmp_path, monkeypatch):
    import os
    import signal

    import metagen_jax.engine as engine_module

    # One SIGINT during the search, whose KeyboardInterrupt (if any) some callee swallows, as
    # Python does for exceptions raised in garbage-collection callbacks.
    original = engine_module.random_search_genomes

    def interrupted_sampling(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass
        return original(*args, **kwargs)

    monkeypatch.setattr(engine_module, "random_search_genomes", interrupted_sampling)
    results = tmp_path / "automl_results.json"
    results.write_text("previous results\n")
    result = invoke("automl", TINY, "-o", tmp_path, "--search-budget", "32", "--no-history")
    assert result.exit_code == 130
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("interrupt received: stopping at the next step")
    assert lines[1] == "error: interrupted (SIGINT); no results were written"
    assert len(lines) == 2
    assert results.read_text() == "previous results\n"


def test_automl_second_interrupt_stops_at_once(tmp_path, monkeypatch):
    import os
    import signal

    import metagen_jax.engine as engine_module

    def interrupted_sampling(*args, **kwargs):
        # The first SIGINT requests a stop at the next step, the second stops at once.
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("a second SIGINT did not interrupt the search")

    monkeypatch.setattr(engine_module, "random_search_genomes", interrupted_sampling)
    result = invoke("automl", TINY, "-o", tmp_path, "--search-budget", "32", "--no-history")
    assert result.exit_code == 130
    assert result.output.strip().splitlines()[-1] == "error: interrupted (SIGINT); no results were written"
    assert not (tmp_path / "automl_results.json").exists()


def test_automl_bad_prototype_data_rejected_before_search(tmp_path, monkeypatch):
    import metagen_jax.engine as engine_module

    def no_search(*args, **kwargs):
        raise AssertionError("the search ran before --prototype-data was checked")

    monkeypatch.setattr(engine_module.ArchitectureSearchEngine, "search", no_search)
    ids = tmp_path / "ids.npy"
    np.save(ids, np.array([3, 1, 2**31 - 5], dtype=np.int64))
    result = invoke("automl", TINY, "-o", tmp_path / "out", "--no-history", "--train-prototypes",
                    "--prototype-data", ids)
    assert result.exit_code == 2
    assert "--prototype-data" in _error_line(result)
    assert "dense vocabulary" in _error_line(result)


def test_imports_leave_xla_backend_uninitialized():
    # jax.distributed.initialize must run before the backend starts, so the CLI's imports
    # may not start it (a jnp constant at module level once did).
    import subprocess
    import sys

    code = ("import jax._src.xla_bridge as bridge\n"
            "import metagen_jax.cli, metagen_jax.cli.automl, metagen_jax.engine\n"
            "import metagen_jax.strategies.exhaustive, metagen_jax.strategies.evolution\n"
            "print(bridge.backends_are_initialized())\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() == "False"


def test_automl_multi_host_options_single_process(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "metagen_jax.cli", "automl", str(REPO / "specs" / "edge_model.yaml"),
               "--strategy", "exhaustive", "--num-processes", "1", "--process-id", "0",
               "--coordinator-address", f"127.0.0.1:{port}", "-o", str(tmp_path), "--no-history"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    data = json.loads((tmp_path / "automl_results.json").read_text())
    assert data["sweep"]["processes"] == 1
    assert data["sweep"]["evaluated"] == 1750


def test_automl_short_prototype_data_rejected_before_search(tmp_path, monkeypatch):
    import metagen_jax.engine as engine_module

    def no_search(*args, **kwargs):
        raise AssertionError("the search ran before --prototype-data was checked")

    monkeypatch.setattr(engine_module.ArchitectureSearchEngine, "search", no_search)
    short = tmp_path / "short.txt"
    short.write_text("hi there, this is far shorter than a training sequence of 65 tokens\n" * 1)
    result = invoke("automl", TINY, "-o", tmp_path / "out", "--no-history", "--train-prototypes",
                    "--prototype-data", short)
    assert result.exit_code == 2
    line = _error_line(result)
    assert line.startswith(f"error: --prototype-data: UTF-8 bytes of {short}: the training split has sequences of")
    assert "fewer than the 65 that prototype training needs" in line
