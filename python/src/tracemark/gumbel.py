"""The Gumbel-max schemes `gumbel` and `dual_gumbel` (docs/spec/watermark-gumbel.md): the keyed
choice, token scores, their exact tails and the windowed search. A port of `@tracemark/core`'s
gumbel.ts.

Sampling (§4): with u_x a keyed uniform per (context seed, candidate x) and p_x the model's
probability after temperature and truncation, the token is argmax_x u_x^(1/p_x) (S. Aaronson,
"Watermarking of large language models", 2022; Kuditipudi et al. 2023, https://arxiv.org/abs/2307.15593):
for uniform u each candidate wins with probability exactly p_x, so the mark changes no output
distribution. In log form it is argmax_x (ℓ_x − ℓ_max)/T − ln(−ln u_x), the Gumbel-max trick.

Detection (§5): s = −ln(1 − u) of a scored token is Exp(1) under the null, larger under the mark;
S over n distinct (seed, token) pairs is Gamma(n, 1), whose upper tail Q(n, S) is the exact p-value
(Fernandez et al. 2023, "Three Bricks to Consolidate Watermarks for Large Language Models",
https://arxiv.org/abs/2308.00113). `dual_gumbel` scores (1 − α)·s_A + α·s_B, whose exact tail is a
negative-binomial mixture of Gamma tails (`gamma_tail.log_weighted_gamma_sf`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .gamma_tail import log_gamma_sf, log_weighted_gamma_sf
from .keys import Scheme
from .statistics import LN10, bonferroni_log10

# The largest −ln(−ln u) on the 52-bit grid (u = 1 − 2^−52), about 36.04: a candidate whose
# (ℓ − ℓ_max)/T is below the best key minus this cannot be chosen, whatever its uniform.
GUMBEL_NOISE_MAX = -math.log(-math.log1p(-(2.0**-52)))
# Keeps the skip exact despite rounding in the bound (far above any rounding).
SKIP_MARGIN = 1e-9


def uniform_of_word(word: int) -> float:
    """§3.1: u = floor(x / 2^12) / 2^52 of a 64-bit PRF output x, one of 0, 2^−52, …, 1 − 2^−52
    (exact in a double). Rounding down keeps every score at most that of a continuous uniform, so
    the Gamma tails stay valid p-values for the discrete u."""
    if isinstance(word, bool) or not isinstance(word, int) or not 0 <= word < 1 << 64:
        raise ValueError(f"word: expected an integer from 0 to 2^64 - 1, got {word!r}")
    return (word >> 12) / 4503599627370496.0


def gumbel_score(uniform: float) -> float:
    """s = −ln(1 − u): Exp(1) for a continuous uniform u."""
    return -math.log1p(-uniform)


def gumbel_key_of(scaled: float, uniform: float) -> float:
    """(ℓ − ℓ_max)/T − ln(−ln u); −inf when u = 0."""
    if uniform == 0:
        return -math.inf
    return scaled - math.log(-math.log(uniform))


def gumbel_choice(
    tokens: Sequence[int], logits: Sequence[float], temperature: float, uniform_of: Callable[[int], float]
) -> tuple[int, int]:
    """The keyed choice of §4.2 among candidates: the index into `tokens` of the largest key
    (ℓ_x − ℓ_max)/T − ln(−ln u_x), the smaller token id on equal keys, and the number of uniforms
    evaluated. The most likely candidate is evaluated first and every candidate that cannot beat the
    best key even with the largest noise is skipped (exact). `temperature` must be > 0."""
    count = len(tokens)
    if len(logits) != count:
        raise ValueError("logits: expected one logit per candidate token")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
        temperature > 0 and math.isfinite(temperature)
    ):
        raise ValueError(f"temperature: expected a finite number > 0, got {temperature!r}")
    top = -1
    max_logit = -math.inf
    for j in range(count):
        v = logits[j]
        if v > max_logit or (v == max_logit and top >= 0 and tokens[j] < tokens[top]):
            max_logit = v
            top = j
    if top < 0:
        raise ValueError("logits: no candidate has a finite logit")
    evaluated = 1
    best = top
    best_key = gumbel_key_of((logits[top] - max_logit) / temperature, uniform_of(tokens[top]))
    for j in range(count):
        if j == top:
            continue
        scaled = (logits[j] - max_logit) / temperature
        if not scaled + GUMBEL_NOISE_MAX >= best_key - SKIP_MARGIN:
            continue
        evaluated += 1
        key = gumbel_key_of(scaled, uniform_of(tokens[j]))
        if key > best_key or (key == best_key and tokens[j] < tokens[best]):
            best_key = key
            best = j
    return best, evaluated


def _check_gumbel(scheme: Scheme) -> None:
    if not scheme.is_gumbel:
        raise TypeError(f"scheme: {scheme.name} is a green-list scheme; Gumbel statistics need gumbel or dual_gumbel")


def gumbel_log_p_value(scheme: Scheme, num_scored: int, score: float) -> float:
    """ln P[S ≥ score] for the sum S of n null token scores (§5.2): Q(n, score) for `gumbel`; for
    `dual_gumbel` the exact tail of (1 − α)X + αY, X, Y ~ Gamma(n, 1). 0 when n = 0."""
    _check_gumbel(scheme)
    if isinstance(num_scored, bool) or not isinstance(num_scored, int) or num_scored < 0:
        raise ValueError(f"num_scored: expected a non-negative integer, got {num_scored!r}")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not score >= 0:
        raise ValueError(f"score: expected a number ≥ 0, got {score!r}")
    if num_scored == 0 or score == 0:
        return 0.0
    if scheme.name == "dual_gumbel":
        log = log_weighted_gamma_sf(num_scored, 1 - scheme.alpha, scheme.alpha, score)
    else:
        log = log_gamma_sf(num_scored, score)
    return min(0.0, log)


def gumbel_log10_p_value(scheme: Scheme, num_scored: int, score: float) -> float:
    """log10 of `gumbel_log_p_value`: finite far below 1e-308."""
    log = gumbel_log_p_value(scheme, num_scored, score)
    return 0.0 if log == 0 else log / LN10


def gumbel_z_score(scheme: Scheme, num_scored: int, score: float) -> float:
    """(S − n)/√n, or (S − n)/(√n·√((1 − α)² + α²)) for `dual_gumbel`: for comparison only."""
    _check_gumbel(scheme)
    if num_scored == 0:
        return 0.0
    alpha = scheme.alpha
    sd = math.sqrt((1 - alpha) ** 2 + alpha**2) if scheme.name == "dual_gumbel" else 1
    return (score - num_scored * 1) / (sd * math.sqrt(num_scored))


@dataclass(frozen=True)
class GumbelWindowScan:
    windows_searched: int
    start: int
    length: int
    score: float
    log10_p: float
    log10_p_corrected: float


def gumbel_window_scan(scores: Sequence[float], scheme: Scheme, min_window: int) -> GumbelWindowScan:
    """The windowed search of spec §5.3 over a tape of token scores (§5.4): the same windows in the
    same order, each with its exact tail; the best is the smallest p (the first on ties), corrected
    by Bonferroni over the windows searched."""
    _check_gumbel(scheme)
    if isinstance(min_window, bool) or not isinstance(min_window, int) or min_window < 1:
        raise ValueError(f"min_window: expected a positive integer, got {min_window!r}")
    T = len(scores)
    prefix = [0.0] * (T + 1)
    for i, value in enumerate(scores):
        prefix[i + 1] = prefix[i] + value
    windows = 0
    best = (0, T, prefix[T], math.inf)

    def consider(start: int, length: int) -> None:
        nonlocal windows, best
        windows += 1
        score = max(0.0, prefix[start + length] - prefix[start])
        log10_p = gumbel_log10_p_value(scheme, length, score)
        if log10_p < best[3]:
            best = (start, length, score, log10_p)

    previous = 0
    j = 0
    while True:
        length = math.floor(min_window * 2 ** (j / 2) + 0.5)  # JavaScript's Math.round, as detect.ts
        j += 1
        if length >= T:
            break
        if length == previous:
            continue
        previous = length
        stride = max(1, length // 4)
        last = -1
        start = 0
        while start + length <= T:
            consider(start, length)
            last = start
            start += stride
        if last != T - length:
            consider(T - length, length)
    consider(0, T)
    start, length, score, log10_p = best
    return GumbelWindowScan(windows, start, length, score, log10_p, bonferroni_log10(log10_p, windows))
