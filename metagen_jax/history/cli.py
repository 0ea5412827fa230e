"""``metagen history``: list, show and clear recorded searches.

These commands never create, migrate or move aside the database. A corrupt file stays in place
and each command reports it in one ``error:`` line with exit code 2, so the user can inspect it.
Only a search moves an unusable file aside.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from metagen_jax.history.schema import GENE_COLUMNS
from metagen_jax.history.store import (
    DATABASE_NAME,
    DEFAULT_HISTORY_DIR,
    MAX_RUN_ID,
    HistoryError,
    RunNotFoundError,
    RunRecord,
    RunSummary,
    SearchHistory,
)

history_app = typer.Typer(
    help="List, show and clear the recorded searches that seed later searches.",
    no_args_is_help=True,
)

HistoryDirOption = Annotated[
    Path,
    typer.Option("--history-dir", help="Folder that contains the history database (history.db)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

# Short gene and metric headers, so that a front table with the usual metrics fits 80 columns.
_GENE_HEADERS = ("hidden", "layers", "heads", "kv", "ffn/4")

# Headers of the usual metrics, in display order. Other metrics follow in recorded order.
_METRIC_HEADERS = {
    "params": "params",
    "latency_ms": "latency\nms",
    "memory_gb": "memory\nGB",
    "predicted_loss": "loss",
    "score": "score",
}
_SI_PREFIXES = ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "k"))


# metagen_jax.cli imports this module to mount it, so importing metagen_jax.cli.common at the
# top would be circular whenever this module is imported first.


def _fail(message: str) -> typer.Exit:
    from metagen_jax.cli.common import fail

    return fail(message)


def _warn(message: str) -> None:
    from metagen_jax.cli.common import print_warnings

    print_warnings([message])


def _open_existing(directory: Path, *, writable: bool = False) -> SearchHistory | None:
    """Open the history without creating or moving anything. Return None when none exists.

    Raises:
        typer.Exit: code 2, after one error line, when the file is unusable.
    """
    try:
        return SearchHistory.open_existing(directory, writable=writable, on_warning=_warn)
    except HistoryError as error:
        raise _fail(str(error)) from None


def _finite_or_none(value: Any) -> Any:
    """Replace NaN and infinity by None, because strict JSON has no literal for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _summary_json(summary: RunSummary) -> dict[str, Any]:
    return {
        "run_id": summary.run_id,
        "created_utc": summary.created_utc,
        "spec_hash": summary.spec_hash,
        "spec_name": summary.spec_name,
        "strategy": summary.strategy,
        "seed": summary.seed,
        "front_size": summary.front_size,
        "features": {key: _finite_or_none(value) for key, value in dataclasses.asdict(summary.features).items()},
    }


def _record_json(record: RunRecord) -> dict[str, Any]:
    front = []
    for genome, metrics in zip(record.genomes.tolist(), record.metrics, strict=True):
        front.append(
            {
                "genome": dict(zip(GENE_COLUMNS, genome, strict=True)),
                "metrics": {key: _finite_or_none(value) for key, value in metrics.items()},
            }
        )
    return {"run": _summary_json(record.summary), "front": front}


def _format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _format_count(value: Any) -> str:
    """Format a parameter count as 123.5M. The JSON output keeps the exact count."""
    if not isinstance(value, int) or isinstance(value, bool):
        return _format_value(value)
    if abs(value) >= 10**15:
        return f"{value:.3g}"
    for scale, prefix in _SI_PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.4g}{prefix}"
    return str(value)


def _metric_columns(metrics: tuple[dict[str, Any], ...]) -> list[str]:
    seen = dict.fromkeys(key for entry in metrics for key in entry)
    leading = [key for key in _METRIC_HEADERS if key in seen]
    return leading + [key for key in seen if key not in _METRIC_HEADERS]


def _runs_table(runs: list[RunSummary]) -> Table:
    table = Table(title="Recorded searches")
    for header in ("id", "created (UTC)", "spec", "strategy", "seed", "front"):
        justify = "right" if header in ("id", "seed", "front") else "left"
        table.add_column(header, justify=justify, overflow="fold")
    for run in runs:
        created = run.created_utc.removesuffix("+00:00").replace("T", " ")
        table.add_row(str(run.run_id), created, run.spec_name, run.strategy, str(run.seed), str(run.front_size))
    return table


