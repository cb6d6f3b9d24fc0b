"""Seeds (spec §4) and green membership (spec §3) for one key, one token at a time or, with numpy,
for a whole vocabulary at once (the green list a logits processor needs each step); for the Gumbel
schemes (docs/spec/watermark-gumbel.md) the keyed uniforms and token scores instead."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from ._siphash import siphash24, siphash24_words, siphash24_words_np, split_key
from .gumbel import uniform_of_word
from .keys import WatermarkKey
from .tokenizers import special_token_ids as tokenizer_special_ids

MAX_TOKEN_ID = 0xFFFFFFFF

try:  # numpy is optional: it makes a whole-vocabulary green list cost milliseconds, not seconds
    import numpy as _np
except ImportError:  # pragma: no cover - exercised only where numpy is absent
    _np = None


def _check_token(token: int, name: str = "token") -> int:
    if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token <= MAX_TOKEN_ID:
        raise ValueError(f"{name}: {token!r} is not a token id (an integer from 0 to 2^32 - 1)")
    return token


class Watermarker:
    """A key bound to its scheme and its tokenizer's special tokens.

    `special_token_ids` defaults to the special tokens of the key's tokenizer (spec §6, the set E).
    """

    def __init__(self, key: WatermarkKey, special_token_ids: Iterable[int] | None = None) -> None:
        if not isinstance(key, WatermarkKey):
            raise TypeError("key: expected a WatermarkKey (see load_key_file)")
        self.key = key
        self.key_id = key.key_id
        self.scheme = key.scheme
        ids = tokenizer_special_ids(key.tokenizer) if special_token_ids is None else special_token_ids
        self.special_token_ids = frozenset(_check_token(int(t), "special_token_ids") for t in ids)
        prf = key.prf_keys()
        self._context_key = prf.context
        self._context = split_key(prf.context)
        self._green = split_key(prf.green)
        self._rank = split_key(prf.rank)
        self.is_gumbel = key.scheme.is_gumbel
        self._threshold = -1 if self.is_gumbel else key.scheme.threshold
        if self.is_gumbel:
            gumbel = key.gumbel_prf_keys()
            self._gumbel = (split_key(gumbel.a), split_key(gumbel.b))
        self._ranks: dict[int, int] = {}
        self._rank_array: Any = None

    def __repr__(self) -> str:
        s = self.scheme
        if self.is_gumbel:
            alpha = f", alpha={s.alpha}" if s.name == "dual_gumbel" else ""
            return f"Watermarker({self.key_id}, {s.name}, h={s.context_width}{alpha})"
        return f"Watermarker({self.key_id}, {s.name}, h={s.context_width}, gamma={s.gamma}, delta={s.delta})"

    def _green_list_only(self, what: str) -> None:
        if self.is_gumbel:
            raise TypeError(f"{what}: key {self.key_id} uses the {self.scheme.name} scheme, which has no green list")

    # -- scalar ------------------------------------------------------------------------------

    def is_special(self, token: int) -> bool:
        return token in self.special_token_ids

    def rank(self, token: int) -> int:
        """4.2: rank(t) = SipHash(K_rank, LE32(t))."""
        held = self._ranks.get(token)
        if held is None:
            held = siphash24_words(*self._rank, [], (4 << 56) | token)
            if len(self._ranks) < 1 << 20:
                self._ranks[token] = held
        return held

    def lefthash_seed(self, window: Sequence[int]) -> int:
        """4.1: SipHash(K_context, 0x01 || LE32(c_{i-h}) || ... || LE32(c_{i-1}))."""
        message = b"\x01" + struct.pack(f"<{len(window)}I", *window)
        return siphash24(self._context_key, message)

    def anchor(self, window: Iterable[int]) -> int:
        """4.2: the window token of smallest rank; on equal ranks, the smaller token id."""
        return min(window, key=lambda t: (self.rank(t), t))

    def selfhash_seed(self, anchor: int, token: int) -> int:
        """4.2: SipHash(K_context, 0x02 || LE32(anchor) || LE32(token)), a 9-byte message."""
        block = 0x02 | (anchor << 8) | ((token & 0xFFFFFF) << 40)
        return siphash24_words(*self._context, [block], (token >> 24) | (9 << 56))

    def green_value(self, seed: int, token: int) -> int:
        """3.2: u = SipHash(K_green, LE64(s) || LE32(t)) >> 32."""
        return siphash24_words(*self._green, [seed], token | (12 << 56)) >> 32

    def is_green(self, seed: int, token: int) -> bool:
        self._green_list_only("is_green")
        return self.green_value(seed, token) < self._threshold

    # -- Gumbel schemes (watermark-gumbel §3, §5) ----------------------------------------------

    def _gumbel_keys(self, key: int) -> tuple[int, int]:
        if not self.is_gumbel:
            raise TypeError(f"uniform: key {self.key_id} uses the {self.scheme.name} scheme, not a Gumbel scheme")
        if key not in (0, 1) or isinstance(key, bool) or (key == 1 and self.scheme.name != "dual_gumbel"):
            allowed = "0 or 1" if self.scheme.name == "dual_gumbel" else "0"
            raise ValueError(f"gumbel_key: expected {allowed}, got {key!r}")
        return self._gumbel[key]

    def gumbel_word(self, seed: int, token: int, key: int = 0) -> int:
        """3.1: x = SipHash(K, LE64(s) || LE32(t)), K = K_gumbel (key 0, A) or K_gumbel_b (key 1, B)."""
        return siphash24_words(*self._gumbel_keys(key), [seed], token | (12 << 56))

    def uniform(self, seed: int, token: int, key: int = 0) -> float:
        """3.1: u = floor(x / 2^12) / 2^52, exact in a double."""
        return uniform_of_word(self.gumbel_word(seed, token, key))

    def token_score(self, seed: int, token: int) -> float:
        """5.1: −ln(1 − u_A), or (1 − α)·(−ln(1 − u_A)) + α·(−ln(1 − u_B)) for `dual_gumbel`."""
        score_a = -math.log1p(-self.uniform(seed, token, 0))
        if self.scheme.name != "dual_gumbel":
            return score_a
        alpha = self.scheme.alpha
        return (1 - alpha) * score_a + alpha * -math.log1p(-self.uniform(seed, token, 1))

    def uniforms_of(self, seed: int, candidates: Any, key: int = 0) -> Any:
        """`uniform` of every candidate id of a numpy integer array (needs numpy)."""
        if _np is None:
            raise RuntimeError("uniforms_of needs numpy; use uniform one token at a time")
        np = _np
        x = np.asarray(candidates).astype(np.uint64)
        words = siphash24_words_np(np, *self._gumbel_keys(key), [np.uint64(seed)], x | np.uint64(12 << 56))
        return (words >> np.uint64(12)).astype(np.float64) * 2.0**-52  # exact: < 2^52 times a power of 2

    def context_seed(self, context: Sequence[int]) -> int | None:
        """The seed of the position after `context` when it is eligible (a full LeftHash window
        without special tokens), else None. Gumbel schemes only (their seed does not depend on the
        candidate)."""
        if not self.is_gumbel:
            raise TypeError(f"context_seed: key {self.key_id} uses the {self.scheme.name} scheme; see candidate_green")
        h = self.scheme.context_width
        if len(context) < h:
            return None
        window = [int(t) for t in context[len(context) - h :]]
        if any(t in self.special_token_ids for t in window):
            return None
        return self.lefthash_seed(window)

    def window_reach(self) -> int:
        """Tokens before a position that its window spans: h (LeftHash, Gumbel) or h - 1 (SelfHash)."""
        h = self.scheme.context_width
        return h - 1 if self.scheme.name == "selfhash" else h

    def seed_at(self, tokens: Sequence[int], index: int) -> int | None:
        """The seed of position `index` of `tokens`, or None when its window does not exist.
        Special tokens are not checked here (see `eligible`)."""
        reach = self.window_reach()
        if index < reach:
            return None
        if self.scheme.name != "selfhash":
            return self.lefthash_seed(tokens[index - reach : index])
        return self.selfhash_seed(self.anchor(tokens[index - reach : index + 1]), tokens[index])

    def candidate_green(self, context: Sequence[int], candidate: int) -> int:
        """Green test of a candidate next token after `context`: 1 green, 0 red, -1 no bias (the
        position would not be eligible: no full window, or a special token in it)."""
        self._green_list_only("candidate_green")
        reach = self.window_reach()
        if len(context) < reach or candidate in self.special_token_ids:
            return -1
        previous = list(context[len(context) - reach :]) if reach > 0 else []
        if any(t in self.special_token_ids for t in previous):
            return -1
        return 1 if self.is_green(self.seed_at([*previous, candidate], reach), candidate) else 0

    # -- whole vocabulary --------------------------------------------------------------------

    def green_list(self, context: Sequence[int], vocab_size: int) -> Any:
        """Which of the candidates 0 … vocab_size − 1 take the bias after `context`: green, and on
        an eligible position (spec §7). A numpy bool array when numpy is installed, else a list."""
        self._green_list_only("green_list")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or not 0 <= vocab_size <= 1 << 32:
            raise ValueError(f"vocab_size: expected an integer from 0 to 2^32, got {vocab_size!r}")
        if _np is None:
            return [self.candidate_green(context, x) == 1 for x in range(vocab_size)]
        return self._green_of(context, _np.arange(vocab_size, dtype=_np.uint64), vocabulary=True)

    def green_of(self, context: Sequence[int], candidates: Any) -> Any:
        """`green_list` for the given candidate ids only (a numpy integer array; needs numpy)."""
        self._green_list_only("green_of")
        if _np is None:
            raise RuntimeError("green_of needs numpy; use candidate_green one token at a time")
        return self._green_of(context, _np.asarray(candidates).astype(_np.uint64), vocabulary=False)

    def _green_of(self, context: Sequence[int], x: Any, vocabulary: bool) -> Any:
        np = _np
        reach = self.window_reach()
        previous = [int(t) for t in context[len(context) - reach :]] if reach > 0 else []
        if len(previous) < reach or any(t in self.special_token_ids for t in previous):
            return np.zeros(x.shape, dtype=bool)
        if self.scheme.name == "lefthash":
            seeds: Any = np.uint64(self.lefthash_seed(previous))
        else:
            if previous:
                ranks = (
                    self._vocabulary_ranks(x.shape[0])
                    if vocabulary
                    else siphash24_words_np(np, *self._rank, [], x | np.uint64(4 << 56))
                )
                a0 = self.anchor(previous)
                r0 = np.uint64(self.rank(a0))
                a0u = np.uint64(a0)
                anchors = np.where((ranks < r0) | ((ranks == r0) & (x < a0u)), x, a0u)
            else:
                anchors = x
            block = np.uint64(2) | (anchors << np.uint64(8)) | ((x & np.uint64(0xFFFFFF)) << np.uint64(40))
            seeds = siphash24_words_np(np, *self._context, [block], (x >> np.uint64(24)) | np.uint64(9 << 56))
        values = siphash24_words_np(np, *self._green, [seeds], x | np.uint64(12 << 56)) >> np.uint64(32)
        green = values < np.uint64(self._threshold)
        if vocabulary:
            for special in self.special_token_ids:
                if special < green.shape[0]:
                    green[special] = False
        elif self.special_token_ids:
            green &= ~np.isin(x, np.fromiter(self.special_token_ids, dtype=np.uint64))
        return green

    def _vocabulary_ranks(self, vocab_size: int) -> Any:
        """rank(t) for t = 0 … vocab_size − 1, computed once per watermarker."""
        np = _np
        held = self._rank_array
        if held is None or held.shape[0] < vocab_size:
            x = np.arange(vocab_size, dtype=np.uint64)
            held = siphash24_words_np(np, *self._rank, [], x | np.uint64(4 << 56))
            self._rank_array = held
        return held[:vocab_size]
