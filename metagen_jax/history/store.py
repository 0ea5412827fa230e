"""SQLite store of past searches: one row per run plus the genomes and metrics of its Pareto front."""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from metagen_jax.history.opening import (
    HistoryUnavailableError,
    UnusableDatabaseError,
    open_database,
    open_existing_database,
    write_transaction,
)
from metagen_jax.history.schema import GENE_COLUMNS
from metagen_jax.history.similarity import MAX_WARM_START_DISTANCE, SpecFeatures, feature_distance

logger = logging.getLogger(__name__)

DATABASE_NAME = "history.db"
DEFAULT_HISTORY_DIR = Path(".metagen")
NUM_GENES = len(GENE_COLUMNS)
_INT32_MIN, _INT32_MAX = np.iinfo(np.int32).min, np.iinfo(np.int32).max
# SQLite stores integers as signed 64-bit values, so no run id is outside this range.
_SQLITE_INTEGER_MIN, MAX_RUN_ID = -(2**63), 2**63 - 1
# Corrupt runs that one read reports in a line each. Any further ones share one line with their count.
_MAX_REPORTED_CORRUPT_RUNS = 3

_FEATURE_COLUMNS = tuple(field.name for field in dataclasses.fields(SpecFeatures))
_RUN_COLUMNS = ("run_id", "created_utc", "spec_hash", "spec_name", "strategy", "seed", *_FEATURE_COLUMNS, "front_size")


class HistoryError(RuntimeError):
    """Raised when reading or writing the history database fails."""


class RunNotFoundError(LookupError):
    """Raised when no recorded run has the requested id."""


class CorruptRunError(HistoryError):
    """Raised when a stored run contains a value that ``record_run`` never writes.

    Attributes:
        run_id: id of the run.
        path: path of the database file.
    """

    def __init__(self, path: Path, run_id: int, reason: str) -> None:
        super().__init__(f"run {run_id} in {path} is corrupt: {reason}")
        self.path = path
        self.run_id = run_id


class _InvalidValueError(ValueError):
    """A stored value of the wrong type or range. ``CorruptRunError`` adds the run id and the file."""


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


def _shorten(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return (_is_integer(value) or isinstance(value, float)) and math.isfinite(value)


# Check and description of each column kind. SQLite keeps any value that a column's type
# affinity cannot convert, e.g. the text 'abc' in an INTEGER column, so reads check the type.
_COLUMN_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "text": (lambda value: isinstance(value, str), "text"),
    "integer": (_is_integer, "an integer"),
    "optional integer": (lambda value: value is None or _is_integer(value), "an integer or NULL"),
    "optional number": (lambda value: value is None or _is_finite_number(value), "a finite number or NULL"),
}
_RUN_COLUMN_KINDS = {
    "run_id": "integer",
    "created_utc": "text",
    "spec_hash": "text",
    "spec_name": "text",
    "strategy": "text",
    "seed": "integer",
    "modality": "text",
    "task_type": "text",
    "family": "text",
    "min_params": "optional integer",
    "max_params": "optional integer",
    "context_tokens": "integer",
    "device": "text",
    "training_tokens": "optional number",
    "front_size": "integer",
}


def _check_column(name: str, value: Any, kind: str) -> None:
    is_valid, description = _COLUMN_KINDS[kind]
    if not is_valid(value):
        raise _InvalidValueError(f"column {name} contains {_shorten(value)}; expected {description}")


def _genome_from_member(member: Sequence[Any], position: int) -> list[int]:
    genome = list(member[:NUM_GENES])
    for name, gene in zip(GENE_COLUMNS, genome, strict=True):
        if not _is_integer(gene) or not _INT32_MIN <= gene <= _INT32_MAX:
            raise _InvalidValueError(
                f"column {name} of front member {position} contains {_shorten(gene)}; expected an int32 integer"
            )
    return genome


def _metrics_from_member(metrics_json: Any, position: int) -> dict[str, Any]:
    if not isinstance(metrics_json, str):
        raise _InvalidValueError(
            f"metrics_json of front member {position} contains {_shorten(metrics_json)}; expected text"
        )
    try:
        metrics = json.loads(metrics_json)
    except json.JSONDecodeError as error:
        raise _InvalidValueError(f"metrics_json of front member {position} is not valid JSON ({error})") from None
    if not isinstance(metrics, dict):
        raise _InvalidValueError(
            f"metrics_json of front member {position} is a JSON {type(metrics).__name__}; expected an object"
        )
    for key, value in metrics.items():
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise _InvalidValueError(
                f"metric {key!r} of front member {position} is a JSON {type(value).__name__}; "
                "expected a number, string, boolean or null"
            )
    return metrics


