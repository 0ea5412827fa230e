"""Whole-process wall time of `metagen automl`, JAX compilation cache cold and warm.

Each configuration runs as a fresh subprocess: first with an empty persistent compilation
cache (cold), then again with the cache it filled (warm). The baseline in the same run is
`python -c "import jax"`, the floor any JAX command pays.

    python benches/automl_run.py [--budgets 10 100000] [--spec specs/text_llm_8b.yaml]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def timed(command: list[str], environment: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=environment, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 100_000])
    parser.add_argument("--spec", default="specs/text_llm_8b.yaml")
    args = parser.parse_args()

    metagen = str(Path(sys.executable).with_name("metagen"))
    print(f"machine: {machine_description()}")
    print(f"spec: {args.spec}")
    with tempfile.TemporaryDirectory() as scratch:
        environment = dict(os.environ, METAGEN_JAX_CACHE_DIR=str(Path(scratch) / "cache"))
        floor = timed([sys.executable, "-c", "import jax; jax.numpy.zeros(1).block_until_ready()"], environment)
        print(f"baseline: python -c 'import jax' {floor:.2f} s")
        print(f"{'budget':>8} {'cold s':>8} {'warm s':>8} {'warm / import jax':>18}")
        for budget in args.budgets:
            environment["METAGEN_JAX_CACHE_DIR"] = str(Path(scratch) / f"cache-{budget}")
            command = [metagen, "automl", args.spec, "--search-budget", str(budget), "--no-history",
                       "-o", str(Path(scratch) / "out")]
            cold = timed(command, environment)
            warm = timed(command, environment)
            print(f"{budget:>8,} {cold:>8.2f} {warm:>8.2f} {warm / floor:>17.1f}x")


if __name__ == "__main__":
    main()
