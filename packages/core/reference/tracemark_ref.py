"""Reference implementation of the tracemark v1 watermark (docs/spec/watermark-v1.md).

Standard library only. Written for clarity and exactness, not speed: every statistic is computed
with exact integer / rational arithmetic and converted to a double only at the end.

Sections referenced below are those of the spec.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
from fractions import Fraction

MASK64 = (1 << 64) - 1
TWO32 = 1 << 32
LOG10_2 = math.log10(2.0)

# ---------------------------------------------------------------------------------------------
# 1. Primitives
# ---------------------------------------------------------------------------------------------


def le32(x: int) -> bytes:
    if not 0 <= x < TWO32:
        raise ValueError(f"not a u32: {x}")
    return struct.pack("<I", x)


def le64(x: int) -> bytes:
    if not 0 <= x <= MASK64:
        raise ValueError(f"not a u64: {x}")
    return struct.pack("<Q", x)


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & MASK64


def siphash24(key: bytes, msg: bytes) -> int:
    """SipHash-2-4 of msg under the 16-byte key, as the u64 read little-endian from the output."""
    if len(key) != 16:
        raise ValueError("SipHash key must be 16 bytes")
    k0, k1 = struct.unpack("<QQ", key)
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def rounds(v0, v1, v2, v3, n):
        for _ in range(n):
            v0 = (v0 + v1) & MASK64
            v1 = _rotl(v1, 13)
            v1 ^= v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & MASK64
            v3 = _rotl(v3, 16)
            v3 ^= v2
            v0 = (v0 + v3) & MASK64
            v3 = _rotl(v3, 21)
            v3 ^= v0
            v2 = (v2 + v1) & MASK64
            v1 = _rotl(v1, 17)
            v1 ^= v2
            v2 = _rotl(v2, 32)
        return v0, v1, v2, v3

    n = len(msg)
    end = n - (n % 8)
    for off in range(0, end, 8):
        (m,) = struct.unpack_from("<Q", msg, off)
        v3 ^= m
        v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 2)
        v0 ^= m
    last = ((n & 0xFF) << 56) | int.from_bytes(msg[end:], "little")
    v3 ^= last
    v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 2)
    v0 ^= last
    v2 ^= 0xFF
    v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 4)
    return v0 ^ v1 ^ v2 ^ v3


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF with HMAC-SHA-256: extract, then expand."""
    if length > 255 * 32:
        raise ValueError("HKDF output too long")
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm = b""
    block = b""
    counter = 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


# ---------------------------------------------------------------------------------------------
# 2. Keys
# ---------------------------------------------------------------------------------------------


def key_id(secret: bytes) -> str:
    """2.1: "tmk1_" + hex of the first 12 bytes of SHA-256("tracemark/v1/key-id" || S)."""
    _check_secret(secret)
    return "tmk1_" + hashlib.sha256(b"tracemark/v1/key-id" + secret).digest()[:12].hex()


def subkey(secret: bytes, label: str) -> bytes:
    """2.2: HKDF(IKM=S, salt="tracemark/v1/subkey", info=UTF-8(label), L=32)."""
    _check_secret(secret)
    return hkdf_sha256(secret, b"tracemark/v1/subkey", label.encode("utf-8"), 32)


def prf_keys(secret: bytes) -> dict:
    """2.3: the three 16-byte PRF keys."""
    _check_secret(secret)
    salt = b"tracemark/v1/prf"
    return {
        "context": hkdf_sha256(secret, salt, b"context", 16),
        "green": hkdf_sha256(secret, salt, b"green", 16),
        "rank": hkdf_sha256(secret, salt, b"rank", 16),
    }


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, (bytes, bytearray)) or len(secret) != 32:
        raise ValueError("a secret is 32 bytes")


# ---------------------------------------------------------------------------------------------
# 3. Green membership
# ---------------------------------------------------------------------------------------------


def threshold(gamma: float) -> int:
    """3.1: tau = floor(gamma * 2^32), 1 <= tau <= 2^32 - 1.

    gamma is a double; gamma * 2^32 is exact in binary floating point, so this floor is exact.
    """
    tau = math.floor(Fraction(gamma) * TWO32)
    if not 1 <= tau <= TWO32 - 1:
        raise ValueError(f"gamma {gamma!r} gives tau = {tau}, outside [1, 2^32 - 1]")
    return tau


def gamma_eff(tau: int) -> float:
    return tau / TWO32  # exact: tau < 2^53


def green_u(k_green: bytes, seed: int, token: int) -> int:
    """3.2: u = SipHash(K_green, LE64(s) || LE32(t)) >> 32."""
    return siphash24(k_green, le64(seed) + le32(token)) >> 32


