"""`metagen estimate`, `metagen validate` and `metagen schema`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from metagen_jax.cli.common import console, fail, load_spec_or_fail, print_warnings


def estimate(
    arch_path: Annotated[Path, typer.Argument(metavar="ARCH", help="YAML file of one concrete architecture.")],
    spec: Annotated[Optional[Path], typer.Option(
        help="Spec whose task, modalities, context, device, data and precision apply; fields the "
             "architecture file leaves out take the spec's defaults (a classifier spec makes an encoder).")] = None,
    device: Annotated[Optional[str], typer.Option(help="Device profile (e.g. h100, rtx4090, consumer_gpu).")] = None,
    context_length: Annotated[Optional[int], typer.Option(
        help="Context in tokens to cost the model at. It overrides the architecture file's "
             "context_length, which overrides the spec's context window.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Estimate parameters, FLOPs, memory, latency and predicted loss of one architecture."""
    from metagen_jax.architecture_file import MAX_FIELD_VALUE, ArchitectureFileError, read_architecture_file
    from metagen_jax.estimate import estimate_architecture

    if context_length is not None and not 1 <= context_length <= MAX_FIELD_VALUE:
        raise fail(f"--context-length must be from 1 to {MAX_FIELD_VALUE:,} tokens, got {context_length}")
    requirements = None
    warnings: list[str] = []
    if spec is not None:
        parsed = load_spec_or_fail(spec)
        requirements, warnings = parsed.requirements, list(parsed.warnings)
    try:
        architecture = read_architecture_file(arch_path, requirements, context_length=context_length)
    except ArchitectureFileError as error:
        raise fail(str(error)) from None
    warnings += [f"{arch_path}: unknown field {name!r} ignored" for name in architecture.unknown_fields]
    try:
        report = estimate_architecture(architecture, requirements, device)
    except KeyError as error:
        raise fail(f"--device: {error.args[0]}") from None
    except OverflowError as error:
        raise fail(f"{arch_path}: {error}; check hidden_size, num_layers and the other sizes") from None

    print_warnings(warnings)
    if as_json:
        console.print_json(json.dumps(report))
        return
    table = Table(title=f"Estimate for {architecture.name} on {report['device']}")
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    for key, value in report.items():
        if isinstance(value, float):
            value = f"{value:,.4g}"
        elif isinstance(value, int):
            value = f"{value:,}"
        table.add_row(key, str(value))
    console.print(table)


def validate(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Spec file (YAML or JSON).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the resolved spec as JSON only.")] = False,
) -> None:
    """Check a spec and print it with every unit resolved, plus its warnings."""
    from metagen_jax.specs import resolved_spec_dict

    parsed = load_spec_or_fail(spec_path)
    resolved = resolved_spec_dict(parsed)
    if as_json:
        console.print_json(json.dumps(resolved, default=str))
        return
    print_warnings(parsed.warnings)
    table = Table(title=f"{spec_path}: valid", show_header=True)
    table.add_column("Requirement")
    table.add_column("Resolved value", justify="right")
    for field in dataclasses.fields(parsed.requirements):
        table.add_row(field.name, str(getattr(parsed.requirements, field.name)))
    console.print(table)


def schema() -> None:
    """Print the JSON Schema of the spec file format."""
    from metagen_jax.specs import spec_json_schema

    typer.echo(json.dumps(spec_json_schema(), indent=2))
