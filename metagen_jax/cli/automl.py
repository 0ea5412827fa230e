"""`metagen automl`: search a spec's architecture space and report the best candidates."""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from metagen_jax.cli import INTERRUPTED_EXIT_CODE, interrupt
from metagen_jax.cli.common import (
    check_output_folder,
    console,
    enable_compilation_cache,
    fail,
    load_spec_or_fail,
    print_warnings,
)

logger = logging.getLogger(__name__)

RESULTS_FILE = "automl_results.json"


def _exit_130_on_interrupt(command):
    """End `command` with one error line and exit code 130 on a KeyboardInterrupt.

    Typer turns a KeyboardInterrupt into exit code 130 and prints nothing, so this wrapper
    prints the error line. Interrupts during the search itself are caught earlier by
    `_InterruptGuard`, which knows that no results were written yet.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            interrupt.clear()
            raise fail("interrupted (SIGINT)", code=INTERRUPTED_EXIT_CODE) from None

    return wrapper


@_exit_130_on_interrupt
def automl(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Spec file (YAML or JSON).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for automl_results.json.")] = Path("outputs"),
    search_budget: Annotated[int, typer.Option(
        help="Maximum candidates to evaluate (random and evolution; a sweep evaluates the whole space).")] = 10,
    top_k: Annotated[int, typer.Option(help="Candidates to show in the table.")] = 3,
    objectives: Annotated[Optional[str], typer.Option(
        "--objectives", "-O",
        help="Comma-separated objectives: params, latency, performance, memory "
             "(synonyms: size, speed, accuracy, quality, ram). Default: params,latency,performance.")] = None,
    strategy: Annotated[str, typer.Option(help="random, evolution or exhaustive.")] = "random",
    generations: Annotated[Optional[int], typer.Option(
        help="Evolution generations (default: max(3, round(sqrt(budget) / 3))).")] = None,
    population_size: Annotated[Optional[int], typer.Option(
        help="Evolution population per generation (default: chosen from the budget).")] = None,
    train_prototypes: Annotated[bool, typer.Option(
        "--train-prototypes", help="Train a tiny prototype of the Pareto-front candidates and rank them by loss.")] = False,
    prototype_steps: Annotated[int, typer.Option(help="Training steps per prototype.")] = 100,
    prototype_candidates: Annotated[int, typer.Option(
        help="How many leading candidates (Pareto front first) get a trained prototype.")] = 16,
    prototype_data: Annotated[Optional[Path], typer.Option(
        help="Training data for prototypes: a UTF-8 text file (byte tokens) or a .npy of token ids. "
             "Default: a synthetic token task.")] = None,
    seed: Annotated[Optional[int], typer.Option(
        help="Random seed; equal seeds give equal results. Default: the spec's reproducibility.seed, else 42.")] = None,
    device: Annotated[Optional[str], typer.Option(help="Device profile overriding the spec's device (e.g. h100, rtx4090).")] = None,
    history_dir: Annotated[Path, typer.Option(help="Folder of the search history database.")] = Path(".metagen"),
    no_history: Annotated[bool, typer.Option("--no-history", help="Neither read nor record search history.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Exhaustive sweep: continue from the checkpoint in OUT.")] = False,
    chunk_size: Annotated[Optional[int], typer.Option(
        help="Exhaustive sweep: genomes per step over all devices (default 2^20 per CPU device, "
             "2^23 per accelerator).")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(
        help="Exhaustive sweep: save a checkpoint every this many chunks (default 8).")] = None,
    coordinator_address: Annotated[Optional[str], typer.Option(
        help="Multi-host sweep: host:port of process 0 (else JAX reads the cluster environment).")] = None,
    num_processes: Annotated[Optional[int], typer.Option(help="Multi-host sweep: number of processes.")] = None,
    process_id: Annotated[Optional[int], typer.Option(help="Multi-host sweep: this process's index.")] = None,
) -> None:
    """Search SPEC's architecture space and write OUT/automl_results.json."""
    from metagen_jax.engine import ArchitectureSearchEngine, SearchError

    if search_budget < 1:
        raise fail(f"--search-budget must be at least 1, got {search_budget}")
    if top_k < 1:
        raise fail(f"--top-k must be at least 1, got {top_k}")
    if prototype_steps < 1:
        raise fail(f"--prototype-steps must be at least 1, got {prototype_steps}")
    if prototype_candidates < 1:
        raise fail(f"--prototype-candidates must be at least 1, got {prototype_candidates}")
    chosen = strategy.strip().lower()
    only_for = {"exhaustive": (("--resume", resume), ("--chunk-size", chunk_size),
                               ("--checkpoint-every", checkpoint_every),
                               ("--coordinator-address", coordinator_address),
                               ("--num-processes", num_processes), ("--process-id", process_id)),
                "evolution": (("--generations", generations), ("--population-size", population_size))}
    for owner, options in only_for.items():
        for name, value in options:
            if value not in (None, False) and chosen != owner:
                raise fail(f"{name} applies only to --strategy {owner}, not {chosen!r}")
    for name, value in (("--generations", generations), ("--population-size", population_size),
                        ("--chunk-size", chunk_size), ("--checkpoint-every", checkpoint_every)):
        if value is not None and value < 1:
            raise fail(f"{name} must be at least 1, got {value}")
    if prototype_data is not None and not prototype_data.is_file():
        raise fail(f"--prototype-data {prototype_data}: file not found")
    if seed is not None and not 0 <= seed < 2**32:
        raise fail(f"--seed must be from 0 to 4294967295, got {seed}")
    parsed = load_spec_or_fail(spec_path)
    prototype_tokens = None
    if train_prototypes and prototype_data is not None:
        # Read and check the data before the search, so a bad file costs no search time.
        from metagen_jax.prototype import load_prototype_data

        from metagen_jax.prototype.train import DEFAULT_SEQ_LEN

        try:
            prototype_tokens = load_prototype_data(prototype_data)
            prototype_tokens.check_length(DEFAULT_SEQ_LEN + 1)
        except (ValueError, OSError) as error:
            raise fail(f"--prototype-data: {error}") from None
    if chosen == "exhaustive":
        # With no options this joins a cluster only when JAX's cluster environment is set.
        from metagen_jax.distributed import initialize_distributed

        try:
            initialize_distributed(coordinator_address, num_processes, process_id)
        except (ValueError, RuntimeError) as error:
            raise fail(f"--coordinator-address/--num-processes/--process-id: {error}") from None
    # After joining: jax.distributed.initialize must run before any other JAX call.
    enable_compilation_cache()
    # A sweep acknowledges SIGINT/SIGTERM with a warning; show it even when quiet.
    sweep_logger = logging.getLogger("metagen_jax.strategies.exhaustive")
    if sweep_logger.getEffectiveLevel() > logging.WARNING:
        sweep_logger.setLevel(logging.WARNING)
    if seed is None:
        seed = parsed.requirements.seed

    sweep = chosen == "exhaustive"
    # The sweep stops at a chunk boundary and saves its partial results on SIGINT by itself.
    with _InterruptGuard(enabled=not sweep) as guard, _progress_bar(guard) as (progress_callback, _):
        try:
            engine = ArchitectureSearchEngine(
                spec=parsed, budget=search_budget, strategy=strategy, seed=seed,
                objectives=objectives, generations=generations, population_size=population_size,
                device=device, history_dir=None if no_history else history_dir,
                progress=progress_callback, sweep_dir=out, resume=resume,
                chunk_size=chunk_size, checkpoint_every=checkpoint_every,
            )
        except SearchError as error:
            message = str(error)
            raise fail(f"--{message}" if device is not None and message.startswith("device ") else message) from None
        # Only now, with every option valid, may the output folder be created.
        guard.check()
        check_output_folder(out)
        try:
            started = time.perf_counter()
            result = engine.search()
        except SearchError as error:
            raise fail(str(error)) from None
        if train_prototypes:
            from metagen_jax.prototype_ranking import rank_by_prototypes

            rank_by_prototypes(result, steps=prototype_steps, seed=seed, count=prototype_candidates,
                               data=prototype_tokens, progress=progress_callback)

    if guard.received:
        raise guard.stop()
    if not engine.is_writer:
        # Multi-host sweep: process 0 writes the results for everyone.
        raise typer.Exit(code=engine.exit_code)
    saved = result.save(out / RESULTS_FILE)
    print_warnings(result.warnings)
    console.print(candidates_table(result, top_k))
    summary = result.summary
    console.print(
        f"{summary['evaluated']:,} candidates evaluated, {summary['feasible']:,} feasible, "
        f"Pareto front of {summary['pareto_front_size']}, {time.perf_counter() - started:.2f} s "
        f"-> {saved}",
        highlight=False,
    )
    if engine.exit_code:
        raise typer.Exit(code=engine.exit_code)


