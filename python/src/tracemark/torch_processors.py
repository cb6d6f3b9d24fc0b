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

Gumbel keys (`gumbel`, `dual_gumbel`; docs/spec/watermark-gumbel.md) are distortion-free: nothing is
biased. The processor applies temperature and truncation (top-k, top-p of the model's distribution,
no widening), makes the keyed choice argmax_x u_x^(1/p_x) over the kept candidates, and returns
logits in which that token is the only finite one. Whatever the engine's sampler then does
(temperature, top-k, top-p, a random draw, greedy), it picks that token: the engine's own sampling
randomness is bypassed, which is what makes the output a keyed function of the context. So:

- the processor must be the **last** one: a processor after it that sets the chosen token to −inf
  leaves no candidate (and one that changes other logits changes nothing);
- the processor must be given the engine's temperature and truncation (the engine's own top-k and
  top-p then act on one candidate and change nothing);
- unmarked steps (T = 0, a position without a full window or with a special token in it, and by
  default a repeated context) return the truncated logits and let the engine draw;
- repeated contexts (watermark-gumbel §6): a keyed choice repeats whenever its context and the
  model's distribution do, so repeated h-grams would loop. By default (`repeated_contexts="skip"`)
  a step whose h-token window already occurred earlier in prompt + output is left to the engine's
  own draw, unmarked, as `generateTokens` does; `"mark"` marks every step.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from .gumbel import GUMBEL_NOISE_MAX, SKIP_MARGIN, gumbel_choice, gumbel_key_of
from .keys import WatermarkKey
from .sampling import _check_truncation
from .watermarker import Watermarker

REPEATED_CONTEXTS = ("skip", "mark")

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


def _check_gumbel_options(watermarker: Watermarker, repeated_contexts: str, gumbel_key: int | None) -> None:
    if repeated_contexts not in REPEATED_CONTEXTS:
        raise ValueError(f"repeated_contexts: expected skip or mark, got {repeated_contexts!r}")
    if gumbel_key is not None:
        if isinstance(gumbel_key, bool) or gumbel_key not in (0, 1):
            raise ValueError(f"gumbel_key: expected 0 or 1, got {gumbel_key!r}")
        if gumbel_key == 1 and watermarker.scheme.name != "dual_gumbel":
            raise ValueError("gumbel_key: only a dual_gumbel key has a key B (1)")


def gumbel_choice_of_row(
    watermarker: Watermarker, seed: int, row: torch.Tensor, mask: torch.Tensor | None, temperature: float, key: int = 0
) -> int:
    """The keyed choice of watermark-gumbel §4.2 among the kept candidates of a row (every finite
    one when `mask` is None): the token with the largest (ℓ − ℓ_max)/T − ln(−ln u), the smaller id on
    equal keys. Vectorized with numpy where it is installed; the result is that of the scalar
    definition (`tracemark.gumbel.gumbel_choice`): keys within 1e-7 of the best are recomputed with
    the scalar code, and every candidate skipped could not win whatever its uniform."""
    values = row.detach().to(torch.float32).cpu()
    finite = torch.isfinite(values)
    kept = torch.nonzero(finite if mask is None else mask.cpu() & finite).flatten()
    if kept.numel() == 0:
        raise ValueError("logits: no candidate has a finite logit")
    if _np is None or kept.numel() <= 64:
        ids = kept.tolist()
        logits = values[kept].to(torch.float64).tolist()
        index, _ = gumbel_choice(ids, logits, temperature, lambda t: watermarker.uniform(seed, t, key))
        return ids[index]
    np = _np
    ids = kept.numpy()
    logits = values.numpy()[ids].astype(np.float64)
    max_logit = float(logits.max())
    top = int(ids[logits == max_logit].min())  # the smaller id among equal largest logits
    scaled = (logits - max_logit) / temperature
    best_key = gumbel_key_of(0.0, watermarker.uniform(seed, top, key))
    reachable = scaled + GUMBEL_NOISE_MAX >= best_key - SKIP_MARGIN
    ids = ids[reachable]
    scaled = scaled[reachable]
    uniforms = watermarker.uniforms_of(seed, ids, key)
    with np.errstate(divide="ignore"):
        keys = scaled - np.log(-np.log(uniforms))
    near = np.nonzero(keys >= keys.max() - 1e-7)[0]
    best = max(near.tolist(), key=lambda j: (gumbel_key_of(float(scaled[j]), float(uniforms[j])), -int(ids[j])))
    return int(ids[best])


