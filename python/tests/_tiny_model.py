"""A tiny, randomly initialised, seeded language model and a sampling loop shaped like
transformers' `generate(do_sample=True)`: processors in order, then temperature, then a draw."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TinyLanguageModel(torch.nn.Module):
    """Embedding → 2-layer GRU → output layer over the whole vocabulary. No weights are downloaded."""

    def __init__(self, vocab_size: int, dim: int = 32, seed: int = 0, scale: float = 24.0) -> None:
        super().__init__()
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.embed = torch.nn.Embedding(vocab_size, dim)
        self.gru = torch.nn.GRU(dim, dim, num_layers=2, batch_first=True)
        self.out = torch.nn.Linear(dim, vocab_size)
        torch.random.set_rng_state(generator_state)
        self.scale = scale

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, state = self.gru(self.embed(input_ids), state)
        return self.out(hidden[:, -1]) * self.scale, state


def allow_only(allowed: Sequence[int], vocab_size: int) -> Processor:
    """A constraint processor (like transformers' SuppressTokens) that runs before the watermark."""
    mask = torch.ones(vocab_size, dtype=torch.bool)
    mask[torch.tensor(list(allowed), dtype=torch.long)] = False

    def process(_: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores.masked_fill(mask, float("-inf"))

    return process


@torch.no_grad()
def generate(
    model: TinyLanguageModel,
    prompts: torch.Tensor,
    new_tokens: int,
    processors: Sequence[Processor],
    temperature: float,
    seed: int,
) -> torch.Tensor:
    """Sampled continuations [batch, new_tokens] of `prompts` [batch, m]."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = prompts.clone()
    logits, state = model(input_ids)
    for _ in range(new_tokens):
        scores = logits
        for processor in processors:
            scores = processor(input_ids, scores)
        if temperature == 0:
            chosen = torch.argmax(scores, dim=-1)
        else:
            probabilities = torch.softmax(scores / temperature, dim=-1)
            chosen = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
        input_ids = torch.cat([input_ids, chosen[:, None]], dim=1)
        logits, state = model(chosen[:, None], state)
    return input_ids[:, prompts.shape[1] :]