def is_green(k_green: bytes, tau: int, seed: int, token: int) -> bool:
    return green_u(k_green, seed, token) < tau


# ---------------------------------------------------------------------------------------------
# 4. Seeds
# ---------------------------------------------------------------------------------------------

LEFTHASH = "lefthash"
SELFHASH = "selfhash"


def rank(k_rank: bytes, token: int) -> int:
    """4.2: rank(t) = SipHash(K_rank, LE32(t))."""
    return siphash24(k_rank, le32(token))


def window_exists(scheme: str, h: int, i: int) -> bool:
    if scheme == LEFTHASH:
        return i >= h
    if scheme == SELFHASH:
        return i >= h - 1
    raise ValueError(f"unknown scheme {scheme!r}")


def window(scheme: str, h: int, c: list, i: int) -> list:
    """The window tokens of position i (section 4). Requires window_exists."""
    if scheme == LEFTHASH:
        return c[i - h : i]
    return c[i - h + 1 : i + 1]


def lefthash_seed(k_context: bytes, win: list) -> int:
    """4.1: SipHash(K_context, 0x01 || LE32(c_{i-h}) || ... || LE32(c_{i-1}))."""
    return siphash24(k_context, b"\x01" + b"".join(le32(t) for t in win))


def selfhash_seed(k_context: bytes, k_rank: bytes, win: list, token: int) -> int:
    """4.2: anchor = window token of smallest rank (ties: smaller token id);
    seed = SipHash(K_context, 0x02 || LE32(anchor) || LE32(c_i))."""
    anchor = min(win, key=lambda t: (rank(k_rank, t), t))
    return siphash24(k_context, b"\x02" + le32(anchor) + le32(token))


def seed_at(keys: dict, scheme: str, h: int, c: list, i: int):
    """The seed of position i of c, or None when its window does not exist."""
    if not 1 <= h <= 16:
        raise ValueError("contextWidth must be in [1, 16]")
    if not window_exists(scheme, h, i):
        return None
    win = window(scheme, h, c, i)
    if scheme == LEFTHASH:
        return lefthash_seed(keys["context"], win)
    return selfhash_seed(keys["context"], keys["rank"], win, c[i])


def seeds(secret: bytes, scheme: str, h: int, tokens: list) -> list:
    keys = prf_keys(secret)
    return [seed_at(keys, scheme, h, tokens, i) for i in range(len(tokens))]


# ---------------------------------------------------------------------------------------------
# 5. Statistics (exact)
# ---------------------------------------------------------------------------------------------


def log10_fraction(x: Fraction) -> float:
    """log10 of a positive rational, with ~1e-16 relative accuracy whatever its size."""
    if x <= 0:
        raise ValueError("log10 of a non-positive number")
    if x == 1:
        return 0.0
    if x > Fraction(1, 2) and x < 2:
        # close to 1: log10(1 + d) with d computed exactly
        d = x - 1
        return math.log1p(float(d)) / math.log(10.0)
    # x = r * 2^e with r in [1/2, 2): float(r) is correctly rounded, e * log10(2) is exact enough
    e = x.numerator.bit_length() - x.denominator.bit_length()
    r = x / (Fraction(2) ** e) if e >= 0 else x * (Fraction(2) ** (-e))
    return math.log10(float(r)) + e * LOG10_2


def _nz(x: float) -> float:
    """Normalize -0.0 to 0.0 (JSON consumers compare with Object.is / ==)."""
    return 0.0 if x == 0 else x


class BinomialTerms:
    """Exact terms a_i = C(n,i) * num^i * (den-num)^(n-i), so that
    P[Bin(n, num/den) = i] = a_i / den^n. Suffix sums give exact upper tails."""

    def __init__(self, n: int, num: int, den: int):
        if not (0 < num < den):
            raise ValueError("need 0 < p < 1")
        self.n, self.num, self.den = n, num, den
        q = den - num
        a = [0] * (n + 1)
        a[0] = q**n
        for i in range(n):
            # a_{i+1} = a_i * (n - i) * num / ((i + 1) * q), an exact division
            a[i + 1] = a[i] * (n - i) * num // ((i + 1) * q)
        suffix = [0] * (n + 2)
        for i in range(n, -1, -1):
            suffix[i] = suffix[i + 1] + a[i]
        self.suffix = suffix
        self.total = den**n
        assert suffix[0] == self.total

    def sf_numerator(self, k: int) -> int:
        """numerator of P[X >= k] over den^n."""
        if k <= 0:
            return self.total
        if k > self.n:
            return 0
        return self.suffix[k]

    def sf(self, k: int) -> Fraction:
        return Fraction(self.sf_numerator(k), self.total)


