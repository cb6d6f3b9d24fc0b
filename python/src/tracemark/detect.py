"""Detection (spec §5, §6): what is scored, statistics, verdicts, windowed search, several keys.

A port of `@tracemark/core`'s scoring.ts and detect.ts: the same counts, the same log10 p-values
(to a few units in the last place), the same verdicts and `tokensToSettle`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .gumbel import gumbel_log10_p_value, gumbel_window_scan, gumbel_z_score
from .keys import WatermarkKey
from .statistics import (
    bonferroni_log10,
    holm_adjust_log10,
    log10_binomial_cdf,
    log10_binomial_sf,
    z_score,
)
from .watermarker import Watermarker, _check_token

DEFAULT_FPR = 1e-4
DEFAULT_MISS_RATE = 1e-2
DEFAULT_MIN_WINDOW = 16
MAX_TOKENS_TO_SETTLE = 1_000_000

SKIPPED_CONTEXT = "skipped_context"
SKIPPED_SPECIAL = "skipped_special"
SKIPPED_DUPLICATE = "skipped_duplicate"
SKIPPED_PROMPT = "skipped_prompt"
RED = "red"
GREEN = "green"
SCORED = "scored"  # a Gumbel key's scored position: a score, not a green bit (watermark-gumbel §5.1)


def _round_half_up(x: float) -> int:
    """JavaScript's Math.round (halves go up), which the window lengths of detect.ts use."""
    return math.floor(x + 0.5)


@dataclass(frozen=True)
class Score:
    """Section 6 for one key: counts, per-token statuses, and the scored tape. For a Gumbel key
    `bits` is empty and `scores` holds each scored position's score, `total` their sum in order."""

    num_tokens: int
    num_scored: int
    num_green: int
    status: list[str]
    bits: list[int]
    positions: list[int]
    scores: list[float] = field(default_factory=list)
    total: float = 0.0


def score(
    watermarker: Watermarker,
    tokens: Sequence[int],
    prompt: Sequence[int] | None = None,
    dedup: bool = True,
) -> Score:
    """Eligibility, the dedup tape keyed on (seed, token), prompt exclusion and statuses (spec §6);
    Gumbel keys score each scored position with −ln(1 − u) (watermark-gumbel §5.1)."""
    tokens = [_check_token(int(t) if not isinstance(t, bool) else t, f"tokens[{i}]") for i, t in enumerate(tokens)]
    prompt_list = (
        [_check_token(int(t) if not isinstance(t, bool) else t, f"prompt[{i}]") for i, t in enumerate(prompt)]
        if prompt
        else []
    )
    context = prompt_list + tokens
    m = len(prompt_list)
    reach = watermarker.window_reach()
    special = watermarker.special_token_ids
    tape: dict[tuple[int, int], str] = {}
    status: list[str] = []
    bits: list[int] = []
    positions: list[int] = []
    scores: list[float] = []
    total = 0.0
    gumbel = watermarker.is_gumbel
    selfhash = watermarker.scheme.name == "selfhash"
    # Seeds of LeftHash windows repeat often (h = 1: one per distinct previous token).
    left_cache: dict[tuple[int, ...], int] = {}

    def dedup_key(i: int) -> tuple[str, tuple[int, int] | None]:
        if i < reach:
            return SKIPPED_CONTEXT, None
        if any(context[j] in special for j in range(i - reach, i + 1)):
            return SKIPPED_SPECIAL, None
        if not selfhash:
            window = tuple(context[i - reach : i])
            seed = left_cache.get(window)
            if seed is None:
                seed = watermarker.lefthash_seed(window)
                if len(left_cache) < 1 << 16:
                    left_cache[window] = seed
        else:
            seed = watermarker.selfhash_seed(watermarker.anchor(context[i - reach : i + 1]), context[i])
        return "", (seed, context[i])

    for i in range(m):
        kind, key = dedup_key(i)
        if key is not None:
            tape.setdefault(key, "prompt")
    for j in range(len(tokens)):
        kind, key = dedup_key(m + j)
        if key is None:
            status.append(kind)
            continue
        held = tape.get(key)
        if held == "prompt":
            status.append(SKIPPED_PROMPT)
            continue
        if held == "scored" and dedup:
            status.append(SKIPPED_DUPLICATE)
            continue
        tape.setdefault(key, "scored")
        if gumbel:
            value = watermarker.token_score(key[0], key[1])
            status.append(SCORED)
            scores.append(value)
            positions.append(j)
            total += value
            continue
        green = watermarker.is_green(key[0], key[1])
        status.append(GREEN if green else RED)
        bits.append(1 if green else 0)
        positions.append(j)
    if gumbel:
        return Score(len(tokens), len(scores), 0, status, bits, positions, scores, total)
    return Score(len(tokens), len(bits), sum(bits), status, bits, positions)


