"""Console, logging and error helpers shared by every `metagen` command."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer
from rich.console import Console

console = Console()
if not console.is_terminal:
    # Piped or captured output has no width of its own; rich would assume 80 columns and
    # squeeze the candidates table into ellipses.
    console = Console(width=160)
error_console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print `message` as one error line on stderr and return the exit (code 2) to raise."""
    error_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def configure_logging(verbose: int, quiet: bool) -> None:
    """Log errors only by default; -v adds info, -vv debug; -q keeps errors only."""
    # Warnings reach users through rich already, so plain runs log errors only.
    level = logging.ERROR if quiet or verbose == 0 else (logging.INFO, logging.DEBUG)[min(verbose, 2) - 1]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


def enable_compilation_cache() -> None:
    """Keep compiled XLA programs on disk so that repeated commands skip compilation.

    The folder is $METAGEN_JAX_CACHE_DIR, else ~/.cache/metagen_jax/xla; the value "off"
    turns the cache off. Library users choose their own JAX cache settings.
    """
    setting = os.environ.get("METAGEN_JAX_CACHE_DIR", "")
    if setting.lower() == "off":
        return
    folder = Path(setting) if setting else Path.home() / ".cache" / "metagen_jax" / "xla"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        logging.getLogger(__name__).info("compilation cache off: cannot create %s (%s)", folder, error)
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    # Cache every program: the search's programs compile in well under JAX's 1 s default.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def load_spec_or_fail(path: Path):
    """Parse a spec file, turning a SpecError into a one-line CLI error."""
    from metagen_jax.specs import SpecError, parse_spec

    try:
        return parse_spec(path)
    except SpecError as error:
        raise fail(str(error)) from None


def check_output_folder(folder: Path) -> None:
    """Fail before any search work when results could not be written to `folder`."""
    if folder.exists() and not folder.is_dir():
        raise fail(f"--out {folder}: exists and is not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".metagen-write-check-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise fail(f"--out {folder}: cannot write results there ({error.strerror or error})") from None


def print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        error_console.print(f"[yellow]warning:[/] {warning}", markup=True, highlight=False, soft_wrap=True)
