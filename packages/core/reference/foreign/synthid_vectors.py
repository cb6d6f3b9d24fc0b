#!/usr/bin/python3
"""Writes packages/core/test/vectors/foreign/synthid.json by running SynthID-Text's own code.

Nothing of transformers or of google-deepmind/synthid-text is copied into this repository. The
script loads, from paths given on the command line:

  * transformers' `SynthIDTextWatermarkState`, `SynthIDTextWatermarkLogitsProcessor` (from
    src/transformers/generation/logits_process.py) and `SynthIDTextWatermarkDetector` (from
    src/transformers/generation/watermarking.py): the class definitions are taken out of the files
    with Python's `ast` and their exact source text is checked against PEER_SEGMENTS (SHA-256), so a
    full file from a clone and a file holding only those classes both work;
  * DeepMind's reference files at the commit in DEEPMIND_FILES (git blob ids checked): the
    sampling-table version of `SynthIDLogitsProcessor`, `accumulate_hash` and the mean and weighted
    mean scores (`detector_mean.py`, jax.numpy shimmed with numpy).

It runs the processor on random logits (fixed torch seeds), the detector's g-value and mask
computation, both code bases' scores, and writes token ids, g-values, masks, scores and exact
p-values with mpmath references.

Usage (from the repository root; Debian python3-torch 1.13, python3-numpy, python3-mpmath):

    /usr/bin/python3 packages/core/reference/foreign/synthid_vectors.py \
        --transformers-tree /path/to/transformers --synthid-git /path/to/synthid-text/.git
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import types

import mpmath
from mpmath import mp, mpf

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "..", "test", "vectors", "foreign", "synthid.json"))

# transformers: path -> (commit the version was read at, class names, SHA-256 of their source text
# as ast.get_source_segment gives it, joined by "\n\n\n", characters of the whole file at that commit).
PEER_SEGMENTS: dict[str, tuple[str, tuple[str, ...], str, int]] = {
    "src/transformers/generation/logits_process.py": (
        "00857b6cf63a4fa05cbd9bdc8a4fd78b6168c5af",
        ("SynthIDTextWatermarkState", "SynthIDTextWatermarkLogitsProcessor"),
        "f533aa187b76c40853ddc9c957c339757630e862eaa59018f5e1b12a2f6467c8",
        151339,
    ),
    "src/transformers/generation/watermarking.py": (
        "01080c629600d4ff3121446bb4f4a2e240c2cf41",
        ("SynthIDTextWatermarkDetector",),
        "d30d4147c9175897ac17b2004df3eaa78adfa72f5445c6392aa527d69e60f701",
        24538,
    ),
}

# google-deepmind/synthid-text: path -> git blob id at DEEPMIND_COMMIT (the last commit with the
# sampling table; 32197c34 replaced it with a hash-derived g-value that transformers did not take).
DEEPMIND_COMMIT = "3a068a3fd74b69c5dd6b00c358a261a0d44bfe5a"
DEEPMIND_FILES: dict[str, str] = {
    "src/synthid_text/logits_processing.py": "256a75890a528197e3163e66aaf63bd13ea4e510",
    "src/synthid_text/hashing_function.py": "62493fad096ab7a0c39d410a96a4987e6f3e2cd2",
    "src/synthid_text/detector_mean.py": "e022d9e988006825959228874da40fed6630fbee",
}


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Loading the peers
# ---------------------------------------------------------------------------------------------


def class_segments(path: str, names: tuple[str, ...]) -> str:
    with open(path, encoding="utf-8") as f:
        source = f.read()
    tree = ast.parse(source)
    found = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    missing = [name for name in names if name not in found]
    if missing:
        raise SystemExit(f"{path}: classes {missing} not found")
    return "\n\n\n".join(ast.get_source_segment(source, found[name]) for name in names)


def load_transformers(tree: str, record: dict) -> dict:
    """Executes the peer's classes with the few names they use from transformers stood in for."""
    import functorch
    import torch

    shims = []
    if not hasattr(torch, "vmap"):
        # torch 1.13 has vmap as functorch.vmap; it only maps the integer hash loop over a dimension.
        torch.vmap = functorch.vmap
        shims.append({"replaced": "torch.vmap", "by": "functorch.vmap (torch 1.13)"})

    class LogitsProcessor:
        """transformers' abstract base: only __call__ is defined by the subclass."""

    namespace: dict = {
        "torch": torch,
        "LogitsProcessor": LogitsProcessor,
        "add_start_docstrings": lambda *docstrings: (lambda function: function),
        "LOGITS_PROCESSOR_INPUTS_DOCSTRING": "",
        "Any": object,
        "BayesianDetectorModel": object,
    }
    shims += [
        {"replaced": "transformers.LogitsProcessor", "by": "an empty base class"},
        {"replaced": "add_start_docstrings", "by": "a decorator that returns the function"},
        {"replaced": "BayesianDetectorModel (detector_module)", "by": "a module that returns (g_values, mask)"},
    ]
    for path, (commit, names, digest, chars) in PEER_SEGMENTS.items():
        text = class_segments(os.path.join(tree, path), names)
        actual = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if actual != digest:
            raise SystemExit(f"{path}: classes {names} have SHA-256 {actual}, expected {digest} (version {commit})")
        exec(compile(text, f"transformers/{path}", "exec"), namespace)
        record[path] = {"commit": commit, "classes": list(names), "sha256": digest, "fileChars": chars}
    record["shims"] = shims
    return namespace


