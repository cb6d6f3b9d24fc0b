#!/usr/bin/python3
"""Writes packages/core/test/vectors/foreign/vllm.json by running vLLM's own watermarking code.

Nothing of vLLM is copied into this repository. The script imports vLLM's watermarking modules
from a source tree given on the command line, installs the shims listed in `install_shims` for
the modules those files import but that cannot load here (no CUDA, no Triton, no vLLM install),
and records what vLLM's code returns: PRF words and uniforms, per-token scores, the detector's
score, token count and p-value. High-precision references for the exact tails come from mpmath.

Usage (from the repository root; Debian packages python3-torch python3-mpmath python3-numpy):

    # a bare git directory of vllm-project/vllm that holds the commits in PEER_FILES
    /usr/bin/python3 packages/core/reference/foreign/vllm_vectors.py --vllm-git /path/to/vllm.git
    # or a directory that already holds those file versions at their repository paths
    /usr/bin/python3 packages/core/reference/foreign/vllm_vectors.py --vllm-tree /path/to/tree

The script checks every file's git blob id against PEER_FILES before importing anything and
refuses a mismatch. If the tree holds tests/watermarking/watermarking_goldens.json, every
candidate of it whose scheme this script covers is re-detected with vLLM's detector and compared
with the frozen values (a check on the assembled tree; the goldens are not copied into the output).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import importlib
import json
import logging
import math
import os
import struct
import subprocess
import sys
import tempfile
import time
import types

import mpmath
from mpmath import mp, mpf

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "..", "test", "vectors", "foreign", "vllm.json"))

# Repository path -> (commit the file version was taken from, git blob id of that version).
# No single vLLM commit holds all four schemes and both PRFs: the HMAC PRF exists only in an
# early revision (gumbel only), red_green only on a branch next to the dual-key code, sbw after
# it. The combination below is the one this script runs; docs/spec/foreign-vllm.md explains it.
PEER_FILES: dict[str, tuple[str, str]] = {
    "vllm/config/watermarking.py": ("01c268bcd2def3eec9548e33c94184eb6b905867", "b5b60b21c909e088a1ede73110b58d589e1855b4"),
    "vllm/v1/watermarking/detector.py": ("a6d669adc4b8b8c0a4398e0491bcb6db73cafc7a", "42759b03c4d9cd0f6e4b70f0bc1b4691fab8e445"),
    "vllm/v1/watermarking/gumbel.py": ("01c268bcd2def3eec9548e33c94184eb6b905867", "3f7a5ecde238b8d0c6bccf3a1032e66dd0147cce"),
    "vllm/v1/watermarking/watermarker.py": ("01c268bcd2def3eec9548e33c94184eb6b905867", "18bd6056664cbbe8364068c2da9772dfcd729852"),
    "vllm/v1/watermarking/sbw.py": ("d6d2f2c25286dd06096b151cb2aed58167204c85", "f39038c89c5b0b30380a517f9c881fdf497c267b"),
    "vllm/v1/watermarking/red_green.py": ("381f94544575cafec2cd808be7d4948a632374e0", "fe8b95ba2ff1dbbc60df3a09eb48e5bce67fce01"),
    "vllm/v1/watermarking/prfs/__init__.py": ("76a80bf0201401fa60bc53e5226219cc5f1fe4ab", "b88844f17f81637af79ac7908552ea086b5e2f2a"),
    "vllm/v1/watermarking/prfs/base.py": ("773dc86d8bf12bc18ab1ba06b1208f4d90a8ba02", "02e4ea2e4eb1f22f457004e0672e39ce9a8031e7"),
    "vllm/v1/watermarking/prfs/philox.py": ("373305d65c78b7c368d46cd483a9fa92da71c8a6", "2f4d8f64ad9f60d31712d7d6eec14a6510b33f55"),
    "vllm/v1/watermarking/prfs/hmac_sha256.py": ("ab44abbb27c2d80a935b18fd29aa0b22894a45c6", "7e48028a8b326aeabc0b07ada196573613a7723d"),
}
GOLDENS = "tests/watermarking/watermarking_goldens.json"

UINT64 = 2**64


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Peer source tree and shims
# ---------------------------------------------------------------------------------------------


def materialize(git_dir: str) -> str:
    tree = tempfile.mkdtemp(prefix="vllm-peer-")
    for path, (commit, _) in PEER_FILES.items():
        data = subprocess.run(
            ["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], check=True, capture_output=True
        ).stdout
        os.makedirs(os.path.dirname(os.path.join(tree, path)), exist_ok=True)
        with open(os.path.join(tree, path), "wb") as f:
            f.write(data)
    goldens = subprocess.run(
        ["git", f"--git-dir={git_dir}", "show", f"{PEER_FILES['vllm/v1/watermarking/gumbel.py'][0]}:{GOLDENS}"],
        capture_output=True,
    )
    if goldens.returncode == 0:
        os.makedirs(os.path.join(tree, os.path.dirname(GOLDENS)), exist_ok=True)
        with open(os.path.join(tree, GOLDENS), "wb") as f:
            f.write(goldens.stdout)
    return tree


def check_blobs(tree: str) -> dict[str, dict[str, str]]:
    """Refuses any file whose git blob id differs from PEER_FILES: the ids pin the exact versions."""
    found = {}
    for path, (commit, expected) in PEER_FILES.items():
        with open(os.path.join(tree, path), "rb") as f:
            data = f.read()
        blob = git_blob_id(data)
        if blob != expected:
            raise SystemExit(f"{path}: git blob {blob}, expected {expected} (the version at {commit})")
        found[path] = {"commit": commit, "blob": blob}
    return found


def _package(name: str, path: str | None) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = [path] if path else []
    sys.modules[name] = module
    return module


def install_shims(tree: str) -> list[dict[str, str]]:
    """Stand-ins for what vLLM's watermarking files import but cannot load on this machine.

    Each entry says what is replaced and why it does not change the values recorded.
    """
    import torch

    shims = []

    # 1. Package __init__ files of vllm, vllm.config, vllm.v1, vllm.v1.watermarking and the worker
    #    packages import the whole engine (CUDA, model registry). The packages are created empty,
    #    pointing at the tree, so only the watermarking modules themselves execute.
    #    vllm/v1/watermarking/prfs/__init__.py is small and does run.
    for name, rel in [
        ("vllm", "vllm"),
        ("vllm.config", "vllm/config"),
        ("vllm.v1", "vllm/v1"),
        ("vllm.v1.watermarking", "vllm/v1/watermarking"),
        ("vllm.v1.worker", None),
        ("vllm.v1.worker.gpu", None),
        ("vllm.v1.worker.gpu.sample", None),
    ]:
        _package(name, os.path.join(tree, rel) if rel else None)
    shims.append({"module": "vllm, vllm.config, vllm.v1, vllm.v1.watermarking (package __init__)",
                  "stand-in": "empty packages whose __path__ is the tree",
                  "why": "the real __init__ files import the engine; the watermarking modules do not need them"})

    # 2. vllm.config.utils.config wraps WatermarkConfig into a pydantic dataclass; no config object
    #    is built here (detectors and watermarkers take plain arguments), so identity suffices.
    utils = types.ModuleType("vllm.config.utils")
    utils.config = lambda cls: cls
    sys.modules["vllm.config.utils"] = utils
    shims.append({"module": "vllm.config.utils.config", "stand-in": "identity decorator",
                  "why": "WatermarkConfig is never instantiated; only derive_watermark_key, SBWScheme and "
                         "_SBW_DEFAULT_CONTEXT_WIDTH are used from vllm/config/watermarking.py"})

    # 3. vllm.logger.init_logger: a standard logger with warning_once.
    logger_module = types.ModuleType("vllm.logger")

    def init_logger(name: str):
        log = logging.getLogger(name)
        log.warning_once = lambda msg, *a, **k: log.warning(msg)
        return log

    logger_module.init_logger = init_logger
    sys.modules["vllm.logger"] = logger_module
    shims.append({"module": "vllm.logger.init_logger", "stand-in": "logging.getLogger with warning_once",
                  "why": "logging only"})

    # 4. pydantic v2 (Field, model_validator): Debian's pydantic is v1. Used only in the
    #    WatermarkConfig class body, which is never instantiated.
    try:
        from pydantic import model_validator  # noqa: F401
    except ImportError:
        pyd = types.ModuleType("pydantic")
        pyd.Field = lambda default=None, **kwargs: default
        pyd.model_validator = lambda **kwargs: (lambda fn: fn)
        sys.modules["pydantic"] = pyd
        shims.append({"module": "pydantic.Field, pydantic.model_validator", "stand-in": "no-op stand-ins",
                      "why": "only the WatermarkConfig class body uses them; it is never instantiated"})

    # 5. vllm.v1.worker.gpu.sample.gumbel.gumbel_sample is vLLM's Triton sampler behind
    #    RandomSampler.__call__; CUDA only. The CPU paths take any callable as random_sampler;
    #    this script passes a seeded torch.multinomial sampler and never calls RandomSampler.
    gumbel_module = types.ModuleType("vllm.v1.worker.gpu.sample.gumbel")

    def gumbel_sample(*args, **kwargs):
        raise RuntimeError("gumbel_sample is CUDA/Triton-only and is not used on CPU")

    gumbel_module.gumbel_sample = gumbel_sample
    sys.modules["vllm.v1.worker.gpu.sample.gumbel"] = gumbel_module
    shims.append({"module": "vllm.v1.worker.gpu.sample.gumbel.gumbel_sample",
                  "stand-in": "raises if called (never called)",
                  "why": "Triton kernel; CPU generation here uses a seeded torch.multinomial sampler"})

    # 6. torch.compile: absent from Debian's torch 1.13. philox.py and sbw.py wrap plain integer
    #    functions with it; the CPU branch of PhiloxPRF never uses the compiled one, sbw.py always
    #    does. The stand-in returns the eager function, which is what Inductor compiles.
    if not hasattr(torch, "compile") or os.environ.get("VLLM_VECTORS_EAGER", "1") == "1":
        torch.compile = lambda fn=None, **kwargs: fn if fn is not None else (lambda f: f)
        shims.append({"module": "torch.compile", "stand-in": "returns the eager function",
                      "why": "absent in torch 1.13; the wrapped functions are exact integer arithmetic, "
                             "so eager and compiled agree wherever the compiler is correct"})
    return shims


# ---------------------------------------------------------------------------------------------
# Helpers around the peer's objects
# ---------------------------------------------------------------------------------------------


class Peer:
    def __init__(self) -> None:
        self.torch = importlib.import_module("torch")
        self.config = importlib.import_module("vllm.config.watermarking")
        self.base = importlib.import_module("vllm.v1.watermarking.prfs.base")
        self.philox = importlib.import_module("vllm.v1.watermarking.prfs.philox")
        self.hmac = importlib.import_module("vllm.v1.watermarking.prfs.hmac_sha256")
        self.gumbel = importlib.import_module("vllm.v1.watermarking.gumbel")
        self.red_green = importlib.import_module("vllm.v1.watermarking.red_green")
        self.sbw = importlib.import_module("vllm.v1.watermarking.sbw")

    def prf(self, name: str, key: int):
        if name == "philox":
            return self.philox.PhiloxPRF(key)
        if name == "hmac-sha256-v1":
            return self.hmac.HMACSHA256PRF(key)
        raise ValueError(name)


def hmac_word(key: int, context: list[int], token: int) -> int:
    """The 32-bit word whose top 24 bits HMACSHA256PRF.uniform keeps (the peer exposes only the
    uniform; this recomputes the word from the documented layout, and the script asserts that
    uint32_to_uniform(word) equals the peer's uniform)."""
    message = bytearray(b"vllm-watermark-hmac-sha256-v1\0")
    message += struct.pack("<I", len(context))
    for value in context:
        message += struct.pack("<q", value)
    message += struct.pack("<q", token)
    digest = hmac.digest(key.to_bytes(32, "little"), bytes(message), hashlib.sha256)
    return int.from_bytes(digest[:4], "little")


def f32(value) -> float:
    return float(value)


def contexts_of(tokens: list[int], width: int) -> list[tuple[int, ...]]:
    prefix = [-1] * width
    out = []
    for token in tokens:
        out.append(tuple(prefix[-width:]))
        prefix.append(token)
    return out


def kept_positions(tokens: list[int], width: int, kept_contexts, kept_targets) -> list[int]:
    """Positions of the (context, target) pairs the peer's _prepare_inputs kept, in order."""
    contexts = contexts_of(tokens, width)
    positions = []
    j = 0
    for i, token in enumerate(tokens):
        if j < len(kept_targets) and contexts[i] == tuple(kept_contexts[j]) and token == kept_targets[j]:
            positions.append(i)
            j += 1
    assert j == len(kept_targets), "could not align the peer's scored tokens"
    return positions


def make_sampler(torch, seed: int):
    generator = torch.Generator().manual_seed(seed)

    def sample(logits):
        probs = torch.softmax(logits.to(torch.float64), dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    return sample


def make_logits(torch, seed: int, steps: int, vocab: int, scale: float, peak: tuple[int, float] | None):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(steps, vocab, generator=generator, dtype=torch.float32) * scale
    if peak is not None:
        logits[:, peak[0]] += peak[1]
    return logits


# ---------------------------------------------------------------------------------------------
# Generation and detection with the peer's classes
# ---------------------------------------------------------------------------------------------


def build_watermarker(peer: Peer, case: dict):
    scheme, width, key = case["scheme"], case["contextWidth"], int(case["engineKey"])
    if scheme == "gumbel":
        return peer.gumbel.GumbelWatermarker(key, width, peer.prf(case["prf"], key))
    if scheme == "dual_key_gumbel":
        watermarker = peer.gumbel.DualKeyGumbelWatermarker(key, width, "philox", case["alpha"])
        if case["prf"] != "philox":
            # Composed: vLLM never offered dual-key with HMAC; swap the two derived-key PRFs.
            for inner, domain in ((watermarker.draft_watermarker, b"key_a"), (watermarker.target_watermarker, b"key_b")):
                inner.prf = peer.prf(case["prf"], peer.config.derive_watermark_key(key, domain))
        return watermarker
    if scheme == "red_green":
        return peer.red_green.RedGreenWatermarker(key, width, peer.prf(case["prf"], key), case["delta"], case["gamma"])
    if scheme == "sbw":
        return peer.sbw.SBWWatermarker(key, width, case["sbwScheme"], case["gamma"], case["delta"])
    raise ValueError(scheme)


def build_detector(peer: Peer, case: dict, key: int, dedup: bool):
    scheme, width = case["scheme"], case["contextWidth"]
    if scheme == "gumbel":
        return peer.gumbel.GumbelWatermarkDetector(key, width, 0.01, peer.prf(case["prf"], key), dedup)
    if scheme == "dual_key_gumbel":
        detector = peer.gumbel.DualKeyGumbelWatermarkDetector(key, width, 0.01, "philox", dedup, case["alpha"])
        if case["prf"] != "philox":
            detector.prf = peer.prf(case["prf"], peer.config.derive_watermark_key(key, b"key_a"))
            detector.key_b_prf = peer.prf(case["prf"], peer.config.derive_watermark_key(key, b"key_b"))
        return detector
    if scheme == "red_green":
        return peer.red_green.RedGreenWatermarkDetector(key, width, 0.01, peer.prf(case["prf"], key), dedup, case["gamma"])
    if scheme == "sbw":
        return peer.sbw.SBWWatermarkDetector(key, width, case["sbwScheme"], case["gamma"], 0.01, dedup)
    raise ValueError(scheme)


def generate(peer: Peer, case: dict) -> list[int]:
    torch = peer.torch
    spec = case["generation"]
    if spec["kind"] == "uniform-random":
        generator = torch.Generator().manual_seed(spec["seed"])
        return torch.randint(0, spec["vocab"], (spec["steps"],), generator=generator).tolist()
    watermarker = build_watermarker(peer, case)
    width = case["contextWidth"]
    logits = make_logits(torch, spec["seed"], spec["steps"], spec["vocab"], spec["scale"], spec.get("peak"))
    sampler = make_sampler(torch, spec["seed"] + 1)
    tokens: list[int] = []
    for step in range(spec["steps"]):
        context = ([-1] * width + tokens)[-width:]
        row = logits[step : step + 1]
        contexts = torch.tensor([context], dtype=torch.int64)
        if case["scheme"] == "gumbel":
            sample = watermarker.sample(row, contexts)
        else:
            sample = watermarker.sample(row, contexts, random_sampler=sampler)
        tokens.append(int(sample.token_ids.reshape(-1)[0]))
    return tokens


def per_token(peer: Peer, case: dict, detector, key: int, contexts, targets) -> dict:
    """Per-token PRF outputs and the peer's own per-token scores, as parallel arrays."""
    torch = peer.torch
    out: dict = {}
    scores = detector._score_tokens(contexts, targets)
    out["scores"] = [float(v) for v in scores.tolist()]
    scheme = case["scheme"]
    if scheme in ("gumbel", "red_green"):
        uniforms = detector.prf.uniform(contexts, targets.unsqueeze(-1)).squeeze(-1)
        out["uniforms"] = [f32(v) for v in uniforms.tolist()]
        out["words"] = words_of(peer, case["prf"], detector.prf, contexts, targets)
    elif scheme == "dual_key_gumbel":
        for label, prf in (("A", detector.prf), ("B", detector.key_b_prf)):
            uniforms = prf.uniform(contexts, targets.unsqueeze(-1)).squeeze(-1)
            out[f"uniforms{label}"] = [f32(v) for v in uniforms.tolist()]
            out[f"words{label}"] = words_of(peer, case["prf"], prf, contexts, targets)
    elif scheme == "sbw":
        out["seeds"], out["words"] = sbw_internals(peer, detector, contexts, targets)
    return out


def words_of(peer: Peer, prf_name: str, prf, contexts, targets) -> list[int]:
    torch = peer.torch
    if prf_name == "philox":
        words = prf.uint32(contexts, targets.unsqueeze(-1)).squeeze(-1).tolist()
    else:
        words = [hmac_word(prf.key, list(c), int(t)) for c, t in zip(contexts.tolist(), targets.tolist())]
    uniforms = prf.uniform(contexts, targets.unsqueeze(-1)).squeeze(-1)
    again = peer.base.uint32_to_uniform(torch.tensor(words, dtype=torch.int64))
    assert torch.equal(uniforms, again), "word -> uniform mismatch"
    return [int(w) for w in words]


def sbw_internals(peer: Peer, detector, contexts, targets):
    """Seeds and raw Philox words, computed with the peer's own helpers as _score_tokens does."""
    torch, sbw = peer.torch, peer.sbw
    hash_key, gamma_int = detector._get_key_tensors(contexts.device)
    targets = targets.to(dtype=torch.long)
    if detector.scheme == "selfhash":
        h_v = sbw._sbw_hashint(targets)
        cand = hash_key * h_v * h_v
        prefix = contexts[:, 1:]
        if prefix.shape[1] > 0:
            seeds = torch.minimum((hash_key * sbw._sbw_hashint(prefix) * h_v.unsqueeze(1)).min(dim=1).values, cand)
        else:
            seeds = cand
    else:
        seeds = hash_key * sbw._sbw_hashint(contexts).sum(dim=1)
    zeros = torch.zeros(len(targets), dtype=torch.int32)
    words = sbw._sbw_philox4x32_10_i32(
        (targets // 4).to(torch.int32), zeros, zeros.clone(), zeros.clone(),
        (seeds & 0xFFFFFFFF).to(torch.int32), ((seeds >> 32) & 0xFFFFFFFF).to(torch.int32),
    )
    index = (targets % 4).tolist()
    raw = [int(words[i][row]) & 0xFFFFFFFF for row, i in enumerate(index)]
    green = [1.0 if (w & 0x7FFFFFFF) < detector._gamma_int else 0.0 for w in raw]
    assert green == detector._score_tokens(contexts, targets).tolist(), "sbw internals disagree with _score_tokens"
    return [str(int(s)) for s in seeds.tolist()], raw


def detect_case(peer: Peer, case: dict, tokens: list[int], key: int, dedup: bool) -> dict:
    detector = build_detector(peer, case, key, dedup)
    contexts, targets = detector._prepare_inputs(tokens)
    result = detector.detect(tokens)
    record = {
        "detectionKey": str(key),
        "dedup": dedup,
        "positions": kept_positions(tokens, case["contextWidth"], contexts.tolist(), targets.tolist()),
        "numScored": result.num_scored_tokens,
        "score": float(result.score),
        "pValue": float(result.p_value),
        "isWatermarked": bool(result.is_watermarked),
    }
    # long cases keep only the aggregate: per-token bits are pinned by the shorter cases
    with_tokens = result.num_scored_tokens > 0 and len(tokens) <= 600
    if with_tokens:
        record.update(per_token(peer, case, detector, key, contexts, targets))
    if case["scheme"] == "sbw":
        record["gammaInt"] = detector._gamma_int
        if with_tokens:
            record["generatorGreens"] = sbw_generator_greens(peer, case, key, contexts, targets)
    return record


def sbw_generator_greens(peer: Peer, case: dict, key: int, contexts, targets) -> list[float]:
    """Green bits as vLLM's SBW *generator* computes them (SBWWatermarker.bias on a zero logit row
    with delta 1), for the scored (context, token) pairs. For selfhash they equal the detector's
    bits; for lefthash the generator seeds with key * sum(context) and the detector with
    key * sum(hash(context)), so they differ."""
    torch = peer.torch
    watermarker = peer.sbw.SBWWatermarker(key, case["contextWidth"], case["sbwScheme"], case["gamma"], 1.0)
    vocab = int(targets.max()) + 1
    biased = watermarker.bias(torch.zeros(len(targets), vocab), contexts, torch.ones(len(targets)))
    return [float(biased[row, int(token)]) for row, token in enumerate(targets.tolist())]


# ---------------------------------------------------------------------------------------------
# mpmath references
# ---------------------------------------------------------------------------------------------


def log10_gamma_sf_int(n: int, x) -> mpf:
    """log10 Q(n, x) for integer n >= 1: e^{-x} sum_{i<n} x^i/i!, summed exactly at mp.dps."""
    x = mpf(x)
    if x <= 0:
        return mpf(0)
    term = mpf(1)
    total = mpf(1)
    for i in range(1, n):
        term = term * x / i
        total += term
    return (mpmath.log(total) - x) / mpmath.log(10)


def log10_gamma_sf(a, x) -> mpf:
    value = mpmath.gammainc(mpf(a), mpf(x), mpmath.inf, regularized=True)
    return mpmath.log10(value) if value > 0 else mpf("-inf")


def two_precisions(fn, dps_pair=(60, 90), tol=mpf("1e-15")):
    results = []
    for dps in dps_pair:
        with mp.workdps(dps):
            results.append(fn())
    a, b = results
    if not (a == b or abs(a - b) <= tol * max(abs(b), mpf("1e-300"))):
        raise AssertionError(f"precision disagreement: {a} vs {b}")
    return b


def log10_dual_sf(n: int, alpha, s) -> mpf:
    """log10 P[(1-alpha) X + alpha Y > s], X, Y iid Gamma(n, 1), by partial fractions of the MGF
    (1 - a t)^{-n} (1 - b t)^{-n} = sum_j A_j (1 - a t)^{-j} + sum_j B_j (1 - b t)^{-j}, so the
    tail is sum_j A_j Q(j, s/a) + sum_j B_j Q(j, s/b). This is a different route from the
    negative-binomial mixture the TypeScript uses. The signs alternate; mp.dps must exceed the
    cancellation, which `two_precisions` checks."""
    a, b, s = 1 - mpf(alpha), mpf(alpha), mpf(s)
    if s <= 0:
        return mpf(0)
    if b == 0 or a == 0:
        return log10_gamma_sf_int(n, s / (a + b))
    if a == b:
        return log10_gamma_sf_int(2 * n, s / a)

    def part(p, q):
        # A_{n-k} = c^{-n} C(n+k-1, k) (-d/c)^k with c = 1 - q/p, d = q/p; Q(j, x) = e^{-x} sum_{i<j} x^i/i!
        c, d = 1 - q / p, q / p
        x = s / p
        partial = [mpf(0)] * (n + 1)  # partial[j] = sum_{i<j} x^i / i!
        term = mpf(1)
        for i in range(n):
            partial[i + 1] = partial[i] + term
            term = term * x / (i + 1)
        total = mpf(0)
        coefficient = c ** (-n)
        for k in range(n):
            total += coefficient * partial[n - k]
            coefficient = coefficient * (n + k) / (k + 1) * (-d / c)
        return total * mpmath.exp(-x)

    value = part(a, b) + part(b, a)
    if value <= 0:
        raise AssertionError("dual tail lost to cancellation; raise the precision")
    return mpmath.log10(value)


def dual_digits(n: int, alpha, s) -> int:
    """Working digits for log10_dual_sf: the cancellation (about 3n digits at worst over the alphas
    used) plus the depth of the tail, estimated by the moment-matched gamma at low precision."""
    with mp.workdps(30):
        variance = (1 - mpf(alpha)) ** 2 + mpf(alpha) ** 2
        depth = -log10_gamma_sf(n / variance, mpf(s) / variance)
    return 80 + 3 * n + int(max(depth, 0) * 1.5)


def log10_dual_sf_quad(n: int, alpha, s) -> mpf:
    """Independent check for small n: integrate the density of Y against the tail of X."""
    a, b, s = 1 - mpf(alpha), mpf(alpha), mpf(s)

    def integrand(y):
        rest = (s - b * y) / a
        tail = mpf(1) if rest <= 0 else mpmath.power(10, log10_gamma_sf_int(n, rest))
        return y ** (n - 1) * mpmath.exp(-y) / mpmath.factorial(n - 1) * tail

    breaks = sorted({mpf(0), mpf(1), mpf(5), mpf(20), mpf(100), s / b}) + [mpmath.inf]
    return mpmath.log10(mpmath.quad(integrand, breaks))


def log10_binomial_sf(k: int, n: int, p) -> mpf:
    """log10 P[Bin(n, p) >= k], summed from k up at mp.dps (terms decrease for k above the mode)."""
    p = mpf(p)
    q = 1 - p
    if k <= 0:
        return mpf(0)
    if k > n:
        return mpf("-inf")
    log_first = mpmath.loggamma(n + 1) - mpmath.loggamma(k + 1) - mpmath.loggamma(n - k + 1) + k * mpmath.log(p) + (n - k) * mpmath.log(q)
    term, total = mpf(1), mpf(1)
    for i in range(k, n):
        term = term * (n - i) * p / ((i + 1) * q)
        total += term
        if term < total * mpf(10) ** (-mp.dps - 5) and i > n * p:
            break
    return (log_first + mpmath.log(total)) / mpmath.log(10)


def log10_normal_sf(z) -> mpf:
    return mpmath.log10(mpmath.erfc(mpf(z) / mpmath.sqrt(2)) / 2)


def to_double(value) -> float | None:
    if value == mpf("-inf"):
        return None
    return float(value)


# ---------------------------------------------------------------------------------------------
# The vector set
# ---------------------------------------------------------------------------------------------

HMAC_KEY_256 = int("8f" * 32, 16) - 12345
HMAC_KEY_MAX = 2**256 - 1


def case_list() -> list[dict]:
    cases: list[dict] = []

    def add(name, scheme, prf, key, width, gen, detect_keys=None, dedups=(True,), shipped="main", **params):
        case = {"name": name, "scheme": scheme, "prf": prf, "engineKey": str(key), "contextWidth": width,
                "generation": gen, "shipped": shipped, **params}
        case["detections"] = [(k, d) for k in (detect_keys or [key]) for d in dedups]
        cases.append(case)

    wide = {"kind": "peer-watermarker", "steps": 96, "vocab": 128, "scale": 1.0, "seed": 11}
    rep = {"kind": "peer-watermarker", "steps": 80, "vocab": 16, "scale": 1.0, "seed": 12, "peak": [3, 3.0]}
    null = {"kind": "uniform-random", "steps": 120, "vocab": 64, "seed": 13}
    longg = {"kind": "peer-watermarker", "steps": 1200, "vocab": 64, "scale": 0.5, "seed": 14}

    # gumbel x philox (shipped on main) and x hmac-sha256-v1 (shipped in the early revision)
    add("gumbel-philox-k42-w4", "gumbel", "philox", 42, 4, wide, [42, 43], (True, False))
    add("gumbel-philox-k0-w1-repetitive", "gumbel", "philox", 0, 1, rep, None, (True, False))
    add("gumbel-philox-kmax-w5", "gumbel", "philox", UINT64 - 1, 5, {**wide, "seed": 21})
    add("gumbel-philox-k2p32-w16", "gumbel", "philox", 2**32, 16, {**wide, "seed": 22, "steps": 40})
    add("gumbel-philox-w17", "gumbel", "philox", 7, 17, {**wide, "seed": 23, "steps": 40})
    add("gumbel-philox-null", "gumbel", "philox", 42, 4, null, None, (True, False))
    add("gumbel-philox-long-underflow", "gumbel", "philox", 99, 4, longg)
    add("gumbel-hmac-k256-w4", "gumbel", "hmac-sha256-v1", HMAC_KEY_256, 4, {**wide, "vocab": 48, "steps": 64},
        [HMAC_KEY_256, HMAC_KEY_256 + 1], (True, False), shipped="early")
    add("gumbel-hmac-kmax-w1-repetitive", "gumbel", "hmac-sha256-v1", HMAC_KEY_MAX, 1, rep, None, (True, False),
        shipped="early")
    add("gumbel-hmac-k0-w3", "gumbel", "hmac-sha256-v1", 0, 3, {**wide, "vocab": 40, "steps": 48, "seed": 24},
        shipped="early")
    add("gumbel-hmac-long-underflow", "gumbel", "hmac-sha256-v1", 5, 2,
        {**longg, "steps": 420, "vocab": 24, "scale": 0.3}, shipped="early")

    # dual_key_gumbel x philox (shipped) and x hmac (composed)
    for alpha in (0.1, 0.0, 0.5, 1.0, 0.3):
        add(f"dual-philox-k42-w4-a{alpha}", "dual_key_gumbel", "philox", 42, 4, {**wide, "seed": 30}, None,
            (True,), alpha=alpha)
    add("dual-philox-k0-w2-repetitive", "dual_key_gumbel", "philox", 0, 2, rep, None, (True, False), alpha=0.1)
    add("dual-philox-null", "dual_key_gumbel", "philox", 42, 4, null, None, (True,), alpha=0.1)
    add("dual-philox-long-underflow", "dual_key_gumbel", "philox", 77, 4, longg, None, (True,), alpha=0.1)
    add("dual-hmac-k256-w4", "dual_key_gumbel", "hmac-sha256-v1", 2**63 + 5, 4, {**wide, "vocab": 40, "steps": 48},
        None, (True,), shipped="composed", alpha=0.1)

    # red_green x philox (branch) and x hmac (composed)
    for gamma in (0.25, 0.5, 0.3):
        add(f"redgreen-philox-k42-w4-g{gamma}", "red_green", "philox", 42, 4, {**wide, "seed": 40}, [42, 43],
            (True, False), shipped="branch", gamma=gamma, delta=2.0)
    add("redgreen-philox-null", "red_green", "philox", 42, 1, null, None, (True,), shipped="branch", gamma=0.25, delta=2.0)
    add("redgreen-philox-long-underflow", "red_green", "philox", 3, 4, {**longg, "steps": 2500, "scale": 0.2},
        None, (True,), shipped="branch", gamma=0.25, delta=4.0)
    add("redgreen-hmac-k256-w2", "red_green", "hmac-sha256-v1", HMAC_KEY_256, 2, {**wide, "vocab": 40, "steps": 64},
        None, (True, False), shipped="composed", gamma=0.25, delta=2.0)

    # sbw (its own Philox convention; no PRF choice)
    add("sbw-selfhash-k42-w4", "sbw", "sbw-philox", 42, 4, {**wide, "seed": 50}, [42, 43], (True, False),
        sbwScheme="selfhash", gamma=0.5, delta=2.0)
    add("sbw-selfhash-k0-w1", "sbw", "sbw-philox", 0, 1, {**wide, "seed": 51}, None, (True,),
        sbwScheme="selfhash", gamma=0.5, delta=2.0)
    add("sbw-selfhash-big-key-g0.25", "sbw", "sbw-philox", 2**63 - 1, 3, {**rep, "seed": 52}, None, (True, False),
        sbwScheme="selfhash", gamma=0.25, delta=2.0)
    add("sbw-lefthash-k42-w1", "sbw", "sbw-philox", 42, 1, {**wide, "seed": 53}, None, (True,),
        sbwScheme="lefthash", gamma=0.5, delta=2.0)
    add("sbw-lefthash-k9-w3", "sbw", "sbw-philox", 9, 3, {**wide, "seed": 54}, None, (True,),
        sbwScheme="lefthash", gamma=0.5, delta=2.0)
    add("sbw-selfhash-null", "sbw", "sbw-philox", 42, 4, null, None, (True,), sbwScheme="selfhash", gamma=0.5, delta=2.0)
    add("sbw-selfhash-long-underflow", "sbw", "sbw-philox", 1234, 4, {**longg, "steps": 2000, "scale": 0.2},
        None, (True,), sbwScheme="selfhash", gamma=0.5, delta=4.0)
    return cases


def references_for(case: dict, detection: dict, red_green_gamma_eff: dict) -> dict:
    """mpmath values of the peer's formula and of the exact tail at the peer's own score."""
    n, score = detection["numScored"], detection["score"]
    if n == 0:
        return {"peerFormulaLog10": 0.0, "exactLog10": 0.0}
    scheme = case["scheme"]
    if scheme == "gumbel":
        value = two_precisions(lambda: log10_gamma_sf_int(n, score))
        return {"peerFormulaLog10": to_double(value), "exactLog10": to_double(value)}
    if scheme == "dual_key_gumbel":
        alpha = case["alpha"]
        variance = (1 - alpha) ** 2 + alpha**2
        if alpha in (0, 0.5, 1):
            peer = two_precisions(lambda: log10_gamma_sf_int(round(n / variance), score / variance))
        else:
            peer = two_precisions(lambda: log10_gamma_sf(n / variance, score / variance))
        digits = dual_digits(n, alpha, score)
        exact = two_precisions(lambda: log10_dual_sf(n, mpf(alpha), score), (digits, digits + 40))
        return {"peerFormulaLog10": to_double(peer), "exactLog10": to_double(exact)}
    k = round(score)
    if scheme == "red_green":
        gamma = case["gamma"]
        peer = two_precisions(lambda: log10_binomial_sf(k, n, mpf(gamma)))
        exact = two_precisions(lambda: log10_binomial_sf(k, n, mpf(red_green_gamma_eff[gamma]) / 2**24))
        return {"peerFormulaLog10": to_double(peer), "exactLog10": to_double(exact)}
    if scheme == "sbw":
        gamma = case["gamma"]
        z = (score - n * gamma) / math.sqrt(n * gamma * (1 - gamma))  # the peer's double-precision z
        peer = two_precisions(lambda: log10_normal_sf(z))
        exact = two_precisions(lambda: log10_binomial_sf(k, n, mpf(detection["gammaInt"]) / 2**31))
        return {"peerFormulaLog10": to_double(peer), "exactLog10": to_double(exact), "peerZ": z}
    raise ValueError(scheme)


def prf_vectors(peer: Peer) -> dict:
    torch = peer.torch
    out: dict = {"philox": [], "hmac": [], "philoxKnownAnswers": [], "keyDerivation": [], "sbwHash": [], "sbwWords": []}

    # Random123 known-answer tests of Philox4x32-10, run through the peer's own round function.
    known = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
         (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    ]
    for counter, key, expected in known:
        got = peer.philox._philox4x32_10(tuple(torch.tensor([c]) for c in counter), tuple(torch.tensor([k]) for k in key))
        words = [int(w[0]) for w in got]
        assert tuple(words) == expected, "peer Philox disagrees with Random123"
        got_sbw = peer.sbw._sbw_philox4x32_10_i32(
            *(torch.tensor([c], dtype=torch.int64).to(torch.int32) for c in counter),
            *(torch.tensor([k], dtype=torch.int64).to(torch.int32) for k in key),
        )
        assert tuple(int(w[0]) & 0xFFFFFFFF for w in got_sbw) == expected, "sbw Philox disagrees with Random123"
        out["philoxKnownAnswers"].append({"counter": list(counter), "key": list(key), "words": words})

    # vLLM's own compatibility vector (tests/watermarking/test_prf.py) as a sanity check of the tree.
    compat = peer.philox.PhiloxPRF(42).uint32(torch.tensor([[1, 2, 3, 4], [4, 5, 6, 7]]), torch.tensor([[7], [8]]))
    assert compat.reshape(-1).tolist() == [425429266, 3424185538], compat

    contexts = [
        [1, 2, 3, 4], [4, 5, 6, 7], [-1, -1, -1, -1], [-1], [0], [2**31 - 1], [-1, -1, 7],
        list(range(8)), list(range(100, 109)), list(range(16)), list(range(50, 67)), [151645, 198, 872, 25],
    ]
    tokens = [0, 1, 2, 3, 4, 7, 8, 127, 151645, 2**31 - 1]
    keys = [0, 42, 2**32, 2**32 - 1, UINT64 - 1, 15726070495360670683]
    for key in keys:
        prf = peer.philox.PhiloxPRF(key)
        for context in contexts:
            ctx = torch.tensor([context], dtype=torch.int64)
            tok = torch.tensor(tokens, dtype=torch.int64)
            for stream in (0, 1, 2**32, UINT64 - 1) if key in (42, UINT64 - 1) else (0,):
                words = prf.uint32(ctx, tok, stream=stream).reshape(-1).tolist()
                entry = {"key": str(key), "context": context, "tokens": tokens, "stream": str(stream), "words": words}
                if stream == 0:
                    entry["uniforms"] = [f32(v) for v in prf.uniform(ctx, tok).reshape(-1).tolist()]
                out["philox"].append(entry)

    for key in (0, 42, 2**64, HMAC_KEY_256, HMAC_KEY_MAX):
        prf = peer.hmac.HMACSHA256PRF(key)
        for context in contexts[:8]:
            ctx = torch.tensor([context], dtype=torch.int64)
            tok = torch.tensor(tokens, dtype=torch.int64)
            uniforms = prf.uniform(ctx, tok).reshape(-1)
            words = [hmac_word(key, context, t) for t in tokens]
            assert torch.equal(uniforms, peer.base.uint32_to_uniform(torch.tensor(words, dtype=torch.int64)))
            out["hmac"].append({"key": str(key), "context": context, "tokens": tokens, "words": words,
                                "uniforms": [f32(v) for v in uniforms.tolist()]})

    for key in (0, 1, 42, 2**32, 2**63, UINT64 - 1):
        out["keyDerivation"].append({
            "key": str(key),
            "keyA": str(peer.config.derive_watermark_key(key, b"key_a")),
            "keyB": str(peer.config.derive_watermark_key(key, b"key_b")),
        })

    xs = [-1, 0, 1, 2, 3, 127, 151645, 2**31 - 2, 2**31 - 1, 2**32 - 2]
    hashed = peer.sbw._sbw_hashint(torch.tensor(xs, dtype=torch.int64)).tolist()
    out["sbwHash"] = [{"x": x, "hash": h} for x, h in zip(xs, hashed)]
    for seed in (0, 1, -1, 2**62 + 12345, -(2**63), 2**63 - 1):
        seeds = torch.tensor([seed] * 8, dtype=torch.int64)
        counter = torch.tensor(list(range(8)), dtype=torch.int64)
        zeros = torch.zeros(8, dtype=torch.int32)
        words = peer.sbw._sbw_philox4x32_10_i32(
            (counter // 4).to(torch.int32), zeros, zeros.clone(), zeros.clone(),
            (seeds & 0xFFFFFFFF).to(torch.int32), ((seeds >> 32) & 0xFFFFFFFF).to(torch.int32),
        )
        picked = [int(words[t % 4][t]) & 0xFFFFFFFF for t in range(8)]
        out["sbwWords"].append({"seed": str(seed), "tokens": list(range(8)), "words": picked})
    return out


def red_green_effective_gamma(peer: Peer, gammas) -> dict:
    """Count of mantissas m in [0, 2^24) whose peer uniform is green (uniform < gamma), by
    evaluating the peer's uint32_to_uniform and the detector's comparison on all of them."""
    torch = peer.torch
    mantissas = torch.arange(0, 2**24, dtype=torch.int64) << 8
    uniforms = peer.base.uint32_to_uniform(mantissas)
    return {gamma: int((uniforms < gamma).sum()) for gamma in gammas}


def invalid_vectors(peer: Peer) -> list[dict]:
    torch = peer.torch
    out = []

    def attempt(what, fn):
        try:
            fn()
            out.append({"what": what, "peerRaises": None})
        except Exception as error:  # noqa: BLE001 - record the peer's exception class
            out.append({"what": what, "peerRaises": type(error).__name__})

    attempt("philox key 2^64", lambda: peer.philox.PhiloxPRF(UINT64))
    attempt("philox key -1", lambda: peer.philox.PhiloxPRF(-1))
    attempt("hmac key 2^256", lambda: peer.hmac.HMACSHA256PRF(2**256))
    attempt("context width 0", lambda: peer.gumbel.GumbelWatermarkDetector(1, 0))
    attempt("dual alpha 1.5", lambda: peer.gumbel.DualKeyGumbelWatermarkDetector(1, 4, alpha=1.5))
    attempt("red_green gamma 0", lambda: peer.red_green.RedGreenWatermarkDetector(1, 4, gamma=0.0))
    attempt("sbw gamma 1", lambda: peer.sbw.SBWWatermarkDetector(1, 4, gamma=1.0))
    attempt("sbw key 2^63 (detect)", lambda: peer.sbw.SBWWatermarkDetector(2**63, 4).detect([1, 2, 3]))
    attempt("sbw key 2^64-1 (detect)", lambda: peer.sbw.SBWWatermarkDetector(UINT64 - 1, 4).detect([1, 2, 3]))
    attempt("derive_watermark_key 2^64", lambda: peer.config.derive_watermark_key(UINT64, b"key_a"))
    attempt("philox stream 2^64", lambda: peer.philox.PhiloxPRF(1).uint32(torch.tensor([[1]]), torch.tensor([1]), stream=UINT64))
    return out


def gamma_tail_references() -> list[dict]:
    out = []
    grid = [(1, [1e-300, 1e-3, 0.5, 1, 10, 100, 745, 800, 5000]),
            (2, [0.1, 3, 50, 1000]),
            (5, [1, 5, 20, 200, 2000]),
            (64, [10, 63, 64, 65, 100, 296.27295787856264, 700, 2000]),
            (100, [50, 99.5, 150, 500, 1000, 10000]),
            (1000, [900, 1000, 1100, 1500, 3000, 20000]),
            (10000, [9900, 10000, 10300, 12000, 30000]),
            (100000, [99000, 100000, 101000, 120000, 300000]),
            (1000000, [999000, 1000000, 1003000, 1200000, 3000000])]
    for n, xs in grid:
        for x in xs:
            if n <= 100000:
                value = two_precisions(lambda: log10_gamma_sf_int(n, x), (60, 80) if n > 10000 else (60, 90))
                check = two_precisions(lambda: log10_gamma_sf(n, x), (50, 70))
                assert abs(value - check) <= mpf("1e-13") * max(abs(value), 1), (n, x, value, check)
            else:
                value = two_precisions(lambda: log10_gamma_sf(n, x), (50, 70))
            out.append({"a": n, "x": x, "log10Sf": to_double(value)})
    # real shapes, as the dual-key moment match uses: a = n / ((1 - alpha)^2 + alpha^2)
    for a, xs in [(0.5, [1e-5, 0.25, 3, 400]), (1.2195121951219512, [0.1, 2, 30, 900]),
                  (78.04878048780488, [50, 78, 90, 294.89, 1500]), (1219.5121951219512, [1100, 1219.5, 1400, 9000]),
                  (123456.789, [120000, 123456.789, 130000, 400000])]:
        for x in xs:
            value = two_precisions(lambda: log10_gamma_sf(a, x), (50, 70))
            out.append({"a": a, "x": x, "log10Sf": to_double(value)})
    return out


def dual_tail_references() -> list[dict]:
    out = []
    points = [(1, 0.1, [0.01, 1, 5, 30, 700]), (1, 0.3, [2, 40]), (2, 0.25, [1, 6, 60]),
              (5, 0.1, [2, 5, 12, 40, 400]), (5, 0.7, [3, 20]), (20, 0.1, [15, 25, 60, 800]),
              (64, 0.1, [50, 64, 120, 241.81126265648692, 900]), (64, 0.2, [70, 215.24386344560963, 2000]),
              (200, 0.1, [180, 260, 800, 1600]), (200, 0.45, [150, 400, 1500]), (300, 0.01, [310, 2000])]
    for n, alpha, ss in points:
        for s in ss:
            digits = dual_digits(n, alpha, s)
            value = two_precisions(lambda: log10_dual_sf(n, mpf(alpha), s), (digits, digits + 40))
            if n <= 5 and value > -60:
                with mp.workdps(40):
                    check = log10_dual_sf_quad(n, mpf(alpha), s)
                assert abs(check - value) <= mpf("1e-12") * max(1, abs(value)), (n, alpha, s, value, check)
            out.append({"n": n, "alpha": alpha, "s": s, "log10Sf": to_double(value)})
    return out


def check_goldens(peer: Peer, tree: str) -> list[str]:
    path = os.path.join(tree, GOLDENS)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        goldens = json.load(f)["candidates"]
    checked = []
    for name, candidate in goldens.items():
        configuration = candidate["configuration"]
        scheme, scheme_config = configuration["scheme"], configuration["scheme_config"]
        key = int(configuration["detection_key"])
        width = scheme_config["context_width"]
        dedup = scheme_config["detection_deduplicate_contexts"]
        threshold = scheme_config["p_value_threshold"]
        if scheme == "gumbel":
            detector = peer.gumbel.GumbelWatermarkDetector(key, width, threshold, configuration["prf"], dedup)
        elif scheme == "dual_key_gumbel":
            detector = peer.gumbel.DualKeyGumbelWatermarkDetector(
                key, width, threshold, configuration["prf"], dedup, scheme_config["detection_alpha"])
            derived = candidate["resolved"]["derived_keys"]
            assert str(detector.prf.key) == derived["key_a"] and str(detector.key_b_prf.key) == derived["key_b"]
        elif scheme == "sbw":
            resolved = candidate["resolved"]["watermark_config"]
            detector = peer.sbw.SBWWatermarkDetector(
                key, width, resolved["sbw_scheme"], resolved["sbw_gamma"], threshold, dedup)
        else:
            continue
        result = detector.detect(candidate["generation"])
        expected = candidate["detection"]
        assert result.num_scored_tokens == expected["num_scored_tokens"], name
        assert math.isclose(result.score, expected["score"], rel_tol=1e-9), (name, result.score)
        assert math.isclose(result.p_value, expected["p_value"], rel_tol=1e-9), (name, result.p_value)
        checked.append(name)
    return checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--vllm-git", help="git directory of vllm-project/vllm holding the PEER_FILES commits")
    source.add_argument("--vllm-tree", help="directory holding the PEER_FILES versions at their paths")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()

    started = time.time()
    tree = materialize(args.vllm_git) if args.vllm_git else os.path.abspath(args.vllm_tree)
    files = check_blobs(tree)
    shims = install_shims(tree)
    peer = Peer()
    torch = peer.torch
    torch.set_num_threads(1)

    goldens_checked = check_goldens(peer, tree)
    print(f"goldens re-detected: {len(goldens_checked)}", file=sys.stderr)

    section = time.time()
    cases = case_list()
    gammas = sorted({c["gamma"] for c in cases if c["scheme"] == "red_green"} | {0.1, 0.7, 1 / 3, 0.9, 1e-7})
    gamma_eff = red_green_effective_gamma(peer, gammas)

    out_cases = []
    for case in cases:
        tokens = generate(peer, case)
        detections = []
        for key, dedup in case.pop("detections"):
            detection = detect_case(peer, case, tokens, key, dedup)
            detection.update(references_for(case, detection, gamma_eff))
            detections.append(detection)
        out_cases.append({**case, "tokens": tokens, "detections": detections})
        print(f"{case['name']}: {len(tokens)} tokens, p = {[d['pValue'] for d in detections]}", file=sys.stderr)

    print(f"cases: {time.time() - section:.0f} s", file=sys.stderr)
    section = time.time()
    prf = prf_vectors(peer)
    invalid = invalid_vectors(peer)
    print(f"prf: {time.time() - section:.0f} s", file=sys.stderr)
    section = time.time()
    gamma_tail = gamma_tail_references()
    print(f"gamma tail: {time.time() - section:.0f} s", file=sys.stderr)
    section = time.time()
    dual_tail = dual_tail_references()
    print(f"dual tail: {time.time() - section:.0f} s", file=sys.stderr)
    document = {
        "description": "vLLM native watermarking (vllm/v1/watermarking) run on CPU; see "
                       "packages/core/reference/foreign/README.md and docs/spec/foreign-vllm.md",
        "generator": "packages/core/reference/foreign/vllm_vectors.py",
        "peer": {"repository": "vllm-project/vllm", "files": files, "shims": shims,
                 "torch": torch.__version__, "python": sys.version.split()[0], "mpmath": mpmath.__version__,
                 "goldensRedetected": goldens_checked},
        "conventions": {
            "keys": "decimal strings (64-bit Philox and SBW keys, 256-bit HMAC keys)",
            "uniforms": "float32 values written as the exact double",
            "positions": "indices into tokens of the (context, token) pairs the peer's detector scored, in order",
            "pValue": "the peer's double; 0 where it underflows",
            "peerFormulaLog10": "mpmath log10 of the peer's formula at the peer's score (null: -infinity)",
            "exactLog10": "mpmath log10 of the exact tail under the stated null (see the spec)",
            "shipped": "main: on vLLM main; early: the HMAC revision; branch: red_green branch; "
                       "composed: vLLM's classes combined as vLLM never shipped",
        },
        "redGreenGreenCounts": {str(g): n for g, n in gamma_eff.items()},
        "prf": prf,
        "invalid": invalid,
        "cases": out_cases,
        "gammaTail": gamma_tail,
        "dualTail": dual_tail,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    # The repository's formatter owns the layout of JSON under test/vectors/foreign (`pnpm lint`).
    repo_root = os.path.normpath(os.path.join(HERE, "..", "..", "..", ".."))
    formatted = subprocess.run(["pnpm", "exec", "biome", "format", "--write", os.path.abspath(args.out)],
                               cwd=repo_root, capture_output=True, text=True)
    if formatted.returncode != 0:
        print(f"warning: biome did not format {args.out}: {formatted.stderr.strip()}", file=sys.stderr)
    print(f"wrote {args.out} in {time.time() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
