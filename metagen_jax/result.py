"""Search results on the host: candidates, the Pareto front, JSON and atomic saving."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

GIGA = 1e9


@dataclasses.dataclass
class Candidate:
    """One evaluated architecture with its metrics.

    Memory figures are in decimal gigabytes (1e9 bytes), latency in milliseconds, loss in
    nats per token. `params` is exact.
    """

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    ffn_multiplier: float
    ffn_hidden_size: int
    params: int
    params_billion: float
    flops_per_token: float
    latency_ms: float
    prefill_ms: float
    throughput: float
    memory_gb: float
    weights_gb: float
    kv_cache_gb: float
    state_gb: float
    activations_gb: float
    predicted_loss: float
    score: float
    feasible: bool
    violation: float
    pareto_rank: int
    on_pareto_front: bool
    source: str = "search"
    prototype_loss: float | None = None
    prototype_steps: int | None = None
    prototype_seconds: float | None = None
    prototype_failure: str | None = None

    @property
    def genome(self) -> tuple[int, int, int, int, int]:
        return (self.hidden_size, self.num_layers, self.num_heads, self.num_kv_heads,
                round(self.ffn_multiplier * 4))

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        if self.prototype_loss is None and self.prototype_failure is None:
            for key in ("prototype_loss", "prototype_steps", "prototype_seconds", "prototype_failure"):
                record.pop(key)
        return record


@dataclasses.dataclass
class SearchResult:
    """Everything a search found, ranked: front first, then other feasible, then infeasible.

    Attributes:
        candidates: ranked candidates kept for the report (all evaluated ones, up to
            `max_reported` plus the whole front).
        pareto_front: the feasible Pareto front over all evaluated candidates.
        summary: counts (evaluated, feasible, front size, reported) and search facts.
        timing: wall-clock seconds per phase; the only part that varies between equal runs.
    """

    spec_name: str
    strategy: str
    seed: int
    search_budget: int
    objectives: list[str]
    constraints: dict[str, Any]
    device: dict[str, Any]
    architecture: dict[str, Any]
    candidates: list[Candidate]
    pareto_front: list[Candidate]
    summary: dict[str, Any]
    warnings: list[str] = dataclasses.field(default_factory=list)
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
    timing: dict[str, float] = dataclasses.field(default_factory=dict)

    def top_k(self, k: int) -> list[Candidate]:
        """Return the k best candidates in ranking order."""
        return self.candidates[: max(0, k)]

    @property
    def feasible(self) -> bool:
        return bool(self.summary.get("feasible", 0))

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "spec_name": self.spec_name,
            "strategy": self.strategy,
            "seed": self.seed,
            "search_budget": self.search_budget,
            "objectives": list(self.objectives),
            "constraints": self.constraints,
            "device": self.device,
            "architecture": self.architecture,
            "summary": self.summary,
            "warnings": list(self.warnings),
        }
        record.update(self.extras)
        record["candidates"] = [c.to_dict() for c in self.candidates]
        record["pareto_front"] = [c.to_dict() for c in self.pareto_front]
        record["timing"] = dict(self.timing)
        return record

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, default=_json_default) + "\n"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON atomically (temporary file in the same folder, then rename)."""
        return write_text_atomic(Path(path), self.to_json())


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` as UTF-8 to `path` so that readers see the old file or the new one, never a part."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, payload: bytes) -> Path:
    """Write `payload` to `path` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file as 0600; give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