# -- verdicts (spec §5.2) -------------------------------------------------------------------------


@dataclass(frozen=True)
class VerdictOptions:
    """α (fpr), β (miss_rate) and g₁ (None: undefined, when δ = 0 and none was given)."""

    fpr: float
    miss_rate: float
    alternative: float | None


def resolve_verdict_options(
    watermarker: Watermarker,
    fpr: float | None = None,
    miss_rate: float | None = None,
    alternative_green_fraction: float | None = None,
) -> VerdictOptions:
    fpr = DEFAULT_FPR if fpr is None else fpr
    miss_rate = DEFAULT_MISS_RATE if miss_rate is None else miss_rate
    gamma = watermarker.scheme.gamma_effective
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0 < fpr < 1:
        raise ValueError(f"fpr: expected a number strictly between 0 and 1, got {fpr!r}")
    if isinstance(miss_rate, bool) or not isinstance(miss_rate, (int, float)) or not 0 < miss_rate < 1:
        raise ValueError(f"miss_rate: expected a number strictly between 0 and 1, got {miss_rate!r}")
    given = alternative_green_fraction
    if watermarker.is_gumbel:
        # What a marked text scores depends on the model's entropy, which no key parameter bounds
        # (watermark-gumbel §5.3): there is no alternative to rule out.
        if given is not None:
            raise ValueError(
                f"alternative_green_fraction: key {watermarker.key_id} uses the {watermarker.scheme.name} "
                "scheme, which has no green fraction"
            )
        return VerdictOptions(fpr, miss_rate, None)
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, (int, float)) or not gamma < given < 1:
            raise ValueError(
                f"alternative_green_fraction: expected a number between γ_eff ({gamma}) and 1, got {given!r}"
            )
        return VerdictOptions(fpr, miss_rate, given)
    design = gamma + (watermarker.scheme.biased_green_fraction() - gamma) / 2
    return VerdictOptions(fpr, miss_rate, design if design > gamma else None)


