"""Initial genomes for a new search, taken from the Pareto fronts of the nearest past runs."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import numpy as np

from metagen_jax.history.similarity import MAX_WARM_START_DISTANCE, SpecFeatures
from metagen_jax.history.store import NUM_GENES, CorruptRunError, HistoryError, RunNotFoundError, SearchHistory

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class WarmStart:
    """Genomes that seed a search.

    Attributes:
        genomes: (n, 5) int32, valid in the new space, without duplicates, nearest run first.
        source_run_ids: ids of the runs that contributed at least one of ``genomes``, nearest first.
    """

    genomes: np.ndarray
    source_run_ids: list[int]


def _empty() -> WarmStart:
    return WarmStart(genomes=np.zeros((0, NUM_GENES), dtype=np.int32), source_run_ids=[])


def warm_start_genomes(
    history: SearchHistory | None,
    features: SpecFeatures,
    count: int,
    repair: Callable[[np.ndarray], np.ndarray],
    *,
    k: int = 3,
    max_distance: float = MAX_WARM_START_DISTANCE,
    on_warning: Callable[[str], None] | None = None,
) -> WarmStart:
    """Collect up to ``count`` distinct genomes from the fronts of the ``k`` nearest runs.

    The fronts are concatenated nearest run first, mapped into the new search space by one call
    of ``repair`` on the whole (n, 5) array, and deduplicated keeping the first occurrence. A
    corrupt run is skipped and the next nearest runs still contribute. A failed history read
    returns no genomes, so the search starts cold. Both log a warning and pass it to ``on_warning``.

    Args:
        history: open history, or None when history is off (returns no genomes).
        features: features of the new spec.
        count: maximum number of genomes to return.
        repair: the new space's repair, mapping any (n, 5) int array to valid genomes.
        k: number of nearest runs to read.
        max_distance: runs farther than this are ignored (see ``feature_distance``).
        on_warning: called with each warning message.

    Raises:
        ValueError: when ``count`` is negative or ``repair`` returns another shape or a
            non-integer dtype.
    """
    if count < 0:
        raise ValueError(f"count is {count}; expected a number of genomes >= 0")
    if history is None or count == 0:
        return _empty()

    def warn(message: str) -> None:
        logger.warning("%s", message)
        if on_warning is not None:
            on_warning(message)

    blocks: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    try:
        neighbours = history.nearest_runs(features, k=k, max_distance=max_distance)
        for summary, _ in neighbours:
            try:
                record = history.get_run(summary.run_id)
            except RunNotFoundError:
                # Another process cleared the history after nearest_runs read it.
                continue
            except CorruptRunError as error:
                warn(f"{error}. Warm start skipped this run")
                continue
            blocks.append(record.genomes)
            owners.append(np.full(record.genomes.shape[0], summary.run_id, dtype=np.int64))
    except HistoryError as error:
        warn(f"warm start skipped, the search starts without history: {error}")
        return _empty()

    if not blocks or sum(block.shape[0] for block in blocks) == 0:
        return _empty()
    stacked = np.concatenate(blocks)
    owner_ids = np.concatenate(owners)

    repaired = np.asarray(repair(stacked))
    if repaired.shape != stacked.shape:
        raise ValueError(
            f"repair returned shape {repaired.shape} for input shape {stacked.shape}; expected the same shape"
        )
    if not np.issubdtype(repaired.dtype, np.integer):
        raise ValueError(f"repair returned dtype {repaired.dtype}; expected an integer dtype")
    repaired = repaired.astype(np.int32)

    _, first_rows = np.unique(repaired, axis=0, return_index=True)
    kept_rows = np.sort(first_rows)[:count]
    source_run_ids = list(dict.fromkeys(int(run_id) for run_id in owner_ids[kept_rows]))
    return WarmStart(genomes=repaired[kept_rows], source_run_ids=source_run_ids)