_TERMS_CACHE: dict = {}


def _terms(n: int, num: int, den: int) -> BinomialTerms:
    key = (n, num, den)
    t = _TERMS_CACHE.get(key)
    if t is None:
        if len(_TERMS_CACHE) > 64:
            _TERMS_CACHE.clear()
        t = BinomialTerms(n, num, den)
        _TERMS_CACHE[key] = t
    return t


def binom_sf_exact(n: int, k: int, p: Fraction) -> Fraction:
    """P[Bin(n, p) >= k] exactly, for rational 0 < p < 1 (sum of math.comb terms)."""
    if k <= 0:
        return Fraction(1)
    if k > n:
        return Fraction(0)
    num, den = p.numerator, p.denominator
    q = den - num
    # sum over the shorter side
    if n - k + 1 <= k:
        s = sum(math.comb(n, i) * num**i * q ** (n - i) for i in range(k, n + 1))
        return Fraction(s, den**n)
    s = sum(math.comb(n, i) * num**i * q ** (n - i) for i in range(0, k))
    return 1 - Fraction(s, den**n)


def tail_pvalue(T: int, k: int, tau: int) -> Fraction:
    """5.1: p = P[Bin(T, gamma_eff) >= k], exact, with gamma_eff = tau / 2^32."""
    if k == 0:
        return Fraction(1)
    return _terms(T, tau, TWO32).sf(k)


def log10_tail(T: int, k: int, tau: int) -> float:
    return _nz(log10_fraction(tail_pvalue(T, k, tau)))


def z_score(T: int, k: int, tau: int) -> float:
    """5.1: z = (k - g T) / sqrt(T g (1 - g)), 0 when T = 0."""
    if T == 0:
        return 0.0
    g = gamma_eff(tau)
    return _nz((k - g * T) / math.sqrt(T * g * (1 - g)))


# 5.3 Windowed detection -------------------------------------------------------------------------


def window_lengths(T: int, L: int = 16) -> list:
    """l_j = round(L * 2^(j/2)) while l_j < T, duplicates skipped."""
    out = []
    j = 0
    while True:
        # L * 2^(j/2) is never a half-integer for integer L (it is an integer for even j and
        # irrational for odd j), so the rounding rule does not matter; compute it exactly enough.
        x = L * 2.0 ** (j / 2)
        l = int(math.floor(x + 0.5))
        if l >= T:
            break
        if not out or out[-1] != l:
            out.append(l)
        j += 1
    return out


