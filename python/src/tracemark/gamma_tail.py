"""Gamma tails in log space, accurate far below the smallest double (1e-308).

A line-for-line port of `@tracemark/core`'s `foreign/gamma-tail.ts` (same algorithms, same order of
operations), so the two agree to a few units in the last place:

- `log_gamma_sf(a, x)` = ln Q(a, x), the regularized upper incomplete gamma function, i.e. the
  survival function P[G > x] of G ~ Gamma(a, 1). A sum of n independent Exp(1) scores (the
  Gumbel-max detector statistic Σ −ln(1 − u)) is Gamma(n, 1). Series for P(a, x) below x = a + 1 and
  the Legendre continued fraction for Q above it (Numerical Recipes §6.2, modified Lentz), with the
  prefactor x^a e^−x / Γ(a) written through the Stirling error and the deviance a·ln(a/x) + x − a
  (C. Loader, "Fast and accurate computation of binomial probabilities", 2000), so nothing cancels
  when a and x are large.
- `log_weighted_gamma_sf(n, wa, wb, s)` = ln P[wa·X + wb·Y > s] for independent X, Y ~ Gamma(n, 1).
  With b = min(wa, wb) and a = max(wa, wb), (wa·X + wb·Y)/b ~ Gamma(2n + K, 1) with
  K ~ NegativeBinomial(n, b/a) (P. G. Moschopoulos, "The distribution of the sum of independent
  gamma random variables", Ann. Inst. Stat. Math. 37, 1985), so
  P[S > s] = Σ_k NB(k; n, b/a)·Q(2n + k, s/b): positive terms, summed in log space, truncated only
  when a geometric bound on the rest is below 2^−60 of the sum.
"""

from __future__ import annotations

import math

LN10 = math.log(10)
_LN_SQRT_2PI = 0.9189385332046728
_TINY = 1e-300
_MAX_ITERATIONS = 100_000_000
_LOG_TRUNCATION = math.log(2.0**-60)


def _check_positive(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")


def _check_non_negative(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name}: expected a number ≥ 0, got {value!r}")


def _stirling_error(a: float) -> float:
    """ln Γ(a + 1) − (a + ½)·ln a + a − ln √(2π), for a > 0 (asymptotic series from a = 15)."""
    if a >= 15:
        aa = a * a
        return (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - 1 / (1188 * aa)) / aa) / aa) / aa) / a
    return log_gamma(a + 1) - (a + 0.5) * math.log(a) + a - _LN_SQRT_2PI


def log_gamma(x: float) -> float:
    """ln Γ(x) for x > 0: Stirling's series from 15 up, the recurrence below (as gamma-tail.ts)."""
    _check_positive(x, "x")
    if x >= 15:
        return (x - 0.5) * math.log(x) - x + _LN_SQRT_2PI + _stirling_error(x)
    product = 1.0
    shifted = float(x)
    while shifted < 15:
        product *= shifted
        shifted += 1
    return (shifted - 0.5) * math.log(shifted) - shifted + _LN_SQRT_2PI + _stirling_error(shifted) - math.log(product)


def _deviance(a: float, x: float) -> float:
    """a·ln(a/x) + x − a ≥ 0, by a series when a ≈ x so that it does not cancel."""
    if abs(a - x) < 0.1 * (a + x):
        v = (a - x) / (a + x)
        total = (a - x) * v
        term = 2 * a * v
        v *= v
        for j in range(1, 10_000):
            term *= v
            following = total + term / (2 * j + 1)
            if following == total:
                return following
            total = following
        return total
    return a * math.log(a / x) + x - a


def _log_prefactor_plus_one(a: float, x: float) -> float:
    """ln(x^a e^−x / Γ(a + 1))."""
    return -_deviance(a, x) - _LN_SQRT_2PI - 0.5 * math.log(a) - _stirling_error(a)


def _log_lower_by_series(a: float, x: float) -> float:
    term = 1.0
    total = 1.0
    k = 1
    while k < _MAX_ITERATIONS:
        term *= x / (a + k)
        following = total + term
        if following == total:
            break
        total = following
        k += 1
    return _log_prefactor_plus_one(a, x) + math.log(total)