def window_count(num_scored: int, min_window: int = DEFAULT_MIN_WINDOW) -> int:
    """W(T): the number of windows the search of spec §5.3 visits on a tape of T scored tokens."""
    if isinstance(min_window, bool) or not isinstance(min_window, int) or min_window < 1:
        raise ValueError(f"min_window: expected a positive integer, got {min_window!r}")
    count = 1
    previous = 0
    j = 0
    while True:
        length = _round_half_up(min_window * 2 ** (j / 2))
        j += 1
        if length >= num_scored:
            break
        if length == previous:
            continue
        previous = length
        count += -(-(num_scored - length) // max(1, length // 4)) + 1
    return count


@dataclass(frozen=True)
class _SettleRule:
    gamma: float
    alternative: float
    log10_beta: float
    log10_level: float
    min_window: int | None


def _smallest_watermarked_count(T: int, rule: _SettleRule, start: int) -> int:
    windows = 1 if rule.min_window is None else window_count(T, rule.min_window)
    level = rule.log10_level - math.log10(windows)
    lo, hi = start, T + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if log10_binomial_sf(mid, T, rule.gamma) <= level:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _largest_ruled_out_count(T: int, rule: _SettleRule, start: int, stop: int) -> int:
    lo, hi = start, min(stop, T)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if log10_binomial_cdf(mid, T, rule.alternative) <= rule.log10_beta:
            lo = mid
        else:
            hi = mid - 1
    return lo


_settle_cache: dict[tuple[Any, ...], float] = {}


def _tokens_to_settle(T: int, rule: _SettleRule) -> float:
    """T* − T (spec §5.2), exactly, jumping by the gap k0 − 1 − k1 as detect.ts does."""
    cache_key = (rule.gamma, rule.alternative, rule.log10_beta, rule.log10_level, rule.min_window, T)
    held = _settle_cache.get(cache_key)
    if held is not None:
        return held
    following = T + 1
    k0 = _smallest_watermarked_count(following, rule, 0)
    k1 = _largest_ruled_out_count(following, rule, -1, following)
    result: float = math.inf
    while following - T <= MAX_TOKENS_TO_SETTLE:
        gap = k0 - 1 - k1
        if gap <= 0:
            result = following - T
            break
        following += gap
        k0 = _smallest_watermarked_count(following, rule, k0)
        k1 = _largest_ruled_out_count(following, rule, k1, k1 + gap)
    if len(_settle_cache) >= 4096:
        _settle_cache.clear()
    _settle_cache[cache_key] = result
    return result


def decide_verdict(
    num_scored: int,
    num_green: int,
    log10_p_value: float,
    gamma: float,
    options: VerdictOptions,
    keys_tested: int = 1,
    min_window: int | None = None,
) -> tuple[str, float]:
    """The verdict of spec §5.2 and its tokensToSettle (math.inf for none)."""
    if isinstance(keys_tested, bool) or not isinstance(keys_tested, int) or keys_tested < 1:
        raise ValueError(f"keys_tested: expected a positive integer, got {keys_tested!r}")
    if min_window is not None and (isinstance(min_window, bool) or not isinstance(min_window, int) or min_window < 1):
        raise ValueError(f"min_window: expected a positive integer, got {min_window!r}")
    if num_scored > 0 and log10_p_value <= math.log10(options.fpr):
        return "watermarked", 0
    if options.alternative is None:
        return "insufficient", math.inf
    log10_beta = math.log10(options.miss_rate)
    if num_scored > 0 and log10_binomial_cdf(num_green, num_scored, options.alternative) <= log10_beta:
        return "not_watermarked", 0
    rule = _SettleRule(
        gamma,
        options.alternative,
        log10_beta,
        math.log10(options.fpr) - math.log10(keys_tested),
        min_window,
    )
    return "insufficient", _tokens_to_settle(num_scored, rule)


# -- windowed search (spec §5.3) ------------------------------------------------------------------


@dataclass(frozen=True)
class WindowScan:
    windows_searched: int
    start: int
    length: int
    num_green: int
    log10_p: float
    log10_p_corrected: float


def window_scan(bits: Sequence[int], gamma: float, min_window: int = DEFAULT_MIN_WINDOW) -> WindowScan:
    if isinstance(min_window, bool) or not isinstance(min_window, int) or min_window < 1:
        raise ValueError(f"min_window: expected a positive integer, got {min_window!r}")
    T = len(bits)
    prefix = [0] * (T + 1)
    for i, b in enumerate(bits):
        prefix[i + 1] = prefix[i] + (1 if b else 0)
    windows = 0
    best = (0, T, prefix[T], math.inf)

    def consider(start: int, length: int) -> None:
        nonlocal windows, best
        windows += 1
        k = prefix[start + length] - prefix[start]
        log10_p = log10_binomial_sf(k, length, gamma)
        if log10_p < best[3]:
            best = (start, length, k, log10_p)

    previous = 0
    j = 0
    while True:
        length = _round_half_up(min_window * 2 ** (j / 2))
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
    start, length, k, log10_p = best
    return WindowScan(windows, start, length, k, log10_p, bonferroni_log10(log10_p, windows))


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowResult:
    start_token: int
    end_token: int
    tape_start: int
    length: int
    num_green: int
    """Green count of the best window; 0 for a Gumbel key."""
    log10_p: float
    windows_searched: int
    log10_p_corrected: float
    score: float | None = None
    """Gumbel keys: the best window's score sum."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "startToken": self.start_token,
            "endToken": self.end_token,
            "tapeStart": self.tape_start,
            "length": self.length,
            "numGreen": self.num_green,
        }
        if self.score is not None:
            out["score"] = self.score
        out.update(log10P=self.log10_p, windowsSearched=self.windows_searched, log10PCorrected=self.log10_p_corrected)
        return out


@dataclass(frozen=True)
class KeyDetection:
    key_id: str
    scheme: str
    context_width: int
    gamma: float
    num_tokens: int
    num_scored: int
    num_green: int
    """0 for a Gumbel key."""
    green_fraction: float
    """k / T; NaN for a Gumbel key (null in JSON)."""
    z: float
    """For comparison only; for a Gumbel key (S − n)/(s·√n) with the null per-token deviation s."""
    log10_p: float
    """log10 of the exact tail for the whole text: binomial, or Gamma (dual: weighted) for a Gumbel key."""
    log10_p_adjusted: float
    """The p-value the verdict uses: windowed if asked, then Holm-adjusted across keys."""
    verdict: str
    tokens_to_settle: float
    """0 unless insufficient; math.inf for none (null in JSON)."""
    window: WindowResult | None = None
    status: list[str] | None = field(default=None, repr=False)
    score: float | None = None
    """Gumbel keys: S, the sum of the scored positions' scores (watermark-gumbel §5.1)."""
    alpha: float = 0.0
    """`dual_gumbel`: the weight α of key B; 0 otherwise."""


@dataclass(frozen=True)
class Detection:
    verdict: str
    matched_key_id: str | None
    reported_key_id: str
    tokens_to_settle: float
    fpr: float
    keys_tested: int
    results: list[KeyDetection]

    @property
    def reported(self) -> KeyDetection:
        return next(r for r in self.results if r.key_id == self.reported_key_id)

    def to_json(self) -> dict[str, Any]:
        """The fields `tracemark detect --json` prints for a document (its reported key's numbers);
        for a Gumbel key numGreen and greenFraction are null and scheme and score are given."""
        r = self.reported
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "numTokens": r.num_tokens,
            "numScored": r.num_scored,
            # A Gumbel key has no green tokens: null, with its scheme and score S instead.
            "numGreen": None if r.score is not None else r.num_green,
            "greenFraction": None if math.isnan(r.green_fraction) else r.green_fraction,
        }
        if r.score is not None:
            out.update(scheme=r.scheme, score=r.score)
        out.update({
            "z": r.z,
            "log10P": r.log10_p,
            "log10PAdjusted": r.log10_p_adjusted,
            "keyId": r.key_id,
            "keysTested": self.keys_tested,
            "fpr": self.fpr,
            "tokensToSettle": None if math.isinf(self.tokens_to_settle) else self.tokens_to_settle,
        })
        if r.window is not None:
            out["window"] = r.window.to_json()
        if len(self.results) > 1:
            out["keys"] = [_key_json(k) for k in self.results]
        return out


