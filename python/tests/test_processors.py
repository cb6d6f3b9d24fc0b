"""The logits processors: transformers' interface driven by a tiny torch model, and vLLM's v1
interface driven by stand-ins of its published BatchUpdate dataclasses."""

from __future__ import annotations

import math
import random
import unittest
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any

import struct

from _vectors import vector_file

from tracemark import Scheme, WatermarkKey, Watermarker, detect, gumbel_token, kept_candidates
from tracemark._siphash import siphash24

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

SKIP_REASON = "torch is not installed for this Python (Debian: apt-get install python3-torch)"
VOCAB = 100_277  # cl100k_base, special tokens included
SPECIAL = 100_257


def reference_row(w: Watermarker, context: list[int], row: list[float], temperature: float, top_k: int, top_p: float) -> list[float]:
    """The widened nucleus and the bias, candidate by candidate, from the pure-Python core."""
    kept = set(kept_candidates(row, temperature, top_k, top_p, w.scheme.delta))
    out = []
    for x, v in enumerate(row):
        if x not in kept:
            out.append(-math.inf)
        else:
            out.append(v + (w.scheme.delta if w.candidate_green(context, x) == 1 else 0.0))
    return out


@unittest.skipIf(torch is None, SKIP_REASON)
class TransformersProcessor(unittest.TestCase):
    def test_rows_match_the_scalar_reference(self) -> None:
        from tracemark.torch_processors import TracemarkLogitsProcessor, kept_mask

        rng = random.Random(5)
        vocab = 400
        for scheme in (Scheme("lefthash", 1), Scheme("lefthash", 3, 0.5, 1.0), Scheme("selfhash", 2), Scheme("selfhash", 1, 0.3, 4.0)):
            w = Watermarker(WatermarkKey.create(bytes(rng.getrandbits(8) for _ in range(32)), scheme), special_token_ids=[7, 300])
            for temperature, top_k, top_p in ((1.0, 0, 1.0), (0.7, 0, 0.9), (1.3, 20, 1.0), (0.5, 30, 0.5), (0.0, 0, 0.3), (1.0, 0, 0.05)):
                processor = TracemarkLogitsProcessor(w, temperature=temperature, top_k=top_k, top_p=top_p)
                contexts = [[rng.randrange(vocab) for _ in range(5)] for _ in range(3)]
                contexts[2][-1] = 7  # a special token in the window: no bias on that row
                scores = torch.randn(3, vocab, generator=torch.Generator().manual_seed(rng.randrange(1 << 30))) * 3
                scores[0, 5] = scores[0, 6]  # a tie
                scores[1, 11] = float("-inf")  # a candidate an earlier processor removed
                before = scores.clone()
                out = processor(torch.tensor(contexts), scores)
                self.assertTrue(torch.equal(scores, before), "the input scores are not modified")
                for b in range(3):
                    expected = reference_row(w, contexts[b], scores[b].tolist(), temperature, top_k, top_p)
                    self.assertEqual(out[b].tolist(), torch.tensor(expected, dtype=torch.float32).tolist(), (scheme, temperature, top_k, top_p, b))
                    mask = kept_mask(scores[b], temperature, top_k, top_p, scheme.delta)
                    finite = set(torch.nonzero(torch.isfinite(scores[b])).flatten().tolist())
                    kept = finite if mask is None else set(torch.nonzero(mask).flatten().tolist())
                    self.assertEqual(kept, set(kept_candidates(scores[b].tolist(), temperature, top_k, top_p, scheme.delta)))
                if w.window_reach() > 0:
                    kept = torch.isfinite(out[2])
                    self.assertTrue(torch.equal(out[2][kept], scores[2][kept]))

    def test_special_candidates_and_short_context_get_no_bias(self) -> None:
        from tracemark.torch_processors import TracemarkLogitsProcessor

        w = Watermarker(WatermarkKey.create(bytes(32), Scheme("lefthash", 2)))
        processor = TracemarkLogitsProcessor(w)
        scores = torch.zeros(2, VOCAB)
        out = processor(torch.tensor([[5, 9], [5, SPECIAL]]), scores)
        self.assertEqual(float(out[0, SPECIAL]), 0.0)
        self.assertAlmostEqual(float((out[0] > 0).float().mean()), 0.25, delta=0.01)
        self.assertEqual(int((out[1] != 0).sum()), 0)
        self.assertEqual(int((processor(torch.tensor([[5]]), scores[:1]) != 0).sum()), 0)

    def test_generation_is_watermarked_and_plain_generation_is_not(self) -> None:
        from _tiny_model import TinyLanguageModel, generate

        from tracemark.torch_processors import TracemarkLogitsProcessor

        key = WatermarkKey.create(bytes(range(32)))
        model = TinyLanguageModel(VOCAB, seed=1)
        prompts = torch.tensor([[9906, 1917, 11], [791, 4062, 14198]])
        processor = TracemarkLogitsProcessor(key, temperature=0.8, top_p=0.9)
        marked = generate(model, prompts, 60, [processor], 0.8, seed=2)
        plain = generate(model, prompts, 60, [], 0.8, seed=2)
        for b in range(2):
            found = detect(marked[b].tolist(), key, prompt=prompts[b].tolist())
            self.assertEqual(found.verdict, "watermarked", found.to_json())
            clean = detect(plain[b].tolist(), key, prompt=prompts[b].tolist())
            self.assertNotEqual(clean.verdict, "watermarked", clean.to_json())
            self.assertGreater(clean.results[0].log10_p, -4)