def _log_upper_by_fraction(a: float, x: float) -> float:
    b = x + 1 - a
    c = 1 / _TINY
    d = 1 / b
    h = d
    i = 1
    while i < _MAX_ITERATIONS:
        an = -i * (i - a)
        b += 2
        d = an * d + b
        if abs(d) < _TINY:
            d = _TINY
        c = b + an / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-16:
            break
        i += 1
    # x^a e^−x / Γ(a) = a · x^a e^−x / Γ(a + 1)
    return math.log(a) + _log_prefactor_plus_one(a, x) + math.log(h)


def log_gamma_sf(a: float, x: float) -> float:
    """ln Q(a, x) = ln P[Gamma(a, 1) > x] for a > 0, x ≥ 0: 0 at x = 0, −inf at x = inf."""
    _check_positive(a, "a")
    _check_non_negative(x, "x")
    if x == 0:
        return 0.0
    if x == math.inf:
        return -math.inf
    if x < a + 1:
        lower = math.exp(_log_lower_by_series(a, x))
        return math.log1p(-min(lower, 1.0))
    return _log_upper_by_fraction(a, x)


def log10_gamma_sf(a: float, x: float) -> float:
    """log10 Q(a, x)."""
    return log_gamma_sf(a, x) / LN10


def _log_add_exp(left: float, right: float) -> float:
    if left == -math.inf:
        return right
    if right == -math.inf:
        return left
    if left > right:
        return left + math.log1p(math.exp(right - left))
    return right + math.log1p(math.exp(left - right))


class _Compensated:
    """A running sum with Neumaier's compensation."""

    __slots__ = ("total", "correction")

    def __init__(self, start: float) -> None:
        self.total = start
        self.correction = 0.0

    def add(self, step: float) -> None:
        following = self.total + step
        if abs(self.total) >= abs(step):
            self.correction += self.total - following + step
        else:
            self.correction += step - following + self.total
        self.total = following

    def value(self) -> float:
        return self.total + self.correction


def log_weighted_gamma_sf(n: int, wa: float, wb: float, s: float) -> float:
    """ln P[wa·X + wb·Y > s] for independent X, Y ~ Gamma(n, 1), integer n ≥ 1, weights ≥ 0 not
    both 0. Exact up to rounding: the mixture is truncated only when the rest is provably below
    2^−60 of it."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an integer ≥ 1, got {n!r}")
    _check_non_negative(wa, "wa")
    _check_non_negative(wb, "wb")
    if not math.isfinite(wa) or not math.isfinite(wb) or wa + wb == 0:
        raise ValueError(f"wa, wb: expected finite weights, not both 0, got {wa}, {wb}")
    _check_non_negative(s, "s")
    if s == 0:
        return 0.0
    large = max(wa, wb)
    small = min(wa, wb)
    if small == 0:
        return log_gamma_sf(n, s / large)
    if small == large:
        return log_gamma_sf(2 * n, s / small)
    x = s / small
    log_q = math.log(1 - small / large)
    log_x = math.log(x)
    # k = 0: NB(0) = (b/a)^n, Q(2n, x); then Q(m + 1, x) = Q(m, x) + e^−x x^m / m!.
    log_weight = _Compensated(n * math.log(small / large))
    m = 2 * n
    log_tail = log_gamma_sf(m, x)
    log_poisson = _Compensated(_log_prefactor_plus_one(m, x))  # ln(e^−x x^m / m!)
    log_sum = -math.inf
    for k in range(_MAX_ITERATIONS):
        log_term = log_weight.value() + log_tail
        log_sum = _log_add_exp(log_sum, log_term)
        log_next_tail = _log_add_exp(log_tail, log_poisson.value())
        log_step = log_q + math.log((n + k) / (k + 1))
        log_ratio = log_step + (log_next_tail - log_tail)
        if log_ratio < 0:
            # everything after term k is at most term_k · r / (1 − r), r the (decreasing) ratio
            log_rest = log_term + log_ratio - math.log1p(-math.exp(log_ratio))
            if log_rest - log_sum < _LOG_TRUNCATION:
                return min(0.0, log_sum)
        log_weight.add(log_step)
        log_tail = log_next_tail
        m += 1
        log_poisson.add(log_x - math.log(m))
    raise ArithmeticError(f"log_weighted_gamma_sf: no convergence for n = {n}, s = {s}")


def log10_weighted_gamma_sf(n: int, wa: float, wb: float, s: float) -> float:
    return log_weighted_gamma_sf(n, wa, wb, s) / LN10