def candidates_table(result, top_k: int) -> Table:
    """Render the top-k candidates as a rich table."""
    trained = any(c.prototype_loss is not None for c in result.candidates)
    table = Table(title=f"Top {top_k} candidates for {result.spec_name} ({result.strategy} search)")
    for header in ("Rank", "Hidden", "Layers", "Heads", "KV", "FFN x", "Params", "Latency(ms)",
                   "Memory", "Loss"):
        table.add_column(header, justify="right")
    if trained:
        table.add_column("Proto loss", justify="right")
    table.add_column("Score", justify="right")
    table.add_column("Pareto", justify="center")
    for rank, candidate in enumerate(result.top_k(top_k), start=1):
        if candidate.on_pareto_front:
            mark = "*"
        elif candidate.feasible:
            mark = ""
        else:
            mark = "infeasible"
        row = [
            str(rank), str(candidate.hidden_size), str(candidate.num_layers), str(candidate.num_heads),
            str(candidate.num_kv_heads), f"{candidate.ffn_multiplier:g}", format_count(candidate.params),
            f"{candidate.latency_ms:.3g}", format_bytes(candidate.memory_gb * 1e9), f"{candidate.predicted_loss:.4f}",
        ]
        if trained:
            row.append("failed" if candidate.prototype_failure else
                       (f"{candidate.prototype_loss:.4f}" if candidate.prototype_loss is not None else "-"))
        row += [f"{candidate.score:.4f}", mark]
        table.add_row(*row)
    return table