def enumerate_windows(T: int, L: int = 16) -> list:
    """All windows (start, length) in the enumeration order of 5.3: lengths ascending, starts
    ascending, the extra final window [T - l, T) after the regular starts of its length, and the
    whole tape last."""
    wins = []
    for l in window_lengths(T, L):
        s = max(1, l // 4)
        start = 0
        last = None
        while start + l <= T:
            wins.append((start, l))
            last = start
            start += s
        if last != T - l:
            wins.append((T - l, l))
    wins.append((0, T))
    return wins


def windowed_search(bits: list, tau: int, L: int = 16) -> dict:
    """5.3, exact. Best window: smallest raw p; ties go to the first in enumeration order."""
    T = len(bits)
    prefix = [0]
    for b in bits:
        prefix.append(prefix[-1] + (1 if b else 0))
    wins = enumerate_windows(T, L)
    best = None  # (numerator, length, start, k)
    for start, l in wins:
        k = prefix[start + l] - prefix[start]
        num = _terms(l, tau, TWO32).sf_numerator(k) if l > 0 else 1
        # p = num / 2^(32 l); compare num * 2^(32 lb) < numb * 2^(32 l)
        if best is None:
            best = (num, l, start, k)
            continue
        bnum, bl, _, _ = best
        if (num << (32 * bl)) < (bnum << (32 * l)):
            best = (num, l, start, k)
    bnum, bl, bstart, bk = best
    p_best = Fraction(bnum, 1 << (32 * bl))
    W = len(wins)
    corrected = min(Fraction(1), W * p_best)
    return {
        "windowsSearched": W,
        "best": {
            "start": bstart,
            "length": bl,
            "numGreen": bk,
            "log10P": _nz(log10_fraction(p_best)),
        },
        "log10PCorrected": _nz(log10_fraction(corrected)),
    }


# 5.4 Holm ----------------------------------------------------------------------------------------


def holm_log10(log10p: list) -> list:
    """Holm step-down in log10 space; result in the input order.
    adj_(i) = min(0, max_{j <= i} (log10(m - j + 1) + l_(j)))."""
    m = len(log10p)
    order = sorted(range(m), key=lambda i: log10p[i])
    out = [0.0] * m
    running = -math.inf
    for rank_j, idx in enumerate(order, start=1):
        v = math.log10(m - rank_j + 1) + log10p[idx]
        running = max(running, v)
        out[idx] = _nz(min(0.0, running))
    return out


# ---------------------------------------------------------------------------------------------
# 6. What is scored
# ---------------------------------------------------------------------------------------------


def detect(secret: bytes, scheme: str, h: int, gamma: float, tokens: list, prompt=None,
           special=()) -> dict:
    """Section 6 scoring plus the section 5.1 statistics.

    Status precedence for a completion position: skipped_context (window does not exist) before
    skipped_special (c_i or a window token in E) before the dedup statuses.
    """
    keys = prf_keys(secret)
    tau = threshold(gamma)
    for t in tokens:
        le32(t)
    prompt = list(prompt) if prompt else []
    E = set(special)
    c = prompt + list(tokens)
    m = len(prompt)

    def dedup_key(i):
        if not window_exists(scheme, h, i):
            return "context", None
        win = window(scheme, h, c, i)
        if c[i] in E or any(t in E for t in win):
            return "special", None
        return "ok", (seed_at(keys, scheme, h, c, i), c[i])

    tape = {}  # dedup key -> "prompt" | "completion"
    for i in range(m):
        kind, dk = dedup_key(i)
        if kind == "ok":
            tape.setdefault(dk, "prompt")

    statuses = []
    bits = []
    for j in range(len(tokens)):
        i = m + j
        kind, dk = dedup_key(i)
        if kind == "context":
            statuses.append("skipped_context")
        elif kind == "special":
            statuses.append("skipped_special")
        elif dk in tape:
            statuses.append("skipped_prompt" if tape[dk] == "prompt" else "skipped_duplicate")
        else:
            tape[dk] = "completion"
            g = is_green(keys["green"], tau, dk[0], dk[1])
            bits.append(g)
            statuses.append("green" if g else "red")

    T = len(bits)
    k = sum(bits)
    return {
        "numTokens": len(tokens),
        "numScored": T,
        "numGreen": k,
        "status": statuses,
        "bits": bits,
        "z": z_score(T, k, tau),
        "log10P": log10_tail(T, k, tau),
        "gammaEff": gamma_eff(tau),
        "tau": tau,
    }


# ---------------------------------------------------------------------------------------------
# Gumbel-max schemes (docs/spec/watermark-gumbel.md)
# ---------------------------------------------------------------------------------------------

GUMBEL = "gumbel"
DUAL_GUMBEL = "dual_gumbel"
TWO52 = 1 << 52


def gumbel_prf_keys(secret: bytes) -> dict:
    """watermark-gumbel 3.1: K_gumbel (key A) and K_gumbel_b (key B), HKDF under the salt of 2.3."""
    _check_secret(secret)
    salt = b"tracemark/v1/prf"
    return {
        "a": hkdf_sha256(secret, salt, b"gumbel", 16),
        "b": hkdf_sha256(secret, salt, b"gumbel-b", 16),
    }


def gumbel_word(k: bytes, seed: int, token: int) -> int:
    """watermark-gumbel 3.1: x = SipHash(K, LE64(seed) || LE32(token))."""
    return siphash24(k, le64(seed) + le32(token))


def gumbel_uniform_of_word(x: int) -> float:
    """u = floor(x / 2^12) / 2^52: exact in a double (52 significant bits at most)."""
    return (x >> 12) / TWO52


def gumbel_uniform(k: bytes, seed: int, token: int) -> float:
    return gumbel_uniform_of_word(gumbel_word(k, seed, token))


def gumbel_score(u: float) -> float:
    """s = -ln(1 - u)."""
    return _nz(-math.log1p(-u))


def gumbel_token_score(keys: dict, scheme: str, alpha: float, seed: int, token: int) -> float:
    """watermark-gumbel 5.1: s_A, or (1 - alpha) s_A + alpha s_B for dual_gumbel."""
    sa = gumbel_score(gumbel_uniform(keys["a"], seed, token))
    if scheme == GUMBEL:
        return sa
    sb = gumbel_score(gumbel_uniform(keys["b"], seed, token))
    return (1 - alpha) * sa + alpha * sb


def kept_candidates(logits: list, temperature: float, top_k: int, top_p: float, banned=()) -> list:
    """watermark-gumbel 4.1 (spec 7 without the widening): candidate indices with a finite, allowed
    logit; with top-k / top-p, sorted by logit descending (smaller index first on ties), the first k,
    then the shortest prefix whose weight exp((l - max)/T) reaches top_p of the kept total."""
    banned = set(banned)
    cand = [i for i, v in enumerate(logits) if v != -math.inf and i not in banned]
    if top_k == 0 and top_p >= 1:
        return cand
    cand.sort(key=lambda i: (-logits[i], i))
    keep = min(top_k, len(cand)) if top_k > 0 else len(cand)
    if top_p < 1 and temperature > 0:
        mx = logits[cand[0]]
        weights = [math.exp((logits[cand[j]] - mx) / temperature) for j in range(keep)]
        total = 0.0
        for w in weights:
            total += w
        running = 0.0
        for j in range(keep):
            running += weights[j]
            if running >= top_p * total:
                keep = j + 1
                break
    return cand[:keep]


def gumbel_keys_of(tokens: list, logits: list, temperature: float, uniform_of) -> list:
    """The key (l - max)/T - ln(-ln u) of every candidate (no skipping: the definition)."""
    mx = max(logits)
    out = []
    for t, v in zip(tokens, logits):
        u = uniform_of(t)
        noise = -math.inf if u == 0 else -math.log(-math.log(u))
        out.append((v - mx) / temperature + noise)
    return out


def gumbel_choice(tokens: list, logits: list, temperature: float, uniform_of) -> int:
    """watermark-gumbel 4.2: index of the largest key, the smaller token id on equal keys."""
    keys = gumbel_keys_of(tokens, logits, temperature, uniform_of)
    return max(range(len(tokens)), key=lambda j: (keys[j], -tokens[j]))


def gumbel_context_seed(k_context: bytes, h: int, context: list, special=()):
    """The LeftHash seed of the position after `context`, or None when it is not eligible."""
    if len(context) < h:
        return None
    win = context[len(context) - h :]
    if any(t in set(special) for t in win):
        return None
    return lefthash_seed(k_context, win)


def gumbel_sample(secret: bytes, scheme: str, h: int, context: list, logits: list, temperature: float,
                  top_k: int = 0, top_p: float = 1.0, key: int = 0, special=(), banned=()):
    """watermark-gumbel 4: the marked token after `context` from dense logits (index = token id),
    or None when the step is not marked (T = 0 or no eligible window)."""
    if temperature == 0:
        return None
    seed = gumbel_context_seed(prf_keys(secret)["context"], h, context, special)
    if seed is None:
        return None
    kept = kept_candidates(logits, temperature, top_k, top_p, banned)
    k = gumbel_prf_keys(secret)["b" if key == 1 else "a"]
    tokens = kept
    vals = [logits[i] for i in kept]
    return tokens[gumbel_choice(tokens, vals, temperature, lambda t: gumbel_uniform(k, seed, t))]


def gumbel_detect(secret: bytes, scheme: str, h: int, alpha: float, tokens: list, prompt=None,
                  special=(), dedup=True) -> dict:
    """watermark-gumbel 5: spec 6's statuses on the LeftHash window, with a score per scored token
    (status "scored"). The p-value is computed by the caller (it needs mpmath)."""
    keys = prf_keys(secret)
    gkeys = gumbel_prf_keys(secret)
    prompt = list(prompt) if prompt else []
    E = set(special)
    c = prompt + list(tokens)
    m = len(prompt)

    def dedup_key(i):
        if i < h:
            return "context", None
        win = c[i - h : i]
        if c[i] in E or any(t in E for t in win):
            return "special", None
        return "ok", (lefthash_seed(keys["context"], win), c[i])

    tape = {}
    for i in range(m):
        kind, dk = dedup_key(i)
        if kind == "ok":
            tape.setdefault(dk, "prompt")
    statuses, scores = [], []
    for j in range(len(tokens)):
        i = m + j
        kind, dk = dedup_key(i)
        if kind == "context":
            statuses.append("skipped_context")
        elif kind == "special":
            statuses.append("skipped_special")
        elif dk in tape and (dedup or tape[dk] == "prompt"):
            statuses.append("skipped_prompt" if tape[dk] == "prompt" else "skipped_duplicate")
        else:
            tape.setdefault(dk, "completion")
            scores.append(gumbel_token_score(gkeys, scheme, alpha, dk[0], dk[1]))
            statuses.append("scored")
    total = 0.0
    for s in scores:
        total += s
    return {"numTokens": len(tokens), "numScored": len(scores), "status": statuses, "scores": scores,
            "score": total}
