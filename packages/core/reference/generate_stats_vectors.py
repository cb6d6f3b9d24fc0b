#!/usr/bin/python3
"""Writes packages/core/test/vectors/stats.json: high-precision binomial and normal tails.

Needs mpmath (Debian/Ubuntu: apt-get install python3-mpmath) and runs with the system Python:

    /usr/bin/python3 packages/core/reference/generate_stats_vectors.py

Conventions (see also README.md):
- `p` is a double; the value meant is that double exactly (mpmath.mpf(float) is exact).
- binomialTail.log10Sf  = log10 P[X >= k]  (not P[X > k]),  X ~ Bin(n, p).
- binomialCdf.log10Cdf  = log10 P[X <= k].
- normalTail.log10Sf    = log10 P[N(0, 1) >= z].
- Results are the correctly rounded doubles of values computed at mp.dps >= 60; a value whose
  magnitude is below the smallest subnormal double is written as 0 (never -0).

Every value is computed at two working precisions that must agree to 1e-15 relative. For n <= 200
the tail is also computed by a full direct sum and by the regularized incomplete beta function
(mpmath.betainc); for n <= 10^4 it is also compared with the exact rational tail of the
standard-library reference (tracemark_ref.binom_sf_exact).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from fractions import Fraction

import mpmath
from mpmath import mp, mpf

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tracemark_ref as ref  # noqa: E402

OUT = os.path.normpath(os.path.join(HERE, "..", "test", "vectors", "stats.json"))

BASE_DPS = 60
N_MAX = 2**31 - 1

# ---------------------------------------------------------------------------------------------
# Binomial tails in log space
# ---------------------------------------------------------------------------------------------


def _log_pmf(n, k, lp, lq):
    return mpmath.loggamma(n + 1) - mpmath.loggamma(k + 1) - mpmath.loggamma(n - k + 1) + k * lp + (n - k) * lq


def _sum_up(n, k, p, q, eps):
    """log of sum_{i >= k} P[X = i], for k >= mode (terms decrease from k on)."""
    lp, lq = mpmath.log(p), mpmath.log(q)
    c = p / q
    r = mpf(1)
    s = mpf(1)
    i = k
    while i < n:
        ratio = (n - i) * c / (i + 1)
        r = r * ratio
        s += r
        i += 1
        # remaining terms are bounded by a geometric series once the ratio is below 1
        if ratio < 1 and r * ratio / (1 - ratio) < eps * s:
            break
    return _log_pmf(n, k, lp, lq) + mpmath.log(s)


def _sum_down(n, k, p, q, eps):
    """log of sum_{i <= k} P[X = i], for k below the mean (terms decrease from k down)."""
    lp, lq = mpmath.log(p), mpmath.log(q)
    c = q / p
    r = mpf(1)
    s = mpf(1)
    i = k
    while i > 0:
        ratio = i * c / (n - i + 1)
        r = r * ratio
        s += r
        i -= 1
        if ratio < 1 and r * ratio / (1 - ratio) < eps * s:
            break
    return _log_pmf(n, k, lp, lq) + mpmath.log(s)


def ln_sf(n, k, pd: float):
    """natural log of P[Bin(n, p) >= k] at the current precision (an mpf)."""
    p = mpf(pd)
    q = 1 - p
    eps = mpf(10) ** (-(mp.dps + 10))
    if k <= 0:
        return mpf(0)
    assert k <= n
    if k > n * p:  # k >= mode: direct
        return _sum_up(n, k, p, q, eps)
    # complement: 1 - P[X <= k - 1], and k - 1 < n p
    lc = _sum_down(n, k - 1, p, q, eps)
    return mpmath.log1p(-mpmath.exp(lc))


def ln_cdf(n, k, pd: float):
    """natural log of P[Bin(n, p) <= k]."""
    p = mpf(pd)
    q = 1 - p
    eps = mpf(10) ** (-(mp.dps + 10))
    if k >= n:
        return mpf(0)
    assert k >= 0
    if k < n * p:
        return _sum_down(n, k, p, q, eps)
    lu = _sum_up(n, k + 1, p, q, eps)
    return mpmath.log1p(-mpmath.exp(lu))


def ln_sf_direct(n, k, pd):
    """Full direct sum, every term (small n only)."""
    p = mpf(pd)
    q = 1 - p
    s = mpmath.fsum(mpmath.binomial(n, i) * p**i * q ** (n - i) for i in range(k, n + 1))
    return mpmath.log(s)


def ln_sf_beta(n, k, pd):
    """I_p(k, n - k + 1)."""
    if k == 0:
        return mpf(0)
    return mpmath.log(mpmath.betainc(k, n - k + 1, 0, mpf(pd), regularized=True))


def ln_cdf_direct(n, k, pd):
    p = mpf(pd)
    q = 1 - p
    return mpmath.log(mpmath.fsum(mpmath.binomial(n, i) * p**i * q ** (n - i) for i in range(0, k + 1)))


def dps_for(n):
    return BASE_DPS if n <= 10**5 else BASE_DPS + 20


def two_precisions(fn, n):
    """Evaluate fn() (returning a natural log) at two precisions; assert agreement; return the
    log10 as an mpf at the higher of the two."""
    d = dps_for(n)
    with mp.workdps(d):
        a = fn() / mpmath.ln10
    with mp.workdps(d + 30):
        b = fn() / mpmath.ln10
        if a != 0 or b != 0:
            assert abs(a - b) <= mpf("1e-15") * abs(b), f"precision instability: {a} vs {b}"
    return b


def to_double(x) -> float:
    v = float(x)
    assert math.isfinite(v)
    return 0.0 if v == 0 else v


def rel_close(a, b, tol):
    if a == 0 and b == 0:
        return True
    return abs(a - b) <= tol * max(abs(a), abs(b))


def hp_close(a, b):
    """Agreement of two high-precision results; the absolute term covers sums that round to 1 at
    the working precision of the plain direct sum (log10 P = -1e-97, say)."""
    return rel_close(a, b, mpf("1e-40")) or abs(a - b) <= mpf(10) ** -(BASE_DPS + 10)


# ---------------------------------------------------------------------------------------------
# Case selection
# ---------------------------------------------------------------------------------------------

NS_ALL = [1, 2, 5, 16, 25, 50, 100, 200, 1000, 10**4, 10**5, 10**6, 10**7, 10**8, N_MAX]
NS_SOME = [1, 5, 16, 100, 1000, 10**5, 10**7, N_MAX]
P_MAIN = [0.25, 0.5]
P_OTHER = [0.1, 0.9, 1e-6, 0.999999]


def around_mean(n, p):
    m = Fraction(p) * n  # exact n p
    fl = math.floor(m)
    ce = math.ceil(m)
    sd = math.sqrt(float(m) * (1 - p))
    return m, fl, ce, sd


def ks_main(n, p):
    m, fl, ce, sd = around_mean(n, p)
    ks = {1, fl, ce, n, (ce + n) // 2}
    if n >= 100:
        ks.update((fl - 1, ce + 1))
    ks.add(int(float(m) + 4 * sd) + 1)
    if n >= 1000:
        ks.add(int(float(m) + 40 * sd) + 1)
    if n in (1, 16, 1000, 10**6, N_MAX):
        ks.add(0)
    if n in (16, 1000, 10**7):
        ks.add(n - 1)
    return sorted(k for k in ks if 0 <= k <= n)


def ks_other(n, p):
    m, fl, ce, sd = around_mean(n, p)
    ks = {fl, ce + 1, (ce + n) // 2, n}
    if n in (16, 10**5):
        ks.add(1)
    if n in (1000, N_MAX):
        ks.add(int(float(m) + 6 * sd) + 1)
    return sorted(k for k in ks if 0 <= k <= n)


def cdf_cases():
    out = []
    g1 = 0.25 + (0.25 * math.exp(2) / (1 + 0.25 * (math.exp(2) - 1)) - 0.25) / 2
    for p in (0.25, 0.5, 0.1, 0.9, g1):
        for n in (1, 16, 100, 1000, 10**5, 10**7, N_MAX):
            m, fl, ce, sd = around_mean(n, p)
            ks = {0, fl, ce - 1, max(0, int(float(m) - 5 * sd)), n - 1, n, fl // 2}
            out.extend((n, k, p) for k in sorted(ks) if 0 <= k <= n)
    return out


def normal_cases():
    return [-40, -10, -3, -1, -0.5, 0, 1e-8, 0.5, 1, 1.5, 2, 2.5, 3, 3.09, 4, 5, 6, 8, 10, 20, 37,
            38, 40, 50, 100, 214, 1000, 1e4, 1e6]


# ---------------------------------------------------------------------------------------------


def log10_exact_sf(n, k, p):
    if k == 0:
        return 0.0
    t = ref._terms(n, Fraction(p).numerator, Fraction(p).denominator)
    return ref.log10_fraction(t.sf(k))


def log10_exact_cdf(n, k, p):
    if k >= n:
        return 0.0
    t = ref._terms(n, Fraction(p).numerator, Fraction(p).denominator)
    return ref.log10_fraction(1 - t.sf(k + 1))


def main():
    t0 = time.time()
    mp.dps = BASE_DPS

    tail = []
    seen = set()
    plan = [(n, k, p) for p in P_MAIN for n in NS_ALL for k in ks_main(n, p)]
    plan += [(n, k, p) for p in P_OTHER for n in NS_SOME for k in ks_other(n, p)]
    for n, k, p in plan:
        if (n, k, p) in seen:
            continue
        seen.add((n, k, p))
        tc = time.time()
        v = two_precisions(lambda: ln_sf(n, k, p), n)
        if time.time() - tc > 2:
            print(f"  slow: sf n={n} k={k} p={p}: {time.time() - tc:.1f} s")
        if n <= 200:
            with mp.workdps(BASE_DPS + 20):
                d = ln_sf_direct(n, k, p) / mpmath.ln10
                b = ln_sf_beta(n, k, p) / mpmath.ln10
            assert hp_close(v, d), (n, k, p, v, d)
            assert hp_close(v, b), (n, k, p, v, b)
        if n <= 10**4:
            assert rel_close(float(v), log10_exact_sf(n, k, p), 1e-13), (n, k, p)
        tail.append({"n": n, "k": k, "p": p, "log10Sf": to_double(v)})
    print(f"binomialTail: {len(tail)} cases ({time.time() - t0:.1f} s)")

    cdf = []
    for n, k, p in cdf_cases():
        v = two_precisions(lambda: ln_cdf(n, k, p), n)
        if n <= 200:
            with mp.workdps(BASE_DPS + 20):
                d = ln_cdf_direct(n, k, p) / mpmath.ln10
                # P[X <= k] = 1 - I_p(k + 1, n - k)
                b = (mpmath.log1p(-mpmath.betainc(k + 1, n - k, 0, mpf(p), regularized=True))
                     if k < n else mpf(0)) / mpmath.ln10
            assert hp_close(v, d), (n, k, p, v, d)
            assert hp_close(v, b), (n, k, p, v, b)
        if n <= 10**4:
            assert rel_close(float(v), log10_exact_cdf(n, k, p), 1e-13), (n, k, p)
        # sf/cdf consistency: P[X <= k] + P[X >= k + 1] = 1
        if k < n and n <= 10**7:
            with mp.workdps(dps_for(n)):
                s = mpmath.exp(ln_sf(n, k + 1, p)) + mpmath.exp(ln_cdf(n, k, p))
                assert abs(s - 1) < mpf(10) ** (-(dps_for(n) - 15)), (n, k, p, s)
        cdf.append({"n": n, "k": k, "p": p, "log10Cdf": to_double(v)})
    print(f"binomialCdf: {len(cdf)} cases ({time.time() - t0:.1f} s)")

    normal = []
    for z in normal_cases():
        def ln_q(z=z):
            x = mpf(z)
            if x >= 0:
                return mpmath.log(mpmath.erfc(x / mpmath.sqrt(2)) / 2)
            return mpmath.log1p(-mpmath.erfc(-x / mpmath.sqrt(2)) / 2)

        v = two_precisions(ln_q, 1)
        with mp.workdps(BASE_DPS + 20):
            alt = mpmath.log10(mpmath.ncdf(-mpf(z)))  # independent path
        if abs(v) > mpf(10) ** -(BASE_DPS - 10):
            assert rel_close(v, alt, mpf("1e-40")), (z, v, alt)
        normal.append({"z": z, "log10Sf": to_double(v)})
    print(f"normalTail: {len(normal)} cases ({time.time() - t0:.1f} s)")

    n_308 = sum(1 for c in tail if c["log10Sf"] < -308)
    n_1e4 = sum(1 for c in tail if c["log10Sf"] < -10000)
    n_1e5 = sum(1 for c in tail if c["log10Sf"] < -100000)
    print(f"binomialTail below -308: {n_308}, below -1e4: {n_1e4}, below -1e5: {n_1e5}")
    assert n_308 >= 30 and n_1e4 >= 10

    doc = {
        "description": "log10Sf = log10 P[X >= k] for X ~ Bin(n, p) (P[X >= k], not P[X > k]); "
        "log10Cdf = log10 P[X <= k]; normalTail log10Sf = log10 P[N(0,1) >= z]. p is a double and "
        "means that exact double value. Values are correctly rounded doubles of results computed "
        "with mpmath at 60 to 110 significant digits; magnitudes below the smallest subnormal are 0.",
        "binomialTail": tail,
        "normalTail": normal,
        "binomialCdf": cdf,
    }
    text = _dumps(doc) + "\n"
    json.loads(text)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(OUT)} in {time.time() - t0:.1f} s")


def _dumps(doc):
    parts = []
    for key, val in doc.items():
        if isinstance(val, list):
            rows = ",\n".join("    " + json.dumps(r, allow_nan=False) for r in val)
            parts.append(f'  {json.dumps(key)}: [\n{rows}\n  ]')
        else:
            parts.append(f"  {json.dumps(key)}: {json.dumps(val)}")
    return "{\n" + ",\n".join(parts) + "\n}"


if __name__ == "__main__":
    main()
