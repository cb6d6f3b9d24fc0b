"""What the watermark needs to know of tracemark's tokenizers: special token ids (spec §6, set E).

Encoding and decoding stay with `@tracemark/tokenizers`; these facts mirror its ENCODING_FACTS.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenizerFacts:
    ordinary_token_count: int
    special_tokens: dict[str, int]

    @property
    def special_token_ids(self) -> frozenset[int]:
        return frozenset(self.special_tokens.values())

    @property
    def vocab_size(self) -> int:
        """One more than the largest token id, special tokens included."""
        return max(self.ordinary_token_count, *(i + 1 for i in self.special_tokens.values()))


TOKENIZER_FACTS: dict[str, TokenizerFacts] = {
    "cl100k_base": TokenizerFacts(
        100_256,
        {
            "<|endoftext|>": 100_257,
            "<|fim_prefix|>": 100_258,
            "<|fim_middle|>": 100_259,
            "<|fim_suffix|>": 100_260,
            "<|endofprompt|>": 100_276,
        },
    ),
    "o200k_base": TokenizerFacts(199_998, {"<|endoftext|>": 199_999, "<|endofprompt|>": 200_018}),
    "gpt2": TokenizerFacts(50_256, {"<|endoftext|>": 50_256}),
}


def special_token_ids(tokenizer: str) -> frozenset[int]:
    """The special token ids of a tokenizer tracemark ships; a RangeError-like ValueError otherwise."""
    facts = TOKENIZER_FACTS.get(tokenizer)
    if facts is None:
        raise ValueError(
            f"tokenizer: tracemark ships {', '.join(TOKENIZER_FACTS)}, not {tokenizer!r}; "
            "pass special_token_ids explicitly"
        )
    return facts.special_token_ids
