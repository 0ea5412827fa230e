"""Open, check and if needed replace the history database file.

A file that SQLite reports as corrupt, that fails ``PRAGMA quick_check``, or that is a SQLite
database of another program is renamed to ``history.db.corrupt-<UTC timestamp>`` (with its
``-wal`` and ``-shm`` files) and a new database takes its place. Nothing is deleted. Opening
takes an exclusive ``flock`` on ``history.db.lock``, so two concurrent searches cannot both
rename the file, and one cannot rename the new database that another has just created.

``open_existing_database`` is for commands that only inspect or clear the history. It creates
and moves nothing, and raises ``UnusableDatabaseError`` for a file that a search would move aside.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from metagen_jax.history.schema import APPLICATION_ID, SCHEMA_VERSION, migrate

try:
    import fcntl
except ImportError:  # Windows has no fcntl.
    fcntl = None

# Seconds that a connection waits for another process's lock before SQLITE_BUSY.
BUSY_TIMEOUT_S = 30.0


class HistoryUnavailableError(RuntimeError):
    """Raised when the history database exists but this process must not write it."""


class UnusableDatabaseError(RuntimeError):
    """Raised by ``open_existing_database`` for a file that a search would move aside."""


def connect(path: Path, *, mode: str | None = None) -> sqlite3.Connection:
    """Open a connection in autocommit mode, so that transactions are explicit.

    ``mode`` is SQLite's URI open mode: "ro" opens read-only and "rw" does not create a missing
    file. None creates the file when it is missing.
    """
    target: str | Path = path
    if mode is not None:
        # as_uri percent-encodes the path, so a "?" or "#" in a folder name stays part of the path.
        target = f"{path.absolute().as_uri()}?mode={mode}"
    connection = sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, isolation_level=None, uri=mode is not None)
    connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


@contextlib.contextmanager
def write_transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """Run the block in one ``BEGIN IMMEDIATE`` transaction, rolled back on any exception."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    if fcntl is None:
        # NOTE: without fcntl, two processes that find the same corrupt file may both move it.
        yield
        return
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def _is_corruption(error: sqlite3.DatabaseError) -> bool:
    name = getattr(error, "sqlite_errorname", "") or ""
    return name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB"


def _find_problem(connection: sqlite3.Connection) -> str | None:
    """Return why the file is unusable as our history, or None when it is ours or empty.

    Raises:
        HistoryUnavailableError: when a newer metagen wrote the file.
        sqlite3.DatabaseError: when SQLite cannot read the file.
    """
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    object_count = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]

    if application_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise HistoryUnavailableError(
                f"schema version {version} is newer than this metagen's version {SCHEMA_VERSION}. "
                "Upgrade metagen or use another history folder"
            )
        check = connection.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            return f"its integrity check failed: {check[0][0]}"
        return None

    if application_id == 0 and version == 0 and object_count == 0:
        return None
    return (
        f"it is not a metagen history database (application_id {application_id}, "
        f"{object_count} schema objects)"
    )


def _aside_path(path: Path) -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.corrupt-{stamp}")
    suffix = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.corrupt-{stamp}-{suffix}")
        suffix += 1
    return candidate


def _move_aside(path: Path) -> Path:
    """Rename the database and its -wal and -shm files, keeping SQLite's naming so they open together."""
    target = _aside_path(path)
    os.rename(path, target)
    for suffix in ("-wal", "-shm"):
        companion = Path(f"{path}{suffix}")
        if companion.exists():
            os.rename(companion, Path(f"{target}{suffix}"))
    return target


def _prepare(connection: sqlite3.Connection) -> None:
    """Switch to WAL mode and migrate to the current schema.

    The migration transaction always writes the header, so a database that this process cannot
    write fails here and not at the end of a search.
    """
    # NOTE: WAL needs shared memory between processes, which SQLite does not support on network
    # file systems. There the pragma may keep the rollback journal, which still serializes writers.
    connection.execute("PRAGMA journal_mode = WAL")
    with write_transaction(connection):
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise HistoryUnavailableError(
                f"schema version {version} is newer than this metagen's version {SCHEMA_VERSION}"
            )
        migrate(connection, version)


def open_database(path: Path, report: Callable[[str], None]) -> sqlite3.Connection:
    """Return a connection to a usable history database at ``path``, replacing an unusable file.

    ``report`` receives a message for every file moved aside.

    Raises:
        HistoryUnavailableError: when a newer metagen wrote the file.
        sqlite3.Error, OSError: when the file or folder cannot be read or written.
    """
    with _exclusive_lock(path.with_name(f"{path.name}.lock")):
        connection = connect(path)
        try:
            problem = _find_problem(connection)
        except sqlite3.DatabaseError as error:
            if not _is_corruption(error):
                connection.close()
                raise
            problem = f"SQLite cannot read it: {error}"
        except BaseException:
            connection.close()
            raise

        if problem is not None:
            connection.close()
            target = _move_aside(path)
            report(f"{path} is unusable because {problem}; moved it to {target} and started a new history")
            connection = connect(path)

        try:
            _prepare(connection)
        except BaseException:
            connection.close()
            raise
    return connection


def open_existing_database(path: Path, *, writable: bool) -> sqlite3.Connection | None:
    """Return a connection to the existing history at ``path`` without replacing an unusable file.

    Nothing is created or moved aside. With ``writable=False`` SQLite opens the file read-only.
    With ``writable=True`` the file is switched to WAL mode and migrated as in ``open_database``.
    Returns None for an empty file, which contains no runs yet.

    Raises:
        UnusableDatabaseError: when the file is corrupt or is another program's database, or,
            with ``writable=False``, when its schema is older than this metagen's.
        HistoryUnavailableError: when a newer metagen wrote the file.
        sqlite3.Error, OSError: when the file cannot be opened or read.
    """
    connection = connect(path, mode="rw" if writable else "ro")
    try:
        problem = _find_problem(connection)
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError as error:
        connection.close()
        if _is_corruption(error):
            raise UnusableDatabaseError(f"SQLite cannot read it: {error}") from error
        raise
    except BaseException:
        connection.close()
        raise

    if problem is not None:
        connection.close()
        raise UnusableDatabaseError(problem)
    if application_id == 0:
        # _find_problem accepts a file without our application id only when it is empty.
        connection.close()
        return None

    if writable:
        try:
            _prepare(connection)
        except BaseException:
            connection.close()
            raise
    elif version < SCHEMA_VERSION:
        connection.close()
        raise UnusableDatabaseError(
            f"its schema version {version} is older than this metagen's version {SCHEMA_VERSION}, "
            "and only a search migrates it"
        )
    return connection
