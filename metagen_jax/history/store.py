"""SQLite store of past searches: one row per run plus the genomes and metrics of its Pareto front."""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from metagen_jax.history.opening import HistoryUnavailableError, open_database, write_transaction
from metagen_jax.history.schema import GENE_COLUMNS
from metagen_jax.history.similarity import MAX_WARM_START_DISTANCE, SpecFeatures, feature_distance

logger = logging.getLogger(__name__)

DATABASE_NAME = "history.db"
DEFAULT_HISTORY_DIR = Path(".metagen")
NUM_GENES = len(GENE_COLUMNS)
_INT32_MIN, _INT32_MAX = np.iinfo(np.int32).min, np.iinfo(np.int32).max

_FEATURE_COLUMNS = tuple(field.name for field in dataclasses.fields(SpecFeatures))
_RUN_COLUMNS = ("run_id", "created_utc", "spec_hash", "spec_name", "strategy", "seed", *_FEATURE_COLUMNS, "front_size")


class HistoryError(RuntimeError):
    """Raised when reading or writing the history database fails."""


class RunNotFoundError(LookupError):
    """Raised when no recorded run has the requested id."""


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """One recorded search without its front.

    Attributes:
        run_id: id assigned by the database, increasing and never reused.
        created_utc: time of recording, ISO 8601 in UTC.
        spec_hash: SHA-256 of the spec's canonical JSON (see ``spec_hash``).
        front_size: number of genomes in the recorded Pareto front.
    """

    run_id: int
    created_utc: str
    spec_hash: str
    spec_name: str
    strategy: str
    seed: int
    features: SpecFeatures
    front_size: int


@dataclasses.dataclass(frozen=True, eq=False)
class RunRecord:
    """One recorded search with its Pareto front.

    Attributes:
        genomes: (front_size, 5) int32 genome rows in the recorded order.
        metrics: one dict per genome, e.g. params (exact int), latency_ms, memory_gb.
    """

    summary: RunSummary
    genomes: np.ndarray
    metrics: tuple[dict[str, Any], ...]


def _to_json_value(value: Any, key: str, position: int) -> Any:
    if isinstance(value, np.generic | np.ndarray) and np.ndim(value) == 0:
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"metric {key!r} of front member {position} has type {type(value).__name__}; "
        "expected int, float, str, bool or None"
    )


def _encode_metrics(metrics: Mapping[str, Any], position: int) -> str:
    if not isinstance(metrics, Mapping):
        raise TypeError(f"front_metrics[{position}] is a {type(metrics).__name__}; expected a dict")
    encoded = {}
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise TypeError(f"front_metrics[{position}] has key {key!r}; expected str keys")
        encoded[key] = _to_json_value(value, key, position)
    # Python's json writes NaN and Infinity and reads them back, so non-finite metrics survive.
    return json.dumps(encoded)


def _validate_front(front_genomes: np.ndarray, front_metrics: Sequence[Mapping[str, Any]]) -> np.ndarray:
    genomes = np.asarray(front_genomes)
    if genomes.ndim != 2 or genomes.shape[1] != NUM_GENES:
        raise ValueError(f"front_genomes has shape {genomes.shape}; expected (n, {NUM_GENES})")
    if not np.issubdtype(genomes.dtype, np.integer):
        raise ValueError(f"front_genomes has dtype {genomes.dtype}; expected an integer dtype")
    if genomes.size and (genomes.min() < _INT32_MIN or genomes.max() > _INT32_MAX):
        raise ValueError("front_genomes has values outside the int32 range")
    if len(front_metrics) != genomes.shape[0]:
        raise ValueError(
            f"front_metrics has {len(front_metrics)} entries for {genomes.shape[0]} genomes; "
            "expected one dict per genome"
        )
    return genomes.astype(np.int64)


def _feature_values(features: SpecFeatures) -> tuple[Any, ...]:
    """Convert feature values to Python types, because sqlite3 cannot bind numpy integers."""
    values = []
    for name in _FEATURE_COLUMNS:
        value = getattr(features, name)
        if isinstance(value, np.generic):
            value = value.item()
        values.append(value)
    return tuple(values)


def _summary_from_row(row: Sequence[Any]) -> RunSummary:
    values = dict(zip(_RUN_COLUMNS, row, strict=True))
    features = SpecFeatures(**{name: values[name] for name in _FEATURE_COLUMNS})
    return RunSummary(
        run_id=values["run_id"],
        created_utc=values["created_utc"],
        spec_hash=values["spec_hash"],
        spec_name=values["spec_name"],
        strategy=values["strategy"],
        seed=values["seed"],
        features=features,
        front_size=values["front_size"],
    )


