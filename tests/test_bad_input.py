"""Bad input to the metagen CLI: each case ends with one `error:` line and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import REPO
from metagen_jax.cli import app

ARCHITECTURES = REPO / "tests" / "fixtures" / "architectures"
TINY = REPO / "specs" / "tiny_text_lm.yaml"
LONG_SPEC = REPO / "specs" / "text_llm_8b.yaml"  # context_window: 256k = 262,144 tokens
METAGEN = Path(sys.executable).parent / "metagen"

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    return lines[0]


# Sets a 4 GiB address-space limit, then replaces itself with the console script. A
# preexec_fn would do the same, but it forks a process that has JAX's threads running.
_LIMITED_EXEC = (
    "import os, resource, sys; "
    "resource.setrlimit(resource.RLIMIT_AS, (4 * 1024**3, 4 * 1024**3)); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def run_metagen(*args: object) -> subprocess.CompletedProcess[str]:
    """Run the installed console script, killed after 60 s, failing when it maps over 4 GiB."""
    return subprocess.run(
        [sys.executable, "-c", _LIMITED_EXEC, str(METAGEN), *map(str, args)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )


def kv_cache_bytes(layers: int, kv_width: int, context: int, bytes_per_element: int = 2) -> int:
    """Keys and values of every layer for a full context."""
    return 2 * layers * kv_width * context * bytes_per_element


# Usage errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "needles"), [
    (["validate", "--bogus", TINY], ["No such option: --bogus", "validate --help"]),
    (["validate"], ["Missing argument 'SPEC'", "validate --help"]),
    (["automl", TINY, "--search-budget", "abc"], ["'--search-budget'", "automl --help"]),
    (["estimate", ARCHITECTURES / "gpt2.yaml", "--context-length", "many"], ["'--context-length'"]),
    (["nosuchcommand"], ["No such command 'nosuchcommand'"]),
    (["history", "--bogus"], ["No such option: --bogus", "history --help"]),
])
def test_usage_error_one_line(args, needles):
    result = invoke(*args)
    assert result.exit_code == 2
    line = error_line(result.output)
    for needle in needles:
        assert needle in line, (needle, line)


def test_help_output_kept():
    result = invoke("validate", "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output
    assert "--json" in result.output
    assert len(result.output.strip().splitlines()) > 3


def test_usage_error_from_console_script():
    completed = run_metagen("validate", "--bogus", TINY)
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert error_line(completed.stderr) == (
        "error: metagen validate: No such option: --bogus. Run 'metagen validate --help' for usage."
    )


# Spec files ------------------------------------------------------------------------------


def alias_bomb(path: Path) -> Path:
    lines = ["name: bomb", "training:", "  config:", "    a0: &a0 [" + ", ".join(["x"] * 9) + "]"]
    lines += [f"    a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]" for level in range(1, 9)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.skipif(not METAGEN.exists(), reason="needs the console script")
@pytest.mark.parametrize("command", ["validate", "automl"])
def test_alias_bomb_rejected(tmp_path, command):
    # In a subprocess with a memory limit, because expanding these aliases builds
    # (9**9 - 1) / 8 = 48 million lists of 9 items, over 6 GB.
    spec = alias_bomb(tmp_path / "bomb.yaml")
    extra = ["--search-budget", "10", "-o", tmp_path / "out", "--no-history"] if command == "automl" else []
    completed = run_metagen(command, spec, *extra)
    assert completed.returncode == 2, completed.stderr
    line = error_line(completed.stderr)
    assert line.startswith(f"error: {spec}:8: training.config.a4: YAML aliases")
    assert not (tmp_path / "out").exists()


def test_validate_json_of_long_integer(tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text("name: big\ntraining:\n  config:\n    lr: " + "9" * 5000 + "\n")
    result = invoke("validate", spec, "--json")
    assert result.exit_code == 2
    assert error_line(result.output).startswith(f"error: {spec}:4: training.config.lr: invalid integer")


def test_unknown_device_in_spec(tmp_path):
    spec = tmp_path / "device.yaml"
    spec.write_text("name: d\nconstraints:\n  device: h900\n")
    for args in (["validate", spec], ["automl", spec, "--search-budget", "10", "-o", tmp_path / "out"]):
        result = invoke(*args)
        assert result.exit_code == 2
        line = error_line(result.output)
        assert line.startswith(f"error: {spec}:3: constraints.device: unknown device 'h900'. Did you mean ")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not METAGEN.exists() or not hasattr(os, "mkfifo"), reason="needs the console script and FIFOs")
@pytest.mark.parametrize("command", ["validate", "estimate"])
def test_special_files_rejected(tmp_path, command):
    fifo = tmp_path / "input.yaml"
    os.mkfifo(fifo)
    label = "spec file" if command == "validate" else "architecture file"
    for path, kind in ((fifo, "a named pipe (FIFO)"), (Path("/dev/zero"), "a character device")):
        completed = run_metagen(command, path)
        assert completed.returncode == 2, completed.stderr
        assert error_line(completed.stderr) == (
            f"error: {path}: this is {kind}, not a regular file. Expected a .yaml or .json {label}."
        )


# metagen estimate --------------------------------------------------------------------------


def llama_with_context(tmp_path: Path, context: int) -> Path:
    path = tmp_path / "llama_context.yaml"
    path.write_text((ARCHITECTURES / "llama2_7b.yaml").read_text() + f"context_length: {context}\n")
    return path


def estimate_json(*args: object) -> dict:
    result = invoke("estimate", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_estimate_context_precedence(tmp_path):
    # Llama 2 7B: 32 layers, 32 kv heads of 128 = 4,096 kv width, max_position_embeddings 4,096.
    llama = ARCHITECTURES / "llama2_7b.yaml"
    with_context = llama_with_context(tmp_path, 8192)
    cases = [
        ((llama,), 4096),  # the file's max_position_embeddings
        ((llama, "--spec", LONG_SPEC), 262_144),  # the spec wins over max_position_embeddings
        ((with_context, "--spec", LONG_SPEC), 8192),  # the file's context_length wins over the spec
        ((with_context, "--spec", LONG_SPEC, "--context-length", 1000), 1000),  # the option wins
        ((llama, "--context-length", 2048), 2048),
    ]
    for args, context in cases:
        report = estimate_json(*args)
        assert report["context_tokens"] == context, args
        assert report["kv_cache_bytes"] == kv_cache_bytes(32, 4096, context), args


@pytest.mark.parametrize("value", ["0", "16777217"])
def test_estimate_context_length_range(value):
    result = invoke("estimate", ARCHITECTURES / "gpt2.yaml", "--context-length", value)
    assert result.exit_code == 2
    assert error_line(result.output) == (
        f"error: --context-length must be from 1 to 16,777,216 tokens, got {value}"
    )


def test_estimate_mamba_family_is_pure_ssm(tmp_path):
    # mamba-130m: 24 layers of 3,771,648 parameters, tied 50,280 x 768 embedding, final norm.
    mamba = tmp_path / "mamba.yaml"
    mamba.write_text("hidden_size: 768\nnum_layers: 24\nfamily: mamba\nvocab_size: 50280\ntie_embeddings: true\n")
    result = invoke("estimate", mamba, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["params"] == 129_135_360


def test_estimate_family_alias_accepted(tmp_path):
    gpt2 = (ARCHITECTURES / "gpt2.yaml").read_text()
    reports = []
    for family in ("transformer", "gpt"):
        path = tmp_path / f"{family}.yaml"
        path.write_text(gpt2 + f"family: {family}\n")
        reports.append(estimate_json(path))
    assert reports[1]["params"] == reports[0]["params"] == 124_439_808


def test_estimate_unknown_family(tmp_path):
    path = tmp_path / "odd.yaml"
    path.write_text("hidden_size: 768\nnum_layers: 12\nfamily: capsule\n")
    result = invoke("estimate", path)
    assert result.exit_code == 2
    assert error_line(result.output).startswith(f"error: {path}: family: unknown family 'capsule'. Supported families:")


def test_estimate_long_integer_field(tmp_path):
    path = tmp_path / "wide.yaml"
    path.write_text(f"hidden_size: {'9' * 400}\nnum_layers: 12\n")
    result = invoke("estimate", path)
    assert result.exit_code == 2
    assert error_line(result.output).startswith(f"error: {path}: hidden_size: expected a whole number up to 16,777,216")


def test_estimate_parameter_overflow_rejected(tmp_path):
    # 12 * (1e7)^2 * 1e5 = 1.2e20 parameters: beyond int64, which once wrapped to a negative count.
    huge = tmp_path / "huge.yaml"
    huge.write_text("hidden_size: 10000000\nnum_layers: 100000\nnum_heads: 100\n")
    result = invoke("estimate", huge, "--json")
    assert result.exit_code == 2
    line = error_line(result.output)
    assert line.startswith(f"error: {huge}: the parameter count is about 1.")
    assert "int64" in line


def test_validate_rejects_context_beyond_cost_model(tmp_path):
    spec = tmp_path / "big_context.yaml"
    spec.write_text('metagen_version: "1.0"\nname: big\nmodality: {inputs: [text], outputs: [text]}\n'
                    "task: {type: generation}\nconstraints:\n  context_window: 1e15\n")
    for command in ("validate", "automl"):
        result = invoke(command, spec, *(["-o", tmp_path / "out", "--no-history"] if command == "automl" else []))
        assert result.exit_code == 2
        line = error_line(result.output)
        assert line.startswith(f"error: {spec}:6: constraints.context_window: a context of 1,000,000,000,000,000")
        assert "(1,073,741,824)" in line
