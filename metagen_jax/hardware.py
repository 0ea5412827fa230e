"""Device profiles for the roofline latency model.

Each profile gives dense bf16 (or fp16 where the part has no bf16) peak FLOP/s, peak memory
bandwidth and memory capacity, with the source of each figure. Sparse-tensor figures are
never used: vendors quote them at twice the dense rate.

The roofline reaches only a fraction of these peaks in practice. `flops_efficiency` and
`bandwidth_efficiency` are this project's estimates of the sustained fraction (model FLOP
utilisation of tuned inference kernels, and achieved share of DRAM bandwidth in decode);
they are not measurements of any particular serving stack.
"""

from __future__ import annotations

import dataclasses
import difflib

TERA = 1e12
GIGA = 1e9
GIB = 1024**3


@dataclasses.dataclass(frozen=True)
class DeviceProfile:
    """Peak figures of one accelerator or processor.

    Attributes:
        name: canonical profile name.
        peak_flops: dense bf16 peak in FLOP/s.
        memory_bandwidth: peak memory bandwidth in bytes/s.
        memory_capacity: device memory in bytes.
        source: where the three figures come from.
        flops_efficiency: sustained fraction of peak_flops assumed by the roofline.
        bandwidth_efficiency: sustained fraction of memory_bandwidth assumed by the roofline.
    """

    name: str
    peak_flops: float
    memory_bandwidth: float
    memory_capacity: float
    source: str
    flops_efficiency: float = 0.6
    bandwidth_efficiency: float = 0.8


_PROFILES = (
    DeviceProfile(
        "h100", 989.4 * TERA, 3.35e12, 80 * GIB,
        "NVIDIA H100 SXM5 datasheet (2023): 989.4 TFLOP/s dense BF16, 3.35 TB/s HBM3, 80 GB",
    ),
    DeviceProfile(
        "h200", 989.4 * TERA, 4.8e12, 141 * GIGA,
        "NVIDIA H200 SXM datasheet (2024): 989 TFLOP/s dense BF16, 4.8 TB/s HBM3e, 141 GB",
    ),
    DeviceProfile(
        "a100", 312 * TERA, 2.039e12, 80 * GIB,
        "NVIDIA A100 80GB SXM datasheet (2021): 312 TFLOP/s dense BF16, 2,039 GB/s, 80 GB",
    ),
    DeviceProfile(
        "l4", 121 * TERA, 300 * GIGA, 24 * GIB,
        "NVIDIA L4 datasheet (2023): 242 TFLOP/s BF16 with sparsity, so 121 dense; 300 GB/s; 24 GB",
    ),
    DeviceProfile(
        "v100", 125 * TERA, 900 * GIGA, 32 * GIB,
        "NVIDIA V100 SXM2 datasheet (2018): 125 TFLOP/s FP16 tensor (no BF16); 900 GB/s; 32 GB",
    ),
    DeviceProfile(
        "rtx4090", 165.2 * TERA, 1008 * GIGA, 24 * GIB,
        "NVIDIA Ada Lovelace architecture whitepaper (2022), RTX 4090: 165.2 TFLOP/s dense BF16 "
        "with FP32 accumulate; 1,008 GB/s GDDR6X; 24 GB",
    ),
    DeviceProfile(
        "rtx3090", 71 * TERA, 936 * GIGA, 24 * GIB,
        "NVIDIA Ampere GA102 whitepaper (2020), RTX 3090: 71 TFLOP/s dense FP16/BF16 tensor "
        "with FP16 accumulate; 936 GB/s; 24 GB",
    ),
    DeviceProfile(
        "mi300x", 1307.4 * TERA, 5.3e12, 192 * GIGA,
        "AMD Instinct MI300X datasheet (2023): 1,307.4 TFLOP/s dense BF16, 5.3 TB/s, 192 GB",
    ),
    DeviceProfile(
        "tpu-v4", 275 * TERA, 1200 * GIGA, 32 * GIB,
        "Google Cloud TPU v4 documentation: 275 TFLOP/s BF16, 1,200 GB/s HBM, 32 GiB per chip",
    ),
    DeviceProfile(
        "tpu-v5e", 197 * TERA, 819 * GIGA, 16 * GIB,
        "Google Cloud TPU v5e documentation: 197 TFLOP/s BF16, 819 GB/s HBM, 16 GiB per chip",
    ),
    DeviceProfile(
        "tpu-v5p", 459 * TERA, 2765 * GIGA, 95 * GIB,
        "Google Cloud TPU v5p documentation: 459 TFLOP/s BF16, 2,765 GB/s HBM, 95 GiB per chip",
    ),
    DeviceProfile(
        "jetson-agx-orin", 42.5 * TERA, 204.8 * GIGA, 64 * GIB,
        "NVIDIA Jetson AGX Orin 64GB module datasheet: 204.8 GB/s LPDDR5, 64 GB; the FP16 "
        "figure is an estimate, half of the 85 dense INT8 TOPS (275 sparse INT8 TOPS incl. DLA)",
        flops_efficiency=0.4,
    ),
    DeviceProfile(
        "mobile-soc", 8 * TERA, 60 * GIGA, 8 * GIB,
        "Estimate for a 2023-2024 flagship phone SoC (LPDDR5X at about 60 GB/s, 8 GB usable, "
        "about 8 TFLOP/s FP16 on the GPU/NPU); not a vendor figure",
        flops_efficiency=0.3,
        bandwidth_efficiency=0.6,
    ),
    DeviceProfile(
        "desktop-cpu", 1.8 * TERA, 89.6 * GIGA, 64 * GIB,
        "Estimate for an 8-core AVX-512 desktop CPU at 3.5 GHz (8 x 3.5e9 x 64 FP32 FLOP per "
        "cycle) with dual-channel DDR5-5600 (89.6 GB/s) and 64 GB; not a vendor figure",
        flops_efficiency=0.3,
        bandwidth_efficiency=0.7,
    ),
)

