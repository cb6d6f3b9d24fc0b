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
doubles exactly; `lnSf` is the double nearest the value. About a minute.
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
    with open(OUT, "w") as f:
        json.dump({"generator": "packages/core/reference/generate_dual_tail_vectors.py", "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
