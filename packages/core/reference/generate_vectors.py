#!/usr/bin/env python3
"""Writes the tracemark v1 test vectors (packages/core/test/vectors/*.json, except stats.json).

Standard library only, deterministic. Running it also self-tests the reference implementation
against published SipHash-2-4 and HKDF (RFC 5869) vectors, and cross-checks every exact p-value
against an independent floating-point computation; any failure aborts with an AssertionError
before a file is written.

Usage (from the repository root):  python3 packages/core/reference/generate_vectors.py
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import tracemark_ref as ref  # noqa: E402

OUT_DIR = os.path.normpath(os.path.join(HERE, "..", "test", "vectors"))

# ---------------------------------------------------------------------------------------------
# Published vectors, asserted before anything is generated
# ---------------------------------------------------------------------------------------------

# SipHash-2-4, key 00 01 .. 0f, message 00 01 .. (n-1), n = 0 .. 63: the table `vectors_sip64`
# of the reference implementation (https://github.com/veorq/SipHash, vectors.h), as u64 values.
SIPHASH_OFFICIAL = [
    0x726FDB47DD0E0E31, 0x74F839C593DC67FD, 0x0D6C8009D9A94F5A, 0x85676696D7FB7E2D,
    0xCF2794E0277187B7, 0x18765564CD99A68D, 0xCBC9466E58FEE3CE, 0xAB0200F58B01D137,
    0x93F5F5799A932462, 0x9E0082DF0BA9E4B0, 0x7A5DBBC594DDB9F3, 0xF4B32F46226BADA7,
    0x751E8FBC860EE5FB, 0x14EA5627C0843D90, 0xF723CA908E7AF2EE, 0xA129CA6149BE45E5,
    0x3F2ACC7F57C29BDB, 0x699AE9F52CBE4794, 0x4BC1B3F0968DD39C, 0xBB6DC91DA77961BD,
    0xBED65CF21AA2EE98, 0xD0F2CBB02E3B67C7, 0x93536795E3A33E88, 0xA80C038CCD5CCEC8,
    0xB8AD50C6F649AF94, 0xBCE192DE8A85B8EA, 0x17D835B85BBB15F3, 0x2F2E6163076BCFAD,
    0xDE4DAAACA71DC9A5, 0xA6A2506687956571, 0xAD87A3535C49EF28, 0x32D892FAD841C342,
    0x7127512F72F27CCE, 0xA7F32346F95978E3, 0x12E0B01ABB051238, 0x15E034D40FA197AE,
    0x314DFFBE0815A3B4, 0x027990F029623981, 0xCADCD4E59EF40C4D, 0x9ABFD8766A33735C,
    0x0E3EA96B5304A7D0, 0xAD0C42D6FC585992, 0x187306C89BC215A9, 0xD4A60ABCF3792B95,
    0xF935451DE4F21DF2, 0xA9538F0419755787, 0xDB9ACDDFF56CA510, 0xD06C98CD5C0975EB,
    0xE612A3CB9ECBA951, 0xC766E62CFCADAF96, 0xEE64435A9752FE72, 0xA192D576B245165A,
    0x0A8787BF8ECB74B2, 0x81B3E73D20B49B6F, 0x7FA8220BA3B2ECEA, 0x245731C13CA42499,
    0xB78DBFAF3A8D83BD, 0xEA1AD565322A1A0B, 0x60E61C23A3795013, 0x6606D7E446282B93,
    0x6CA4ECB15C5F91E1, 0x9F626DA15C9625F3, 0xE51B38608EF25F57, 0x958A324CEB064572,
]

# RFC 5869, appendix A, test cases 1 to 3 (SHA-256): (IKM, salt, info, L, OKM), hex
RFC5869 = [
    (
        "0b" * 22,
        "000102030405060708090a0b0c",
        "f0f1f2f3f4f5f6f7f8f9",
        42,
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        bytes(range(0x00, 0x50)).hex(),
        bytes(range(0x60, 0xB0)).hex(),
        bytes(range(0xB0, 0x100)).hex(),
        82,
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    (
        "0b" * 22,
        "",
        "",
        42,
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
]


def self_test() -> None:
    key = bytes(range(16))
    assert ref.siphash24(key, b"") == 0x726FDB47DD0E0E31
    assert ref.siphash24(key, bytes([0])) == 0x74F839C593DC67FD
    for n, want in enumerate(SIPHASH_OFFICIAL):
        got = ref.siphash24(key, bytes(range(n)))
        assert got == want, f"SipHash vector {n}: {got:016x} != {want:016x}"
    for ikm, salt, info, length, okm in RFC5869:
        got = ref.hkdf_sha256(bytes.fromhex(ikm), bytes.fromhex(salt), bytes.fromhex(info), length)
        assert got.hex() == okm, f"RFC 5869 vector failed: {got.hex()}"
    # exact tail sanity: small cases by brute force over all outcomes
    for n in range(0, 9):
        for tau in (1, 1 << 30, 1 << 31, 1288490188, (1 << 32) - 1):
            g = ref.Fraction(tau, 1 << 32)
            for k in range(0, n + 1):
                brute = sum(
                    ref.Fraction(math.comb(n, i)) * g**i * (1 - g) ** (n - i) for i in range(k, n + 1)
                )
                assert ref.tail_pvalue(n, k, tau) == (brute if k > 0 else 1)
                assert ref.binom_sf_exact(n, k, g) == (brute if k > 0 else 1)
    # enumeration of windows, spot checks from the text of 5.3
    assert ref.enumerate_windows(10) == [(0, 10)]
    assert ref.enumerate_windows(16) == [(0, 16)]
    assert ref.enumerate_windows(17) == [(0, 16), (1, 16), (0, 17)]
    assert ref.enumerate_windows(20) == [(0, 16), (4, 16), (0, 20)]
    assert ref.window_lengths(1000) == [16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724]
    print("self-test: SipHash (64 official vectors), HKDF (RFC 5869 cases 1-3), tails: ok")


# ---------------------------------------------------------------------------------------------
# Float cross-check of the exact tails (independent of the exact code path)
# ---------------------------------------------------------------------------------------------


def log10_sf_float(n: int, k: int, g: float) -> float:
    """log10 P[Bin(n, g) >= k] in double precision via lgamma and log-sum-exp."""
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    lg, lq = math.log(g), math.log1p(-g)
    c = math.lgamma(n + 1)

    def lt(i):
        return c - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lg + (n - i) * lq

    if k > n * g:
        terms = [lt(i) for i in range(k, n + 1)]
        mx = max(terms)
        s = sum(math.exp(t - mx) for t in terms)
        return (mx + math.log(s)) / math.log(10)
    terms = [lt(i) for i in range(0, k)]
    mx = max(terms)
    s = math.exp(mx) * sum(math.exp(t - mx) for t in terms)
    return math.log1p(-s) / math.log(10)


def assert_close_log10(exact: float, approx: float, what: str) -> None:
    tol = max(1e-9 * abs(exact), 1e-12)
    assert abs(exact - approx) <= tol, f"{what}: exact {exact!r} vs float {approx!r}"


# ---------------------------------------------------------------------------------------------
# Deterministic randomness (only getrandbits / random, which are stable across Python versions)
# ---------------------------------------------------------------------------------------------

RNG = random.Random(1234)


def randbelow(n: int) -> int:
    if n <= 0:
        raise ValueError
    b = n.bit_length()
    while True:
        x = RNG.getrandbits(b)
        if x < n:
            return x


def randbytes(n: int) -> bytes:
    return bytes(RNG.getrandbits(8) for _ in range(n))


def h16(x: int) -> str:
    return f"{x:016x}"


# ---------------------------------------------------------------------------------------------
# JSON output: objects indented, arrays of scalars kept on one line
# ---------------------------------------------------------------------------------------------


def _check_json_value(v):
    if isinstance(v, float):
        assert math.isfinite(v), "non-finite number in vectors"
        assert not (v == 0 and math.copysign(1, v) < 0), "negative zero in vectors"


def dumps(obj, level=0) -> str:
    pad = "  " * (level + 1)
    end = "  " * level
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad}{json.dumps(k)}: {dumps(v, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + end + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            for v in obj:
                _check_json_value(v)
            return json.dumps(obj, ensure_ascii=False, allow_nan=False)
        return "[\n" + ",\n".join(pad + dumps(v, level + 1) for v in obj) + "\n" + end + "]"
    _check_json_value(obj)
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def write(name: str, obj) -> int:
    path = os.path.join(OUT_DIR, name)
    text = dumps(obj) + "\n"
    json.loads(text)  # round-trip sanity
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    n = len(obj["cases"]) if "cases" in obj else sum(len(v) for v in obj.values() if isinstance(v, list))
    print(f"wrote {os.path.relpath(path)}: {n} cases")
    return n


# ---------------------------------------------------------------------------------------------
# Vector sets
# ---------------------------------------------------------------------------------------------

ZERO = bytes(32)
FFS = bytes([0xFF]) * 32


def gen_siphash():
    cases = []
    key = bytes(range(16))
    for n in range(64):
        msg = bytes(range(n))
        out = ref.siphash24(key, msg)
        assert out == SIPHASH_OFFICIAL[n]
        cases.append({"key": key.hex(), "message": msg.hex(), "output": h16(out)})
    # other keys and message lengths, including the exact message shapes used by the scheme
    extra_lengths = [0, 7, 8, 9, 12, 13, 5, 17, 33, 100, 65]
    for ln in extra_lengths:
        k = randbytes(16)
        m = randbytes(ln)
        cases.append({"key": k.hex(), "message": m.hex(), "output": h16(ref.siphash24(k, m))})
    cases.append({"key": "ff" * 16, "message": "ff" * 12, "output": h16(ref.siphash24(FFS[:16], FFS[:12]))})
    cases.append({"key": "00" * 16, "message": "", "output": h16(ref.siphash24(ZERO[:16], b""))})
    return {
        "description": "SipHash-2-4; output is the u64 read little-endian from the 8 output bytes, "
        "as 16 lowercase hex digits. The first 64 cases are the official vectors (key 00..0f, "
        "message 00..n-1).",
        "cases": cases,
    }


SECRETS_RANDOM = [randbytes(32) for _ in range(4)]
SECRETS = [ZERO, FFS] + SECRETS_RANDOM


def gen_keys():
    labels = ["", "tenant/café", "epoch/2026-11", "tenant/acme", "epoch/2026-12"]
    cases = []
    for s in SECRETS:
        pk = ref.prf_keys(s)
        subs = []
        for lab in labels:
            sk = ref.subkey(s, lab)
            subs.append({"label": lab, "secret": sk.hex(), "keyId": ref.key_id(sk)})
        kid = ref.key_id(s)
        assert len(kid) == 29 and kid.startswith("tmk1_")
        cases.append({
            "secret": s.hex(),
            "keyId": kid,
            "kContext": pk["context"].hex(),
            "kGreen": pk["green"].hex(),
            "kRank": pk["rank"].hex(),
            "subkeys": subs,
        })
    return {
        "description": "Key id (2.1), sub-keys (2.2, label encoded as UTF-8) and PRF keys (2.3).",
        "cases": cases,
    }


def gen_green():
    gammas = [0.25, 0.5, 0.1, 0.333, 1e-9, 0.9999999]
    secrets = [ZERO, FFS, SECRETS_RANDOM[0], SECRETS_RANDOM[1]]
    tokens_fixed = [0, 4294967295, 1, 4294967294, 50256, 100257]
    seeds_fixed = [0, (1 << 64) - 1, 1, 1 << 63]
    cases = []

    def add(secret, gamma, seed, token):
        tau = ref.threshold(gamma)
        kg = ref.prf_keys(secret)["green"]
        u = ref.green_u(kg, seed, token)
        cases.append({
            "secret": secret.hex(), "gamma": gamma, "tau": tau, "seed": h16(seed),
            "token": token, "u": u, "green": u < tau,
        })
        return u

    for si, s in enumerate(secrets):
        for gi, g in enumerate(gammas):
            for j in range(7):
                if j < 2:
                    seed = seeds_fixed[(si + gi + j) % 4]
                    token = tokens_fixed[(si * 2 + gi + j) % 6]
                else:
                    seed = RNG.getrandbits(64)
                    token = RNG.getrandbits(32) if j % 2 else randbelow(100000)
                add(s, g, seed, token)
    # boundary cases: gamma chosen so that tau == u (red) or tau == u + 1 (green); u / 2^32 and
    # (u + 1) / 2^32 are exact doubles
    for i in range(16):
        s = secrets[i % 4]
        seed = RNG.getrandbits(64) if i % 3 else 0
        token = [0, 4294967295, randbelow(100000), RNG.getrandbits(32)][i % 4]
        u = ref.green_u(ref.prf_keys(s)["green"], seed, token)
        if u == 0:
            continue
        add(s, u / 2**32, seed, token)
        add(s, (u + 1) / 2**32, seed, token)
    for c in cases:
        assert c["green"] == (c["u"] < c["tau"])
        assert c["tau"] == math.floor(c["gamma"] * 2**32)
    ngreen = sum(c["green"] for c in cases)
    print(f"  green.json: {ngreen} green of {len(cases)}")
    return {
        "description": "Green test (3.1, 3.2): tau = floor(gamma * 2^32) with gamma the exact "
        "double; u = SipHash(K_green, LE64(seed) || LE32(token)) >> 32; green iff u < tau.",
        "cases": cases,
    }


def gen_seeds():
    cases = []
    hi = 4294967295
    for scheme in (ref.LEFTHASH, ref.SELFHASH):
        for h in (1, 2, 3, 4, 8):
            lengths = sorted(set([0, 1, h - 1, h, 30]))
            for li, n in enumerate(lengths):
                secret = SECRETS[(h + li + (scheme == ref.SELFHASH)) % len(SECRETS)]
                pool = [0, 1, 2, hi, hi - 1, hi - 2, randbelow(100000), randbelow(100000),
                        RNG.getrandbits(32)]
                toks = []
                for i in range(n):
                    r = RNG.random()
                    if toks and r < 0.25:
                        toks.append(toks[randbelow(len(toks))])  # repeat an earlier token
                    else:
                        toks.append(pool[randbelow(len(pool))])
                if n == 30:
                    toks[10:14] = [7, 7, 7, 7]  # a run of one token
                    toks[20:23] = [hi, 0, hi]
                keys = ref.prf_keys(secret)
                sd = ref.seeds(secret, scheme, h, toks)
                for i, s in enumerate(sd):
                    assert (s is None) == (not ref.window_exists(scheme, h, i))
                case = {
                    "secret": secret.hex(), "scheme": scheme, "contextWidth": h, "tokens": toks,
                    "seeds": [None if s is None else h16(s) for s in sd],
                }
                if scheme == ref.SELFHASH:
                    case["ranks"] = [h16(ref.rank(keys["rank"], t)) for t in toks]
                cases.append(case)
    return {
        "description": "Seeds (4.1 LeftHash, 4.2 SelfHash) of every position of a sequence, "
        "null where the window does not exist; ranks are rank(t) = SipHash(K_rank, LE32(t)).",
        "cases": cases,
    }


def watermark_like(secret, scheme, h, gamma, n, vocab=100000, candidates=50):
    """Greedy: at each position take the first of `candidates` random tokens that is green."""
    keys = ref.prf_keys(secret)
    tau = ref.threshold(gamma)
    c = []
    for i in range(n):
        cands = [randbelow(vocab) for _ in range(candidates)]
        chosen = cands[0]
        if ref.window_exists(scheme, h, i):
            for x in cands:
                s = ref.seed_at(keys, scheme, h, c + [x], i)
                if ref.is_green(keys["green"], tau, s, x):
                    chosen = x
                    break
        c.append(chosen)
    return c


def random_tokens(n, vocab):
    return [randbelow(vocab) for _ in range(n)]


def gen_detect():
    A, B, C = SECRETS_RANDOM[0], SECRETS_RANDOM[1], SECRETS_RANDOM[2]
    L, S = ref.LEFTHASH, ref.SELFHASH
    specs = []  # (name, secret, scheme, h, gamma, tokens, prompt, special)

    def add(name, secret, scheme, h, gamma, tokens, prompt=None, special=()):
        specs.append((name, secret, scheme, h, gamma, list(tokens), prompt, sorted(set(special))))

    add("empty, lefthash h1", A, L, 1, 0.25, [])
    add("empty, selfhash h4", B, S, 4, 0.5, [])
    add("empty with prompt", A, L, 2, 0.25, [], prompt=random_tokens(10, 100000))
    add("single token, lefthash h1 (no window)", A, L, 1, 0.25, [4242])
    add("single token, selfhash h1 (scored)", A, S, 1, 0.25, [4242])
    add("single token 2^32-1, selfhash h1", B, S, 1, 0.5, [4294967295])
    add("single token with prompt, lefthash h1", A, L, 1, 0.25, [0], prompt=[4294967295])
    add("all skipped: context, lefthash h4", A, L, 4, 0.25, [5, 6, 7, 8])
    add("all skipped: special, selfhash h1", B, S, 1, 0.25, [100257, 100258, 100257],
        special=[100257, 100258])
    phrase = random_tokens(8, 100000)
    for scheme in (L, S):
        for h in (1, 2, 4):
            add(f"boilerplate: 8-token phrase x50, {scheme} h{h}", C, scheme, h, 0.25, phrase * 50)
    completion = random_tokens(30, 100000)
    pre, post = random_tokens(25, 100000), random_tokens(10, 100000)
    add("prompt contains the completion verbatim, lefthash h1", A, L, 1, 0.25, completion,
        prompt=pre + completion + post)
    add("prompt contains the completion verbatim, lefthash h4", A, L, 4, 0.5, completion,
        prompt=pre + completion + post)
    add("prompt contains the completion verbatim, selfhash h2", B, S, 2, 0.25, completion,
        prompt=pre + completion + post)
    add("prompt equals the completion, selfhash h4", B, S, 4, 0.3, completion, prompt=completion)
    add("prompt empty list, lefthash h2", A, L, 2, 0.25, completion[:12], prompt=[])
    sp = [100257, 100258, 100259]
    toks = random_tokens(40, 100000)
    for pos, t in ((0, 100257), (5, 100258), (17, 100257), (18, 100259), (39, 100258)):
        toks[pos] = t
    add("special tokens inside windows, lefthash h2", A, L, 2, 0.25, toks, special=sp)
    add("special tokens inside windows, lefthash h4", B, L, 4, 0.5, toks, special=sp)
    add("special tokens inside windows, selfhash h4", C, S, 4, 0.25, toks, special=sp)
    add("special tokens inside windows, selfhash h1", C, S, 1, 0.3, toks, special=sp)
    add("special token at the end of the prompt, lefthash h2", A, L, 2, 0.25, toks[:20],
        prompt=random_tokens(6, 100000) + [100259], special=sp)
    add("special ids absent from the text, lefthash h1", A, L, 1, 0.25, toks[1:5],
        special=[0, 4294967295])
    # grid: both schemes, h in {1, 2, 4}, gamma in {0.25, 0.5, 0.3}
    for scheme in (L, S):
        for h in (1, 2, 4):
            for g in (0.25, 0.5, 0.3):
                add(f"random 200 tokens, vocab 100000, {scheme} h{h} gamma {g}",
                    [A, B, C][(h + int(g * 10)) % 3], scheme, h, g, random_tokens(200, 100000))
    # random sequences of several lengths and vocabularies
    for n in (20, 200, 2000):
        for vocab in (50, 100000):
            scheme, h = (L, 1) if vocab == 50 else (S, 2)
            if n == 200 and vocab == 100000:
                scheme, h = L, 4
            add(f"random {n} tokens, vocab {vocab}, {scheme} h{h}", A, scheme, h, 0.25,
                random_tokens(n, vocab))
    add("random 2000 tokens, vocab 50, selfhash h4", B, S, 4, 0.5, random_tokens(2000, 50))
    add("random 300 tokens, vocab 50, prompt vocab 50, selfhash h1", C, S, 1, 0.25,
        random_tokens(300, 50), prompt=random_tokens(100, 50))
    add("random 300 tokens, vocab 50, prompt vocab 50, lefthash h1", C, L, 1, 0.5,
        random_tokens(300, 50), prompt=random_tokens(100, 50))
    add("random tokens near 2^32, lefthash h2", A, L, 2, 0.25,
        [4294967295 - randbelow(8) for _ in range(60)])
    # watermark-like sequences
    for n, scheme, h, g in ((50, L, 1, 0.25), (200, L, 2, 0.25), (1000, L, 4, 0.5),
                            (50, S, 1, 0.25), (200, S, 2, 0.3), (1000, S, 4, 0.25)):
        secret = [A, B, C][n % 3]
        toks = watermark_like(secret, scheme, h, g, n)
        add(f"watermark-like {n} tokens, {scheme} h{h} gamma {g}", secret, scheme, h, g, toks)
    for n, scheme, h, g in ((200, L, 1, 0.25), (1000, S, 2, 0.5), (2000, L, 2, 0.25)):
        secret = [A, B, C][n % 3]
        toks = watermark_like(secret, scheme, h, g, n, candidates=2)
        add(f"weak watermark (best of 2 candidates) {n} tokens, {scheme} h{h} gamma {g}", secret,
            scheme, h, g, toks)
    toks = watermark_like(B, L, 1, 0.25, 200)
    add("watermark-like 200 tokens checked with another key", C, L, 1, 0.25, toks)

    cases = []
    for name, secret, scheme, h, g, tokens, prompt, special in specs:
        r = ref.detect(secret, scheme, h, g, tokens, prompt=prompt, special=special)
        # consistency and float cross-check
        st = r["status"]
        assert len(st) == len(tokens)
        assert r["numScored"] == sum(1 for x in st if x in ("green", "red"))
        assert r["numGreen"] == sum(1 for x in st if x == "green")
        approx = log10_sf_float(r["numScored"], r["numGreen"], r["gammaEff"])
        assert_close_log10(r["log10P"], approx, f"detect {name}")
        cases.append({
            "name": name,
            "secret": secret.hex(),
            "scheme": {"name": scheme, "contextWidth": h, "gamma": g},
            "tokens": tokens,
            "prompt": prompt,
            "special": special,
            "numTokens": r["numTokens"],
            "numScored": r["numScored"],
            "numGreen": r["numGreen"],
            "status": st,
            "z": r["z"],
            "log10P": r["log10P"],
            "gammaEff": r["gammaEff"],
        })
    names = [c["name"] for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    seen = set(x for c in cases for x in c["status"])
    assert seen == {"green", "red", "skipped_context", "skipped_special", "skipped_duplicate",
                    "skipped_prompt"}, seen
    return {
        "description": "Section 6 scoring and 5.1 statistics. Status precedence: skipped_context "
        "(no window) before skipped_special before skipped_prompt / skipped_duplicate. "
        "log10P = log10 P[Bin(numScored, gammaEff) >= numGreen], exact.",
        "cases": cases,
    }


def gen_windows():
    specs = []

    def rand_bits(n, p):
        return [1 if RNG.random() < p else 0 for _ in range(n)]

    specs.append(("empty tape", [], 0.25))
    specs.append(("T = 10 < 16, random", rand_bits(10, 0.25), 0.25))
    specs.append(("T = 15, all ones", [1] * 15, 0.25))
    specs.append(("T = 16, random", rand_bits(16, 0.5), 0.5))
    specs.append(("T = 17, random", rand_bits(17, 0.25), 0.25))
    specs.append(("T = 17, green run at the end", [0] * 5 + [1] * 12, 0.25))
    specs.append(("T = 24, random", rand_bits(24, 0.25), 0.25))
    specs.append(("T = 100, random, gamma 0.25", rand_bits(100, 0.25), 0.25))
    specs.append(("T = 100, random, gamma 0.5", rand_bits(100, 0.5), 0.5))
    specs.append(("T = 100, random, gamma 0.3", rand_bits(100, 0.3), 0.3))
    specs.append(("T = 1000, random, gamma 0.25", rand_bits(1000, 0.25), 0.25))
    specs.append(("T = 1000, random, gamma 0.5", rand_bits(1000, 0.5), 0.5))
    planted = rand_bits(1000, 0.25)
    planted[437:497] = [1] * 60
    specs.append(("T = 1000, planted all-green run of 60 at 437", planted, 0.25))
    planted2 = rand_bits(1000, 0.25)
    planted2[300:360] = rand_bits(60, 0.9)
    specs.append(("T = 1000, planted 90%-green run of 60 at 300", planted2, 0.25))
    specs.append(("T = 1000, all ones", [1] * 1000, 0.25))
    specs.append(("T = 1000, all zeros", [0] * 1000, 0.25))
    specs.append(("T = 100, all ones, gamma 0.5", [1] * 100, 0.5))
    specs.append(("T = 100, all zeros, gamma 0.3", [0] * 100, 0.3))
    cases = []
    for name, bits, g in specs:
        tau = ref.threshold(g)
        r = ref.windowed_search(bits, tau, 16)
        b = r["best"]
        assert sum(bits[b["start"]:b["start"] + b["length"]]) == b["numGreen"]
        assert_close_log10(b["log10P"], log10_sf_float(b["length"], b["numGreen"], ref.gamma_eff(tau)),
                           f"window {name}")
        assert r["log10PCorrected"] == min(0.0, r["log10PCorrected"])
        cases.append({
            "name": name,
            "bits": "".join(str(x) for x in bits),
            "gamma": g,
            "minWindow": 16,
            "windowsSearched": r["windowsSearched"],
            "best": b,
            "log10PCorrected": r["log10PCorrected"],
        })
    return {
        "description": "Windowed search of the scored tape (5.3), exact tails with gamma_eff. "
        "best.start is an index into the tape. Tie-break: smallest raw p; among equal p, the "
        "first window in enumeration order (lengths ascending; starts ascending; the extra final "
        "window after the regular starts of its length; the whole tape last). "
        "log10PCorrected = log10 min(1, W * p_best).",
        "cases": cases,
    }


def gen_holm():
    inputs = [
        [-3.2],
        [0.0],
        [-5000.0],
        [-2.0, -2.0, -2.0],
        [-5000.0, -3.0, -0.1, 0.0],
        [-0.1, -5000.0, 0.0, -3.0],
        [-3.0, -2.9],
        [-1.0, -1.0, -4.0, -4.0, -0.5],
        [-0.2, -0.3, -0.25],
        [-12.5, -300.0, -1e5, -7.0, -7.0, -0.0001],
    ]
    inputs.append([round(-10 * RNG.random() ** 2, 6) for _ in range(12)])
    cases = []
    for xs in inputs:
        adj = ref.holm_log10(xs)
        # cross-check: a direct transcription with the sorted order and the running max
        m = len(xs)
        order = sorted(range(m), key=lambda i: xs[i])
        for pos, idx in enumerate(order, start=1):
            direct = min(0.0, max(math.log10(m - j + 1) + xs[order[j - 1]] for j in range(1, pos + 1)))
            assert adj[idx] == (0.0 if direct == 0 else direct)
        cases.append({"log10P": xs, "log10PAdjusted": adj})
    return {
        "description": "Holm step-down (5.4) in log10 space, results in input order: "
        "adj_(i) = min(0, max_{j<=i} (log10(m - j + 1) + log10 p_(j))).",
        "cases": cases,
    }


def main():
    t0 = time.time()
    self_test()
    os.makedirs(OUT_DIR, exist_ok=True)
    sets = [
        ("siphash.json", gen_siphash),
        ("keys.json", gen_keys),
        ("green.json", gen_green),
        ("seeds.json", gen_seeds),
        ("detect.json", gen_detect),
        ("windows.json", gen_windows),
        ("holm.json", gen_holm),
    ]
    # generate everything (and run every assertion) before writing anything
    built = [(name, fn()) for name, fn in sets]
    for name, obj in built:
        write(name, obj)
    print(f"done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
