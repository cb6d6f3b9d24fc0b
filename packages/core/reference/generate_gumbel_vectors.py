#!/usr/bin/env python3
"""Writes packages/core/test/vectors/gumbel.json: the Gumbel-max schemes of
docs/spec/watermark-gumbel.md (keys, uniforms, keyed choices, generations, detection, exact tails).

Needs mpmath (Debian python3-mpmath) for the tails; everything else comes from tracemark_ref.py
(standard library). Deterministic: random.Random(4321), getrandbits and random only. Self-tests
first and writes nothing if a check fails:
- the keyed choice is distortion-free: over many context seeds, each candidate's frequency is within
  5 standard deviations of p_x;
- every sampling vector's best key beats the runner-up by more than 1e-9 (so that a last-bit
  difference between two platforms' log cannot change the token), and no top-p cut-off is within
  1e-9 of the threshold;
- every Gamma tail is computed at two precisions (50 and 80 digits) that agree to 1e-15 relative;
- every dual-key tail is a numerical integration (mpmath.quad) at two precisions and subdivisions
  that agree to 1e-12 relative, and with the negative-binomial mixture of Gamma tails (Moschopoulos
  1985), summed in mpmath (generate_dual_tail_vectors.py), to 1e-12 relative. The detection vectors' dual
  p-values use one quadrature (the tails section validates it).

Usage (from the repository root):  python3 packages/core/reference/generate_gumbel_vectors.py
"""

from __future__ import annotations

import json
import math
import os
import random
import struct
import sys

import mpmath

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import tracemark_ref as ref  # noqa: E402
from generate_dual_tail_vectors import ln_dual_sf  # noqa: E402

OUT = os.path.normpath(os.path.join(HERE, "..", "test", "vectors", "gumbel.json"))
rng = random.Random(4321)
SECRETS = [bytes(range(32)), bytes([0xA5] * 32), bytes.fromhex("ff" * 16 + "00" * 16)]


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def hex64(x: int) -> str:
    return f"{x:016x}"


# ---------------------------------------------------------------------------------------------
# Tails in mpmath
# ---------------------------------------------------------------------------------------------


def log10_gamma_sf(n: int, s: float, dps: int) -> mpmath.mpf:
    with mpmath.workdps(dps):
        if s == 0:
            return mpmath.mpf(0)
        return mpmath.log10(mpmath.gammainc(n, mpmath.mpf(s), mpmath.inf, regularized=True))


def gamma_sf_checked(n: int, s: float) -> float:
    lo, hi = log10_gamma_sf(n, s, 50), log10_gamma_sf(n, s, 80)
    assert abs(lo - hi) <= 1e-15 * max(1, abs(hi)), (n, s, lo, hi)
    return float(hi)


def log10_dual_by_quad(n: int, alpha: float, s: float, dps: int = 50, density: int = 160) -> mpmath.mpf:
    """log10 P[(1-alpha) X + alpha Y > s], X, Y ~ Gamma(n, 1), by numerical integration:
    P[X > s/a] + int_0^{s/a} f_n(x) Q(n, (s - a x)/b) dx, a = 1 - alpha, b = alpha. The interval is
    split densely around the integrand's peak (found on a coarse grid), sparsely elsewhere."""
    with mpmath.workdps(dps):
        a, b, S = 1 - mpmath.mpf(alpha), mpmath.mpf(alpha), mpmath.mpf(s)
        top = S / a
        lg = mpmath.loggamma(n)

        def log_integrand(x):
            return (n - 1) * mpmath.log(x) - x - lg + mpmath.log(
                mpmath.gammainc(n, (S - a * x) / b, mpmath.inf, regularized=True)
            )

        def integrand(x):
            return mpmath.mpf(0) if x <= 0 else mpmath.exp(log_integrand(x))

        grid = [top * (i + 0.5) / 200 for i in range(200)]
        with mpmath.workdps(20):
            peak = max(grid, key=log_integrand)
        half = 15 * (mpmath.sqrt(n) + 1)
        lo, hi = max(mpmath.mpf(0), peak - half), min(top, peak + half)
        points = sorted(set([mpmath.mpf(0)] + list(mpmath.linspace(0, lo, 12)) + list(mpmath.linspace(lo, hi, density))
                            + list(mpmath.linspace(hi, top, 12)) + [top]))
        total = mpmath.quad(integrand, points) + mpmath.gammainc(n, top, mpmath.inf, regularized=True)
        return mpmath.log10(total)


def dual_checked(n: int, alpha: float, s: float) -> float:
    """The quadrature at two precisions and subdivisions, agreeing to 1e-12 relative."""
    first = log10_dual_by_quad(n, alpha, s)
    second = log10_dual_by_quad(n, alpha, s, dps=60, density=240)
    assert abs(first - second) <= 1e-12 * max(1, abs(second)), (n, alpha, s, first, second)
    return float(second)


