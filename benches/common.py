"""Helpers shared by the benches: machine description and wall-clock timing."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable


def machine_description() -> str:
    """Return one line naming the CPU, core count, Python and JAX versions and devices."""
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            for line in stream:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    devices = ", ".join(sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()}))
    return (f"{cpu}; {os.cpu_count()} cores; Python {platform.python_version()}; "
            f"JAX {jax.__version__}; devices {devices} x{len(jax.devices())}")


def best_of(repeats: int, function: Callable[[], object]) -> float:
    """Run `function` `repeats` times and return the fastest wall time in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best
