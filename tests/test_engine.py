"""ArchitectureSearchEngine with random search, on every bundled spec."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import BUNDLED_SPECS
from metagen_jax import ArchitectureSearchEngine, SearchError, load_spec
from metagen_jax.problem import _evaluate_jit
from metagen_jax.specs import parse_spec


def slow_front_indices(objectives: np.ndarray, feasible: np.ndarray) -> set[int]:
    """Brute-force non-dominated set among the feasible rows."""
    front = set()
    for i in np.flatnonzero(feasible):
        dominated = False
        for j in np.flatnonzero(feasible):
            if np.all(objectives[j] <= objectives[i]) and np.any(objectives[j] < objectives[i]):
                dominated = True
                break
        if not dominated:
            front.add(int(i))
    return front


@pytest.mark.parametrize("spec_path", BUNDLED_SPECS, ids=[p.stem for p in BUNDLED_SPECS])
def test_random_search_on_bundled_spec(spec_path):
    parsed = parse_spec(spec_path)
    requirements = parsed.requirements
    engine = ArchitectureSearchEngine(spec=parsed, budget=400, strategy="random", seed=3)
    result = engine.search()

    assert result.summary["evaluated"] == min(400, engine.problem.space.size)
    assert len(result.candidates) == result.summary["evaluated"]
    genomes = np.array([c.genome for c in result.candidates])
    assert engine.problem.space.is_valid(genomes).all()
    assert len({c.genome for c in result.candidates}) == len(result.candidates)

    for candidate in result.candidates:
        if not candidate.feasible:
            continue
        if requirements.max_params is not None:
            assert candidate.params <= requirements.max_params
        if requirements.min_params is not None:
            assert candidate.params >= requirements.min_params
        limit = requirements.memory_budget_bytes or engine.problem.device.memory_capacity
        assert candidate.memory_gb * 1e9 <= limit * (1 + 1e-6)
        if requirements.latency_ms is not None:
            assert candidate.latency_ms <= requirements.latency_ms * (1 + 1e-6)

    # Order: front, then other feasible, then infeasible by violation.
    groups = [0 if c.on_pareto_front else (1 if c.feasible else 2) for c in result.candidates]
    assert groups == sorted(groups)
    infeasible = [c.violation for c in result.candidates if not c.feasible and c.violation is not None]
    assert infeasible == sorted(infeasible)


def test_front_matches_slow_reference():
    parsed = parse_spec([p for p in BUNDLED_SPECS if p.stem == "tiny_text_lm"][0])
    engine = ArchitectureSearchEngine(spec=parsed, budget=300, seed=11)
    result = engine.search()
    genomes = np.array([c.genome for c in result.candidates], dtype=np.int32)
    evaluation = engine.problem.evaluate_host(genomes)
    feasible = evaluation.violation <= 0
    expected = slow_front_indices(np.asarray(evaluation.objectives, dtype=np.float64), feasible)
    actual = {i for i, c in enumerate(result.candidates) if c.on_pareto_front}
    assert expected
    assert actual == expected
    assert all(result.candidates[i].pareto_rank == 0 for i in actual)
    assert all(c.pareto_rank > 0 for i, c in enumerate(result.candidates) if i not in actual)


def test_same_seed_same_json_apart_from_timing(tmp_path):
    spec, _ = load_spec([p for p in BUNDLED_SPECS if p.stem == "text_llm_8b"][0])
    first = ArchitectureSearchEngine(spec=spec, budget=500, seed=5).search().to_dict()
    second = ArchitectureSearchEngine(spec=spec, budget=500, seed=5).search().to_dict()
    other = ArchitectureSearchEngine(spec=spec, budget=500, seed=6).search().to_dict()
    for record in (first, second, other):
        record.pop("timing")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert first["candidates"] != other["candidates"]


def test_budget_beyond_space_evaluates_whole_space():
    parsed = parse_spec([p for p in BUNDLED_SPECS if p.stem == "edge_model"][0])
    engine = ArchitectureSearchEngine(spec=parsed, budget=10**7, seed=0)
    size = engine.problem.space.size
    assert size < 10**5
    result = engine.search()
    assert result.summary["evaluated"] == size


def test_evaluation_compiles_once_per_bucket():
    parsed = parse_spec([p for p in BUNDLED_SPECS if p.stem == "tiny_text_lm"][0])
    ArchitectureSearchEngine(spec=parsed, budget=100, seed=0).search()
    compiled = _evaluate_jit._cache_size()
    for budget, seed in ((200, 1), (500, 2), (1000, 3)):
        ArchitectureSearchEngine(spec=parsed, budget=budget, seed=seed).search()
    assert _evaluate_jit._cache_size() == compiled


def test_infeasible_spec_reports_least_violating(tmp_path):
    spec_file = tmp_path / "impossible.yaml"
    spec_file.write_text(
        "metagen_version: '1.0'\nname: impossible\nmodality: {inputs: [text], outputs: [text]}\n"
        "task: {type: generation}\nconstraints:\n  parameter_budget: {max: 70B, min: 60B}\n"
        "  memory_budget: 1GB\n  device: mobile\n  context_window: 8k\n"
    )
    result = ArchitectureSearchEngine(spec=parse_spec(spec_file), budget=200, seed=0).search()
    assert result.summary["feasible"] == 0
    assert result.pareto_front == []
    assert any("no candidate meets every constraint" in w for w in result.warnings)
    violations = [c.violation for c in result.candidates]
    assert violations == sorted(violations)
    assert violations[0] > 0


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(budget=0), "at least 1"),
    (dict(strategy="annealing"), "unknown strategy"),
    (dict(objectives="params,beauty"), "unknown objective"),
    (dict(device="quantum"), "unknown device"),
])
def test_invalid_settings_raise_search_error(kwargs, message):
    spec, _ = load_spec([p for p in BUNDLED_SPECS if p.stem == "tiny_text_lm"][0])
    settings = dict(spec=spec, budget=10) | kwargs
    with pytest.raises(SearchError, match=message):
        ArchitectureSearchEngine(**settings)


def test_result_api(tmp_path):
    spec, _ = load_spec([p for p in BUNDLED_SPECS if p.stem == "vit_image_classifier"][0])
    result = ArchitectureSearchEngine(spec=spec, budget=50, strategy="random", seed=42).search()
    top = result.top_k(3)
    assert len(top) == 3
    for candidate in top:
        assert candidate.params_billion == pytest.approx(candidate.params / 1e9)
        assert candidate.latency_ms > 0
        assert candidate.memory_gb > 0
        assert candidate.predicted_loss > 0
    saved = result.save(tmp_path / "out" / "results.json")
    data = json.loads(saved.read_text())
    assert data["spec_name"] == "vit_image_classifier"
    assert data["candidates"][0]["hidden_size"] == top[0].hidden_size
    assert isinstance(data["candidates"][0]["params"], int)
    assert "timing" in data


def test_score_with_one_reference_candidate():
    from metagen_jax.objectives import desirability_score

    objectives = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [0.5, 2.0, 1.0]])
    feasible = np.array([True, False, False])
    score = desirability_score(objectives, feasible)
    # Constant reference columns: at or below the lone feasible value is best (0), above is worst (1).
    np.testing.assert_allclose(score, [1.0, 0.0, 2.0 / 3.0])
