"""Console, logging and error helpers shared by every `metagen` command."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

try:  # typer 0.29.2 ships click inside the package, as typer._click
    from typer._click import exceptions as click_exceptions
except ImportError:  # older typer releases depend on the click package
    from click import exceptions as click_exceptions

# Raised when a group runs without arguments. Older click releases lack the class, and an
# empty tuple in an except clause catches nothing.
_NO_ARGS_IS_HELP = getattr(click_exceptions, "NoArgsIsHelpError", ())

console = Console()
if not console.is_terminal:
    # Piped or captured output has no width of its own; rich would assume 80 columns and
    # squeeze the candidates table into ellipses.
    console = Console(width=160)
error_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` as one error line on stderr and return the exit (code 2 by default) to raise."""
    error_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code=code)


class OneLineErrorGroup(TyperGroup):
    """The `metagen` command group, with each usage error printed as one `error:` line.

    Typer prints an unknown option, a missing argument or an invalid value as the usage
    line, a hint and a boxed message. This group prints one line that names the command
    and points to its --help, and exits with code 2. The --help output is unchanged, and
    running a group without arguments still prints its help.
    """

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP as error:
            # Typer's rich help has been printed already, and the message is empty then.
            if error.format_message():
                error.show()
            sys.exit(error.exit_code)
        except click_exceptions.UsageError as error:
            sys.exit(fail(usage_error_message(error)).exit_code)
        except click_exceptions.ClickException as error:
            error_console.print(f"[bold red]error:[/] {escape(_one_line(error.format_message()))}",
                                markup=True, highlight=False, soft_wrap=True)
            sys.exit(error.exit_code)
        except typer.Abort:
            error_console.print("Aborted.")
            sys.exit(1)
        # Without standalone mode, typer returns the code of a typer.Exit, or the command's
        # return value, which is None for every metagen command.
        sys.exit(result if isinstance(result, int) else 0)


def usage_error_message(error: click_exceptions.UsageError) -> str:
    """Return a usage error as one line: the command, the problem and where help is."""
    command = error.ctx.command_path if error.ctx is not None else "metagen"
    message = _one_line(error.format_message())
    if not message.endswith((".", "?", "!")):
        message += "."
    return f"{command}: {message} Run '{command} --help' for usage."


def _one_line(text: str) -> str:
    return " ".join(text.split())


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
        error_console.print(f"[yellow]warning:[/] {escape(warning)}", markup=True, highlight=False, soft_wrap=True)