def format_count(value: int) -> str:
    """Write a parameter count with a K, M, B or T suffix and three significant digits."""
    for divisor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= divisor:
            return f"{value / divisor:.3g}{suffix}"
    return str(value)


def format_bytes(value: float) -> str:
    """Write a byte count in decimal GB, MB or KB with three significant digits."""
    for divisor, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "KB")):
        if value >= divisor:
            return f"{value / divisor:.3g} {suffix}"
    return f"{value:.0f} B"


class _InterruptGuard:
    """Stop the command with exit code 130, writing nothing, once a SIGINT arrived.

    The handler of `metagen_jax.cli.interrupt` only sets a flag on the first SIGINT, and this
    guard acts on it at its checks: on entry, in the progress callback, and before results
    are written. A second SIGINT raises KeyboardInterrupt, which `__exit__` turns into the
    same exit. An exhaustive sweep installs its own handler during the sweep and saves
    partial results itself.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._previous = None

    def __enter__(self) -> _InterruptGuard:
        if self.enabled:
            self._previous = interrupt.install()
        if interrupt.pending():
            # __exit__ does not run when __enter__ raises, so restore the handler here.
            interrupt.restore(self._previous)
            raise self.stop()
        return self

    @property
    def received(self) -> bool:
        return interrupt.pending()

    def check(self) -> None:
        """Raise KeyboardInterrupt when a SIGINT arrived, even one whose exception was swallowed."""
        if interrupt.pending():
            raise KeyboardInterrupt

    def stop(self) -> typer.Exit:
        interrupt.clear()
        return fail("interrupted (SIGINT); no results were written", code=INTERRUPTED_EXIT_CODE)

    def __exit__(self, kind, error, traceback) -> bool:
        if self.enabled:
            interrupt.restore(self._previous)
        if kind is KeyboardInterrupt:
            raise self.stop()
        return False


class _progress_bar:
    """A rich progress bar fed by the engine's (phase, done, total) callback."""

    def __init__(self, guard: _InterruptGuard) -> None:
        self._guard = guard

    def __enter__(self):
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=True, disable=not console.is_terminal,
        )
        self._progress.__enter__()
        self._tasks: dict[str, int] = {}

        def callback(phase: str, done: int, total: int) -> None:
            self._guard.check()
            if phase not in self._tasks:
                self._tasks[phase] = self._progress.add_task(phase, total=total)
            self._progress.update(self._tasks[phase], completed=done, total=total)

        return callback, self._progress

    def __exit__(self, *exc_info):
        return self._progress.__exit__(*exc_info)
