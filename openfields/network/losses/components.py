"""Elementwise loss components of composite fields.

Every function here works on already-masked, flattened elements: shapes are
``(N,)`` for scalars per element and ``(N, 2)`` for 2D vectors. Masking (NaN =
ignore), per-field weights and the reduction live in
:class:`openfields.network.losses.CompositeLoss`.

Shared uncertainty ("shared b"): channel 0 of a head is one raw value ``x0``
per cell that both the confidence and the regression loss read as
``ls2 = 3 tanh(x0 / 3)``, a log-variance in ``[-3, 3]``.

Non-negative values (a change from OpenPifPaf): the uncertainty terms
``ls2 / 2`` and ``log b`` are negative for confident predictions, which makes
the reported losses negative. Each foreground element gets the constant that
moves the infimum of its uncertainty term to 0 (``+1.5`` for the confidence,
``1.5 - ln 2`` for the regression). Constants do not change gradients.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_VARIANCE_BOUND = 3.0
# infimum of ls2 / 2 is -1.5: shift the attenuated confidence term by +1.5
CONFIDENCE_OFFSET = LOG_VARIANCE_BOUND / 2
# log b = ls2 / 2 + ln 2 has infimum -1.5 + ln 2: shift the Laplace term by its negative
LAPLACE_OFFSET = LOG_VARIANCE_BOUND / 2 - math.log(2.0)
DEFAULT_B_MIN = 0.1


def soft_clamp(values: torch.Tensor, max_value: float) -> torch.Tensor:
    """Clamp large values softly: ``m + ln(1 - m + x)`` for ``x > m``, ``x`` otherwise.

    Continuous with unit slope at ``x = m`` and logarithmic growth above, so
    outliers keep a bounded, non-zero gradient. Any shape.
    """
    # clamp the log argument so the unused branch of `where` stays finite (no NaN gradients)
    above = max_value + torch.log1p((values - max_value).clamp_min(0.0))
    return torch.where(values > max_value, above, values)


def shared_log_variance(x0: torch.Tensor) -> torch.Tensor:
    """``ls2 = 3 tanh(x0 / 3)``: the bounded log-variance read from channel 0. Any shape."""
    return LOG_VARIANCE_BOUND * torch.tanh(x0 / LOG_VARIANCE_BOUND)


def focal_gradient_magnitude(logits: torch.Tensor, positive: torch.Tensor,
                             alpha: float, gamma: float) -> torch.Tensor:
    """``g = alpha p̄^gamma (p̄ + gamma p (-ln p))``, the magnitude of d FL / d x.

    With ``s = +1`` for positives and ``-1`` for negatives, ``p = sigmoid(s x)``
    is the probability of the true class and ``p̄ = 1 - p``. The focal loss
    ``FL = -alpha p̄^gamma ln p`` has ``d FL / d x = -s g``. Written as one
    product so that it is finite for every ``gamma >= 0`` (also ``gamma < 1``
    with ``p̄ -> 0``). Shapes: logits ``(N,)``, positive bool ``(N,)`` -> ``(N,)``.
    """
    signed = torch.where(positive, logits, -logits)
    p = torch.sigmoid(signed)
    p_bar = torch.sigmoid(-signed)
    neg_log_p = F.softplus(-signed)
    return alpha * p_bar.pow(gamma) * (p_bar + gamma * p * neg_log_p)


def focal_l2_surrogate(logits: torch.Tensor, positive: torch.Tensor,
                       alpha: float, gamma: float) -> torch.Tensor:
    """L2 loss whose gradient equals the focal-loss gradient: ``l = (x - t2)^2 / 2``.

    The fictitious target ``t2 = x̂ + s g`` is built from the detached logit
    ``x̂`` (see :func:`focal_gradient_magnitude`), so
    ``d l / d x = x - t2 = -s g = d FL / d x`` exactly. Only the gradient
    matches, not the value. OpenPifPaf uses a smooth L1 here, identical as long
    as ``g < 1`` (always true at the defaults); the plain L2 keeps the gradient
    exact for every alpha and gamma. Shapes ``(N,)`` -> ``(N,)``.
    """
    detached = logits.detach()
    sign = torch.where(positive, 1.0, -1.0).to(logits.dtype)
    step = sign * focal_gradient_magnitude(detached, positive, alpha, gamma)
    # x - t2 written as (x - x̂) - s g: (x - x̂) is 0 with gradient 1, so a tiny g is not
    # lost to rounding against a large logit
    return 0.5 * ((logits - detached) - step) ** 2


def confidence_loss(logits: torch.Tensor, targets: torch.Tensor, x0: torch.Tensor, *,
                    focal_alpha: float = 0.5, focal_gamma: float = 1.0,
                    soft_clamp_value: float = 5.0, background_clamp: float = -15.0) -> torch.Tensor:
    """Confidence loss per element (focal loss by gradient matching, shared-b attenuated).

    1. ``l = focal_l2_surrogate(x, t)`` with positives ``t > 0``;
    2. background clamp: negatives with ``x̂ < background_clamp`` get ``l = 0``
       (stop pushing already very confident negatives);
    3. ``l = soft_clamp(l, soft_clamp_value)``;
    4. foreground only: ``l = l e^{-ls2} / 2 + ls2 / 2 + 1.5`` with
       ``ls2 = 3 tanh(x0 / 3)``; the ``+1.5`` makes the infimum 0.

    Every value is ``>= 0``. Shapes: logits, targets (finite, in ``[0, 1]``)
    and x0 ``(N,)`` -> ``(N,)``.
    """
    positive = targets > 0.0
    loss = focal_l2_surrogate(logits, positive, focal_alpha, focal_gamma)
    confident_background = ~positive & (logits.detach() < background_clamp)
    loss = torch.where(confident_background, torch.zeros_like(loss), loss)
    loss = soft_clamp(loss, soft_clamp_value)
    ls2 = shared_log_variance(x0)
    attenuated = 0.5 * loss * torch.exp(-ls2) + 0.5 * ls2 + CONFIDENCE_OFFSET
    return torch.where(positive, attenuated, loss)


def laplace_loss(normalized_distance: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Laplace negative log-likelihood with the shared b: ``d / b + log b + 1.5 - ln 2``.

    ``log b = ls2 / 2 + ln 2`` (``b = 2 sigma``) with ``ls2 = 3 tanh(x0 / 3)``,
    so ``log b >= -1.5 + ln 2`` and the constant makes the infimum of the
    ``log b`` term 0: the value is ``>= 0`` for ``d >= 0``. Shapes ``(N,)`` -> ``(N,)``.
    """
    log_b = 0.5 * shared_log_variance(x0) + math.log(2.0)
    return normalized_distance * torch.exp(-log_b) + log_b + LAPLACE_OFFSET