def log10_dual_by_mixture(n: int, alpha: float, s: float, dps: int = 50) -> mpmath.mpf:
    """The same tail as sum_k NB(k; n, b/a) Q(2n + k, s/b), b = min, a = max of the weights, summed in
    mpmath (generate_dual_tail_vectors.py)."""
    with mpmath.workdps(dps):
        return ln_dual_sf(n, alpha, s, dps) / mpmath.log(10)


# ---------------------------------------------------------------------------------------------
# Self-test: the keyed choice is distortion-free
# ---------------------------------------------------------------------------------------------


def self_test() -> None:
    k = ref.gumbel_prf_keys(SECRETS[0])["a"]
    logits = [f32(v) for v in (2.0, 1.0, 0.5, 0.0, -1.0)]
    tokens = [3, 17, 4, 99, 8]
    T = 0.8
    weights = [math.exp((v - max(logits)) / T) for v in logits]
    p = [w / sum(weights) for w in weights]
    draws = 20000
    counts = [0] * len(tokens)
    for seed in range(draws):
        counts[ref.gumbel_choice(tokens, logits, T, lambda t: ref.gumbel_uniform(k, seed, t))] += 1
    for c, px in zip(counts, p):
        sd = math.sqrt(draws * px * (1 - px))
        assert abs(c - draws * px) < 5 * sd, (counts, p)
    assert ref.gumbel_uniform_of_word(0) == 0.0
    assert ref.gumbel_uniform_of_word((1 << 64) - 1) == 1 - 2**-52
    assert ref.gumbel_uniform_of_word(0xFFF) == 0.0 and ref.gumbel_uniform_of_word(0x1000) == 2**-52
    assert abs(log10_dual_by_quad(5, 0.5, 12.0) - log10_gamma_sf(10, 24.0, 50)) < 1e-20
    print(f"self-test: distortion-free over {draws} seeds {counts} vs p {[round(x, 4) for x in p]}: ok")


# ---------------------------------------------------------------------------------------------
# Vectors
# ---------------------------------------------------------------------------------------------


def keys_vectors() -> list:
    out = []
    for secret in SECRETS:
        g = ref.gumbel_prf_keys(secret)
        out.append({"secret": secret.hex(), "keyA": g["a"].hex(), "keyB": g["b"].hex()})
    return out


def uniform_vectors() -> list:
    out = []
    seeds = [0, 1, (1 << 64) - 1, 0x0123456789ABCDEF] + [rng.getrandbits(64) for _ in range(8)]
    toks = [0, 1, 42, 100257, (1 << 32) - 1] + [rng.getrandbits(17) for _ in range(7)]
    for i in range(36):
        secret = SECRETS[i % 3]
        seed, tok = seeds[i % len(seeds)], toks[(i * 5) % len(toks)]
        g = ref.gumbel_prf_keys(secret)
        wa, wb = ref.gumbel_word(g["a"], seed, tok), ref.gumbel_word(g["b"], seed, tok)
        ua, ub = ref.gumbel_uniform_of_word(wa), ref.gumbel_uniform_of_word(wb)
        out.append({
            "secret": secret.hex(), "seed": hex64(seed), "token": tok,
            "wordA": hex64(wa), "uniformA": ua, "scoreA": ref.gumbel_score(ua),
            "wordB": hex64(wb), "uniformB": ub, "scoreB": ref.gumbel_score(ub),
        })
    return out


def word_vectors() -> list:
    words = [0, 0xFFF, 0x1000, (1 << 64) - 1, 1 << 63, (1 << 63) - 1, 0x8000000000000FFF]
    words += [rng.getrandbits(64) for _ in range(9)]
    return [{"word": hex64(w), "uniform": ref.gumbel_uniform_of_word(w)} for w in words]


def margin_ok(tokens, logits, T, uniform_of) -> float:
    keys = ref.gumbel_keys_of(tokens, logits, T, uniform_of)
    ordered = sorted(keys, reverse=True)
    return math.inf if len(ordered) < 2 else ordered[0] - ordered[1]


def top_p_safe(logits, T, top_k, top_p) -> bool:
    """No cumulative weight within 1e-9 (relative) of the top-p threshold."""
    if top_p >= 1:
        return True
    cand = sorted([i for i, v in enumerate(logits) if v != -math.inf], key=lambda i: (-logits[i], i))
    keep = min(top_k, len(cand)) if top_k > 0 else len(cand)
    mx = logits[cand[0]]
    w = [math.exp((logits[cand[j]] - mx) / T) for j in range(keep)]
    total = sum(w)
    running = 0.0
    for x in w:
        running += x
        if abs(running - top_p * total) <= 1e-9 * total:
            return False
    return True


