"""Console, logging and error helpers shared by every `metagen` command."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer
from rich.console import Console

console = Console()
error_console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print `message` as one error line on stderr and return the exit (code 2) to raise."""
    error_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def configure_logging(verbose: int, quiet: bool) -> None:
    """Quiet by default (warnings only); -v for info, -vv for debug, -q for errors only."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


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
