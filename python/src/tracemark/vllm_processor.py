"""tracemark's watermark as a vLLM v1 logits processor.

Written against vLLM's published v1 interface, `vllm/v1/sample/logits_processor/interface.py`
(`LogitsProcessor` with `__init__(vllm_config, device, is_pin_memory)`, `is_argmax_invariant()`,
`update_state(batch_update)`, `apply(logits)`, `needs_output_token_ids()`; `BatchUpdate` with
`batch_size`, `removed`, `added`, `moved`; `MoveDirectionality`). It subclasses vLLM's base class
when vLLM is installed; its tests drive it with stand-ins for those dataclasses, not a live engine.

Use, with the key bound by `vllm_logits_processor(key)` or named by `TRACEMARK_KEY_FILE`:

    LLM(model=..., logits_processors=[vllm_logits_processor(load_key_file("key.json"))])

vLLM applies processors that are not argmax-invariant (this one) to the raw logits, before its
temperature, top-k and top-p. The processor reads each request's temperature, top-k and top-p from
its SamplingParams and applies tracemark's widened nucleus itself (see `torch_processors`). For
tracemark's exact distribution q, give the truncation to the processor in
`SamplingParams(extra_args={"tracemark_top_k": k, "tracemark_top_p": p})` and leave vLLM's own
`top_k`/`top_p` off; with vLLM's own top-k/top-p set, vLLM truncates the biased logits again
within the widened nucleus (the mark is kept; the distribution is then "bias-first").

There is no per-request opt-out: every request is watermarked. Speculative decoding (several
logits rows per request) is not supported.

Gumbel keys (`gumbel`, `dual_gumbel`): the processor makes the keyed choice after the request's
temperature and truncation (`tracemark_top_k` / `tracemark_top_p`, else the request's own top_k /
top_p, which vLLM then applies again to a single candidate, changing nothing) and leaves only that
token finite, so vLLM's sampler, whatever it is, picks it: vLLM's own sampling randomness (and its
per-request seed) is bypassed on marked steps. It must be the last non-argmax-invariant processor
(vLLM runs its built-in ones first, then plugins, then those passed to the engine, in order).
vLLM applies repetition / presence / frequency penalties *after* the processors: they cannot change
a marked step's token, and they do not shape the distribution it was chosen from. Unmarked steps
(greedy, no full window or a special token in it, a repeated context) get the truncated logits and
vLLM's own draw. Per request, `extra_args` may set `tracemark_repeated_contexts` ("skip", the
default, or "mark") and, for `dual_gumbel`, `tracemark_gumbel_key` (0: key A, 1: key B; default: B
with probability α, drawn from a generator seeded with the request's `seed` when it has one).
"""

from __future__ import annotations

import os
import random
from typing import Any

import torch

from .keys import WatermarkKey, load_key_file
from .torch_processors import REPEATED_CONTEXTS, _check_gumbel_options, as_watermarker, gumbel_row, watermark_row
from .watermarker import Watermarker

try:  # subclass vLLM's base when it is installed, so vLLM's loader accepts the class
    from vllm.v1.sample.logits_processor import LogitsProcessor as _VllmLogitsProcessor
except Exception:  # vLLM absent (or an older layout): a plain base with the same methods
    _VllmLogitsProcessor = object

KEY_FILE_ENVIRONMENT = "TRACEMARK_KEY_FILE"
SAMPLING_EPSILON = 1e-5  # vLLM treats a temperature below this as greedy


class _Request:
    __slots__ = (
        "prompt",
        "output",
        "temperature",
        "top_k",
        "top_p",
        "repeated_contexts",
        "gumbel_key",
        "random",
        "seen",
        "indexed_to",
    )

    def __init__(self, prompt: list[int] | None, output: list[int], params: Any) -> None:
        self.prompt = list(prompt) if prompt is not None else []
        self.output = output  # vLLM's running list of output ids, by reference
        temperature = float(getattr(params, "temperature", 1.0) or 0.0)
        self.temperature = 0.0 if temperature < SAMPLING_EPSILON else temperature
        extra = getattr(params, "extra_args", None) or {}
        top_k = extra.get("tracemark_top_k", getattr(params, "top_k", 0))
        top_p = extra.get("tracemark_top_p", getattr(params, "top_p", 1.0))
        self.top_k = int(top_k) if top_k is not None and int(top_k) > 0 else 0  # vLLM: 0 or -1 is off
        self.top_p = float(top_p) if top_p is not None else 1.0
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p: expected a number in (0, 1], got {self.top_p!r}")
        self.repeated_contexts = extra.get("tracemark_repeated_contexts", "skip")
        key = extra.get("tracemark_gumbel_key")
        self.gumbel_key = None if key is None else int(key)
        seed = getattr(params, "seed", None)
        self.random = random.Random(seed)  # the dual key's draw: independent of the watermark key
        self.seen: set[tuple[int, ...]] = set()  # windows that ended before the current position
        self.indexed_to = 0

    def token_at(self, index: int) -> int:
        m = len(self.prompt)
        return int(self.prompt[index] if index < m else self.output[index - m])

    def repeats(self, width: int) -> bool:
        """Whether the window before the next position already ended an earlier position
        (watermark-gumbel §6); indexes the windows incrementally."""
        length = len(self.prompt) + len(self.output)
        end = max(self.indexed_to, width)
        while end < length:
            self.seen.add(tuple(self.token_at(j) for j in range(end - width, end)))
            end += 1
        self.indexed_to = max(self.indexed_to, length)
        if length < width:
            return False
        return tuple(self.token_at(j) for j in range(length - width, length)) in self.seen

    def context(self, reach: int) -> list[int]:
        if reach == 0:
            return []
        tail = self.output[-reach:] if self.output else []
        if len(tail) < reach:
            tail = self.prompt[len(self.prompt) - (reach - len(tail)) :] + list(tail)
        return [int(t) for t in tail]