def _key_json(r: KeyDetection) -> dict[str, Any]:
    """One key's entry of the CLI's `keys` list (printed when several keys are tested)."""
    out: dict[str, Any] = {
        "keyId": r.key_id,
        "verdict": r.verdict,
        "numScored": r.num_scored,
        "numGreen": None if r.score is not None else r.num_green,
        "greenFraction": None if math.isnan(r.green_fraction) else r.green_fraction,
    }
    if r.score is not None:
        out.update(scheme=r.scheme, score=r.score)
    out.update(z=r.z, log10P=r.log10_p, log10PAdjusted=r.log10_p_adjusted)
    return out


def _strongest(candidates: list[KeyDetection]) -> KeyDetection:
    """Smallest adjusted p, then smallest raw p, then the key given first (spec §5.4)."""
    best = candidates[0]
    for r in candidates:
        if r.log10_p_adjusted < best.log10_p_adjusted or (
            r.log10_p_adjusted == best.log10_p_adjusted and r.log10_p < best.log10_p
        ):
            best = r
    return best


def _as_watermarkers(keys: Any, special_token_ids: Any) -> list[Watermarker]:
    items = keys if isinstance(keys, (list, tuple)) else [keys]
    if not items:
        raise ValueError("keys: expected at least one key")
    out = []
    for item in items:
        if isinstance(item, Watermarker):
            out.append(item)
        elif isinstance(item, WatermarkKey):
            out.append(Watermarker(item, special_token_ids))
        else:
            raise TypeError("keys: expected a WatermarkKey, a Watermarker, or a list of them")
    return out


