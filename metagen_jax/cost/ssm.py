"""The Mamba block and the layer mix of state-space families, for every array backend.

The Mamba block follows the reference implementation of Gu and Dao (2023), "Mamba:
Linear-Time Sequence Modeling with Selective State Spaces", arXiv:2312.00752 (class `Mamba`
in state-spaces/mamba, mamba_ssm/modules/mamba_simple.py). With width d, inner width
E * d, state size N, conv kernel K and time-step rank R, its weights are

    in_proj   d -> 2 * E * d, no bias            x_proj   E * d -> R + 2 * N, no bias
    conv1d    depthwise, E * d channels, K taps, with bias
    dt_proj   R -> E * d, with bias              A_log    E * d x N,   D   E * d
    out_proj  E * d -> d, no bias

The biases follow the reference (conv_bias=True, bias=False) whatever the config's `bias`
sets, because that flag describes attention and FFN projections. Like the functions of
`metagen_jax.cost.params`, these use only `+`, `*` and floor division, so they run on JAX
float32 arrays, NumPy arrays and Python integers alike.
"""

from __future__ import annotations

from metagen_jax.cost.architecture import ArchitectureConfig

# FLOPs of the selective scan per token, inner channel and state element. The Mamba authors
# give about 9 * B * L * D * N for the scan kernel (D channels, N states) when asked how to
# count Mamba's FLOPs on the state-spaces/mamba GitHub tracker. Decode runs one recurrent
# step, which needs about 8 (counted from the reference's `step`), so this is an estimate
# that slightly overstates decode FLOPs.
SCAN_FLOPS_PER_STATE = 9
# Width divisor of the default time-step rank: dt_rank = ceil(d / 16) in the reference.
DT_RANK_DIVISOR = 16


def ceil_quotient(numerator, denominator):
    """Divide and round up, exactly on integers and on whole-valued floats."""
    return -((-numerator) // denominator)


def inner_width(hidden, config: ArchitectureConfig):
    """E * d, the channels of the conv and of the scan."""
    return config.ssm_expand * hidden


def dt_rank(hidden, config: ArchitectureConfig):
    """Rank R of the time-step projection: the config's value, or ceil(d / 16)."""
    if config.ssm_dt_rank:
        return config.ssm_dt_rank + 0 * hidden
    return ceil_quotient(hidden, DT_RANK_DIVISOR)


def mamba_mixer_params(hidden, config: ArchitectureConfig):
    """Weights of one Mamba mixer (see the module docstring), without the layer's norm."""
    inner = inner_width(hidden, config)
    rank = dt_rank(hidden, config)
    state, kernel = config.ssm_state_size, config.ssm_conv_kernel
    in_proj = hidden * 2 * inner
    conv = inner * kernel + inner
    x_proj = inner * (rank + 2 * state)
    dt_proj = rank * inner + inner
    a_log_and_d = inner * state + inner
    out_proj = inner * hidden
    return in_proj + conv + x_proj + dt_proj + a_log_and_d + out_proj


def layer_counts(layers, config: ArchitectureConfig):
    """Split `layers` into (attention layers, Mamba layers) for the config's family.

    A hybrid puts attention in the first layer of every `attention_period` layers, so L
    layers have ceil(L / period) attention layers. Families without state-space layers
    return (layers, 0), and ssm returns (0, layers).
    """
    none = 0 * layers
    if config.family == "ssm":
        return none, layers
    if config.family == "hybrid":
        attention = ceil_quotient(layers, config.attention_period)
        return attention, layers - attention
    return layers, none


def decode_state_elements(hidden, config: ArchitectureConfig):
    """Decode state of one Mamba layer in elements, independent of the context length.

    The SSM state contains E * d * N elements and the conv state the last K - 1 inputs of each
    inner channel, E * d * (K - 1). The reference allocates K conv columns, one more than
    the recurrence needs, because it writes the current input into the state first.
    """
    inner = inner_width(hidden, config)
    return inner * config.ssm_state_size + inner * (config.ssm_conv_kernel - 1)


def scan_flops_per_token(hidden, config: ArchitectureConfig):
    """Selective-scan FLOPs of one Mamba layer for one token (beyond its weight FLOPs)."""
    return SCAN_FLOPS_PER_STATE * inner_width(hidden, config) * config.ssm_state_size