def _is_swap(direction: Any) -> bool:
    return getattr(direction, "name", direction) == "SWAP"


class TracemarkVllmLogitsProcessor(_VllmLogitsProcessor):  # type: ignore[misc, valid-type]
    """vLLM v1 logits processor: widened nucleus, then δ on the green candidates, per request; for a
    Gumbel key the keyed choice as the only finite logit."""

    key: WatermarkKey | Watermarker | None = None

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        key = type(self).key
        if key is None:
            path = os.environ.get(KEY_FILE_ENVIRONMENT)
            if not path:
                raise RuntimeError(
                    f"no tracemark key: bind one with vllm_logits_processor(key) or set {KEY_FILE_ENVIRONMENT}"
                )
            key = load_key_file(path)
        self.watermarker = as_watermarker(key)
        self.device = device
        self._reach = self.watermarker.window_reach()
        self._requests: dict[int, _Request] = {}

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        extra = getattr(sampling_params, "extra_args", None) or {}
        top_p = extra.get("tracemark_top_p")
        if top_p is not None and not 0 < float(top_p) <= 1:
            raise ValueError("tracemark_top_p: expected a number in (0, 1]")
        top_k = extra.get("tracemark_top_k")
        if top_k is not None and int(top_k) < 0:
            raise ValueError("tracemark_top_k: expected an integer ≥ 0")
        repeated = extra.get("tracemark_repeated_contexts")
        if repeated is not None and repeated not in REPEATED_CONTEXTS:
            raise ValueError("tracemark_repeated_contexts: expected skip or mark")
        key = extra.get("tracemark_gumbel_key")
        if key is not None and (isinstance(key, bool) or key not in (0, 1)):
            raise ValueError("tracemark_gumbel_key: expected 0 or 1")

    def is_argmax_invariant(self) -> bool:
        """False: the bias (or the keyed choice) changes which token is greedy."""
        return False

    def needs_output_token_ids(self) -> bool:
        """True: the seeds depend on the real output ids, not placeholders."""
        return True

    def update_state(self, batch_update: Any) -> None:
        """Applies the batch changes in the order the interface states: removed, added, moved."""
        if batch_update is None:
            return
        for index in batch_update.removed:
            self._requests.pop(index, None)
        for index, params, prompt_ids, output_ids in batch_update.added:
            request = _Request(prompt_ids, output_ids, params)
            if self.watermarker.is_gumbel:
                _check_gumbel_options(self.watermarker, request.repeated_contexts, request.gumbel_key)
            self._requests[index] = request
        for a, b, direction in batch_update.moved:
            moving = self._requests.pop(a, None)
            other = self._requests.pop(b, None)
            if moving is not None:
                self._requests[b] = moving
            if other is not None and _is_swap(direction):
                self._requests[a] = other

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if self.watermarker.is_gumbel:
            return self._apply_gumbel(logits)
        for index, request in self._requests.items():
            if index >= logits.shape[0]:
                continue
            logits[index] = watermark_row(
                self.watermarker,
                request.context(self._reach),
                logits[index],
                request.temperature,
                request.top_k,
                request.top_p,
            )
        return logits

    def _apply_gumbel(self, logits: torch.Tensor) -> torch.Tensor:
        scheme = self.watermarker.scheme
        for index, request in self._requests.items():
            if index >= logits.shape[0]:
                continue
            # Index the windows every step, so that a later repeat is recognized even after greedy steps.
            repeated = request.repeats(scheme.context_width)
            mark = request.repeated_contexts == "mark" or not repeated
            key = request.gumbel_key
            if key is None:
                key = 1 if scheme.name == "dual_gumbel" and request.random.random() < scheme.alpha else 0
            logits[index] = gumbel_row(
                self.watermarker,
                request.context(self._reach),
                logits[index],
                request.temperature,
                request.top_k,
                request.top_p,
                key,
                mark,
            )
        return logits


def vllm_logits_processor(key: WatermarkKey | Watermarker) -> type[TracemarkVllmLogitsProcessor]:
    """A processor class bound to `key`, to pass as `LLM(logits_processors=[...])`."""
    bound = as_watermarker(key)
    return type("BoundTracemarkVllmLogitsProcessor", (TracemarkVllmLogitsProcessor,), {"key": bound})