class SearchHistory:
    """Record of past searches in ``<directory>/history.db``.

    Use ``SearchHistory.open``, which turns history off instead of failing a search. Each object
    owns one SQLite connection, which only the thread that opened it may use.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self._path = path
        self._connection = connection

    @classmethod
    def open(
        cls,
        directory: Path | str = DEFAULT_HISTORY_DIR,
        *,
        create: bool = True,
        on_warning: Callable[[str], None] | None = None,
    ) -> SearchHistory | None:
        """Open or create the history in ``directory``, or return None when history must be off.

        A corrupt file, or a file of another program, is moved aside and replaced (see
        ``metagen_jax.history.opening``). History is off when the folder or the database cannot
        be created or written, or when a newer metagen wrote the file. Each of these cases logs a
        warning and passes the same message to ``on_warning``, so a CLI can print it.

        Args:
            directory: folder of ``history.db``.
            create: when False and no database exists, return None without creating anything.
            on_warning: called with each warning message.
        """

        def report(message: str) -> None:
            logger.warning("%s", message)
            if on_warning is not None:
                on_warning(message)

        directory = Path(directory)
        path = directory / DATABASE_NAME
        if not create and not path.exists():
            return None

        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            report(f"search history is off: cannot create folder {directory}: {error}")
            return None
        if path.exists() and not path.is_file():
            report(f"search history is off: {path} exists but is not a regular file")
            return None

        try:
            connection = open_database(path, report)
        except (OSError, sqlite3.Error, HistoryUnavailableError) as error:
            report(f"search history is off: cannot use {path}: {error}")
            return None
        return cls(path, connection)

    @property
    def path(self) -> Path:
        """Path of the database file."""
        return self._path

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> SearchHistory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def record_run(
        self,
        features: SpecFeatures,
        spec_hash: str,
        spec_name: str,
        strategy: str,
        seed: int,
        front_genomes: np.ndarray,
        front_metrics: Sequence[Mapping[str, Any]],
    ) -> int:
        """Store one search and its Pareto front in a single transaction and return its run id.

        Raises:
            ValueError, TypeError: when the front's shape, dtype or metrics are invalid.
            HistoryError: when the database write fails, in which case nothing of the run is stored.
        """
        genomes = _validate_front(front_genomes, front_metrics)
        metrics_json = [_encode_metrics(metrics, position) for position, metrics in enumerate(front_metrics)]
        created_utc = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        run_values = (
            created_utc,
            str(spec_hash),
            str(spec_name),
            str(strategy),
            int(seed),
            *_feature_values(features),
            genomes.shape[0],
        )
        member_rows = [
            (position, *(int(gene) for gene in genome), metrics_json[position])
            for position, genome in enumerate(genomes)
        ]
        insert_run = (
            f"INSERT INTO runs ({', '.join(_RUN_COLUMNS[1:])}) "
            f"VALUES ({', '.join('?' * len(run_values))})"
        )
        member_columns = ("run_id", "position", *GENE_COLUMNS, "metrics_json")
        insert_members = (
            f"INSERT INTO front_members ({', '.join(member_columns)}) "
            f"VALUES ({', '.join('?' * len(member_columns))})"
        )

        try:
            with write_transaction(self._connection):
                run_id = self._connection.execute(insert_run, run_values).lastrowid
                self._connection.executemany(insert_members, [(run_id, *row) for row in member_rows])
        except sqlite3.Error as error:
            raise HistoryError(f"failed to record the run of spec {spec_name!r} in {self._path}: {error}") from error
        return int(run_id)

    def list_runs(self) -> list[RunSummary]:
        """Return all recorded runs, oldest first."""
        try:
            rows = self._connection.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs ORDER BY run_id").fetchall()
        except sqlite3.Error as error:
            raise HistoryError(f"failed to read runs from {self._path}: {error}") from error
        return [_summary_from_row(row) for row in rows]

    def get_run(self, run_id: int) -> RunRecord:
        """Return one run with its front.

        Raises:
            RunNotFoundError: when no run has this id.
            HistoryError: when the read fails.
        """
        gene_list = ", ".join(GENE_COLUMNS)
        try:
            # One read transaction, so a concurrent clear() cannot split the run from its front.
            self._connection.execute("BEGIN")
            try:
                row = self._connection.execute(
                    f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE run_id = ?", (run_id,)
                ).fetchone()
                members = self._connection.execute(
                    f"SELECT {gene_list}, metrics_json FROM front_members WHERE run_id = ? ORDER BY position",
                    (run_id,),
                ).fetchall()
            finally:
                self._connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise HistoryError(f"failed to read run {run_id} from {self._path}: {error}") from error
        if row is None:
            raise RunNotFoundError(f"run {run_id} not found in {self._path}")

        genomes = np.array([member[:NUM_GENES] for member in members], dtype=np.int32).reshape(-1, NUM_GENES)
        metrics = tuple(json.loads(member[NUM_GENES]) for member in members)
        return RunRecord(summary=_summary_from_row(row), genomes=genomes, metrics=metrics)

    def nearest_runs(
        self,
        features: SpecFeatures,
        k: int = 3,
        *,
        max_distance: float = MAX_WARM_START_DISTANCE,
    ) -> list[tuple[RunSummary, float]]:
        """Return up to ``k`` runs within ``max_distance`` of ``features``, nearest first.

        Distance is ``feature_distance``. Among runs at equal distance the newer run comes first.
        """
        if k < 0:
            raise ValueError(f"k is {k}; expected a count >= 0")
        scored = [(summary, feature_distance(features, summary.features)) for summary in self.list_runs()]
        within = [(summary, distance) for summary, distance in scored if distance <= max_distance]
        within.sort(key=lambda item: (item[1], -item[0].run_id))
        return within[:k]

    def clear(self) -> int:
        """Delete every recorded run and return how many were deleted. Run ids are not reused."""
        try:
            with write_transaction(self._connection):
                self._connection.execute("DELETE FROM front_members")
                deleted = self._connection.execute("DELETE FROM runs").rowcount
        except sqlite3.Error as error:
            raise HistoryError(f"failed to clear {self._path}: {error}") from error
        return int(deleted)