def load_deepmind(git_dir: str | None, tree: str | None, record: dict) -> types.ModuleType:
    import numpy as np

    if git_dir is not None:
        tree = tempfile.mkdtemp(prefix="synthid-peer-")
        for path in DEEPMIND_FILES:
            data = subprocess.run(
                ["git", f"--git-dir={git_dir}", "show", f"{DEEPMIND_COMMIT}:{path}"], check=True, capture_output=True
            ).stdout
            os.makedirs(os.path.dirname(os.path.join(tree, path)), exist_ok=True)
            with open(os.path.join(tree, path), "wb") as f:
                f.write(data)
    for path, blob in DEEPMIND_FILES.items():
        with open(os.path.join(tree, path), "rb") as f:
            actual = git_blob_id(f.read())
        if actual != blob:
            raise SystemExit(f"{path}: git blob {actual}, expected {blob} (commit {DEEPMIND_COMMIT})")
        record[path] = {"commit": DEEPMIND_COMMIT, "blob": blob}
    # synthid_text imports transformers (for the base class) and jax.numpy (for the scores).
    transformers = types.ModuleType("transformers")
    transformers.LogitsProcessor = type("LogitsProcessor", (), {})
    sys.modules["transformers"] = transformers
    jax = types.ModuleType("jax")
    jax.numpy = np
    sys.modules["jax"] = jax
    sys.modules["jax.numpy"] = np
    sys.path.insert(0, os.path.join(tree, "src"))
    package = types.ModuleType("synthid_text")
    package.__path__ = [os.path.join(tree, "src", "synthid_text")]
    sys.modules["synthid_text"] = package
    import importlib

    import torch

    original_no_grad = torch.no_grad

    class no_grad(original_no_grad):
        """torch ≥ 2.0 accepts a bare `@torch.no_grad`; torch 1.13 needs `@torch.no_grad()`."""

        def __new__(cls, function=None):
            if function is not None:
                return original_no_grad()(function)
            return super().__new__(cls)

        def __init__(self, function=None):
            super().__init__()

    torch.no_grad = no_grad
    record["shims"] = [
        {"replaced": "torch.no_grad", "by": "the same context manager, also usable bare as a decorator (torch 1.13)"},
        {"replaced": "transformers.LogitsProcessor", "by": "an empty base class"},
        {"replaced": "jax.numpy", "by": "numpy (sum, expand_dims, linspace: the same results in float64)"},
        {"replaced": "synthid_text/__init__.py", "by": "an empty package (it imports the Hugging Face mixin)"},
    ]
    return types.SimpleNamespace(
        logits_processing=importlib.import_module("synthid_text.logits_processing"),
        detector_mean=importlib.import_module("synthid_text.detector_mean"),
    )


