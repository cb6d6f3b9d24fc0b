#!/usr/bin/python3
"""Writes packages/core/test/vectors/foreign/transformers.json by running transformers' own KGW code.

Nothing of transformers is copied into this repository. The script loads
`src/transformers/generation/logits_process.py` and `src/transformers/generation/watermarking.py`
from a transformers source tree or git directory given on the command line, installs the shims
listed in `install_shims` for what those files import from the rest of the library (transformers is
not installed here; torch is), and records what `WatermarkLogitsProcessor` and `WatermarkDetector`
return: torch CPU permutations, green lists, biased logits, per-token green flags, the detector's
counts, z-scores and p-values. High-precision references for the tails come from mpmath.

Usage (from the repository root; Debian packages python3-torch python3-numpy python3-mpmath):

    # a clone (bare or not) of huggingface/transformers that holds the commit in PEER_FILES
    /usr/bin/python3 packages/core/reference/foreign/transformers_vectors.py --transformers-git /path/to/transformers/.git
    # or a directory that holds those two file versions at their repository paths
    /usr/bin/python3 packages/core/reference/foreign/transformers_vectors.py --transformers-tree /path/to/tree
    # optional: also check torch.randperm of other torch installs (site directories holding `torch`)
    ... --other-torch /path/to/site-with-torch-2.x

The script checks both files' git blob ids against PEER_FILES before importing anything.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "..", "test", "vectors", "foreign", "transformers.json"))

REPOSITORY = "huggingface/transformers"
# Upstream main, January 2026 (version 4.57.5 on main). WatermarkLogitsProcessor and the KGW part of
# WatermarkDetector are unchanged in behaviour since they were added (5ad960f1f4, May 2024).
PEER_COMMIT = "5a67f0a7aca8c18de6235e80e47fd00a9ecf9d58"
PEER_FILES: dict[str, tuple[str, str]] = {
    "src/transformers/generation/logits_process.py": (PEER_COMMIT, "4ef21c8c7d087575b89f6f54795d94e4e05dd883"),
    "src/transformers/generation/watermarking.py": (PEER_COMMIT, "c6e88407fddafcd6482678d64c2fc1327f1d7f5b"),
}
# The commit that added both classes; their KGW code has not changed in behaviour since.
INTRODUCED_IN = "5ad960f1f4f77f436ddf3de3692d09949a27c2df"

TABLE_SIZE = 1_000_003
RANDPERM_LARGE_N = (2**32 - 1) // 20  # torch >= 2.6: randperm uses random64 from this n on


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def materialize(git_dir: str) -> str:
    tree = tempfile.mkdtemp(prefix="transformers-peer-")
    for path, (commit, _) in PEER_FILES.items():
        data = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], check=True,
                              capture_output=True).stdout
        os.makedirs(os.path.dirname(os.path.join(tree, path)), exist_ok=True)
        with open(os.path.join(tree, path), "wb") as f:
            f.write(data)
    return tree


def check_blobs(tree: str) -> dict[str, dict[str, str]]:
    found = {}
    for path, (commit, expected) in PEER_FILES.items():
        with open(os.path.join(tree, path), "rb") as f:
            blob = git_blob_id(f.read())
        if blob != expected:
            raise SystemExit(f"{path}: git blob {blob}, expected {expected} (the version at {commit})")
        found[path] = {"commit": commit, "blob": blob}
    return found


# ---------------------------------------------------------------------------------------------
# Shims
# ---------------------------------------------------------------------------------------------


def _module(name: str, path: str | None = None, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    if path is not None:
        module.__path__ = [path]
    for key, value in attrs.items():
        setattr(module, key, value)
    sys.modules[name] = module
    return module


def install_shims(tree: str) -> list[dict[str, str]]:
    """Stand-ins for the parts of transformers the two files import; none is on the KGW path."""
    import torch

    shims = []
    _module("transformers", os.path.join(tree, "src/transformers"))
    _module("transformers.generation", os.path.join(tree, "src/transformers/generation"))
    shims.append({"module": "transformers, transformers.generation (package __init__)",
                  "stand-in": "empty packages whose __path__ is the tree",
                  "why": "the real __init__ files import the whole library; the two modules run unchanged"})

    def add_start_docstrings(*docstr):
        def decorate(fn):
            fn.__doc__ = "".join(docstr) + (fn.__doc__ or "")
            return fn
        return decorate

    class ModelOutput:  # only subclassed by the Bayesian (SynthID) detector's output dataclass
        pass

    logging_module = _module("transformers.utils.logging", get_logger=logging.getLogger)
    _module("transformers.utils", add_start_docstrings=add_start_docstrings, ModelOutput=ModelOutput,
            logging=logging_module)
    shims.append({"module": "transformers.utils (add_start_docstrings, ModelOutput, logging.get_logger)",
                  "stand-in": "docstring decorator, empty base class, logging.getLogger",
                  "why": "documentation and logging; ModelOutput is the base of SynthID's output only"})

    _module("transformers.pytorch_utils", isin_mps_friendly=torch.isin)
    shims.append({"module": "transformers.pytorch_utils.isin_mps_friendly", "stand-in": "torch.isin",
                  "why": "used by other processors (EOS handling), never by WatermarkLogitsProcessor"})

    class PreTrainedConfig:
        def __init__(self, **kwargs):
            for key, value in kwargs.items():
                setattr(self, key, value)

    class PreTrainedModel(torch.nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()

    _module("transformers.configuration_utils", PreTrainedConfig=PreTrainedConfig)
    _module("transformers.modeling_utils", PreTrainedModel=PreTrainedModel)
    _module("transformers.initialization")
    shims.append({"module": "transformers.configuration_utils.PreTrainedConfig, modeling_utils.PreTrainedModel, "
                            "initialization",
                  "stand-in": "attribute bag, bare torch.nn.Module, empty module",
                  "why": "bases of SynthID's Bayesian detector classes; the KGW detector takes only "
                         "model_config.bos_token_id, .vocab_size and .is_encoder_decoder (a plain namespace here)"})
    return shims


class Peer:
    def __init__(self, tree: str) -> None:
        import torch
        self.torch = torch
        self.lp = self._load("transformers.generation.logits_process",
                             os.path.join(tree, "src/transformers/generation/logits_process.py"))
        self.wm = self._load("transformers.generation.watermarking",
                             os.path.join(tree, "src/transformers/generation/watermarking.py"))

    @staticmethod
    def _load(name: str, path: str):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    def processor(self, case: dict):
        return self.lp.WatermarkLogitsProcessor(
            vocab_size=case["vocabSize"], device="cpu", greenlist_ratio=case["gamma"], bias=case["delta"],
            hashing_key=case["hashKey"], seeding_scheme=case["scheme"], context_width=case["contextWidth"])

    def detector(self, case: dict, ignore_repeated_ngrams: bool, bos: int | None):
        config = types.SimpleNamespace(bos_token_id=bos, vocab_size=case["vocabSize"], is_encoder_decoder=False)
        watermarking = {"greenlist_ratio": case["gamma"], "bias": case["delta"], "hashing_key": case["hashKey"],
                        "seeding_scheme": case["scheme"], "context_width": case["contextWidth"]}
        return self.wm.WatermarkDetector(model_config=config, device="cpu", watermarking_config=watermarking,
                                         ignore_repeated_ngrams=ignore_repeated_ngrams)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def ids_digest(ids) -> str:
    """SHA-256 of the ids as little-endian int32, in the given order."""
    import numpy as np
    return hashlib.sha256(np.asarray(ids, dtype="<i4").tobytes()).hexdigest()


def randperm_entry(torch, seed: int, n: int) -> dict:
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    perm = torch.randperm(n, generator=g).tolist()
    entry = {"seed": str(seed), "n": n, "sha256": ids_digest(perm), "head": perm[:16]}
    if n <= 64:
        entry["permutation"] = perm
    return entry


RANDPERM_CASES = [(0, 1), (0, 2), (5489, 10), (15485863, 10), (1, 100), (2**32 - 1, 1000), (2**32, 1000),
                  (2**32 + 1, 1000), (15485863, 32000), (123456789, 32000), (15485863 * 50256, 50257),
                  (2**64 - 2, 50257), (15485863, TABLE_SIZE), (0, 624), (7, 625), (7, 1249)]


def randperm_only(cases) -> dict:
    import torch
    return {"torch": torch.__version__, "randperm": [randperm_entry(torch, s, n) for s, n in cases]}


def randperm_large(torch) -> list[dict]:
    """First entries of randperm at the largest n of the old algorithm and the first n of the new one."""
    out = []
    for n in (RANDPERM_LARGE_N - 1, RANDPERM_LARGE_N):
        g = torch.Generator(device="cpu")
        g.manual_seed(15485863)
        perm = torch.randperm(n, generator=g, dtype=torch.int32)
        out.append({"seed": "15485863", "n": n, "head": perm[:8].tolist()})
        del perm
    return out


def mt19937_vectors() -> list[dict]:
    """Raw 32-bit outputs of MT19937 seeded with init_genrand (numpy's legacy seeding), the generator
    torch's CPU Generator runs after manual_seed(seed mod 2^32)."""
    import numpy as np
    out = []
    for seed in (0, 1, 5489, 15485863, 2**32 - 1):
        rs = np.random.RandomState(seed)
        raw = rs._bit_generator.random_raw(1250).tolist()
        out.append({"seed": seed, "first": raw[:8], "at623": raw[623], "at624": raw[624], "at1249": raw[1249]})
    return out


def make_logits(torch, seed: int, vocab: int, scale: float):
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return torch.randn(vocab, generator=g, dtype=torch.float32) * scale


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


def case_list() -> list[dict]:
    cases = []

    def add(name, scheme, vocab, width, key, steps, gamma=0.25, delta=2.0, scale=1.0, prompt=(), **extra):
        cases.append({"name": name, "scheme": scheme, "vocabSize": vocab, "contextWidth": width, "hashKey": key,
                      "gamma": gamma, "delta": delta, "steps": steps, "logitScale": scale, "prompt": list(prompt),
                      **extra})

    add("lefthash-v40-h1-default", "lefthash", 40, 1, 15485863, 60, prompt=[3])
    add("selfhash-v40-h1", "selfhash", 40, 1, 15485863, 60, scale=3.0, prompt=[3])
    add("lefthash-v1000-h4-g0.5", "lefthash", 1000, 4, 7, 80, gamma=0.5, delta=1.0, prompt=[1, 2, 3, 4])
    add("selfhash-v1000-h4", "selfhash", 1000, 4, 987654321, 80, scale=4.0, prompt=[11, 12, 13])
    add("lefthash-v32000-h1-default", "lefthash", 32000, 1, 15485863, 120, prompt=[1])
    add("lefthash-v32000-h4-key0", "lefthash", 32000, 4, 0, 80, prompt=[1, 450, 4996, 29892])
    add("selfhash-v32000-h4", "selfhash", 32000, 4, 15485863, 80, scale=5.0, prompt=[1, 450, 4996])
    add("selfhash-v32000-h1-key2^32+7", "selfhash", 32000, 1, 2**32 + 7, 60, scale=5.0, prompt=[1])
    add("lefthash-v50257-h1-key2^64-59", "lefthash", 50257, 1, 2**64 - 59, 100, prompt=[50256])
    add("lefthash-v50257-h4-keyneg", "lefthash", 50257, 4, -123456789012345, 80, prompt=[464, 2068, 7586, 21831])
    add("selfhash-v50257-h4-key2^63-25", "selfhash", 50257, 4, 2**63 - 25, 80, scale=5.0,
        prompt=[464, 2068, 7586])
    add("selfhash-v50257-h1-default", "selfhash", 50257, 1, 15485863, 60, scale=5.0, prompt=[464])
    add("lefthash-v50257-h1-g0.1-d5-long", "lefthash", 50257, 1, 15485863, 1500, gamma=0.1, delta=5.0,
        scale=0.3, prompt=[464], record_steps=4)
    add("selfhash-v32000-h4-d0", "selfhash", 32000, 4, 15485863, 40, delta=0.0, prompt=[1, 450, 4996])
    return cases


def generate(peer: Peer, case: dict) -> tuple[list[int], list[dict]]:
    """Samples tokens from random logits biased by transformers' processor; records some steps."""
    torch = peer.torch
    processor = peer.processor(case)
    sampler = torch.Generator(device="cpu")
    sampler.manual_seed(1000 + len(case["name"]))
    ids = list(case["prompt"])
    steps = []
    vocab = case["vocabSize"]
    record = case.get("record_steps", 6)
    for step in range(case["steps"]):
        logits = make_logits(torch, 7919 * (step + 1) + vocab, vocab, case["logitScale"]).unsqueeze(0)
        input_ids = torch.tensor([ids], dtype=torch.int64)
        out = processor(input_ids, logits)
        biased = (out[0] != logits[0]).nonzero().reshape(-1).tolist()
        if step < record:
            entry = {"context": list(ids), "biasedCount": len(biased), "biasedSha256": ids_digest(sorted(biased))}
            if case["scheme"] == "selfhash":
                order = torch.sort(logits[0], descending=True).indices[:64].tolist()
                entry["candidates"] = order
                entry["candidateLogits"] = [float(logits[0, i]) for i in order]
                entry["biased"] = sorted(biased)
            if vocab <= 1000 and step < 2:
                entry["logits"] = [float(v) for v in logits[0].tolist()]
                entry["processed"] = [float(v) for v in out[0].tolist()]
            steps.append(entry)
        probs = torch.softmax(out[0].double(), dim=-1)
        ids.append(int(torch.multinomial(probs, 1, generator=sampler)))
    return ids[len(case["prompt"]):], steps


def per_token_flags(peer: Peer, detector, tokens: list[int], case: dict) -> tuple[list[int], list[int]]:
    """Green flags of every scored n-gram, from transformers' own _get_ngram_score."""
    torch = peer.torch
    width = case["contextWidth"]
    selfhash = case["scheme"] == "selfhash"
    n = width + 1 - int(selfhash)
    flags, positions = [], []
    for start in range(len(tokens) - n + 1):
        ngram = torch.tensor(tokens[start:start + n], dtype=torch.int64)
        prefix = ngram if selfhash else ngram[:-1]
        flags.append(int(bool(detector._get_ngram_score(prefix, ngram[-1]))))
        positions.append(start + n - 1)
    return positions, flags


def green_list_samples(peer: Peer, case: dict, tokens: list[int]) -> list[dict]:
    """transformers' green lists (_get_greenlist_ids) for a few inputs: order kept, as torch returns it."""
    torch = peer.torch
    processor = peer.processor(case)
    out = []
    width = case["contextWidth"]
    for end in (width, width + 1, len(tokens)):
        if end > len(tokens) or end < 1:
            continue
        window = tokens[max(0, end - width):end]
        green = processor._get_greenlist_ids(torch.tensor(window, dtype=torch.int64)).tolist()
        entry = {"input": window, "size": len(green), "sha256": ids_digest(green), "head": green[:8]}
        if case["vocabSize"] <= 1000:
            entry["greenlist"] = green
        seed_before = processor.rng.initial_seed()
        entry["generatorSeed"] = str(seed_before)
        out.append(entry)
    return out


def detect_case(peer: Peer, case: dict, tokens: list[int], bos: int | None = None) -> dict:
    result = {}
    for ignore in (False, True):
        detector = peer.detector(case, ignore, bos)
        out = detector(peer.torch.tensor([tokens], dtype=peer.torch.int64), return_dict=True)
        result["ignoreRepeated" if ignore else "plain"] = {
            "numScored": int(out.num_tokens_scored[0]), "numGreen": int(out.num_green_tokens[0]),
            "z": float(out.z_score[0]), "pValue": float(out.p_value[0]), "prediction": bool(out.prediction[0])}
    return result


# ---------------------------------------------------------------------------------------------
# mpmath references
# ---------------------------------------------------------------------------------------------


def log10_binomial_sf(k: int, n: int, p) -> "mpf":
    from mpmath import mp, mpf
    import mpmath
    if k <= 0:
        return mpf(0)
    if k > n:
        return mpf("-inf")
    with mp.workdps(60):
        p = mpf(p)
        q = 1 - p
        log_first = (mpmath.loggamma(n + 1) - mpmath.loggamma(k + 1) - mpmath.loggamma(n - k + 1)
                     + k * mpmath.log(p) + (n - k) * mpmath.log(q))
        # P[X >= k] = P[X = k] * sum_{i >= k} ratio; terms fall geometrically past the mode
        total, term, i = mpf(0), mpf(1), k
        while i <= n:
            total += term
            if term < total * mpf("1e-40"):
                break
            term *= mpf(n - i) / (i + 1) * p / q
            i += 1
        return (log_first + mpmath.log(total)) / mpmath.log(10)


def log10_peer_formula(z: float) -> "mpf":
    """transformers' p-value expression 1 − ½(1 + sign(z)(1 − e^{−2z²/π})), evaluated exactly at z."""
    from mpmath import mp, mpf
    import mpmath
    with mp.workdps(60):
        z = mpf(z)
        e = mpmath.exp(-2 * z * z / mpmath.pi)
        if z > 0:
            return mpmath.log10(e / 2)
        if z == 0:
            return mpmath.log10(mpf("0.5"))
        return mpmath.log10(1 - e / 2)


def ref(value) -> float | None:
    v = float(value)
    return None if math.isinf(v) else v


def detection_entry(peer: Peer, case: dict, tokens: list[int], bos: int | None = None) -> dict:
    detector = peer.detector(case, False, bos)
    scored = tokens[1:] if (bos is not None and tokens and tokens[0] == bos) else tokens
    positions, flags = per_token_flags(peer, detector, scored, case)
    peer_out = detect_case(peer, case, tokens, bos)
    green_size = int(case["vocabSize"] * case["gamma"])
    n, k = peer_out["plain"]["numScored"], peer_out["plain"]["numGreen"]
    assert n == len(flags) and k == sum(flags), "per-token flags disagree with the detector"
    # The documented meaning of ignore_repeated_ngrams (each distinct n-gram once), computed by this
    # script from transformers' per-n-gram flags with n-grams compared by value.
    width = case["contextWidth"]
    size = width + 1 - int(case["scheme"] == "selfhash")
    seen, unique_flags = set(), []
    for pos, flag in zip(positions, flags):
        key = tuple(scored[pos - size + 1:pos + 1])
        if key in seen:
            continue
        seen.add(key)
        unique_flags.append(flag)
    entry = {
        "positions": positions, "greenFlags": flags, "peer": peer_out,
        "distinctNgrams": {"numScored": len(unique_flags), "numGreen": sum(unique_flags)},
        "greenlistSize": green_size,
        "references": {
            "exactLog10": ref(log10_binomial_sf(k, n, mpf_ratio(green_size, case["vocabSize"]))),
            "exactDistinctLog10": ref(log10_binomial_sf(sum(unique_flags), len(unique_flags),
                                                        mpf_ratio(green_size, case["vocabSize"]))),
            "peerFormulaLog10": ref(log10_peer_formula(peer_out["plain"]["z"])),
        },
    }
    return entry


def mpf_ratio(a: int, b: int):
    from mpmath import mpf
    return mpf(a) / mpf(b)


def invalid_vectors(peer: Peer) -> list[dict]:
    torch = peer.torch
    out = []

    def attempt(what, fn):
        try:
            fn()
            out.append({"case": what, "raises": None})
        except Exception as error:  # noqa: BLE001 - recording what transformers raises
            out.append({"case": what, "raises": type(error).__name__})

    base = {"vocabSize": 1000, "gamma": 0.25, "delta": 2.0, "hashKey": 15485863, "contextWidth": 1}
    attempt("seeding_scheme minhash", lambda: peer.processor({**base, "scheme": "minhash"}))
    attempt("greenlist_ratio 1.0", lambda: peer.processor({**base, "scheme": "lefthash", "gamma": 1.0}))
    attempt("greenlist_ratio 0.0", lambda: peer.processor({**base, "scheme": "lefthash", "gamma": 0.0}))
    attempt("hashing_key 2^64", lambda: peer.processor({**base, "scheme": "lefthash", "hashKey": 2**64}))
    attempt("hashing_key -2^63-1", lambda: peer.processor({**base, "scheme": "lefthash", "hashKey": -(2**63) - 1}))
    attempt("hashing_key -2^63 lefthash", lambda: peer.processor({**base, "scheme": "lefthash", "hashKey": -(2**63)}))

    def selfhash_big_key():
        p = peer.processor({**base, "scheme": "selfhash", "hashKey": 2**63})
        p._get_greenlist_ids(torch.tensor([5], dtype=torch.int64))

    attempt("selfhash hashing_key 2^63 (first green list)", selfhash_big_key)

    def selfhash_small_vocab():
        p = peer.processor({**base, "scheme": "selfhash", "vocabSize": 39})
        p(torch.tensor([[1]], dtype=torch.int64), torch.zeros(1, 39))

    attempt("selfhash vocab 39 (generation)", selfhash_small_vocab)

    def short_detect():
        d = peer.detector({**base, "scheme": "lefthash", "contextWidth": 4}, False, None)
        d(torch.tensor([[1, 2, 3, 4]], dtype=torch.int64), return_dict=True)

    attempt("detect 4 tokens at context_width 4", short_detect)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transformers-git")
    parser.add_argument("--transformers-tree")
    parser.add_argument("--other-torch", action="append", default=[],
                        help="a site directory holding another torch; its randperm is compared")
    parser.add_argument("--randperm-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--large", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()

    if args.randperm_only:
        import torch
        result = randperm_only(RANDPERM_CASES)
        if args.large:
            result["large"] = randperm_large(torch)
        print(json.dumps(result))
        return

    if bool(args.transformers_git) == bool(args.transformers_tree):
        parser.error("give exactly one of --transformers-git or --transformers-tree")
    tree = materialize(args.transformers_git) if args.transformers_git else args.transformers_tree
    files = check_blobs(tree)
    shims = install_shims(tree)
    import mpmath
    import numpy
    import torch
    torch.set_num_threads(1)
    peer = Peer(tree)

    randperm = randperm_only(RANDPERM_CASES)
    large = randperm_large(torch)
    other = []
    for site in args.other_torch:
        env = {**os.environ, "PYTHONPATH": site}
        run = subprocess.run([sys.executable, os.path.abspath(__file__), "--randperm-only", "--large"],
                             env=env, capture_output=True, text=True, check=True)
        theirs = json.loads(run.stdout)
        same = [a == b for a, b in zip(randperm["randperm"], theirs["randperm"])]
        other.append({"torch": theirs["torch"], "randpermEqual": all(same),
                      "large": theirs["large"]})

    cases = []
    for case in case_list():
        tokens, steps = generate(peer, case)
        entry = {k: (str(v) if k == "hashKey" else v) for k, v in case.items() if k not in ("record_steps",)}
        entry["tokens"] = tokens
        entry["steps"] = steps
        entry["greenlists"] = green_list_samples(peer, case, case["prompt"] + tokens)
        entry["detection"] = detection_entry(peer, case, tokens)
        if len(tokens) > 400:
            # aggregate only for the long case: the per-token arrays of the others pin every bit
            entry["detection"].pop("positions")
            flags = entry["detection"].pop("greenFlags")
            entry["detection"]["greenFlagsSha256"] = hashlib.sha256(bytes(flags)).hexdigest()
        cases.append(entry)
        print(f"{case['name']}: {entry['detection']['peer']['plain']}", file=sys.stderr)

    # Unmarked and repetitive sequences, and a leading BOS the detector drops.
    extra = []
    gen = torch.Generator(device="cpu")
    gen.manual_seed(99)
    for name, scheme, vocab, width, key in [("random-lefthash-v32000-h1", "lefthash", 32000, 1, 15485863),
                                            ("random-selfhash-v50257-h4", "selfhash", 50257, 4, 15485863)]:
        case = {"name": name, "scheme": scheme, "vocabSize": vocab, "contextWidth": width, "hashKey": key,
                "gamma": 0.25, "delta": 2.0}
        tokens = torch.randint(0, vocab, (150,), generator=gen).tolist()
        extra.append({**{k: (str(v) if k == "hashKey" else v) for k, v in case.items()}, "tokens": tokens,
                      "detection": detection_entry(peer, case, tokens)})
    for name, scheme, width in [("repeat-lefthash-h1", "lefthash", 1), ("repeat-lefthash-h2", "lefthash", 2),
                                ("repeat-selfhash-h1", "selfhash", 1), ("repeat-selfhash-h3", "selfhash", 3)]:
        case = {"name": name, "scheme": scheme, "vocabSize": 1000, "contextWidth": width, "hashKey": 15485863,
                "gamma": 0.25, "delta": 2.0}
        tokens = [5, 6, 7, 5, 6, 7, 5, 6, 8, 5, 6, 7, 9, 9, 9, 9, 5, 6] * 3
        extra.append({**{k: (str(v) if k == "hashKey" else v) for k, v in case.items()}, "tokens": tokens,
                      "detection": detection_entry(peer, case, tokens)})
    case = {"name": "bos-stripped-lefthash-h1", "scheme": "lefthash", "vocabSize": 50257, "contextWidth": 1,
            "hashKey": 15485863, "gamma": 0.25, "delta": 2.0}
    tokens = [50256] + cases[8]["tokens"][:40]
    extra.append({**{k: (str(v) if k == "hashKey" else v) for k, v in case.items()}, "tokens": tokens,
                  "bosTokenId": 50256, "detection": detection_entry(peer, case, tokens, bos=50256)})

    document = {
        "description": "transformers' WatermarkLogitsProcessor and WatermarkDetector (KGW), run on CPU; "
                       "see docs/spec/foreign-transformers.md",
        "generator": "packages/core/reference/foreign/transformers_vectors.py",
        "peer": {"repository": REPOSITORY, "files": files, "shims": shims,
                 "torch": torch.__version__, "numpy": numpy.__version__, "mpmath": mpmath.__version__,
                 "python": sys.version.split()[0], "otherTorch": other},
        "conventions": {
            "hashKey": "decimal string (Python int given as hashing_key)",
            "sha256": "SHA-256 of the ids as little-endian int32, in the order stated",
            "greenlists": "_get_greenlist_ids(input): the first int(V·γ) entries of torch.randperm(V), torch's order",
            "biasedSha256": "ids whose logit the processor changed, ascending",
            "positions": "index in the scored sequence (after a BOS is dropped) of each n-gram's last token",
            "exactLog10": "mpmath log10 P[Bin(numScored, greenlistSize/V) >= numGreen] (null: -infinity)",
            "exactDistinctLog10": "the same for distinctNgrams",
            "peerFormulaLog10": "mpmath log10 of transformers' p-value expression at transformers' z",
        },
        "mt19937": mt19937_vectors(),
        "randperm": randperm["randperm"],
        "randpermLarge": large,
        "cases": cases,
        "detections": extra,
        "invalid": invalid_vectors(peer),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    formatted = subprocess.run(["pnpm", "exec", "biome", "format", "--write", os.path.abspath(args.out)],
                               cwd=os.path.join(HERE, "..", "..", "..", ".."), capture_output=True, text=True)
    if formatted.returncode != 0:
        print(f"warning: biome did not format {args.out}: {formatted.stderr.strip()}", file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
