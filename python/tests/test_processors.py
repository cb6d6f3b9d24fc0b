"""The logits processors: transformers' interface driven by a tiny torch model, and vLLM's v1
interface driven by stand-ins of its published BatchUpdate dataclasses."""

from __future__ import annotations

import math
import random
import unittest
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any

import _vectors  # noqa: F401  (puts the source tree on the path)

from tracemark import Scheme, WatermarkKey, Watermarker, detect, kept_candidates

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


if __name__ == "__main__":
    unittest.main()