# ---------------------------------------------------------------------------------------------
# Exact references (mpmath)
# ---------------------------------------------------------------------------------------------


def log10_binomial_sf(k: int, n: int, q) -> float:
    """log10 P[Bin(n, q) >= k], summed term by term at 60 digits (exact for these sizes)."""
    if k <= 0:
        return 0.0
    if k > n:
        return float("-inf")
    with mp.workdps(60):
        q = mpf(q)
        total = mpf(0)
        term = mpmath.binomial(n, k) * q**k * (1 - q) ** (n - k)
        i = k
        while i <= n:
            total += term
            if term < total * mpf(10) ** -70:
                break
            term = term * (n - i) / (i + 1) * q / (1 - q)
            i += 1
        return float(mpmath.log10(total))


def log10_chernoff(weights: list, counts: list, q, s) -> float:
    """log10 of min over theta >= 0 of exp(-theta s) prod_j (1 - q + q e^(theta w_j))^(n_j)."""
    with mp.workdps(50):
        q = mpf(q)
        s = mpf(s)
        w = [mpf(x) for x in weights]
        mean = sum(c * x * q for c, x in zip(counts, w))
        top = sum(c * x for c, x in zip(counts, w))
        if s <= mean:
            return 0.0
        if s >= top:
            return float(sum(counts) * mpmath.log10(q))

        def slope(t):
            return -s + sum(c * x * q * mpmath.e ** (t * x) / (1 - q + q * mpmath.e ** (t * x)) for c, x in zip(counts, w))

        low, high = mpf(0), mpf(1)
        while slope(high) < 0:
            high *= 2
        for _ in range(300):
            middle = (low + high) / 2
            if slope(middle) < 0:
                low = middle
            else:
                high = middle
        t = (low + high) / 2
        value = -t * s + sum(c * mpmath.log(1 - q + q * mpmath.e ** (t * x)) for c, x in zip(counts, w))
        return float(min(value, 0) / mpmath.log(10))


def weights_of(depth: int) -> list:
    import numpy as np

    weights = np.linspace(start=10, stop=1, num=depth)
    return list(weights * depth / np.sum(weights))


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------

CONFIGS = [
    # name, keys, ngram_len, table size, table seed, history, skip first, vocab, steps, logit scale, generated
    ("d3-n2-v32", [5, 7, 11], 2, 65536, 0, 1024, False, 32, 120, 1.0),
    ("d4-n3-v100-seed42", [654, 400, 836, 123], 3, 65536, 42, 1024, False, 100, 160, 2.0),
    ("d9-n4-skip-hist8", [654, 400, 836, 123, 340, 443, 597, 160, 57], 4, 65536, 0, 8, True, 64, 200, 1.0),
    ("d6-n5-table1000", [-3, 2**40 + 17, 99, -(2**62), 12345678901, 7], 5, 1000, 7, 1024, False, 50, 150, 1.5),
    ("d5-n2-dupkeys", [5, 65541, 9, 5, 131081], 2, 65536, 2**32 + 5, 1024, False, 40, 150, 1.0),
    ("d30-n5-default", None, 5, 65536, 0, 1024, False, 200, 400, 0.5),
    ("d30-n5-long", None, 5, 65536, 0, 1024, False, 300, 1500, 0.0),
]

DEFAULT_KEYS = [654, 400, 836, 123, 340, 443, 597, 160, 57, 29, 590, 639, 13, 715, 468, 990, 966, 226, 324, 585,
                118, 504, 421, 521, 129, 669, 732, 225, 90, 960]  # fmt: skip
RECORDED_STEPS = 6


def mask_list(tensor) -> list:
    return [int(x) for x in tensor.reshape(-1).tolist()]


