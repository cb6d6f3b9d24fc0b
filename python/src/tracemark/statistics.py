"""Tail probabilities in log space, accurate far beyond the range of a double (spec §5.1).

The same algorithms, in the same order of operations, as `@tracemark/core`'s statistics.ts, so the
two agree to the last few units in the last place:

- the binomial mass function in Loader's saddle-point form (C. Loader, "Fast and accurate
  computation of binomial probabilities", 2000), as R's dbinom computes it;
- the tail P[X ≥ k] = I_p(k, n − k + 1) from the continued fraction of the regularized incomplete
  beta function (Numerical Recipes §6.4, modified Lentz).
"""

from __future__ import annotations

import math

LN10 = math.log(10)
_LN_2PI = 1.8378770664093456
_LN_SQRT_2PI = 0.9189385332046728
_TINY = 1e-300

# stirlerr(n) = ln n! − (n + ½) ln n + n − ln √(2π), n = 0..15 (the table of statistics.ts).
_STIRLERR = (
    0.0,
    0.08106146679532726,
    0.0413406959554093,
    0.02767792568499834,
    0.020790672103765093,
    0.016644691189821193,
    0.013876128823070748,
    0.01189670994589177,
    0.010411265261972096,
    0.009255462182712733,
    0.00833056343336287,
    0.007573675487951841,
    0.00694284010720953,
    0.006408994188004207,
    0.0059513701127588475,
    0.005554733551962801,
)