def normalized_distance(predicted: torch.Tensor, target: torch.Tensor,
                        b_min: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``d = sqrt(dx^2 + dy^2 + b_min^2) / sigma``: error relative to the instance size.

    ``b_min`` enters as a third component of the norm: ``d`` is smooth at zero
    error and never below ``b_min / sigma``. NaN ``b_min`` means 0.1.
    Shapes: predicted, target ``(N, 2)``; b_min, sigma ``(N,)`` -> ``(N,)``.
    """
    b_min = torch.where(torch.isfinite(b_min), b_min, torch.full_like(b_min, DEFAULT_B_MIN))
    squared = ((predicted - target) ** 2).sum(dim=-1) + b_min ** 2
    # a tiny floor keeps the sqrt gradient finite should a target carry b_min = 0
    return torch.sqrt(squared.clamp_min(1e-12)) / sigma


def regression_loss(predicted: torch.Tensor, target: torch.Tensor, b_min: torch.Tensor,
                    sigma: torch.Tensor, x0: torch.Tensor, *,
                    soft_clamp_value: float = 5.0) -> torch.Tensor:
    """Regression loss per element: ``laplace(soft_clamp(d), x0)``.

    ``d`` from :func:`normalized_distance`; ``sigma`` is the normaliser
    (``0.5 * scale`` for CIF/CAF, ``0.1 * ||(w, h)||`` for CifDet) and is
    expected detached where it comes from a prediction. Value ``>= 0``.
    Shapes: predicted, target ``(N, 2)``; b_min, sigma, x0 ``(N,)`` -> ``(N,)``.
    """
    distance = soft_clamp(normalized_distance(predicted, target, b_min, sigma), soft_clamp_value)
    return laplace_loss(distance, x0)


def sigma_from_scale(scale_target: torch.Tensor, predicted_scale_raw: torch.Tensor,
                     factor: float = 0.5) -> torch.Tensor:
    """CIF/CAF normaliser ``sigma = factor * s``.

    ``s`` is the scale target; where it is NaN (instances with few keypoints)
    the detached prediction ``softplus(x_scale)`` stands in, so the regression
    does not train the scale. Shapes ``(N,)`` -> ``(N,)``.
    """
    imputed = F.softplus(predicted_scale_raw.detach())
    return factor * torch.where(torch.isfinite(scale_target), scale_target, imputed)


def sigma_from_wh(wh_target: torch.Tensor, predicted_wh: torch.Tensor,
                  factor: float = 0.1) -> torch.Tensor:
    """CifDet normaliser ``sigma = factor * ||(w, h)||`` of the target box size.

    Where the target is NaN the detached predicted ``(w, h)`` stands in; its
    norm is floored at 1e-3 because raw predictions can be near zero.
    Shapes ``(N, 2)`` -> ``(N,)``.
    """
    target_norm = torch.linalg.vector_norm(wh_target, dim=-1)
    predicted_norm = torch.linalg.vector_norm(predicted_wh.detach(), dim=-1).clamp_min(1e-3)
    return factor * torch.where(torch.isfinite(target_norm), target_norm, predicted_norm)


def scale_loss(predicted_raw: torch.Tensor, target: torch.Tensor, *,
               b_scale: float = 1.0, soft_clamp_value: float = 5.0) -> torch.Tensor:
    """Relative scale loss per element.

    ``d = |softplus(x) - t| / (b_scale (0.1 + t))``, soft clamped, then
    Huber (smooth L1, beta 1) against 0: ``d^2 / 2`` if ``d < 1`` else ``d - 1/2``.
    Zero exactly when ``softplus(x) = t``; always ``>= 0``. Targets must be
    finite (masked by the caller). Shapes ``(N,)`` -> ``(N,)``.
    """
    relative = torch.abs(F.softplus(predicted_raw) - target) / (b_scale * (0.1 + target))
    relative = soft_clamp(relative, soft_clamp_value)
    return F.smooth_l1_loss(relative, torch.zeros_like(relative), reduction='none', beta=1.0)