def run_config(config, peer, deepmind, record_steps: bool) -> dict:
    import numpy as np
    import torch

    name, keys, ngram_len, size, seed, history, skip, vocab, steps, scale = config
    keys = keys if keys is not None else DEFAULT_KEYS
    Processor = peer["SynthIDTextWatermarkLogitsProcessor"]
    processor = Processor(
        ngram_len=ngram_len,
        keys=keys,
        sampling_table_size=size,
        sampling_table_seed=seed,
        context_history_size=history,
        device="cpu",
        skip_first_ngram_calls=skip,
    )
    torch.manual_seed(1000 + len(name))
    generator = torch.Generator().manual_seed(2000 + len(name))
    input_ids = torch.zeros((1, 1), dtype=torch.long)  # a one-token prompt; the processor ignores it
    recorded = []
    for step in range(steps):
        logits = (torch.randn((1, vocab), generator=generator) * scale).to(torch.float32)
        out = processor(input_ids, logits.clone())
        probs = torch.softmax(out, dim=1)
        token = torch.multinomial(probs, 1, generator=generator)
        if record_steps and step < RECORDED_STEPS:
            recorded.append({
                "logits": [float(x) for x in logits[0].tolist()],
                "processed": [float(x) for x in out[0].tolist()],
                "token": int(token[0, 0]),
            })
        input_ids = torch.cat([input_ids, token], dim=1)
    tokens = [int(x) for x in input_ids[0, 1:].tolist()]
    table = processor.sampling_table
    case = {
        "name": name,
        "keys": [str(k) for k in keys],
        "ngramLen": ngram_len,
        "samplingTableSize": size,
        "samplingTableSeed": str(seed),
        "contextHistorySize": history,
        "skipFirstNgramCalls": skip,
        "vocabSize": vocab,
        "generation": {"kind": "peer-processor", "steps": steps, "logitScale": scale, "recordedSteps": recorded},
        "table": {"ones": int(table.sum()), "sha256": hashlib.sha256(bytes(table.to(torch.uint8).tolist())).hexdigest()},
        "tokens": tokens,
    }
    case["detections"] = detect_all(case, processor, peer, deepmind, eos_token_id=None)
    return case


