#!/usr/bin/python3
"""Writes packages/core/test/vectors/foreign/sglang.json by running SGLang's own watermarking code.

Nothing of SGLang is copied into this repository. The script imports SGLang's watermarking package
(python/sglang/srt/sampling/watermarking/) from a source tree given on the command line, installs
the shims listed in `install_shims` for what those files import but cannot load here (msgspec, the
Triton selector module), and records what SGLang's code returns: context hashes, token hashes, the
dual-key coin, float32 log-uniforms, the tokens its selector picks, whole watermarked generations
driven through its `WatermarkState`, and its detector's statistics. High-precision references for
the Gamma tails come from mpmath.

Usage (from the repository root; Debian packages python3-torch python3-mpmath python3-numpy):

    # a directory holding the PEER_FILES versions at their repository paths
    /usr/bin/python3 packages/core/reference/foreign/sglang_vectors.py --sglang-tree /path/to/tree
    # or a git directory of sgl-project/sglang that holds the commits in PEER_FILES
    /usr/bin/python3 packages/core/reference/foreign/sglang_vectors.py --sglang-git /path/to/sglang.git

The script checks every file's git blob id against PEER_FILES before importing anything and
refuses a mismatch.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import types
from types import SimpleNamespace

import mpmath
from mpmath import mp, mpf

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "..", "test", "vectors", "foreign", "sglang.json"))

PACKAGE = "python/sglang/srt/sampling/watermarking"
# Repository path -> (commit the version was taken from, git blob id of that version). The three
# files are the newest state of SGLang pull request #37577 ("Add Aaronson-Gumbel text watermarking")
# found: core.py with the float32 log1p fix for the top 128 hashes, relative imports throughout.
# detector.py's newest stored version (519697e3) is the one core.py imports from (`.detector`).
PEER_FILES: dict[str, tuple[str, str]] = {
    f"{PACKAGE}/core.py": ("26cd7e8c75bd2f5e647d39b005ab5647e7e002b8", "bdb2bbe788f07c8e1fd6e6688702eeb4f2f61080"),
    f"{PACKAGE}/config.py": ("26cd7e8c75bd2f5e647d39b005ab5647e7e002b8", "809071d055dbc8d2fd30f3f72c262a9ec1c7bd86"),
    f"{PACKAGE}/detector.py": ("519697e37ffc75cb07e130987651b65847adca16", "720e295cbdc6501cdaa1706c038221e168cc621b"),
}

MASK32 = 0xFFFFFFFF
UINT64 = 1 << 64


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def materialize(git_dir: str) -> str:
    tree = tempfile.mkdtemp(prefix="sglang-peer-")
    for path, (commit, _) in PEER_FILES.items():
        data = subprocess.run(
            ["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], check=True, capture_output=True
        ).stdout
        os.makedirs(os.path.dirname(os.path.join(tree, path)), exist_ok=True)
        with open(os.path.join(tree, path), "wb") as f:
            f.write(data)
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
        found[path] = {"commit": commit, "blob": blob, "chars": len(data.decode("utf-8"))}
    return found


def _package(name: str, path: str | None) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = [path] if path else []
    sys.modules[name] = module
    return module


def install_shims(tree: str) -> list[dict[str, str]]:
    """Stand-ins for what SGLang's watermarking files import but cannot load on this machine."""
    shims = []
    # 1. Package __init__ files of sglang, sglang.srt, sglang.srt.sampling import the engine; the
    #    watermarking package's own __init__ only re-exports the detector. All are created empty,
    #    pointing at the tree, so only core.py, config.py and detector.py execute.
    for name, rel in [
        ("sglang", "python/sglang"),
        ("sglang.srt", "python/sglang/srt"),
        ("sglang.srt.sampling", "python/sglang/srt/sampling"),
        ("sglang.srt.sampling.watermarking", PACKAGE),
        ("sglang.kernels", None),
        ("sglang.kernels.ops", None),
        ("sglang.kernels.ops.sampling", None),
    ]:
        _package(name, os.path.join(tree, rel) if rel else None)
    shims.append({"module": "sglang, sglang.srt, sglang.srt.sampling, sglang.srt.sampling.watermarking (package __init__)",
                  "stand-in": "empty packages whose __path__ is the tree",
                  "why": "the engine's __init__ files import CUDA-only code; the watermarking modules do not need them"})

    # 2. msgspec is not packaged for Debian. SGLang uses msgspec.Struct only as frozen record types
    #    (WatermarkStatistics, WatermarkDetection, WatermarkRequestConfig, ...); the stand-in builds
    #    the same records from the class annotations. No value passes through msgspec's codecs.
    try:
        import msgspec  # noqa: F401
    except ImportError:
        msgspec_module = types.ModuleType("msgspec")

        class Struct:
            def __init_subclass__(cls, **kwargs):
                fields = []
                for klass in reversed(cls.__mro__):
                    for name in getattr(klass, "__annotations__", {}):
                        if name not in fields:
                            fields.append(name)
                cls.__struct_fields__ = tuple(fields)

            def __init__(self, *args, **kwargs):
                names = self.__struct_fields__
                values = dict(zip(names, args))
                values.update(kwargs)
                for name in names:
                    if name in values:
                        value = values[name]
                    elif hasattr(type(self), name):
                        value = getattr(type(self), name)
                    else:
                        raise TypeError(f"missing field {name}")
                    object.__setattr__(self, name, value)

            def __setattr__(self, name, value):
                raise AttributeError("frozen")

        structs = types.ModuleType("msgspec.structs")
        structs.fields = lambda value: [SimpleNamespace(name=n) for n in value.__struct_fields__]

        def replace(value, **changes):
            fields = {n: getattr(value, n) for n in value.__struct_fields__}
            fields.update(changes)
            return type(value)(**fields)

        structs.replace = replace
        msgspec_module.Struct = Struct
        msgspec_module.structs = structs
        sys.modules["msgspec"] = msgspec_module
        sys.modules["msgspec.structs"] = structs
        shims.append({"module": "msgspec.Struct, msgspec.structs", "stand-in": "plain frozen records from annotations",
                      "why": "msgspec is not packaged for Debian; it only holds records here, no codec runs"})

    # 3. sglang.kernels.ops.sampling.textseal_selector is the Triton module (CUDA only). On CPU,
    #    WatermarkState.force calls only watermark_selector_num_splits from it, to size buffers the
    #    CUDA kernels use; the stand-in is SGLang's definition, cdiv(vocab_size, 8192).
    selector = types.ModuleType("sglang.kernels.ops.sampling.textseal_selector")
    selector.watermark_selector_num_splits = lambda vocab_size: -(-vocab_size // 8192)
    sys.modules["sglang.kernels.ops.sampling.textseal_selector"] = selector
    shims.append({"module": "sglang.kernels.ops.sampling.textseal_selector",
                  "stand-in": "watermark_selector_num_splits = cdiv(vocab, 8192) only",
                  "why": "Triton kernels; on CPU only the buffer-size helper is called, and the buffers are unused"})
    return shims


class Peer:
    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.config = importlib.import_module("sglang.srt.sampling.watermarking.config")
        self.detector = importlib.import_module("sglang.srt.sampling.watermarking.detector")
        self.core = importlib.import_module("sglang.srt.sampling.watermarking.core")


def f32_list(tensor) -> list[float]:
    return [float(v) for v in tensor.to(dtype=tensor.dtype).tolist()]


def unsigned(key: int) -> int:
    return key % UINT64


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


def exact_log10(n: int, score: float) -> float | None:
    if n == 0:
        return 0.0
    results = []
    for dps in (60, 90):
        with mp.workdps(dps):
            results.append(log10_gamma_sf_int(n, mpf(score)))
    a, b = results
    assert abs(a - b) <= mpf("1e-15") * max(abs(b), mpf("1e-300")), (a, b)
    return float(b)


# ---------------------------------------------------------------------------------------------
# Vectors
# ---------------------------------------------------------------------------------------------


def key_vectors(peer: Peer) -> dict:
    parse = peer.config.parse_watermark_key
    valid = []
    for text in ["0", "1", "0123456789abcdef", "0x0123456789ABCDEF", "7fffffffffffffff", "8000000000000000",
                 "ffffffffffffffff", "0XfedCBA9876543210", "abc", "0b1"]:
        valid.append({"text": text, "signed": str(parse(text)), "unsigned": str(unsigned(parse(text)))})
    invalid = []
    for text in ["", "0x", "12345678901234567", "0x12345678901234567", "xyz", "-1", " 1", "1 ", "+1", "g"]:
        try:
            parse(text)
        except ValueError as error:
            invalid.append({"text": text, "error": str(error)})
        else:
            raise AssertionError(f"SGLang accepted {text!r}")
    return {"valid": valid, "invalid": invalid}


def hash_vectors(peer: Peer, rng: random.Random) -> dict:
    torch = peer.torch
    det = peer.detector
    core = peer.core
    contexts = [[], [0], [MASK32], [1, 2, 3, 4], [4, 3, 2, 1], [0, 0, 0, 0], [151643, 9707, 11, 1879]]
    for length in [1, 2, 3, 4, 5, 8, 16, 31, 64]:
        contexts.append([rng.randrange(0, 1 << 32) for _ in range(length)])
        contexts.append([rng.randrange(0, 200000) for _ in range(length)])
    context_rows = []
    width = max(len(c) for c in contexts)
    padded = torch.tensor([c + [0] * (width - len(c)) for c in contexts], dtype=torch.int64)
    lengths = torch.tensor([len(c) for c in contexts], dtype=torch.int32)
    torch_hashes = core._hash_contexts(padded, lengths).tolist()
    for context, torch_hash in zip(contexts, torch_hashes):
        value = det.hash_context(context)
        assert value == torch_hash, (context, value, torch_hash)
        context_rows.append({"context": context, "hash": value})

    keys = [0, 1, 0x0123456789ABCDEF, 0xFEDCBA9876543210, UINT64 - 1, 1 << 63, 0xFFFFFFFF, 1 << 32]
    keys += [rng.randrange(0, UINT64) for _ in range(4)]
    token_rows = []
    for key in keys:
        signed = key if key < (1 << 63) else key - UINT64
        for _ in range(3):
            context_hash = rng.randrange(0, 1 << 32)
            tokens = [0, 1, 2, 3, MASK32, rng.randrange(0, 1 << 32), rng.randrange(0, 200000)]
            values = [det.watermark_hash(signed, context_hash, t) for t in tokens]
            torch_values = core._watermark_hash32_torch(
                torch.tensor([signed], dtype=torch.int64),
                torch.tensor([context_hash], dtype=torch.int64),
                torch.tensor(tokens, dtype=torch.int64),
            )[0].tolist()
            assert values == torch_values, (key, context_hash)
            token_rows.append({"key": str(key), "contextHash": context_hash, "tokens": tokens, "hashes": values})

    coin_rows = []
    for _ in range(16):
        key_a = rng.randrange(0, UINT64)
        key_b = rng.randrange(0, UINT64)
        sa = key_a if key_a < (1 << 63) else key_a - UINT64
        sb = key_b if key_b < (1 << 63) else key_b - UINT64
        context_hash = rng.randrange(0, 1 << 32)
        coin = det.position_coin(sa, sb, context_hash)
        for probability in [0.5, 0.25, 0.9]:
            threshold = int(probability * (1 << 32))
            mask = core._dual_key_a_mask_torch(
                torch.tensor([sa], dtype=torch.int64), torch.tensor([sb], dtype=torch.int64),
                torch.tensor([context_hash], dtype=torch.int64), torch.tensor([threshold], dtype=torch.int64),
            ).tolist()[0]
            assert mask == (coin < threshold)
        coin_rows.append({"keyA": str(key_a), "keyB": str(key_b), "contextHash": context_hash, "coin": coin})
    return {"contexts": context_rows, "tokens": token_rows, "coins": coin_rows}


def uniform_vectors(peer: Peer, rng: random.Random) -> list[dict]:
    torch = peer.torch
    det = peer.detector
    hashes = [0, 1, 2, 127, 128, 1 << 20, (1 << 31) - 2, (1 << 31) - 1, 1 << 31, (1 << 31) + 1,
              (1 << 32) - 256, (1 << 32) - 129, (1 << 32) - 128, (1 << 32) - 2, (1 << 32) - 1]
    hashes += [rng.randrange(0, 1 << 32) for _ in range(48)]
    logs = peer.core._log_uniform_from_hash_torch(torch.tensor(hashes, dtype=torch.int64)).tolist()
    rows = []
    for h, log_u in zip(hashes, logs):
        uniform = (h + 0.5) / (1 << 32)
        score = -math.log1p(-uniform)
        rows.append({"hash": h, "logUniformF32": float(log_u), "uniform": uniform, "score": score})
    return rows


def selector_vectors(peer: Peer, rng: random.Random) -> list[dict]:
    torch = peer.torch
    core = peer.core
    rows = []
    generator = torch.Generator().manual_seed(20260917)
    for index in range(40):
        vocab = [7, 50, 128, 256][index % 4]
        dual = index % 3 == 2
        scale = [0.5, 2.0, 5.0][index % 3]
        logits = torch.randn((1, vocab), generator=generator) * scale
        temperature = torch.tensor([[0.7, 1.0, 1.3][index % 3]])
        top_k = torch.tensor([[vocab, 20, 5, vocab][index % 4]])
        top_p = torch.tensor([[1.0, 0.95, 0.8, 1.0][(index // 4) % 4]])
        min_p = torch.tensor([[0.0, 0.0, 0.05][index % 3]])
        probabilities = core._truncate_probabilities(
            logits, temperature.view(-1, 1), top_k.view(-1), top_p.view(-1), min_p.view(-1)
        ).to(torch.float32)
        key = rng.randrange(0, UINT64)
        signed = key if key < (1 << 63) else key - UINT64
        context = [rng.randrange(0, vocab) for _ in range(1 + index % 4)]
        context_hash = peer.detector.hash_context(context)
        keys = torch.tensor([signed], dtype=torch.int64)
        hashes = torch.tensor([context_hash], dtype=torch.int64)
        row = {"vocab": vocab, "key": str(key), "context": context, "contextHash": context_hash,
               "probabilities": f32_list(probabilities[0])}
        if dual:
            key_b = rng.randrange(0, UINT64)
            signed_b = key_b if key_b < (1 << 63) else key_b - UINT64
            mixing = [0.5, 0.25, 0.75][index % 3]
            threshold = int(mixing * (1 << 32))
            selected = core.select_watermark_tokens_torch(
                probabilities, hashes, keys, torch.tensor([signed_b], dtype=torch.int64),
                torch.tensor([threshold], dtype=torch.int64),
            )
            row.update({"keyB": str(key_b), "mixingProbability": mixing})
        else:
            selected = core.select_watermark_tokens_torch(probabilities, hashes, keys)
        row["selected"] = int(selected[0])
        rows.append(row)
    return rows


def sample_ordinary(torch, probabilities, generator) -> int:
    return int(torch.multinomial(probabilities[0].to(torch.float64), 1, generator=generator)[0])


def generate(peer: Peer, case: dict) -> dict:
    """Drives SGLang's WatermarkState (CPU path) through one request, step by step.

    Logits come from a seeded toy model (a fixed random table indexed by the previous token plus
    seeded noise). Rows SGLang forces come back one-hot; other rows are sampled ordinarily with a
    seeded torch.multinomial over SGLang's own truncated probabilities.
    """
    torch = peer.torch
    core = peer.core
    vocab = case["vocab"]
    generator = torch.Generator().manual_seed(case["seed"])
    table = torch.randn((vocab, vocab), generator=generator) * case["scale"]
    state = core.WatermarkState(
        max_num_reqs=1, context_window=case["serverWindow"], max_contexts_per_req=case.get("historyCapacity", 4096),
        key=case["keyHex"], device="cpu", key_b=case.get("keyBHex"),
        mixing_probability=case.get("mixingProbability", 0.5), max_probability=case.get("maxProbability", 1.0),
    )
    prompt = case["prompt"]
    pool = torch.tensor([0], dtype=torch.int64)
    state.init_from_prompt(pool, [prompt[-case["serverWindow"]:]])
    key = peer.config.parse_watermark_key(case["keyHex"])
    sampling = SimpleNamespace(
        has_watermark_candidates=True,
        watermark_keys=torch.tensor([key], dtype=torch.int64),
        watermark_context_windows=torch.tensor([case["window"]], dtype=torch.int32),
        watermark_enabled=torch.tensor([True]),
        top_ks=torch.tensor([case.get("topK", vocab)], dtype=torch.int32),
        max_top_k=case.get("topK", vocab),
        temperatures=torch.tensor([[case.get("temperature", 1.0)]]),
        top_ps=torch.tensor([case.get("topP", 1.0)]),
        min_ps=torch.tensor([0.0]),
    )
    tokens = list(prompt)
    forced = []
    for _ in range(case["steps"]):
        logits = (table[tokens[-1] % vocab] + torch.randn(vocab, generator=generator) * 0.5).view(1, -1)
        before = int(state.num_watermarked_contexts[0])
        state.force(logits, pool, sampling)
        was_forced = int(state.num_watermarked_contexts[0]) > before
        if was_forced:
            finite = torch.isfinite(logits[0]).nonzero().view(-1).tolist()
            assert len(finite) == 1
            token = finite[0]
        else:
            probabilities = core._truncate_probabilities(
                logits, sampling.temperatures, sampling.top_ks, sampling.top_ps, sampling.min_ps
            )
            token = sample_ordinary(torch, probabilities, generator)
        forced.append(was_forced)
        tokens.append(token)
        state.append(pool, torch.tensor([token], dtype=torch.int32))
    return {"completion": tokens[len(prompt):], "forced": forced}


def stats_dict(stats) -> dict | None:
    if stats is None:
        return None
    return {"numContexts": stats.num_contexts, "score": stats.score, "zScore": stats.z_score,
            "pValue": stats.p_value, "logPValue": stats.log_p_value,
            "exactLog10": exact_log10(stats.num_contexts, stats.score)}


def detect(peer: Peer, tokens, prompt, key_hex, key_b_hex, mixing, window, max_contexts) -> dict:
    detector = peer.detector.WatermarkDetector(
        key_hex, key_b=key_b_hex, mixing_probability=mixing, context_window=window, max_contexts=max_contexts
    )
    result = detector.detect_tokens(tokens, prompt_token_ids=prompt)
    return {
        "combined": stats_dict(result.combined),
        "keyAAllPositions": stats_dict(result.key_a_all_positions),
        "keyBAllPositions": stats_dict(result.key_b_all_positions),
        "keyAPartition": stats_dict(result.key_a_partition),
        "keyBPartition": stats_dict(result.key_b_partition),
        "prefixLimitReached": result.prefix_limit_reached,
        "tokensExamined": result.tokens_examined,
        "repeatedContexts": result.repeated_contexts,
        "skippedInitialTokens": result.skipped_initial_tokens,
    }


def per_token(peer: Peer, tokens, prompt, key: int, window: int) -> list[dict]:
    """Every completion position's context, context hash, token hash and score, without deduplication."""
    det = peer.detector
    full = prompt[-window:] + tokens
    start = min(len(prompt), window)
    first = start if prompt else min(window, len(tokens))
    rows = []
    for position in range(first, len(full)):
        context = full[max(0, position - window):position]
        context_hash = det.hash_context(context)
        token_hash = det.watermark_hash(key, context_hash, full[position])
        rows.append({"position": position - start, "contextHash": context_hash, "hash": token_hash,
                     "score": det.WatermarkDetector._score(key, context_hash, full[position])})
    return rows


def case_list(rng: random.Random) -> list[dict]:
    def key_hex():
        return f"{rng.randrange(0, UINT64):016x}"

    cases = []

    def add(name, **params):
        case = {"name": name, "seed": 1000 + len(cases), "vocab": 64, "scale": 2.0, "serverWindow": 4, "window": 4,
                "steps": 120, "prompt": [rng.randrange(0, 64) for _ in range(6)], "keyHex": key_hex()}
        case.update(params)
        cases.append(case)

    add("single key, window 4")
    add("single key, window 1, repetitive", window=1, serverWindow=1, scale=4.0, steps=150)
    add("single key, window 2, low entropy", window=2, serverWindow=2, scale=6.0, steps=150)
    add("request window 3 under server window 6", window=3, serverWindow=6)
    add("top-k 8, temperature 0.8", topK=8, temperature=0.8)
    add("top-p 0.9", topP=0.9)
    add("short prompt (2 tokens), window 4", prompt=[5, 9])
    add("entropy gate max_probability 0.6", maxProbability=0.6, scale=4.0)
    add("dual key, mixing 0.5", keyBHex=key_hex(), mixingProbability=0.5)
    add("dual key, mixing 0.25", keyBHex=key_hex(), mixingProbability=0.25)
    add("history capacity 40 (prefix limit)", historyCapacity=40, maxContexts=40)
    add("key with 0x prefix and high bit", keyHex="0xFEDCBA9876543210")
    add("long, vocab 256 (far tail)", vocab=256, steps=1500, scale=1.0)
    add("long dual key, vocab 256 (far tail)", vocab=256, steps=1500, scale=1.0, keyBHex=key_hex())
    return cases


def run_cases(peer: Peer, rng: random.Random) -> list[dict]:
    out = []
    for case in case_list(rng):
        generated = generate(peer, case)
        completion = generated["completion"]
        key = peer.config.parse_watermark_key(case["keyHex"])
        key_b = case.get("keyBHex")
        mixing = case.get("mixingProbability", 0.5)
        max_contexts = case.get("maxContexts", 4096)
        record = dict(case)
        record["key"] = str(unsigned(key))
        if key_b is not None:
            record["keyB"] = str(unsigned(peer.config.parse_watermark_key(key_b)))
        record["completion"] = completion
        record["forced"] = [i for i, f in enumerate(generated["forced"]) if f]
        window = case["window"]
        record["detections"] = {
            "withPrompt": detect(peer, completion, case["prompt"], case["keyHex"], key_b, mixing, window, max_contexts),
            "withoutPrompt": detect(peer, completion, [], case["keyHex"], key_b, mixing, window, max_contexts),
            "wrongKey": detect(peer, completion, case["prompt"], "0x5eed", None, 0.5, window, max_contexts),
        }
        if len(completion) <= 200:
            record["perToken"] = per_token(peer, completion, case["prompt"], key, window)
        out.append(record)
        combined = record["detections"]["withPrompt"]["combined"]
        print(f"  {case['name']}: n={combined['numContexts']} log10p={combined['exactLog10']:.2f} "
              f"forced={len(record['forced'])}/{len(completion)}", file=sys.stderr)
    return out


def invalid_vectors(peer: Peer) -> list[dict]:
    det = peer.detector
    rows = []

    def attempt(what, fn):
        try:
            fn()
        except ValueError as error:
            rows.append({"what": what, "error": str(error)})
        else:
            raise AssertionError(f"SGLang accepted {what}")

    attempt("token id 2^32", lambda: det.detect([1, 2, 1 << 32], key="1"))
    attempt("token id -1", lambda: det.detect([1, -1], key="1"))
    attempt("context_window 0", lambda: det.WatermarkDetector("1", context_window=0))
    attempt("context_window 65", lambda: det.WatermarkDetector("1", context_window=65))
    attempt("max_contexts 4097", lambda: det.WatermarkDetector("1", max_contexts=4097))
    attempt("mixing_probability 0", lambda: det.WatermarkDetector("1", key_b="2", mixing_probability=0))
    attempt("mixing_probability 1", lambda: det.WatermarkDetector("1", key_b="2", mixing_probability=1))
    attempt("key 17 hex digits", lambda: det.WatermarkDetector("1" * 17))
    return rows


def gamma_tail_references() -> list[dict]:
    rows = []
    for n, score in [(1, 0.5), (1, 40.0), (10, 10.0), (10, 50.0), (100, 150.0), (1000, 1100.0), (4096, 25000.0),
                     (4096, 4000.0), (3000, 20000.0)]:
        rows.append({"n": n, "score": score, "log10": exact_log10(n, score)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sglang-git", help="git directory of sgl-project/sglang holding the PEER_FILES commits")
    source.add_argument("--sglang-tree", help="directory holding the PEER_FILES versions at their paths")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    started = time.time()
    tree = materialize(args.sglang_git) if args.sglang_git else args.sglang_tree
    files = check_blobs(tree)
    shims = install_shims(tree)
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    peer = Peer()
    rng = random.Random(20260917)
    document = {
        "description": "Vectors from SGLang's own watermarking code (pull request #37577, Aaronson-Gumbel); "
                       "written by packages/core/reference/foreign/sglang_vectors.py. Do not edit.",
        "peer": {
            "repository": "sgl-project/sglang",
            "files": files,
            "shims": shims,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
        },
        "conventions": {
            "keys": "unsigned 64-bit decimal strings; keyHex is the text SGLang's config holds",
            "logUniformF32": "SGLang's float32 log u (core._log_uniform_from_hash_torch) as the exact double",
            "probabilities": "float32 values as exact doubles, after SGLang's _truncate_probabilities",
            "perToken": "every completion position with a known context, before deduplication; position counts "
                        "from the first completion token",
            "exactLog10": "mpmath log10 Q(n, S), the Gamma(n, 1) upper tail at SGLang's score",
            "forced": "completion positions SGLang's WatermarkState forced (watermarked)",
        },
        "keys": key_vectors(peer),
        "hashes": hash_vectors(peer, rng),
        "uniforms": uniform_vectors(peer, rng),
        "selector": selector_vectors(peer, rng),
        "invalid": invalid_vectors(peer),
        "gammaTail": gamma_tail_references(),
        "cases": run_cases(peer, rng),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    repo_root = os.path.normpath(os.path.join(HERE, "..", "..", "..", ".."))
    formatted = subprocess.run(["pnpm", "exec", "biome", "format", "--write", os.path.abspath(args.out)],
                               cwd=repo_root, capture_output=True, text=True)
    if formatted.returncode != 0:
        print(f"warning: biome did not format {args.out}: {formatted.stderr.strip()}", file=sys.stderr)
    print(f"wrote {args.out} in {time.time() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