def _summary_from_row(row: Sequence[Any], path: Path) -> RunSummary:
    """Build a summary from a ``runs`` row, raising ``CorruptRunError`` for a value of the wrong type."""
    values = dict(zip(_RUN_COLUMNS, row, strict=True))
    try:
        for name, kind in _RUN_COLUMN_KINDS.items():
            _check_column(name, values[name], kind)
        if values["front_size"] < 0:
            raise _InvalidValueError(f"column front_size contains {values['front_size']}; expected a count >= 0")
    except _InvalidValueError as error:
        raise CorruptRunError(path, values["run_id"], str(error)) from None
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

    Use ``SearchHistory.open``, which turns history off instead of failing a search, or
    ``SearchHistory.open_existing``, which leaves an unusable file in place. Each object owns one
    SQLite connection, which only the thread that opened it may use. Reads skip corrupt runs
    (see ``CorruptRunError``), log a warning naming each and pass it to ``on_warning``.
    """

    def __init__(
        self,
        path: Path,
        connection: sqlite3.Connection,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self._path = path
        self._connection = connection
        self._on_warning = on_warning

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
        return cls(path, connection, on_warning)

    @classmethod
    def open_existing(
        cls,
        directory: Path | str = DEFAULT_HISTORY_DIR,
        *,
        writable: bool = False,
        on_warning: Callable[[str], None] | None = None,
    ) -> SearchHistory | None:
        """Open the history in ``directory`` without creating, moving aside or replacing a file.

        For commands that inspect or clear the history, which must leave an unusable file where
        the user can look at it. Returns None when ``history.db`` does not exist or is empty.

        Args:
            directory: folder of ``history.db``.
            writable: open for writing (``clear``). Otherwise SQLite opens the file read-only.
            on_warning: called with the warning about each corrupt run that a read skips.

        Raises:
            HistoryError: when the file is corrupt, belongs to another program, has a schema
                that this metagen cannot read, or cannot be opened.
        """
        path = Path(directory) / DATABASE_NAME
        if not path.exists():
            return None
        if not path.is_file():
            raise HistoryError(f"{path} exists but is not a regular file")
        try:
            connection = open_existing_database(path, writable=writable)
        except UnusableDatabaseError as error:
            raise HistoryError(
                f"{path} is unusable because {error}. It was left in place, and the next search moves it "
                "aside and starts a new history"
            ) from error
        except (OSError, sqlite3.Error, HistoryUnavailableError) as error:
            raise HistoryError(f"cannot use {path}: {error}") from error
        if connection is None:
            return None
        return cls(path, connection, on_warning)

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

    def _warn(self, message: str) -> None:
        logger.warning("%s", message)
        if self._on_warning is not None:
            self._on_warning(message)

    def _report_skipped(self, skipped: list[CorruptRunError]) -> None:
        for error in skipped[:_MAX_REPORTED_CORRUPT_RUNS]:
            self._warn(f"{error}. Skipped this run")
        if len(skipped) > _MAX_REPORTED_CORRUPT_RUNS:
            more_ids = [error.run_id for error in skipped[_MAX_REPORTED_CORRUPT_RUNS:]]
            self._warn(
                f"skipped {len(more_ids)} more corrupt runs in {self._path}, ids {more_ids[0]} to {more_ids[-1]}"
            )

    def list_runs(self) -> list[RunSummary]:
        """Return all readable recorded runs, oldest first. Corrupt runs are skipped with a warning."""
        try:
            rows = self._connection.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs ORDER BY run_id").fetchall()
        except sqlite3.Error as error:
            raise HistoryError(f"failed to read runs from {self._path}: {error}") from error
        runs: list[RunSummary] = []
        skipped: list[CorruptRunError] = []
        for row in rows:
            try:
                runs.append(_summary_from_row(row, self._path))
            except CorruptRunError as error:
                skipped.append(error)
        self._report_skipped(skipped)
        return runs

    def count_runs(self) -> int:
        """Return the number of stored runs, corrupt ones included."""
        try:
            return int(self._connection.execute("SELECT count(*) FROM runs").fetchone()[0])
        except sqlite3.Error as error:
            raise HistoryError(f"failed to count runs in {self._path}: {error}") from error

    def get_run(self, run_id: int) -> RunRecord:
        """Return one run with its front.

        Raises:
            RunNotFoundError: when no run has this id, including any id outside SQLite's
                64-bit integer range.
            CorruptRunError: when the run or its front contains a value of the wrong type, or
                the number of stored front members differs from its front_size.
            HistoryError: when the read fails.
        """
        if not _SQLITE_INTEGER_MIN <= run_id <= MAX_RUN_ID:
            raise RunNotFoundError(f"run {run_id} not found in {self._path}")
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

        summary = _summary_from_row(row, self._path)
        try:
            if len(members) != summary.front_size:
                raise _InvalidValueError(
                    f"it has {len(members)} front members; expected front_size {summary.front_size}"
                )
            genome_rows = [_genome_from_member(member, position) for position, member in enumerate(members)]
            metrics = tuple(
                _metrics_from_member(member[NUM_GENES], position) for position, member in enumerate(members)
            )
        except _InvalidValueError as error:
            raise CorruptRunError(self._path, summary.run_id, str(error)) from None
        genomes = np.array(genome_rows, dtype=np.int32).reshape(-1, NUM_GENES)
        return RunRecord(summary=summary, genomes=genomes, metrics=metrics)

    def nearest_runs(
        self,
        features: SpecFeatures,
        k: int = 3,
        *,
        max_distance: float = MAX_WARM_START_DISTANCE,
    ) -> list[tuple[RunSummary, float]]:
        """Return up to ``k`` runs within ``max_distance`` of ``features``, nearest first.

        Distance is ``feature_distance``. Among runs at equal distance the newer run comes first.
        Corrupt runs are skipped with a warning (see ``list_runs``).
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