# -- vLLM v1 ---------------------------------------------------------------------------------------
# Stand-ins with the fields of vLLM's published dataclasses (vllm/v1/sample/logits_processor/
# interface.py: MoveDirectionality, BatchUpdate; vllm/sampling_params.py: SamplingParams' temperature,
# top_k, top_p, extra_args).


class MoveDirectionality(Enum):
    UNIDIRECTIONAL = auto()
    SWAP = auto()


@dataclass(frozen=True)
class BatchUpdate:
    batch_size: int
    removed: list[int]
    added: list[tuple[int, Any, list[int] | None, list[int]]]
    moved: list[tuple[int, int, MoveDirectionality]]


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    extra_args: dict[str, Any] | None = field(default=None)


@unittest.skipIf(torch is None, SKIP_REASON)
class VllmProcessor(unittest.TestCase):
    def test_persistent_batch_rows_match_the_reference(self) -> None:
        from _tiny_model import TinyLanguageModel

        from tracemark.torch_processors import watermark_row
        from tracemark.vllm_processor import TracemarkVllmLogitsProcessor, vllm_logits_processor

        key = WatermarkKey.create(bytes([3]) * 32, Scheme("selfhash", 3))
        w = Watermarker(key)
        cls = vllm_logits_processor(key)
        self.assertTrue(issubclass(cls, TracemarkVllmLogitsProcessor))
        processor = cls(None, torch.device("cpu"), False)
        self.assertFalse(processor.is_argmax_invariant())
        self.assertTrue(processor.needs_output_token_ids())
        with self.assertRaises(ValueError):
            cls.validate_params(SamplingParams(extra_args={"tracemark_top_p": 1.5}))
        model = TinyLanguageModel(5000, seed=3, scale=8.0)  # the bookkeeping is under test here, not the vocabulary
        generator = torch.Generator().manual_seed(4)

        requests: dict[str, dict[str, Any]] = {}

        def new(name: str, prompt: list[int], params: SamplingParams) -> tuple[int, Any, list[int], list[int]]:
            requests[name] = {"prompt": prompt, "output": [], "params": params}
            return (0, params, prompt, requests[name]["output"])

        slots: list[str | None] = [None, None, None]
        a = new("a", [996, 1917, 11, 1268], SamplingParams(temperature=0.8, top_p=0.9))
        b = new("b", [791], SamplingParams(temperature=0.0))
        schedule: dict[int, Any] = {
            0: lambda: (BatchUpdate(2, [], [(0, *a[1:]), (1, *b[1:])], []), ["a", "b", None]),
            5: lambda: (
                BatchUpdate(3, [0], [(0, *new("c", [40, 41, 42], SamplingParams(0.7, 0.5, 0, {"tracemark_top_k": 20, "tracemark_top_p": 0.9}))[1:]), (2, *new("d", [], SamplingParams(1.2))[1:])], []),
                ["c", "b", "d"],
            ),
            8: lambda: (BatchUpdate(3, [], [], [(0, 2, MoveDirectionality.SWAP)]), ["d", "b", "c"]),
            11: lambda: (BatchUpdate(2, [1], [], [(2, 1, MoveDirectionality.UNIDIRECTIONAL)]), ["d", "c", None]),
        }
        for step in range(40):
            update = None
            if step in schedule:
                update, slots = schedule[step]()
            processor.update_state(update)
            live = [name for name in slots if name is not None]
            batch = torch.stack([
                model(torch.tensor([(requests[n]["prompt"] + requests[n]["output"])[-8:] or [0]]))[0][0] for n in live
            ])
            before = batch.clone()
            out = processor.apply(batch)
            for row, name in enumerate(live):
                r = requests[name]
                p = r["params"]
                extra = p.extra_args or {}
                expected = watermark_row(
                    w,
                    (r["prompt"] + r["output"])[-2:],
                    before[row],
                    0.0 if p.temperature < 1e-5 else p.temperature,
                    extra.get("tracemark_top_k", p.top_k),
                    extra.get("tracemark_top_p", p.top_p),
                )
                self.assertTrue(torch.equal(out[row], expected), (step, name))
                # The engine: temperature, then a draw (its own top-k/top-p off).
                t = p.temperature
                token = int(torch.argmax(out[row])) if t < 1e-5 else int(torch.multinomial(torch.softmax(out[row] / t, -1), 1, generator=generator))
                r["output"].append(token)
        self.assertEqual([len(requests[n]["output"]) for n in "abcd"], [5, 11, 35, 35])
        for name in "cd":
            found = detect(requests[name]["output"], key, prompt=requests[name]["prompt"])
            self.assertLess(found.results[0].log10_p, -3, (name, found.to_json()))

    def test_key_from_the_environment(self) -> None:
        import os
        import tempfile

        from tracemark import serialize_key_file
        from tracemark.vllm_processor import KEY_FILE_ENVIRONMENT, TracemarkVllmLogitsProcessor

        key = WatermarkKey.create(bytes([9]) * 32)
        old = os.environ.pop(KEY_FILE_ENVIRONMENT, None)
        try:
            with self.assertRaises(RuntimeError) as missing:
                TracemarkVllmLogitsProcessor(None, torch.device("cpu"), False)
            self.assertIn(KEY_FILE_ENVIRONMENT, str(missing.exception))
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
                handle.write(serialize_key_file(key))
            os.environ[KEY_FILE_ENVIRONMENT] = handle.name
            processor = TracemarkVllmLogitsProcessor(None, torch.device("cpu"), False)
            self.assertEqual(processor.watermarker.key_id, key.key_id)
            os.unlink(handle.name)
        finally:
            os.environ.pop(KEY_FILE_ENVIRONMENT, None)
            if old is not None:
                os.environ[KEY_FILE_ENVIRONMENT] = old


