"""Search history in ``.metagen/history.db``: past runs seed later searches of similar specs.

The CLI sub-app lives in ``metagen_jax.history.cli`` so that importing this package does not
import typer or rich.
"""

from metagen_jax.history.schema import SCHEMA_VERSION
from metagen_jax.history.similarity import (
    MAX_WARM_START_DISTANCE,
    SpecFeatures,
    feature_distance,
    spec_features,
    spec_hash,
)
from metagen_jax.history.store import (
    DATABASE_NAME,
    DEFAULT_HISTORY_DIR,
    MAX_RUN_ID,
    CorruptRunError,
    HistoryError,
    RunNotFoundError,
    RunRecord,
    RunSummary,
    SearchHistory,
)
from metagen_jax.history.warm_start import WarmStart, warm_start_genomes

__all__ = [
    "DATABASE_NAME",
    "DEFAULT_HISTORY_DIR",
    "MAX_WARM_START_DISTANCE",
    "MAX_RUN_ID",
    "SCHEMA_VERSION",
    "CorruptRunError",
    "HistoryError",
    "RunNotFoundError",
    "RunRecord",
    "RunSummary",
    "SearchHistory",
    "SpecFeatures",
    "WarmStart",
    "feature_distance",
    "spec_features",
    "spec_hash",
    "warm_start_genomes",
]