PROFILES: dict[str, DeviceProfile] = {profile.name: profile for profile in _PROFILES}

# MSL device classes and common spellings, mapped to a representative profile.
ALIASES: dict[str, str] = {
    "consumer_gpu": "rtx4090",
    "datacenter_gpu": "h100",
    "gpu": "h100",
    "edge": "jetson-agx-orin",
    "edge_gpu": "jetson-agx-orin",
    "jetson": "jetson-agx-orin",
    "mobile": "mobile-soc",
    "phone": "mobile-soc",
    "cpu": "desktop-cpu",
    "tpu": "tpu-v5e",
    "h100_sxm": "h100",
    "a100_80gb": "a100",
    "rtx_4090": "rtx4090",
    "rtx_3090": "rtx3090",
    "tpu_v4": "tpu-v4",
    "tpu_v5e": "tpu-v5e",
    "tpu_v5p": "tpu-v5p",
    "tpuv5e": "tpu-v5e",
    "tpuv5p": "tpu-v5p",
    "mi300": "mi300x",
}


# The MSL device classes among the aliases, for messages that list what a spec may write.
DEVICE_CLASSES = ("consumer_gpu", "datacenter_gpu", "gpu", "edge", "mobile", "cpu", "tpu")


def _normalise(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def known_device_names() -> list[str]:
    """List every accepted device name: profile names, then class names and aliases."""
    return sorted(PROFILES) + sorted(ALIASES)


def resolve_device(name: str) -> DeviceProfile:
    """Look up a device profile by profile name, MSL class or alias (case-insensitive).

    Raises:
        KeyError: the name matches nothing; the message lists the closest names.
    """
    key = _normalise(name)
    candidates = (key, key.replace("_", "-"), key.replace("-", "_"), key.replace("-", "").replace("_", ""))
    for candidate in candidates:
        if candidate in PROFILES:
            return PROFILES[candidate]
        if candidate in ALIASES:
            return PROFILES[ALIASES[candidate]]
    close = closest_device_names(name)
    hint = f"; did you mean {', '.join(close)}?" if close else "."
    raise KeyError(f"unknown device {name!r}{hint} Known devices: {', '.join(known_device_names())}")


def closest_device_names(name: str, count: int = 3) -> list[str]:
    """Return up to `count` accepted device names closest in spelling to `name`, best first."""
    return difflib.get_close_matches(_normalise(name), known_device_names(), n=count, cutoff=0.5)