def _stirling_error(n: float) -> float:
    if n <= 15:
        return _STIRLERR[int(n)]
    s0, s1, s2, s3, s4 = 1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188
    nn = n * n
    if n > 500:
        return (s0 - s1 / nn) / n
    if n > 80:
        return (s0 - (s1 - s2 / nn) / nn) / n
    if n > 35:
        return (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / n
    return (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / n


def _deviance(x: float, mu: float) -> float:
    """x·ln(x/μ) + μ − x, without cancellation when x ≈ μ."""
    if abs(x - mu) < 0.1 * (x + mu):
        v = (x - mu) / (x + mu)
        total = (x - mu) * v
        term = 2 * x * v
        v *= v
        for j in range(1, 1000):
            term *= v
            following = total + term / (2 * j + 1)
            if following == total:
                return following
            total = following
        return total
    return x * math.log(x / mu) + mu - x


def _check_count(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")


def _check_integer(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected an integer, got {value!r}")


def _check_probability(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name}: expected a probability strictly between 0 and 1, got {value!r}")


def _log1p_safe(x: float) -> float:
    return math.log1p(x) if x > -1 else -math.inf


def _log_pmf(k: int, n: int, p: float, q: float) -> float:
    if k > n:
        return -math.inf
    if k == 0:
        return n * (_log1p_safe(-p) if p < 0.5 else math.log(q))
    if k == n:
        return n * math.log(p)
    lc = (
        _stirling_error(n)
        - _stirling_error(k)
        - _stirling_error(n - k)
        - _deviance(k, n * p)
        - _deviance(n - k, n * q)
    )
    lf = _LN_2PI + math.log(k) + math.log1p(-k / n)
    return lc - 0.5 * lf


def log_binomial_pmf(k: int, n: int, p: float) -> float:
    """ln P[X = k] for X ~ Bin(n, p)."""
    _check_count(n, "n")
    _check_count(k, "k")
    _check_probability(p, "p")
    return _log_pmf(k, n, p, 1 - p)


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    qab = a + b
    qap = a + 1
    qam = a - 1
    c = 1.0
    d = 1 - (qab * x) / qap
    if abs(d) < _TINY:
        d = _TINY
    d = 1 / d
    h = d
    for m in range(1, 10_000_001):
        m2 = 2 * m
        aa = (m * (b - m) * x) / ((qam + m2) * (a + m2))
        d = 1 + aa * d
        if abs(d) < _TINY:
            d = _TINY
        c = 1 + aa / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1 / d
        h *= d * c
        aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2))
        d = 1 + aa * d
        if abs(d) < _TINY:
            d = _TINY
        c = 1 + aa / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 2e-16:
            return h
    return h


def _log_sf(k: int, n: int, p: float, q: float) -> float:
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    a = k
    b = n - k + 1
    if p < (a + 1) / (a + b + 2):
        return _log_pmf(k, n, p, q) + math.log(q) + math.log(_beta_continued_fraction(a, b, p))
    lower = math.exp(_log_pmf(k - 1, n, p, q) + math.log(p) + math.log(_beta_continued_fraction(b, a, q)))
    return _log1p_safe(-min(lower, 1.0))


def log_binomial_sf(k: int, n: int, p: float) -> float:
    """ln P[X ≥ k] for X ~ Bin(n, p): 0 for k ≤ 0, −inf for k > n; never underflows."""
    _check_count(n, "n")
    _check_integer(k, "k")
    _check_probability(p, "p")
    return _log_sf(k, n, p, 1 - p)


def log10_binomial_sf(k: int, n: int, p: float) -> float:
    """log10 P[X ≥ k] for X ~ Bin(n, p)."""
    return log_binomial_sf(k, n, p) / LN10


def log_binomial_cdf(k: int, n: int, p: float) -> float:
    """ln P[X ≤ k], as the upper tail of n − X ~ Bin(n, 1 − p)."""
    _check_count(n, "n")
    _check_integer(k, "k")
    _check_probability(p, "p")
    if k < 0:
        return -math.inf
    if k >= n:
        return 0.0
    return _log_sf(n - k, n, 1 - p, p)


def log10_binomial_cdf(k: int, n: int, p: float) -> float:
    return log_binomial_cdf(k, n, p) / LN10


def log_normal_sf(z: float) -> float:
    """ln P[N(0, 1) ≥ z]: Marsaglia's series for |z| < 2, the continued fraction of Mills' ratio above."""
    if isinstance(z, bool) or not isinstance(z, (int, float)) or math.isnan(z):
        raise ValueError(f"z: expected a number, got {z!r}")
    if z == math.inf:
        return -math.inf
    if z == -math.inf:
        return 0.0
    if z < 0:
        return math.log1p(-math.exp(log_normal_sf(-z)))
    if z < 2:
        term = z
        total = z
        zz = z * z
        for i in range(3, 500, 2):
            term *= zz / i
            following = total + term
            if following == total:
                break
            total = following
        density = math.exp(-0.5 * zz - _LN_SQRT_2PI)
        return math.log(0.5 - density * total)
    f = z
    c = z
    d = 0.0
    for j in range(1, 100_000):
        d = z + j * d
        if abs(d) < _TINY:
            d = _TINY
        c = z + j / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1 / d
        step = c * d
        f *= step
        if abs(step - 1) < 1e-16:
            break
    return -0.5 * z * z - _LN_SQRT_2PI - math.log(f)


def log10_normal_sf(z: float) -> float:
    return log_normal_sf(z) / LN10


def z_score(num_green: int, num_scored: int, gamma: float) -> float:
    """z = (k − γT) / sqrt(Tγ(1 − γ)); 0 when T = 0. Reported for comparison, never decisive."""
    if num_scored == 0:
        return 0.0
    return (num_green - gamma * num_scored) / math.sqrt(num_scored * gamma * (1 - gamma))


def holm_adjust_log10(log10_p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment (Holm 1979) of log10 p-values, in input order:
    p̃_(i) = min(1, max_{j ≤ i} (m − j + 1)·p_(j))."""
    m = len(log10_p_values)
    order = sorted(range(m), key=lambda i: (log10_p_values[i], i))
    adjusted = [0.0] * m
    running = -math.inf
    for rank, index in enumerate(order):
        value = log10_p_values[index]
        if math.isnan(value) or value > 0:
            raise ValueError(f"log10_p_values[{index}]: expected a value ≤ 0")
        running = max(running, value + math.log10(m - rank))
        adjusted[index] = min(0.0, running)
    return adjusted


def bonferroni_log10(log10_p: float, count: int) -> float:
    """min(1, count·p) in log10."""
    return min(0.0, log10_p + math.log10(max(1, count)))
