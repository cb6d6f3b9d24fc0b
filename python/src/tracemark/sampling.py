"""The kept candidates of tracemark's sampling order (spec §7; docs/decisions/2026-12-04-sampling-order.md),
and the keyed choice of the Gumbel schemes (watermark-gumbel §4).

Top-k and top-p choose candidates from the model's *unbiased* distribution at temperature T, and the
kept set is widened to every candidate whose logit is within δ of the best (those the bias could lift
to the top). The watermarked distribution is then q(x) ∝ exp((ℓ_x + δ·g_x) / T) over the kept set.
A logits processor reproduces this by masking everything outside the kept set and adding δ to the
green logits; the engine's own temperature then divides, and its sampler draws from q.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .gumbel import gumbel_choice

if TYPE_CHECKING:
    from .watermarker import Watermarker


def _check_truncation(temperature: float, top_k: int, top_p: float) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
        temperature >= 0 and math.isfinite(temperature)
    ):
        raise ValueError(f"temperature: expected a finite number ≥ 0, got {temperature!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k: expected an integer ≥ 0 (0: off), got {top_k!r}")
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise ValueError(f"top_p: expected a number in (0, 1], got {top_p!r}")


def kept_candidates(
    logits: Sequence[float],
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    delta: float = 0.0,
) -> list[int]:
    """Indices of the kept candidates, in descending logit order (earlier index first on ties) when
    truncating, else in index order; finite logits only.

    The rule of core's sampling.ts: the k largest logits, then the smallest prefix whose mass at
    temperature T reaches p, then every candidate with ℓ ≥ max ℓ − δ. At T = 0 (greedy) nothing is
    truncated.
    """
    _check_truncation(temperature, top_k, top_p)
    candidates = [i for i, v in enumerate(logits) if v > -math.inf]
    if not candidates:
        raise ValueError("logits: no candidate has a finite logit")
    if temperature == 0 or (top_k == 0 and top_p >= 1):
        return candidates
    candidates.sort(key=lambda i: (-logits[i], i))
    keep = min(top_k, len(candidates)) if top_k > 0 else len(candidates)
    top = logits[candidates[0]]
    if top_p < 1:
        weights = [math.exp((logits[candidates[j]] - top) / temperature) for j in range(keep)]
        total = 0.0
        for weight in weights:
            total += weight
        running = 0.0
        for j in range(keep):
            running += weights[j]
            if running >= top_p * total:
                keep = j + 1
                break
    reach = top - delta if delta > 0 else math.inf
    while keep < len(candidates) and logits[candidates[keep]] >= reach:
        keep += 1
    return candidates[:keep]


def gumbel_token(
    watermarker: Watermarker,
    context: Sequence[int],
    logits: Sequence[float],
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    gumbel_key: int = 0,
) -> int | None:
    """The marked token of a Gumbel key after `context` (watermark-gumbel §4), from dense logits
    (index = token id, float32 values), or None when the step is not marked (T = 0, or no eligible
    window: the engine then samples the kept candidates itself). The candidates are those of
    `kept_candidates` without widening; the token is argmax u^(1/p) over them. Pure Python: the
    reference the logits processors are tested against."""
    _check_truncation(temperature, top_k, top_p)
    if temperature == 0:
        return None
    seed = watermarker.context_seed(context)
    if seed is None:
        return None
    kept = kept_candidates(logits, temperature, top_k, top_p)
    index, _ = gumbel_choice(
        kept, [logits[x] for x in kept], temperature, lambda t: watermarker.uniform(seed, t, gumbel_key)
    )
    return kept[index]
