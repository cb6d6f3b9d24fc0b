#!/usr/bin/python3
"""Writes packages/core/test/vectors/dual-tail.json: ln P[(1 - alpha) X + alpha Y > s], X, Y iid
Gamma(n, 1), from mpmath, for the long sums: n from 500 to 100,000, tails near 1 (where only the
absolute error of ln p means anything), moderate ones, and deep ones whose Gamma tail grows by
thousands of orders of magnitude along the sum.

Needs mpmath (Debian/Ubuntu: apt-get install python3-mpmath) and runs with the system Python:

    /usr/bin/python3 packages/core/reference/generate_dual_tail_vectors.py

The value is the negative-binomial mixture sum_k NB(k; n, b/a) Q(2n + k, s/b) (b = min, a = max of
the weights; the partial-fraction and quadrature routes of vllm_vectors.py and
generate_gumbel_vectors.py check the formula itself at small n), summed term by term in mpmath at
two working precisions (40 and 60 digits) that must agree to 1e-25 in ln p. Q(m, x) for integer m is
e^-x sum_{i<m} x^i / i!, and Q(m + 1, x) = Q(m, x) + e^-x x^m / m!. The sum stops past the largest
term once a term is below 10^-(dps + 5) of the total. `alpha` and `s` are doubles and mean those
doubles exactly; `lnSf` is the double nearest the value.

Then small weights (alpha from 1e-4 to 1e-9, n from 1 to 100,000), whose mixture would take millions
to billions of terms: the same probability as an integral over Y (ln_dual_sf_by_quadrature), at 40 and
60 digits that must agree to 1e-25, the integral first checked against the mixture on three cases where
both are quick, and for n <= 5 against the integral over X (to 1e-20). About a minute and a half.
"""

from __future__ import annotations

import json
import os
import sys
import time

import mpmath

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "vectors", "dual-tail.json")

# (n, alpha, s): near 1, moderate, deep, a typical document's n, and long strongly marked texts.
CASES = [
    (4029, 0.05168282136321068, 3744.5853454058233),
    (2229, 0.028918139524757865, 1729.435564586391),
    (2000, 0.1, 1900.0),
    (20000, 0.1, 19500.0),
    (580, 0.1, 580.0),
    (580, 0.1, 700.0),
    (600, 0.1, 640.0),
    (3000, 0.1, 3150.0),
    (10000, 0.3, 10200.0),
    (50000, 0.3, 50500.0),
    (500, 0.1, 5000.0),
    (1284, 0.22250159330666067, 6493.8595263259695),
    (2000, 0.45, 30000.0),
    (800, 0.02, 900.0),
    (100000, 0.1, 100500.0),
    (15011, 0.017821628041565417, 13319.46555159917),
    # strongly marked: the terms peak hundreds of thousands of terms past the weights' bulk
    (20000, 0.1, 80000.0),
    (5000, 0.05, 15000.0),
]


def ln_dual_sf(n: int, alpha: float, s: float, dps: int) -> mpmath.mpf:
    with mpmath.workdps(dps):
        wa, wb = 1 - mpmath.mpf(alpha), mpmath.mpf(alpha)
        a, b = max(wa, wb), min(wa, wb)
        r, q = b / a, 1 - b / a
        x = mpmath.mpf(s) / b
        # Q(2n, x) and the Poisson term e^-x x^(2n) / (2n)!
        partial = mpmath.mpf(1)
        poisson_scaled = mpmath.mpf(1)  # x^i / i!
        for i in range(1, 2 * n):
            poisson_scaled = poisson_scaled * x / i
            partial += poisson_scaled
        e = mpmath.exp(-x)
        tail = partial * e
        poisson = poisson_scaled * x / (2 * n) * e
        weight = r**n
        total = mpmath.mpf(0)
        largest = mpmath.mpf(0)
        threshold = mpmath.mpf(10) ** (-(dps + 5))
        k = 0
        while True:
            term = weight * tail
            total += term
            if term >= largest:
                largest = term
            elif term < total * threshold:
                break
            tail += poisson
            m = 2 * n + k + 1
            poisson = poisson * x / m
            weight *= q * (n + k) / (k + 1)
            k += 1
        return mpmath.log(total)


# Small weights (alpha below 1e-3), whose mixture would take millions to billions of terms: from the
# integral over Y instead (ln_dual_sf_by_quadrature).
SMALL_WEIGHT_CASES = [
    (500, 1e-4, 520.0),
    (500, 1e-5, 600.0),
    (500, 1e-6, 520.0),
    (2000, 1e-7, 2100.0),
    (20000, 1e-4, 30000.0),
    (100000, 1e-5, 99000.0),
    (3000, 5e-5, 3000.0),
    (800, 1e-9, 900.0),
    (5, 1e-6, 10.0),
    (1, 1e-5, 3.0),
]