def detect_all(case: dict, processor, peer, deepmind, eos_token_id) -> list:
    """The peer's detector masks and g-values; both code bases' scores; the script's exact tests."""
    import numpy as np
    import torch

    tokens = case["tokens"]
    ids = torch.tensor([tokens], dtype=torch.long)
    n1 = case["ngramLen"] - 1

    class CaptureModule:
        def __call__(self, g_values, mask):
            return g_values, mask

    tokenizer = types.SimpleNamespace(eos_token_id=eos_token_id if eos_token_id is not None else -1)
    detector = peer["SynthIDTextWatermarkDetector"](CaptureModule(), processor, tokenizer)
    g_values, combined = detector(ids)
    g = g_values[0].numpy().astype(np.int64)
    peer_mask = combined[0].numpy().astype(np.int64)
    repetition = processor.compute_context_repetition_mask(ids)[0].numpy().astype(np.int64)
    eos = processor.compute_eos_token_mask(ids, tokenizer.eos_token_id)[0, n1:].numpy().astype(np.int64)

    # DeepMind's reference: the same g-values and masks, and its mean / weighted mean scores.
    keys = [int(k) for k in case["keys"]]
    reference = deepmind.logits_processing.SynthIDLogitsProcessor(
        ngram_len=case["ngramLen"],
        keys=keys,
        sampling_table_size=case["samplingTableSize"],
        sampling_table_seed=int(case["samplingTableSeed"]),
        context_history_size=case["contextHistorySize"],
        temperature=1.0,
        top_k=2,
        device=torch.device("cpu"),
    )
    g_reference = reference.compute_g_values(ids)[0].numpy()
    assert (g_reference == g).all(), "DeepMind's g-values differ from transformers'"
    assert (reference.compute_context_repetition_mask(ids)[0].numpy() == repetition.astype(bool)).all()

    depth = len(keys)
    weights = weights_of(depth)
    size = case["samplingTableSize"]
    q_ones = int(processor.sampling_table.sum())
    q = mpf(q_ones) / size
    power_of_two = size & (size - 1) == 0
    # Layers that read the same table entries (spec §6): keys equal modulo a power-of-two size.
    groups: dict = {}
    for layer, key in enumerate(keys):
        groups.setdefault(key % size if power_of_two else key, []).append(layer)
    first_layers = [members[0] for members in groups.values()]
    group_weights = [sum(weights[m] for m in members) for members in groups.values()]

    def ngram_seed(t: int) -> int:
        h = 1
        for value in tokens[t - n1 : t + 1]:
            h = ((h + value) * 6364136223846793005 + 1) % 2**64
        h = h - 2**64 if h >= 2**63 else h
        return h % size if power_of_two else h

    first_eos = tokens.index(eos_token_id) if eos_token_id is not None and eos_token_id in tokens else len(tokens)
    detections = []
    for dedup in ("none", "context", "strict"):
        scored = []
        seen_contexts, seen_seeds = set(), set()
        for i in range(len(tokens) - n1):
            t = i + n1
            if t >= first_eos:
                continue
            if dedup == "context" and not repetition[i]:
                continue
            if dedup == "strict":
                context = tuple(tokens[t - n1 : t])
                seed_value = ngram_seed(t)
                fresh = context not in seen_contexts and seed_value not in seen_seeds
                seen_contexts.add(context)
                if not fresh:
                    continue
                seen_seeds.add(seed_value)
            scored.append(i)
        mask = np.zeros(len(g), dtype=np.float64)
        mask[scored] = 1
        if dedup == "context":
            assert (mask == peer_mask).all(), "the context rule differs from transformers' combined mask"
        n = len(scored)
        score = int(sum(g[i][l] for i in scored for l in first_layers))
        weighted = float(sum(weights[l] * g[i][l] for i in scored for l in range(depth)))
        entry = {"dedup": dedup, "positions": [i + n1 for i in scored], "numScored": n, "score": score}
        if n > 0:
            g_batch = g[None, :, :].astype(np.float64)
            entry["meanScore"] = float(deepmind.detector_mean.mean_score(g_batch.copy(), mask[None, :])[0])
            entry["weightedMeanScore"] = float(
                deepmind.detector_mean.weighted_mean_score(g_batch.copy(), mask[None, :])[0]
            )
            entry["weightedScore"] = weighted
            entry["numGValues"] = n * len(first_layers)
            entry["binomialLog10"] = log10_binomial_sf(score, n * len(first_layers), q)
            entry["weightedChernoffLog10"] = log10_chernoff(group_weights, [n] * len(group_weights), q, weighted)
        detections.append(entry)
    return [
        {
            "peerMasks": {
                "contextRepetition": mask_list(repetition),
                "eos": mask_list(eos),
                "combined": mask_list(peer_mask),
            },
            "gValues": ["".join(str(int(b)) for b in row) for row in g],
            "eosTokenId": eos_token_id,
            "effectiveDepth": len(first_layers),
            "dedups": detections,
        }
    ]


def detection_only_cases(peer, deepmind) -> list:
    """Token sequences nobody marked: big ids, an EOS inside, repetition past the history window."""
    import torch

    Processor = peer["SynthIDTextWatermarkLogitsProcessor"]
    generator = torch.Generator().manual_seed(77)
    cases = []
    specs = [
        ("human-big-ids-eos", DEFAULT_KEYS[:12], 4, 65536, 0, 1024, 150000, 300, 40, 40),
        ("repeat-past-history", [1, 2, 3], 3, 65536, 0, 6, 20, 200, None, None),
        ("random-table1000", [11, -11, 2**63 - 1], 2, 1000, 5, 1024, 256000, 200, None, None),
    ]
    for name, keys, ngram_len, size, seed, history, vocab, length, eos_at, eos_id in specs:
        tokens = torch.randint(0, vocab, (length,), generator=generator).tolist()
        if name == "repeat-past-history":
            tokens = ([4, 5, 6, 7, 8, 9, 10, 11] * 30)[:length]
        if eos_at is not None:
            tokens[eos_at] = eos_id
        processor = Processor(
            ngram_len=ngram_len,
            keys=keys,
            sampling_table_size=size,
            sampling_table_seed=seed,
            context_history_size=history,
            device="cpu",
        )
        case = {
            "name": name,
            "keys": [str(k) for k in keys],
            "ngramLen": ngram_len,
            "samplingTableSize": size,
            "samplingTableSeed": str(seed),
            "contextHistorySize": history,
            "skipFirstNgramCalls": False,
            "vocabSize": vocab,
            "generation": {"kind": "unmarked"},
            "table": {
                "ones": int(processor.sampling_table.sum()),
                "sha256": hashlib.sha256(bytes(processor.sampling_table.to(torch.uint8).tolist())).hexdigest(),
            },
            "tokens": [int(t) for t in tokens],
        }
        case["detections"] = detect_all(case, processor, peer, deepmind, eos_token_id=eos_id)
        cases.append(case)
    return cases


