"""The `metagen` Typer app: automl, estimate, validate, schema and history."""

from __future__ import annotations

from typing import Annotated

import typer

from metagen_jax.cli.automl import automl
from metagen_jax.cli.common import OneLineErrorGroup, configure_logging
from metagen_jax.cli.tools import estimate, schema, validate

app = typer.Typer(
    name="metagen",
    help="Find Pareto-optimal neural architectures for a model spec, on JAX.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=OneLineErrorGroup,
)


@app.callback()
def main_options(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv for debug).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
) -> None:
    """Find Pareto-optimal neural architectures for a model spec, on JAX."""
    configure_logging(verbose, quiet)


app.command()(automl)
app.command()(estimate)
app.command()(validate)
app.command()(schema)


def _mount_history() -> None:
    from metagen_jax.history.cli import history_app

    app.add_typer(history_app, name="history", help="List, show or clear the search history.")


_mount_history()

