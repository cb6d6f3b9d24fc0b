"""Logits processors for torch engines: the transformers `LogitsProcessor` interface
(`__call__(input_ids, scores) -> scores`), usable in `model.generate(logits_processor=[...])`.

What a processor controls, and what it does not:

- It sees the logits *before* the engine's temperature, top-k and top-p (transformers appends its
  warpers after every user processor; vLLM v1 applies non-argmax-invariant processors before them).
- tracemark's sampling order (spec §7, docs/decisions/2026-12-04-sampling-order.md) truncates the
  *unbiased* distribution, widens the kept set to every candidate within δ of the best, then draws
  from q(x) ∝ exp((ℓ_x + δ·g_x)/T) over it. The processor therefore does the truncation itself:
  give it the temperature, top-k and top-p, and leave the engine's own top-k and top-p off
  (transformers: `top_k=0, top_p=1.0`; its default top_k is 50). The engine's temperature must be
  the one the processor was given: it divides (ℓ + δg) by T, and its sampler then draws from q.
- If the engine truncates again after the processor, it truncates the biased distribution within
  the widened nucleus ("bias-first", as transformers' own watermark orders it): the mark is kept,
  but the distribution is no longer tracemark's q.
- Randomness, beam search, repetition penalties applied before the processor, and the logprobs an
  engine returns are the engine's. Penalties that run before the processor count as part of the
  model's distribution; detection does not depend on any of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from .keys import WatermarkKey
from .sampling import _check_truncation
from .watermarker import Watermarker

try:
    import numpy as _np
except ImportError:  # pragma: no cover
    _np = None


def as_watermarker(key: WatermarkKey | Watermarker, special_token_ids: Iterable[int] | None = None) -> Watermarker:
    if isinstance(key, Watermarker):
        return key
    if isinstance(key, WatermarkKey):
        return Watermarker(key, special_token_ids)
    raise TypeError("key: expected a WatermarkKey (tracemark.load_key_file) or a Watermarker")


def kept_mask(row: torch.Tensor, temperature: float, top_k: int, top_p: float, delta: float) -> torch.Tensor | None:
    """The kept candidates of one row of logits as a bool tensor (None: every finite candidate).

    The rule of `tracemark.sampling.kept_candidates`: top-k, then the smallest prefix (descending
    logits, earlier index first on ties) whose mass at temperature T reaches top_p, then every
    candidate with ℓ ≥ max ℓ − δ. Nothing is truncated at T = 0 (greedy).
    """
    if temperature == 0 or (top_k == 0 and top_p >= 1):
        return None
    values = row.detach().to(torch.float32).to(torch.float64)
    finite = int(torch.isfinite(values).sum()) if values.numel() else 0
    if finite == 0:
        raise ValueError("logits: no candidate has a finite logit")
    ordered, order = torch.sort(values, descending=True, stable=True)
    keep = min(top_k, finite) if top_k > 0 else finite
    top = float(ordered[0])
    if top_p < 1:
        running = torch.cumsum(torch.exp((ordered[:keep] - top) / temperature), dim=0)
        reached = torch.nonzero(running >= top_p * float(running[-1]))
        keep = int(reached[0, 0]) + 1
    if delta > 0:
        keep = max(keep, int((ordered[:finite] >= top - delta).sum()))
    mask = torch.zeros(values.shape[0], dtype=torch.bool, device=row.device)
    mask[order[:keep].to(row.device)] = True
    return mask


def watermark_row(
    watermarker: Watermarker,
    context: Sequence[int],
    row: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
) -> torch.Tensor:
    """One row of logits, watermarked: candidates outside the widened nucleus set to −inf and δ
    added to the green ones (spec §7). Returns a new tensor; `row` is not modified."""
    delta = float(watermarker.scheme.delta)
    mask = kept_mask(row, temperature, top_k, top_p, delta)
    out = row.clone()
    if mask is not None:
        out.masked_fill_(~mask, -math.inf)
    if delta == 0:
        return out
    vocab_size = row.shape[-1]
    if _np is None:
        ids = range(vocab_size) if mask is None else torch.nonzero(mask).flatten().tolist()
        green_ids = [x for x in ids if watermarker.candidate_green(context, x) == 1]
        if green_ids:
            index = torch.tensor(green_ids, dtype=torch.long, device=row.device)
            out[index] += delta
        return out
    if mask is not None and int(mask.sum()) * 8 < vocab_size:
        # A small nucleus: test only the kept candidates.
        kept = torch.nonzero(mask).flatten()
        green = watermarker.green_of(context, kept.cpu().numpy())
        chosen = kept[torch.from_numpy(green).to(row.device)]
        out[chosen] += delta
        return out
    green = torch.from_numpy(watermarker.green_list(context, vocab_size)).to(row.device)
    if mask is not None:
        green &= mask
    out[green] += delta
    return out


class TracemarkLogitsProcessor:
    """tracemark's green-list watermark as a transformers logits processor.

    ```python
    processor = TracemarkLogitsProcessor(load_key_file("key.json"), temperature=0.7, top_p=0.9)
    model.generate(**inputs, do_sample=True, temperature=0.7, top_k=0, top_p=1.0,
                   logits_processor=LogitsProcessorList([processor]))
    ```

    The context of each row is its `input_ids` (prompt and generated tokens), so windows reach back
    into the prompt as spec §6 scores them. Left padding enters a window only when a prompt is
    shorter than the context width.
    """

    def __init__(
        self,
        key: WatermarkKey | Watermarker,
        *,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        special_token_ids: Iterable[int] | None = None,
    ) -> None:
        _check_truncation(temperature, top_k, top_p)
        self.watermarker = as_watermarker(key, special_token_ids)
        self.temperature = float(temperature)
        self.top_k = int(top_k)
        self.top_p = float(top_p)
        self._reach = self.watermarker.window_reach()

    def __repr__(self) -> str:
        return (
            f"TracemarkLogitsProcessor({self.watermarker!r}, temperature={self.temperature}, "
            f"top_k={self.top_k}, top_p={self.top_p})"
        )

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.dim() != 2 or scores.dim() != 2 or input_ids.shape[0] != scores.shape[0]:
            raise ValueError("expected input_ids [batch, seq] and scores [batch, vocab] of the same batch size")
        tail = input_ids[:, input_ids.shape[1] - self._reach :] if self._reach > 0 else input_ids[:, :0]
        contexts = tail.tolist()
        rows = [
            watermark_row(self.watermarker, contexts[b], scores[b], self.temperature, self.top_k, self.top_p)
            for b in range(scores.shape[0])
        ]
        return torch.stack(rows) if rows else scores.clone()


