"""Predicted loss from a published scaling law, the performance objective.

The loss is the Chinchilla parametric fit of Hoffmann et al. (2022), "Training
Compute-Optimal Large Language Models", arXiv:2203.15556, approach 3 (equation 10):

    L(N, D) = E + A / N^alpha + B / D^beta
    E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28

with N the parameter count and D the training tokens, in nats per token on the fit's text
corpus (MassiveText). The fit was made for dense decoder-only text transformers. For other
modalities and families this project applies the same law with D counted in the task's
tokens (image patches, audio frames, samples) as an estimate of relative quality only, not
as a calibrated loss for that modality.

The law depends on size alone. Shape matters a little: Kaplan et al. (2020), "Scaling Laws
for Neural Language Models", arXiv:2001.08361, section 3.1 and figure 5, report that a
(6 layers, width 4288) model reaches a loss within 3% of a (48 layers, width 1600) model of
the same size. We model that with a multiplicative penalty

    L' = L * (1 + c * ln(aspect / 100)^2),    aspect = width / layers

centred on width/layers = 100 (Llama 2 7B, Mistral 7B and GPT-3 175B all lie at 128), with
c = 0.0114 chosen so that those two shapes (aspect 715 and 33) differ by 3%. It is a fit to
two published points, not a law.
"""

from __future__ import annotations

import dataclasses

CHINCHILLA_E = 1.69
CHINCHILLA_A = 406.4
CHINCHILLA_B = 410.7
CHINCHILLA_ALPHA = 0.34
CHINCHILLA_BETA = 0.28
# Tokens per parameter of a compute-optimal run (Hoffmann et al. 2022, table 3: about 20),
# used when the spec gives no training data size.
COMPUTE_OPTIMAL_TOKENS_PER_PARAM = 20.0
ASPECT_OPTIMUM = 100.0
ASPECT_PENALTY = 0.0114


@dataclasses.dataclass(frozen=True)
class QualityModel:
    """Inputs of the scaling-law prediction fixed for a whole search.

    Attributes:
        training_tokens: D in tokens, or None to use 20 tokens per parameter.
        shape_penalty: apply the depth-to-width correction (attention families only).
    """

    training_tokens: float | None = None
    shape_penalty: bool = True


def predicted_loss(params, hidden, layers, model: QualityModel, xp):
    """Predict the training loss (nats per token) of each architecture.

    Args:
        params: parameter counts N (array).
        hidden, layers: widths and depths, for the shape correction.
        model: training data size and whether to apply the correction.
        xp: the array module (jax.numpy or numpy).
    """
    n = xp.maximum(params, 1.0)
    if model.training_tokens is None:
        data_term = CHINCHILLA_B * xp.exp(-CHINCHILLA_BETA * xp.log(COMPUTE_OPTIMAL_TOKENS_PER_PARAM * n))
    else:
        # A fixed data size is a constant: compute it once in Python, not per candidate.
        data_term = CHINCHILLA_B / max(model.training_tokens, 1.0) ** CHINCHILLA_BETA
    # exp(-a * log(n)) is n^-a; XLA's CPU pow is about three times slower than exp and log.
    loss = CHINCHILLA_E + CHINCHILLA_A * xp.exp(-CHINCHILLA_ALPHA * xp.log(n)) + data_term
    if model.shape_penalty:
        aspect = hidden / xp.maximum(layers, 1.0)
        loss = loss * (1.0 + ASPECT_PENALTY * xp.log(aspect / ASPECT_OPTIMUM) ** 2)
    return loss
