"""Shared fixtures and the --runslow switch for the exhaustive test tier."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The CLI keeps a persistent XLA cache in the user's home; tests that count compilations
# need every program compiled for real, so the CLI under test runs without it.
os.environ["METAGEN_JAX_CACHE_DIR"] = "off"

REPO = Path(__file__).resolve().parent.parent
BUNDLED_SPECS = sorted((REPO / "specs").glob("*.yaml"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="Also run tests marked slow.")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow tier: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
