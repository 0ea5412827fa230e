"""Schema of the history database and the migrations between its versions.

``PRAGMA user_version`` stores the schema version and ``PRAGMA application_id`` marks the file
as a metagen history, so a SQLite file of another program is not taken for ours unless that
program sets the same application id.
``MIGRATIONS[v]`` upgrades a database from version ``v`` to ``v + 1``. Version 0 is an empty file.
To change the schema, append a migration: never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

# "MGEN" in ASCII.
APPLICATION_ID = 0x4D47454E

# Database columns of the genome genes, in the genome's column order. A new gene needs a
# migration that adds its column.
GENE_COLUMNS = ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "ffn_quarters")


def _create_version_1(connection: sqlite3.Connection) -> None:
    connection.execute(
        """
        CREATE TABLE runs (
            run_id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_utc TEXT NOT NULL,
            spec_hash TEXT NOT NULL,
            spec_name TEXT NOT NULL,
            strategy TEXT NOT NULL,
            seed INTEGER NOT NULL,
            modality TEXT NOT NULL,
            task_type TEXT NOT NULL,
            family TEXT NOT NULL,
            min_params INTEGER,
            max_params INTEGER,
            context_tokens INTEGER NOT NULL,
            device TEXT NOT NULL,
            training_tokens REAL,
            front_size INTEGER NOT NULL
        )
        """
    )
    connection.execute("CREATE INDEX runs_by_spec_hash ON runs (spec_hash)")
    gene_definitions = ",\n".join(f"{column} INTEGER NOT NULL" for column in GENE_COLUMNS)
    connection.execute(
        f"""
        CREATE TABLE front_members (
            run_id INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            {gene_definitions},
            metrics_json TEXT NOT NULL,
            PRIMARY KEY (run_id, position)
        )
        """
    )
    connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_create_version_1,)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(connection: sqlite3.Connection, from_version: int) -> None:
    """Apply the migrations from ``from_version`` up to ``SCHEMA_VERSION`` and record the version.

    The caller owns the transaction, so a failed migration leaves the file unchanged.
    """
    for version in range(from_version, SCHEMA_VERSION):
        MIGRATIONS[version](connection)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