def ln_tail_given(n: int, alpha: float, s: float, dps: int, over_larger: bool, breakpoints) -> mpmath.mpf:
    """ln P[a X + b Y > s] (a, b the larger and smaller weight) conditioned on one of the two variables,
    V with weight v (X and a when `over_larger`, else Y and b), the other W with weight w: Q(n, s/v) (V
    alone passes s) plus the integral over t in (0, s/v) of f(t) Q(n, (s - v t)/w), f the Gamma(n, 1)
    density, by Gauss-Legendre between `breakpoints(n, a, b, end)` (end = s/v)."""
    with mpmath.workdps(dps):
        wa, wb = 1 - mpmath.mpf(alpha), mpmath.mpf(alpha)
        a, b = max(wa, wb), min(wa, wb)
        v, w = (a, b) if over_larger else (b, a)
        s = mpmath.mpf(s)
        end = s / v
        log_gamma_n = mpmath.loggamma(n)

        def integrand(t):
            if t <= 0:
                return mpmath.mpf(0)
            rest = (s - v * t) / w
            tail = mpmath.gammainc(n, rest, mpmath.inf, regularized=True) if rest > 0 else mpmath.mpf(1)
            return mpmath.exp((n - 1) * mpmath.log(t) - t - log_gamma_n) * tail

        points = sorted({mpmath.mpf(0), end} | {p for p in breakpoints(n, a, b, end) if 0 < p < end})
        body = mpmath.quad(integrand, points, method="gauss-legendre")
        return mpmath.log(mpmath.gammainc(n, end, mpmath.inf, regularized=True) + body)


def ln_dual_sf_by_quadrature(n: int, alpha: float, s: float, dps: int) -> mpmath.mpf:
    """The probability integrated over Y (the smaller-weighted variable): the integrand's bulk is Y's,
    around its mode. The bulk: 20 standard deviations each side, in quarter-deviation panels (with wider
    ones mpmath's quadrature misjudged its own error: 6.6e-11 off at 30 digits). Then panels of one
    deviation (+ 1) out to n + 200 + 40 deviations, where even Gamma(1)'s density is below e^-240: at small
    n the density falls exponentially, not as a Gaussian (at n = 1 it is e^-20 at y = 20)."""

    def breakpoints(n, a, b, end):
        sd = mpmath.sqrt(n)
        bulk = [n - 1 + k * sd / 4 for k in range(-80, 81)]
        far = []
        while (far[-1] if far else bulk[-1]) < n + 200 + 40 * sd:
            far.append((far[-1] if far else bulk[-1]) + sd + 1)
        return bulk + far

    return ln_tail_given(n, alpha, s, dps, False, breakpoints)


def ln_dual_sf_over_x(n: int, alpha: float, s: float, dps: int) -> mpmath.mpf:
    """The same probability integrated over X (the larger-weighted variable) instead, whose second factor
    rises from about 0 to 1 within a few b/a of s/a (breakpoints there). An independent route for small n."""

    def breakpoints(n, a, b, end):
        return [end - k * b / a for k in (4 * n + 400, 4 * n + 100, 4 * n + 40, 2 * n + 20, n + 10, 5, 2, 1)]

    return ln_tail_given(n, alpha, s, dps, True, breakpoints)


def main() -> None:
    started = time.time()
    cases = []
    for n, alpha, s in CASES:
        low = ln_dual_sf(n, alpha, s, 40)
        high = ln_dual_sf(n, alpha, s, 60)
        if abs(low - high) > mpmath.mpf("1e-25") * max(1, abs(high)):
            sys.exit(f"precision disagreement at n={n} alpha={alpha} s={s}: {low} vs {high}")
        cases.append({"n": n, "alpha": alpha, "s": s, "lnSf": float(high)})
        print(f"n={n} alpha={alpha} s={s}: ln p = {mpmath.nstr(high, 20)} ({time.time() - started:.0f} s)")
    # The quadrature checked against the mixture where both are quick.
    for n, alpha, s in [(500, 0.01, 520.0), (50, 0.02, 49.0), (2000, 0.05, 2500.0)]:
        by_sum = ln_dual_sf(n, alpha, s, 40)
        by_quadrature = ln_dual_sf_by_quadrature(n, alpha, s, 40)
        if abs(by_sum - by_quadrature) > mpmath.mpf("1e-25") * max(1, abs(by_sum)):
            sys.exit(f"quadrature disagrees with the mixture at n={n} alpha={alpha} s={s}: {by_quadrature} vs {by_sum}")
    for n, alpha, s in SMALL_WEIGHT_CASES:
        low = ln_dual_sf_by_quadrature(n, alpha, s, 40)
        high = ln_dual_sf_by_quadrature(n, alpha, s, 60)
        if abs(low - high) > mpmath.mpf("1e-25") * max(1, abs(high)):
            sys.exit(f"precision disagreement at n={n} alpha={alpha} s={s}: {low} vs {high}")
        if n <= 5:
            other = ln_dual_sf_over_x(n, alpha, s, 40)
            if abs(other - high) > mpmath.mpf("1e-20") * max(1, abs(high)):
                sys.exit(f"the integral over X disagrees at n={n} alpha={alpha} s={s}: {other} vs {high}")
        cases.append({"n": n, "alpha": alpha, "s": s, "lnSf": float(high)})
        print(f"n={n} alpha={alpha} s={s}: ln p = {mpmath.nstr(high, 20)} ({time.time() - started:.0f} s)")
    with open(OUT, "w") as f:
        json.dump({"generator": "packages/core/reference/generate_dual_tail_vectors.py", "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
