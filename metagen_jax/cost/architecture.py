"""Fixed architecture choices that the genome does not encode, derived from a spec.

A genome sets width, depth, heads, kv heads and FFN width. Everything else about the model
(vocabulary, tied head, norm type, positions, biases, input stem, task head, state-space
block sizes and the attention interleave of a hybrid) is fixed for a whole search and lives
in `ArchitectureConfig`, a hashable dataclass that the jitted cost model takes as a static
argument.

Layer mixers by family: transformer and diffusion have attention in every layer, ssm has a
Mamba block in every layer (Gu and Dao 2023, "Mamba: Linear-Time Sequence Modeling with
Selective State Spaces", arXiv:2312.00752) and no FFN, and hybrid mixes the two in a fixed
ratio with an FFN after every mixer (Jamba, Lieber et al. 2024, arXiv:2403.19887). See
`metagen_jax.cost.ssm` for the layer counts.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, NamedTuple

from metagen_jax.specs.requirements import Requirements

Family = Literal["transformer", "diffusion", "hybrid", "ssm", "mlp", "cnn", "gnn"]
InputStem = Literal["tokens", "patches", "features"]
HeadKind = Literal["lm", "classifier", "embedding", "regression", "none"]

ATTENTION_FAMILIES = ("transformer", "diffusion", "hybrid")
STATE_SPACE_FAMILIES = ("ssm", "hybrid")

# Mamba block defaults of the reference implementation (state-spaces/mamba, class `Mamba` in
# mamba_ssm/modules/mamba_simple.py), which every released Mamba-1 checkpoint from
# mamba-130m to mamba-2.8b uses: state size N = 16, depthwise conv kernel 4, inner width
# 2 * hidden, and a time-step rank of ceil(hidden / 16).
DEFAULT_SSM_STATE_SIZE = 16
DEFAULT_SSM_CONV_KERNEL = 4
DEFAULT_SSM_EXPAND = 2
# Jamba's interleave: one attention layer in every 8, the other 7 Mamba (ai21labs/Jamba-v0.1
# config.json: attn_layer_period 8, attn_layer_offset 4, so 4 of its 32 layers have attention).
DEFAULT_ATTENTION_PERIOD = 8

# Default vocabulary of text models when the spec fixes none: the 32,000-token SentencePiece
# vocabulary of Llama 2 and Mistral 7B.
DEFAULT_TEXT_VOCAB = 32_000
# BERT's WordPiece vocabulary (bert-base-uncased), used for text encoders.
DEFAULT_ENCODER_VOCAB = 30_522
# Log-mel filterbank channels of the Whisper audio front end, used as audio frame features.
AUDIO_FRAME_FEATURES = 80

BYTES_PER_WEIGHT = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}

GENERATIVE_TASKS = ("generation", "text_generation", "language_modeling", "causal_lm", "chat",
                    "completion", "code_generation", "generative", "seq2seq", "translation",
                    "summarization", "image_generation", "video_generation", "audio_generation",
                    "speech_synthesis", "tts")


class Dims(NamedTuple):
    """Concrete sizes of a batch of architectures: one array (or scalar) per field."""

    hidden: object
    layers: object
    heads: object
    kv_heads: object
    ffn_hidden: object


@dataclasses.dataclass(frozen=True)
class ArchitectureConfig:
    """Architecture choices shared by every candidate of a search.

    Attributes:
        family: block family. transformer and diffusion use the transformer block in every
            layer, ssm a Mamba block in every layer, hybrid attention in one layer of every
            `attention_period` and Mamba in the rest (each followed by the FFN), and mlp,
            cnn and gnn the width-by-depth block of `metagen_jax.cost.params`.
        input_stem: how inputs become hidden vectors: a token embedding, a patch embedding
            (images, video, latent patches) or a linear feature projection.
        vocab_size: token vocabulary (token stem and LM head).
        patch_dim: inputs per patch (patch_size^2 * channels, times frames for video).
        feature_dim: inputs per position for the feature projection stem.
        prefix_tokens: learned prefix tokens such as ViT's class token.
        position: "learned", "rotary" or "none".
        max_positions: rows of the learned position table.
        type_vocab_size: BERT segment embeddings (0 for none).
        embedding_norm: a norm right after the embeddings (BERT).
        final_norm: a norm before the head (pre-norm models); post-norm models have none.
        norm: "layernorm" (weight and bias) or "rmsnorm" (weight only).
        bias: biases on attention and FFN projections.
        ffn_type: "plain" (two matrices) or "gated" (three matrices, SwiGLU style).
        head: task head kind.
        head_outputs: classes, outputs or embedding size of the head.
        tie_embeddings: the LM head shares the token embedding matrix.
        pooler: BERT's dense pooler before a classifier.
        causal: decoder-only generation with a KV cache.
        sequence_length: positions per forward pass (context window or patches).
        weight_bytes: bytes per weight at deployment precision.
        kv_bytes: bytes per element of the KV cache and of the state-space decode state.
        ssm_state_size: N, state size per inner channel of a Mamba block (d_state).
        ssm_conv_kernel: width of the Mamba block's depthwise causal conv (d_conv).
        ssm_expand: E, inner width of a Mamba block over the model width (expand).
        ssm_dt_rank: rank of the time-step projection (dt_rank), or 0 for ceil(hidden / 16).
        attention_period: hybrid only, layers per attention layer. The first layer of every
            period has attention, so a model of L layers has ceil(L / period) of them.
    """

    family: Family = "transformer"
    input_stem: InputStem = "tokens"
    vocab_size: int = DEFAULT_TEXT_VOCAB
    patch_dim: int = 0
    feature_dim: int = 0
    prefix_tokens: int = 0
    position: Literal["learned", "rotary", "none"] = "rotary"
    max_positions: int = 0
    type_vocab_size: int = 0
    embedding_norm: bool = False
    final_norm: bool = True
    norm: Literal["layernorm", "rmsnorm"] = "rmsnorm"
    bias: bool = False
    ffn_type: Literal["plain", "gated"] = "gated"
    head: HeadKind = "lm"
    head_outputs: int = 0
    tie_embeddings: bool = False
    pooler: bool = False
    causal: bool = True
    sequence_length: int = 2048
    weight_bytes: float = 2.0
    kv_bytes: float = 2.0
    ssm_state_size: int = DEFAULT_SSM_STATE_SIZE
    ssm_conv_kernel: int = DEFAULT_SSM_CONV_KERNEL
    ssm_expand: int = DEFAULT_SSM_EXPAND
    ssm_dt_rank: int = 0
    attention_period: int = DEFAULT_ATTENTION_PERIOD

    def __post_init__(self) -> None:
        for name in ("ssm_state_size", "ssm_conv_kernel", "ssm_expand", "attention_period"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.ssm_dt_rank < 0:
            raise ValueError(f"ssm_dt_rank must be 0 (for ceil(hidden / 16)) or more, got {self.ssm_dt_rank}")

    @property
    def has_attention(self) -> bool:
        return self.family in ATTENTION_FAMILIES

    @property
    def has_state_space(self) -> bool:
        return self.family in STATE_SPACE_FAMILIES

    @property
    def has_ffn(self) -> bool:
        """Whether layers have an FFN. The ssm family has none, because a Mamba-1 block is the whole layer."""
        return self.family != "ssm"


NON_GENERATIVE_HINTS = ("class", "embed", "retrieval", "similarity", "regression", "detection",
                        "segment", "forecast")


def _is_generative(requirements: Requirements) -> bool:
    """Generation tasks, and any task that outputs text (speech recognition, captioning)."""
    task = requirements.task_type.lower().replace("-", "_").replace(" ", "_")
    if task in GENERATIVE_TASKS or "generat" in task:
        return True
    outputs_text = any(output in ("text", "code") for output in requirements.modality_outputs)
    return outputs_text and not any(hint in task for hint in NON_GENERATIVE_HINTS)


def config_from_requirements(requirements: Requirements) -> ArchitectureConfig:
    """Choose the fixed architecture for a spec, following the published model of its kind.

    Text generation follows Llama 2 (gated FFN, RMSNorm, rotary positions, no biases, untied
    head). Text encoders follow BERT (learned positions, LayerNorm, biases, post-norm,
    pooler). Images follow ViT (patch embedding, class token, learned positions). Other
    modalities take a feature projection. Diffusion is a transformer over latent patches.
    """
    inputs = set(requirements.modality_inputs) or {"text"}
    family = requirements.family
    generative = _is_generative(requirements)
    weight_bytes = BYTES_PER_WEIGHT.get(requirements.weight_dtype, 2.0)
    context = max(1, int(requirements.context_tokens))
    head_kind, head_outputs = _task_head(requirements, generative)

    if family == "diffusion":
        image_size = requirements.image_size or 256
        # Latent diffusion: an 8x down-sampling autoencoder with 4 latent channels, patch 2
        # (DiT-XL/2 on 256 px images works on 32x32x4 latents with patch size 2).
        latent = max(1, image_size // 8)
        patch = requirements.patch_size or 2
        tokens = max(1, (latent // patch) ** 2)
        return ArchitectureConfig(
            family="diffusion", input_stem="patches", patch_dim=patch * patch * 4,
            position="learned", max_positions=tokens, norm="layernorm", bias=True,
            ffn_type="plain", head="regression", head_outputs=patch * patch * 4 * 2,
            final_norm=True, causal=False, sequence_length=tokens, weight_bytes=weight_bytes,
        )

    if "image" in inputs or "video" in inputs:
        image_size = requirements.image_size or 224
        patch = requirements.patch_size or 16
        channels = requirements.num_channels or 3
        frames = 2 if "video" in inputs else 1
        tokens = max(1, (image_size // patch) ** 2)
        return ArchitectureConfig(
            family=family, input_stem="patches", patch_dim=patch * patch * channels * frames,
            prefix_tokens=1, position="learned", max_positions=tokens + 1, norm="layernorm",
            bias=True, ffn_type="plain", head=head_kind, head_outputs=head_outputs,
            final_norm=True, causal=False, sequence_length=tokens + 1, weight_bytes=weight_bytes,
        )

    if "text" in inputs or "code" in inputs or not (inputs & {"audio", "time_series", "tabular", "graph"}):
        if generative:
            vocab = requirements.vocab_size or DEFAULT_TEXT_VOCAB
            return ArchitectureConfig(
                family=family, input_stem="tokens", vocab_size=vocab, position="rotary",
                norm="rmsnorm", bias=False, ffn_type="gated", head="lm", head_outputs=vocab,
                tie_embeddings=False, causal=True, sequence_length=context,
                weight_bytes=weight_bytes,
            )
        vocab = requirements.vocab_size or DEFAULT_ENCODER_VOCAB
        return ArchitectureConfig(
            family=family, input_stem="tokens", vocab_size=vocab, position="learned",
            max_positions=context, type_vocab_size=2, embedding_norm=True, final_norm=False,
            norm="layernorm", bias=True, ffn_type="plain", head=head_kind,
            head_outputs=head_outputs, pooler=head_kind == "classifier", causal=False,
            sequence_length=context, weight_bytes=weight_bytes,
        )

    feature_dim = AUDIO_FRAME_FEATURES if "audio" in inputs else (requirements.num_channels or 1)
    return ArchitectureConfig(
        family=family, input_stem="features", feature_dim=feature_dim, position="learned",
        max_positions=context, norm="layernorm", bias=True, ffn_type="plain", head=head_kind,
        head_outputs=head_outputs, causal=generative, sequence_length=context,
        weight_bytes=weight_bytes,
    )


def _task_head(requirements: Requirements, generative: bool) -> tuple[HeadKind, int]:
    task = requirements.task_type.lower()
    if generative:
        return "lm", requirements.vocab_size or DEFAULT_TEXT_VOCAB
    if "embed" in task or "retrieval" in task or "similarity" in task:
        return "embedding", requirements.embedding_dim or 768
    if "class" in task or "detection" in task or "recognition" in task:
        return "classifier", requirements.num_classes or 2
    if "segment" in task:
        return "classifier", requirements.num_classes or 2
    return "regression", requirements.num_outputs or 1