# -- Gumbel keys ------------------------------------------------------------------------------------


def finite_ids(row: Any) -> list[int]:
    return torch.nonzero(torch.isfinite(row)).flatten().tolist()


def engine_draw(row: Any, temperature: float, generator: Any) -> int:
    """What an engine's sampler does after the processors: temperature, then a draw (or argmax)."""
    if temperature == 0:
        return int(torch.argmax(row))
    return int(torch.multinomial(torch.softmax(row / temperature, -1), 1, generator=generator))


@unittest.skipIf(torch is None, SKIP_REASON)
class GumbelProcessors(unittest.TestCase):
    def test_rows_reproduce_the_vectors(self) -> None:
        from tracemark.torch_processors import gumbel_row

        cases = vector_file("gumbel")["sampling"]
        for i, c in enumerate(cases):
            w = Watermarker(
                WatermarkKey.create(bytes.fromhex(c["secret"]), Scheme(c["scheme"], c["contextWidth"])),
                special_token_ids=c["special"],
            )
            row = torch.tensor([-math.inf if v is None else v for v in c["logits"]], dtype=torch.float32)
            out = gumbel_row(w, c["context"], row, c["temperature"], c["topK"], c["topP"], c["key"])
            self.assertTrue(torch.equal(row, torch.tensor([-math.inf if v is None else v for v in c["logits"]], dtype=torch.float32)))
            if c["token"] is None:
                # Unmarked: the kept candidates, unchanged, for the engine's own draw.
                self.assertEqual(sorted(finite_ids(out)), sorted(c["kept"]), i)
                self.assertTrue(torch.equal(out[c["kept"]], row[c["kept"]]))
            else:
                self.assertEqual(finite_ids(out), [c["token"]], i)
                self.assertEqual(float(out[c["token"]]), float(row[c["token"]]))

    def test_vectorized_choice_equals_the_scalar_reference(self) -> None:
        from tracemark.torch_processors import gumbel_row

        rng = random.Random(8)
        for name, width in (("gumbel", 4), ("dual_gumbel", 2)):
            w = Watermarker(WatermarkKey.create(bytes(rng.getrandbits(8) for _ in range(32)), Scheme(name, width)), special_token_ids=[5])
            for temperature, top_k, top_p, spread in ((1.0, 0, 1.0, 3.0), (0.3, 0, 1.0, 8.0), (0.7, 0, 0.95, 3.0), (1.5, 200, 1.0, 1.0), (2.0, 0, 1.0, 0.01)):
                generator = torch.Generator().manual_seed(rng.randrange(1 << 30))
                row = torch.randn(3000, generator=generator) * spread
                row[7] = row[8] = row.max() + 1  # a tie for the top logit
                row[100] = -math.inf
                context = [rng.randrange(3000) for _ in range(width)]
                for key in (0, 1) if name == "dual_gumbel" else (0,):
                    out = gumbel_row(w, context, row, temperature, top_k, top_p, key)
                    expected = gumbel_token(w, context, row.tolist(), temperature, top_k, top_p, key)
                    self.assertEqual(finite_ids(out), [expected], (name, temperature, top_k, top_p, key))
        self.assertEqual(finite_ids(gumbel_row(w, [1, 5], row, 1.0)), finite_ids(row))  # special token: unmarked
        self.assertTrue(torch.equal(gumbel_row(w, context, row, 0.0), row))  # greedy: unmarked

    def test_processor_generates_the_vector_generations(self) -> None:
        from tracemark.torch_processors import TracemarkLogitsProcessor

        for c in vector_file("gumbel")["generation"]:
            scheme = Scheme(c["scheme"], c["contextWidth"], alpha=c["alpha"] or None)
            key = WatermarkKey.create(bytes.fromhex(c["secret"]), scheme)
            processor = TracemarkLogitsProcessor(
                key, temperature=c["temperature"], top_k=c["topK"], top_p=c["topP"], repeated_contexts="mark", gumbel_key=c["key"], special_token_ids=[]
            )
            model_key = bytes.fromhex(c["modelKey"])
            ids = list(c["prompt"])
            generator = torch.Generator().manual_seed(0)
            for _ in range(len(c["tokens"])):
                prev = struct.pack("<I", ids[-1])
                logits = torch.tensor(
                    [6.0 * (siphash24(model_key, prev + struct.pack("<I", x)) >> 40) / 2**24 for x in range(c["vocabulary"])],
                    dtype=torch.float32,
                )
                out = processor(torch.tensor([ids]), logits[None])
                ids.append(engine_draw(out[0], c["temperature"], generator))
            self.assertEqual(ids[len(c["prompt"]) :], c["tokens"])

    def test_generation_is_keyed_detected_and_skips_repeated_contexts(self) -> None:
        from _tiny_model import TinyLanguageModel, generate

        from tracemark.torch_processors import TracemarkLogitsProcessor

        key = WatermarkKey.create(bytes(range(32)), Scheme("gumbel"))
        # A 5,000-token vocabulary: without truncation every candidate within 36·T nats of the best
        # needs its uniform, which is most of this flat random model's vocabulary.
        model = TinyLanguageModel(5000, seed=1)
        prompts = torch.tensor([[996, 1917, 11, 358, 1097], [791, 4062, 1498, 374, 264]])
        marking = TracemarkLogitsProcessor(key, temperature=0.9, top_p=0.95, repeated_contexts="mark")
        one = generate(model, prompts, 40, [marking], 0.9, seed=2)
        two = generate(model, prompts, 40, [marking], 0.9, seed=3)
        self.assertTrue(torch.equal(one, two), "the engine's randomness is bypassed: the output is a keyed function")
        plain = generate(model, prompts, 40, [], 0.9, seed=2)
        for b in range(2):
            found = detect(one[b].tolist(), key, prompt=prompts[b].tolist())
            self.assertEqual(found.verdict, "watermarked", found.to_json())
            clean = detect(plain[b].tolist(), key, prompt=prompts[b].tolist())
            self.assertEqual(clean.verdict, "insufficient", clean.to_json())
        # A repeated window: unmarked by default (the engine draws), marked with "mark".
        skipping = TracemarkLogitsProcessor(key, temperature=0.9)
        scores = torch.randn(1, 500, generator=torch.Generator().manual_seed(4))
        repeated = torch.tensor([[1, 2, 3, 4, 9, 1, 2, 3, 4]])
        self.assertEqual(finite_ids(skipping(repeated, scores)[0]), list(range(500)))
        self.assertEqual(len(finite_ids(marking(repeated, scores)[0])), 1)
        self.assertEqual(len(finite_ids(skipping(torch.tensor([[1, 2, 3, 4, 9, 1, 2, 3, 5]]), scores)[0])), 1)
        with self.assertRaises(ValueError):
            TracemarkLogitsProcessor(key, repeated_contexts="sometimes")
        with self.assertRaises(ValueError):
            TracemarkLogitsProcessor(key, gumbel_key=1)  # a gumbel key has no key B

    def test_vllm_persistent_batch(self) -> None:
        from _tiny_model import TinyLanguageModel

        from tracemark.torch_processors import _window_repeats, gumbel_row
        from tracemark.vllm_processor import vllm_logits_processor

        key = WatermarkKey.create(bytes([4]) * 32, Scheme("dual_gumbel", 2, alpha=0.3))
        w = Watermarker(key)
        cls = vllm_logits_processor(key)
        processor = cls(None, torch.device("cpu"), False)
        with self.assertRaises(ValueError):
            cls.validate_params(SamplingParams(extra_args={"tracemark_gumbel_key": 2}))
        model = TinyLanguageModel(12, seed=5, scale=2.0)  # few tokens, flat: repeated windows happen
        generator = torch.Generator().manual_seed(6)
        requests: dict[str, dict[str, Any]] = {}

        def new(name: str, prompt: list[int], params: SamplingParams) -> tuple[Any, list[int], list[int]]:
            requests[name] = {"prompt": prompt, "output": [], "params": params}
            return (params, prompt, requests[name]["output"])

        a = new("a", [7, 8, 9], SamplingParams(temperature=1.0, extra_args={"tracemark_gumbel_key": 1}))
        b = new("b", [5], SamplingParams(temperature=0.0))
        schedule: dict[int, Any] = {
            0: lambda: (BatchUpdate(2, [], [(0, *a), (1, *b)], []), ["a", "b"]),
            6: lambda: (
                BatchUpdate(2, [1], [(1, *new("c", [1, 2], SamplingParams(0.8, 0.9, 0, {"tracemark_gumbel_key": 0, "tracemark_repeated_contexts": "mark"})))], [(0, 1, MoveDirectionality.SWAP)]),
                ["c", "a"],
            ),
        }
        slots: list[str] = []
        skipped = 0
        for step in range(60):
            update = None
            if step in schedule:
                update, slots = schedule[step]()
            processor.update_state(update)
            batch = torch.stack([model(torch.tensor([(requests[n]["prompt"] + requests[n]["output"])[-6:]]))[0][0] for n in slots])
            before = batch.clone()
            out = processor.apply(batch)
            for row, name in enumerate(slots):
                r = requests[name]
                p = r["params"]
                extra = p.extra_args or {}
                context = r["prompt"] + r["output"]
                mark = extra.get("tracemark_repeated_contexts") == "mark" or not _window_repeats(context, 2)
                skipped += p.temperature > 0 and not mark
                expected = gumbel_row(w, context[-2:], before[row], p.temperature, 0, p.top_p, extra.get("tracemark_gumbel_key", 0), mark)
                self.assertTrue(torch.equal(out[row], expected), (step, name))
                r["output"].append(engine_draw(out[row], p.temperature, generator))
        self.assertGreater(skipped, 0)  # the repeated-context rule was exercised
        found = detect(requests["c"]["output"], key, prompt=requests["c"]["prompt"])
        self.assertLess(found.results[0].log10_p, -3, found.to_json())


if __name__ == "__main__":
    unittest.main()