def detect(
    token_ids: Sequence[int],
    keys: WatermarkKey | Watermarker | Sequence[WatermarkKey | Watermarker],
    *,
    prompt: Sequence[int] | None = None,
    dedup: bool = True,
    window: bool | int = False,
    fpr: float | None = None,
    miss_rate: float | None = None,
    alternative_green_fraction: float | None = None,
    include_status: bool = True,
    special_token_ids: Sequence[int] | None = None,
) -> Detection:
    """Detects the watermark of one or more keys in a token sequence (spec §5, §6).

    `window=True` (or the shortest window length) searches for a watermarked passage inside a
    longer text, corrected for the search; several keys are corrected by Holm's procedure.
    Empty input is `insufficient`, not an error.
    """
    watermarkers = _as_watermarkers(keys, special_token_ids)
    min_window: int | None
    if window is False or window is None:
        min_window = None
    elif window is True:
        min_window = DEFAULT_MIN_WINDOW
    else:
        min_window = window
        window_scan([], 0.5, min_window)
    partial = []
    for w in watermarkers:
        options = resolve_verdict_options(w, fpr, miss_rate, alternative_green_fraction)
        scored = score(w, token_ids, prompt, dedup)
        gamma = w.scheme.gamma_effective
        if w.is_gumbel:
            log10_p = gumbel_log10_p_value(w.scheme, scored.num_scored, scored.total)
        else:
            log10_p = log10_binomial_sf(scored.num_green, scored.num_scored, gamma)
        decisive = log10_p
        found = None
        if min_window is not None:
            positions = scored.positions
            if w.is_gumbel:
                gumbel_scan = gumbel_window_scan(scored.scores, w.scheme, min_window)
                start, length = gumbel_scan.start, gumbel_scan.length
                found = WindowResult(
                    positions[start] if length > 0 else 0,
                    positions[start + length - 1] if length > 0 else 0,
                    start,
                    length,
                    0,
                    gumbel_scan.log10_p,
                    gumbel_scan.windows_searched,
                    gumbel_scan.log10_p_corrected,
                    gumbel_scan.score,
                )
            else:
                scan = window_scan(scored.bits, gamma, min_window)
                found = WindowResult(
                    positions[scan.start] if scan.length > 0 else 0,
                    positions[scan.start + scan.length - 1] if scan.length > 0 else 0,
                    scan.start,
                    scan.length,
                    scan.num_green,
                    scan.log10_p,
                    scan.windows_searched,
                    scan.log10_p_corrected,
                )
            decisive = found.log10_p_corrected
        partial.append((w, options, scored, log10_p, found, decisive))
    adjusted = holm_adjust_log10([p[5] for p in partial])
    results = []
    for (w, options, scored, log10_p, found, _), adj in zip(partial, adjusted):
        gamma = w.scheme.gamma_effective
        verdict, settle = decide_verdict(
            scored.num_scored, scored.num_green, adj, gamma, options, len(watermarkers), min_window
        )
        T, k = scored.num_scored, scored.num_green
        results.append(
            KeyDetection(
                key_id=w.key_id,
                scheme=w.scheme.name,
                context_width=w.scheme.context_width,
                gamma=gamma,
                num_tokens=scored.num_tokens,
                num_scored=T,
                num_green=k,
                green_fraction=math.nan if w.is_gumbel else 0.0 if T == 0 else k / T,
                z=gumbel_z_score(w.scheme, T, scored.total) if w.is_gumbel else z_score(k, T, gamma),
                log10_p=log10_p,
                log10_p_adjusted=adj,
                verdict=verdict,
                tokens_to_settle=settle,
                window=found,
                status=scored.status if include_status else None,
                score=scored.total if w.is_gumbel else None,
                alpha=w.scheme.alpha,
            )
        )
    watermarked = [r for r in results if r.verdict == "watermarked"]
    fpr_used = partial[0][1].fpr
    if watermarked:
        matched = _strongest(watermarked)
        return Detection("watermarked", matched.key_id, matched.key_id, 0, fpr_used, len(results), results)
    insufficient = [r for r in results if r.verdict == "insufficient"]
    if not insufficient:
        return Detection("not_watermarked", None, _strongest(results).key_id, 0, fpr_used, len(results), results)
    return Detection(
        "insufficient",
        None,
        _strongest(insufficient).key_id,
        max(r.tokens_to_settle for r in insufficient),
        fpr_used,
        len(results),
        results,
    )