def _window_repeats(ids: Sequence[int] | torch.Tensor, width: int) -> bool:
    """Whether the last `width` tokens of `ids` already occurred as a window ending earlier."""
    row = torch.as_tensor(ids)
    if row.shape[0] <= width:
        return False
    windows = row.unfold(0, width, 1)
    return bool((windows[:-1] == windows[-1]).all(dim=1).any())


def gumbel_row(
    watermarker: Watermarker,
    context: Sequence[int],
    row: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    gumbel_key: int = 0,
    mark: bool = True,
) -> torch.Tensor:
    """One row of logits for a Gumbel key (watermark-gumbel §4): the candidates outside top-k / top-p
    set to −inf; on a marked step (T > 0, an eligible window, `mark`) every candidate but the keyed
    choice set to −inf, so any sampler picks it. `context` needs the last h tokens. Returns a new
    tensor; `row` is not modified."""
    out = row.clone()
    if temperature == 0:
        return out  # greedy: unmarked
    mask = kept_mask(row, temperature, top_k, top_p, 0.0)
    if mask is not None:
        out.masked_fill_(~mask, -math.inf)
    seed = watermarker.context_seed(context) if mark else None
    if seed is None:
        return out
    token = gumbel_choice_of_row(watermarker, seed, row, mask, temperature, gumbel_key)
    chosen = torch.full_like(row, -math.inf)
    chosen[token] = row[token]
    return chosen


class TracemarkLogitsProcessor:
    """tracemark's watermark as a transformers logits processor: the green-list bias, or for a
    Gumbel key the keyed choice (see the module notes: it must then be the last processor).

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
        repeated_contexts: str = "skip",
        gumbel_key: int | None = None,
        seed: int | None = None,
    ) -> None:
        """`repeated_contexts`, `gumbel_key` and `seed` concern Gumbel keys only: whether a step
        whose context already occurred is marked (`skip`: no, the default; `mark`: yes); for
        `dual_gumbel` the key of every step (0: A, 1: B; None: B with probability α, drawn from a
        generator seeded with `seed`, independent of the watermark key)."""
        _check_truncation(temperature, top_k, top_p)
        self.watermarker = as_watermarker(key, special_token_ids)
        _check_gumbel_options(self.watermarker, repeated_contexts, gumbel_key)
        self.temperature = float(temperature)
        self.top_k = int(top_k)
        self.top_p = float(top_p)
        self.repeated_contexts = repeated_contexts
        self.gumbel_key = gumbel_key
        self._random = random.Random(seed)
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
        if self.watermarker.is_gumbel:
            return self._gumbel(input_ids, contexts, scores)
        rows = [
            watermark_row(self.watermarker, contexts[b], scores[b], self.temperature, self.top_k, self.top_p)
            for b in range(scores.shape[0])
        ]
        return torch.stack(rows) if rows else scores.clone()

    def _gumbel(self, input_ids: torch.Tensor, contexts: list[list[int]], scores: torch.Tensor) -> torch.Tensor:
        scheme = self.watermarker.scheme
        rows = []
        for b in range(scores.shape[0]):
            mark = self.repeated_contexts == "mark" or not _window_repeats(input_ids[b].cpu(), scheme.context_width)
            key = self.gumbel_key
            if key is None:
                key = 1 if scheme.name == "dual_gumbel" and self._random.random() < scheme.alpha else 0
            rows.append(
                gumbel_row(
                    self.watermarker, contexts[b], scores[b], self.temperature, self.top_k, self.top_p, key, mark
                )
            )
        return torch.stack(rows) if rows else scores.clone()


