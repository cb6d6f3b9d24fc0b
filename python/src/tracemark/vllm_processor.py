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
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .keys import WatermarkKey, load_key_file
from .torch_processors import as_watermarker, watermark_row
from .watermarker import Watermarker

try:  # subclass vLLM's base when it is installed, so vLLM's loader accepts the class
    from vllm.v1.sample.logits_processor import LogitsProcessor as _VllmLogitsProcessor
except Exception:  # vLLM absent (or an older layout): a plain base with the same methods
    _VllmLogitsProcessor = object

KEY_FILE_ENVIRONMENT = "TRACEMARK_KEY_FILE"
SAMPLING_EPSILON = 1e-5  # vLLM treats a temperature below this as greedy


class _Request:
    __slots__ = ("prompt", "output", "temperature", "top_k", "top_p")

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
    """vLLM v1 logits processor: widened nucleus, then δ on the green candidates, per request."""

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

    def is_argmax_invariant(self) -> bool:
        """False: the bias changes which token is greedy."""
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
            self._requests[index] = _Request(prompt_ids, output_ids, params)
        for a, b, direction in batch_update.moved:
            moving = self._requests.pop(a, None)
            other = self._requests.pop(b, None)
            if moving is not None:
                self._requests[b] = moving
            if other is not None and _is_swap(direction):
                self._requests[a] = other

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
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


def vllm_logits_processor(key: WatermarkKey | Watermarker) -> type[TracemarkVllmLogitsProcessor]:
    """A processor class bound to `key`, to pass as `LLM(logits_processors=[...])`."""
    bound = as_watermarker(key)
    return type("BoundTracemarkVllmLogitsProcessor", (TracemarkVllmLogitsProcessor,), {"key": bound})