def _features_table(summary: RunSummary) -> Table:
    table = Table(title=f"Run {summary.run_id}: {summary.spec_name}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    rows = {
        "created (UTC)": summary.created_utc,
        "spec hash": summary.spec_hash,
        "strategy": summary.strategy,
        "seed": summary.seed,
        **dataclasses.asdict(summary.features),
    }
    for key, value in rows.items():
        table.add_row(key, _format_value(value))
    return table


def _front_table(record: RunRecord) -> Table:
    metric_columns = _metric_columns(record.metrics)
    table = Table(title=f"Pareto front ({record.summary.front_size} genomes)", box=None, pad_edge=False)
    metric_headers = [_METRIC_HEADERS.get(key, key) for key in metric_columns]
    for header in ("#", *_GENE_HEADERS, *metric_headers):
        table.add_column(header, justify="right")
    for position, (genome, metrics) in enumerate(zip(record.genomes.tolist(), record.metrics, strict=True)):
        cells = [str(position), *(str(gene) for gene in genome)]
        for key in metric_columns:
            format_cell = _format_count if key == "params" else _format_value
            cells.append(format_cell(metrics.get(key)))
        table.add_row(*cells)
    return table


@history_app.command("list")
def list_command(history_dir: HistoryDirOption = DEFAULT_HISTORY_DIR, json_output: JsonOption = False) -> None:
    """List recorded searches, oldest first."""
    history = _open_existing(history_dir)
    try:
        runs = [] if history is None else history.list_runs()
    except HistoryError as error:
        raise _fail(str(error)) from None
    finally:
        if history is not None:
            history.close()

    if json_output:
        typer.echo(json.dumps([_summary_json(run) for run in runs], indent=2, allow_nan=False))
    elif not runs:
        Console().print(f"No runs recorded in {history_dir / DATABASE_NAME}.", markup=False)
    else:
        Console().print(_runs_table(runs))


# ignore_unknown_options lets a negative RUN such as "-5" reach the range check instead of
# failing as an unknown option.
@history_app.command("show", context_settings={"ignore_unknown_options": True})
def show_command(
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="Run id, as printed by `metagen history list`.")],
    history_dir: HistoryDirOption = DEFAULT_HISTORY_DIR,
    json_output: JsonOption = False,
) -> None:
    """Show one search: its spec features and its Pareto front."""
    if not 1 <= run_id <= MAX_RUN_ID:
        raise _fail(
            f"invalid run id {run_id}: expected an integer from 1 to {MAX_RUN_ID}, as printed by "
            "`metagen history list`"
        )
    history = _open_existing(history_dir)
    if history is None:
        raise _fail(f"run {run_id} not found because {history_dir / DATABASE_NAME} does not exist")
    try:
        record = history.get_run(run_id)
    except RunNotFoundError as error:
        raise _fail(f"{error}. Run `metagen history list` to see the recorded run ids") from None
    except HistoryError as error:
        raise _fail(str(error)) from None
    finally:
        history.close()

    if json_output:
        typer.echo(json.dumps(_record_json(record), indent=2, allow_nan=False))
        return
    console = Console()
    console.print(_features_table(record.summary))
    console.print(_front_table(record))


@history_app.command("clear")
def clear_command(
    history_dir: HistoryDirOption = DEFAULT_HISTORY_DIR,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking for confirmation.")] = False,
) -> None:
    """Delete every recorded search. The database file and its schema stay."""
    history = _open_existing(history_dir, writable=True)
    if history is None:
        Console().print(f"No runs recorded in {history_dir / DATABASE_NAME}.", markup=False)
        return
    try:
        count = history.count_runs()
        if not yes:
            typer.confirm(f"Delete all {count} recorded runs from {history.path}?", abort=True)
        deleted = history.clear()
    except HistoryError as error:
        raise _fail(str(error)) from None
    finally:
        history.close()
    Console().print(f"Deleted {deleted} runs from {history_dir / DATABASE_NAME}.", markup=False)