def hash_vectors(peer) -> list:
    import torch

    Processor = peer["SynthIDTextWatermarkLogitsProcessor"]
    processor = Processor(
        ngram_len=2, keys=[1], sampling_table_size=2, sampling_table_seed=0, context_history_size=1, device="cpu"
    )
    inputs = [
        (1, [0]),
        (1, [1, 2]),
        (0, [2**63 - 1]),
        (-1, [-(2**63), 5, 2**40]),
        (123456789, [654, 400, 836, 123, 340]),
    ]
    out = []
    for start, data in inputs:
        value = processor.accumulate_hash(torch.tensor([start]), torch.tensor([data]))
        out.append({"hash": str(start), "data": [str(d) for d in data], "result": str(int(value[0]))})
    return out


def table_vectors(peer) -> list:
    import torch

    Processor = peer["SynthIDTextWatermarkLogitsProcessor"]
    out = []
    for size, seed in [(65536, 0), (65536, 42), (1000, 7), (2, 0), (65536, 2**32 + 5), (65536, -1), (2**20, 123)]:
        processor = Processor(
            ngram_len=2, keys=[1], sampling_table_size=size, sampling_table_seed=seed, context_history_size=1,
            device="cpu",
        )  # fmt: skip
        table = processor.sampling_table.to(torch.uint8).tolist()
        out.append({
            "size": size,
            "seed": str(seed),
            "ones": int(sum(table)),
            "first64": "".join(str(b) for b in table[:64]),
            "sha256": hashlib.sha256(bytes(table)).hexdigest(),
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transformers-tree", required=True, help="directory with transformers' files at their paths")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--synthid-git", help="git directory of google-deepmind/synthid-text")
    group.add_argument("--synthid-tree", help="directory with DeepMind's files at their paths")
    parser.add_argument("--print-segments", action="store_true", help="print the SHA-256 of the class sources")
    args = parser.parse_args()

    if args.print_segments:
        for path, (_, names, _, _) in PEER_SEGMENTS.items():
            text = class_segments(os.path.join(args.transformers_tree, path), names)
            print(path, hashlib.sha256(text.encode("utf-8")).hexdigest(), len(text))
        return

    import torch

    torch.set_num_threads(1)
    peer_record: dict = {"transformers": {}, "deepmind": {}}
    peer = load_transformers(args.transformers_tree, peer_record["transformers"])
    deepmind = load_deepmind(args.synthid_git, args.synthid_tree, peer_record["deepmind"])
    cases = [run_config(config, peer, deepmind, record_steps=config[7] <= 100) for config in CONFIGS]
    cases += detection_only_cases(peer, deepmind)
    document = {
        "description": "SynthID-Text as transformers' SynthIDTextWatermarkLogitsProcessor embeds it, from the peer's own "
        "code; docs/spec/foreign-synthid.md. Generated by packages/core/reference/foreign/synthid_vectors.py.",
        "peer": peer_record,
        "torch": torch.__version__,
        "defaultKeys": [str(k) for k in DEFAULT_KEYS],
        "hashes": hash_vectors(peer),
        "tables": table_vectors(peer),
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1)
        f.write("\n")
    root = os.path.normpath(os.path.join(HERE, "..", "..", "..", ".."))
    subprocess.run(["pnpm", "exec", "biome", "format", "--write", OUT], cwd=root, check=False, capture_output=True)
    print(f"wrote {OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()
