"""The `metagen` command line: automl, estimate, validate, schema and history.

The Typer app lives in `metagen_jax.cli.commands`; `main` imports it only after installing the
SIGINT handler, so an early Ctrl-C ends the command cleanly.
"""

from __future__ import annotations

import sys

from metagen_jax.cli import interrupt

# The shell's code for a process ended by SIGINT.
INTERRUPTED_EXIT_CODE = 130


def main() -> None:
    """Console-script entry point."""
    interrupt.install()
    try:
        from metagen_jax.cli.commands import app

        app()
    except KeyboardInterrupt:
        print("error: interrupted (SIGINT)", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_CODE)
    except SystemExit as done:
        # A command that finished before checking the flag still reports the interrupt.
        if interrupt.pending() and not done.code:
            print("error: interrupted (SIGINT)", file=sys.stderr)
            sys.exit(INTERRUPTED_EXIT_CODE)
        raise


def __getattr__(name: str):
    if name == "app":
        from metagen_jax.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