def sampling_vectors() -> list:
    out = []
    settings = [
        (1.0, 0, 1.0), (0.7, 0, 0.9), (1.0, 40, 1.0), (0.5, 5, 1.0), (1.5, 0, 0.5), (0.05, 0, 1.0),
        (0.3, 0, 0.95), (1.0, 1, 1.0), (2.0, 0, 1.0), (0.9, 20, 0.8),
    ]
    i = 0
    while len(out) < 44:
        i += 1
        secret = SECRETS[i % 3]
        scheme = ref.GUMBEL if i % 2 else ref.DUAL_GUMBEL
        h = [1, 2, 4, 8][i % 4]
        T, top_k, top_p = settings[i % len(settings)]
        V = rng.choice([1, 2, 7, 64, 200, 1000])
        spread = rng.choice([1.0, 4.0, 12.0, 40.0])
        logits = [f32(rng.random() * spread - spread / 2) for _ in range(V)]
        if V > 10 and i % 3 == 0:
            for _ in range(V // 5):
                logits[rng.randrange(V)] = -math.inf
        if all(v == -math.inf for v in logits):
            continue
        ctx_len = rng.choice([h, h + 3, 12]) if i % 7 else h - 1
        context = [rng.getrandbits(rng.choice([8, 17, 32])) for _ in range(ctx_len)]
        special = []
        if i % 9 == 0 and ctx_len > 0:
            special = [context[-1]]
        key = (i // 2) % 2 if scheme == ref.DUAL_GUMBEL else 0
        if not top_p_safe(logits, T, top_k, top_p):
            continue
        kept = ref.kept_candidates(logits, T, top_k, top_p)
        seed = ref.gumbel_context_seed(ref.prf_keys(secret)["context"], h, context, special)
        margin = None
        if seed is not None:
            kk = ref.gumbel_prf_keys(secret)["b" if key == 1 else "a"]
            margin = margin_ok(kept, [logits[j] for j in kept], T, lambda t: ref.gumbel_uniform(kk, seed, t))
            if margin <= 1e-9:
                continue
        token = ref.gumbel_sample(secret, scheme, h, context, logits, T, top_k, top_p, key, special)
        out.append({
            "secret": secret.hex(), "scheme": scheme, "contextWidth": h, "context": context,
            "logits": [None if v == -math.inf else v for v in logits], "temperature": T, "topK": top_k,
            "topP": top_p, "key": key, "special": special, "kept": kept, "token": token,
            "seed": None if seed is None else hex64(seed),
            "margin": None if margin is None or margin == math.inf else margin,
        })
    return out


def toy_logits(model_key: bytes, prev: int, V: int) -> list:
    """The toy model of the generation vectors: logit_x = 6 * (SipHash(K_model, LE32(prev) || LE32(x)) >> 40) / 2^24, as float32."""
    return [f32(6.0 * (ref.siphash24(model_key, ref.le32(prev) + ref.le32(x)) >> 40) / 2**24) for x in range(V)]


def generation_vectors() -> list:
    out = []
    model_key = bytes(range(100, 116))
    for case, (secret, scheme, h, T, top_k, top_p, key, V, n) in enumerate([
        (SECRETS[0], ref.GUMBEL, 4, 1.0, 0, 1.0, 0, 64, 60),
        (SECRETS[1], ref.GUMBEL, 1, 0.7, 0, 0.9, 0, 64, 60),
        (SECRETS[2], ref.DUAL_GUMBEL, 2, 1.0, 20, 1.0, 0, 50, 40),
        (SECRETS[0], ref.DUAL_GUMBEL, 4, 1.2, 0, 0.95, 1, 80, 40),
    ]):
        prompt = [rng.randrange(V) for _ in range(6)]
        context = list(prompt)
        minimum = math.inf
        for _ in range(n):
            logits = toy_logits(model_key, context[-1], V)
            assert top_p_safe(logits, T, top_k, top_p)
            seed = ref.gumbel_context_seed(ref.prf_keys(secret)["context"], h, context)
            kept = ref.kept_candidates(logits, T, top_k, top_p)
            kk = ref.gumbel_prf_keys(secret)["b" if key == 1 else "a"]
            minimum = min(minimum, margin_ok(kept, [logits[j] for j in kept], T, lambda t: ref.gumbel_uniform(kk, seed, t)))
            context.append(ref.gumbel_sample(secret, scheme, h, context, logits, T, top_k, top_p, key))
        assert minimum > 1e-9, minimum
        out.append({
            "secret": secret.hex(), "scheme": scheme, "contextWidth": h, "alpha": 0.1 if scheme == ref.DUAL_GUMBEL else 0,
            "modelKey": model_key.hex(), "vocabulary": V, "temperature": T, "topK": top_k, "topP": top_p, "key": key,
            "prompt": prompt, "tokens": context[len(prompt):], "smallestMargin": minimum,
        })
    return out


def detect_vectors(generations: list) -> list:
    out = []
    cases = []
    for g in generations:
        cases.append((bytes.fromhex(g["secret"]), g["scheme"], g["contextWidth"], g["alpha"], g["tokens"], g["prompt"], [], True))
        cases.append((SECRETS[(SECRETS.index(bytes.fromhex(g["secret"])) + 1) % 3], g["scheme"], g["contextWidth"], g["alpha"], g["tokens"], g["prompt"], [], True))
    for i in range(10):
        scheme = ref.GUMBEL if i % 2 else ref.DUAL_GUMBEL
        alpha = [0.1, 0.3, 0.5, 0.9][i % 4] if scheme == ref.DUAL_GUMBEL else 0
        base = [rng.randrange(30) for _ in range(rng.choice([0, 3, 25, 120]))]
        tokens = base + base[: len(base) // 2]  # repeats: duplicates to skip
        prompt = [rng.randrange(30) for _ in range(rng.choice([0, 5]))] if i % 3 else None
        special = [tokens[3]] if len(tokens) > 5 and i % 4 == 1 else []
        cases.append((SECRETS[i % 3], scheme, [1, 2, 4][i % 3], alpha, tokens, prompt, special, i % 5 != 4))
    for secret, scheme, h, alpha, tokens, prompt, special, dedup in cases:
        r = ref.gumbel_detect(secret, scheme, h, alpha, tokens, prompt, special, dedup)
        n, S = r["numScored"], r["score"]
        if scheme == ref.GUMBEL:
            log10p = gamma_sf_checked(n, S) if n > 0 else 0.0
        else:
            log10p = float(log10_dual_by_quad(n, alpha, S)) if n > 0 else 0.0
        out.append({
            "secret": secret.hex(), "scheme": scheme, "contextWidth": h, "alpha": alpha, "tokens": tokens,
            "prompt": prompt, "special": special, "dedup": dedup, "status": r["status"], "scores": r["scores"],
            "numScored": n, "score": S, "log10P": ref._nz(min(0.0, log10p)),
        })
    return out


def tail_vectors() -> dict:
    gumbel = []
    for n, s in [(1, 0.5), (1, 40.0), (5, 2.0), (10, 10.0), (10, 60.0), (100, 100.0), (100, 250.0),
                 (1000, 1100.0), (1000, 3000.0), (200, 2000.0), (50, 1500.0), (10000, 11000.0),
                 (100000, 120000.0), (3, 900.0), (1, 745.0), (100000, 300000.0)]:
        gumbel.append({"n": n, "score": s, "log10Sf": gamma_sf_checked(n, s)})
    dual = []
    for n, alpha, s in [(1, 0.1, 3.0), (4, 0.1, 12.0), (20, 0.1, 30.0), (20, 0.3, 60.0), (50, 0.1, 200.0),
                        (96, 0.1, 250.0), (30, 0.9, 120.0), (10, 0.25, 100.0), (100, 0.45, 400.0),
                        (200, 0.1, 900.0), (2, 0.05, 700.0), (25, 0.1, 3000.0)]:
        by_quad = dual_checked(n, alpha, s)
        by_mixture = log10_dual_by_mixture(n, alpha, s)
        assert abs(by_quad - by_mixture) <= 1e-12 * max(1, abs(by_mixture)), (n, alpha, s, by_quad, by_mixture)
        dual.append({"n": n, "alpha": alpha, "score": s, "log10Sf": by_quad})
    return {"gumbel": gumbel, "dual": dual}


def main() -> None:
    self_test()
    generations = generation_vectors()
    data = {
        "description": "Gumbel-max schemes of docs/spec/watermark-gumbel.md; generated by packages/core/reference/generate_gumbel_vectors.py",
        "noiseMax": -math.log(-math.log1p(-(2**-52))),
        "keys": keys_vectors(),
        "words": word_vectors(),
        "uniforms": uniform_vectors(),
        "sampling": sampling_vectors(),
        "generation": generations,
        "detect": detect_vectors(generations),
        "tails": tail_vectors(),
    }
    text = json.dumps(data, indent=1, allow_nan=False) + "\n"
    with open(OUT, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"wrote {OUT}: {len(data['uniforms'])} uniforms, {len(data['sampling'])} choices, "
          f"{len(data['generation'])} generations, {len(data['detect'])} detections, "
          f"{len(data['tails']['gumbel'])} + {len(data['tails']['dual'])} tails")


if __name__ == "__main__":
    main()
