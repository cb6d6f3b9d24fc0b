"""Watermark keys (spec §2): key ids, sub-keys, PRF keys, scheme parameters and the key file.

A secret never appears in an error message, a repr or a log line.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any

from ._siphash import hkdf_sha256

SECRET_LENGTH = 32
KEY_ID_PREFIX = "tmk1_"
DEFAULT_TOKENIZER = "cl100k_base"
GREEN_LIST_SCHEME_NAMES = ("lefthash", "selfhash")
GUMBEL_SCHEME_NAMES = ("gumbel", "dual_gumbel")
SCHEME_NAMES = GREEN_LIST_SCHEME_NAMES + GUMBEL_SCHEME_NAMES
DEFAULT_GUMBEL_CONTEXT_WIDTH = 4  # a keyed choice repeats with its context (watermark-gumbel §1)
DEFAULT_DUAL_GUMBEL_ALPHA = 0.1
TWO32 = 1 << 32

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class KeyFileError(ValueError):
    """A key file that cannot be used. The message names the field, never the secret."""


def _check_secret(secret: bytes, name: str = "secret") -> bytes:
    if not isinstance(secret, (bytes, bytearray)):
        raise TypeError(f"{name}: expected bytes")
    if len(secret) != SECRET_LENGTH:
        raise ValueError(f"{name}: expected {SECRET_LENGTH} bytes, got {len(secret)}")
    return bytes(secret)


def key_id_of(secret: bytes) -> str:
    """2.1: "tmk1_" + hex of the first 12 bytes of SHA-256("tracemark/v1/key-id" || S)."""
    secret = _check_secret(secret)
    return KEY_ID_PREFIX + hashlib.sha256(b"tracemark/v1/key-id" + secret).digest()[:12].hex()


def derive_subkey_secret(secret: bytes, label: str) -> bytes:
    """2.2: HKDF(IKM = S, salt = "tracemark/v1/subkey", info = UTF-8(label), L = 32)."""
    secret = _check_secret(secret)
    if not isinstance(label, str):
        raise TypeError("label: expected a string")
    return hkdf_sha256(secret, b"tracemark/v1/subkey", label.encode("utf-8"), SECRET_LENGTH)


@dataclass(frozen=True)
class PrfKeys:
    """The three 16-byte SipHash keys of spec §2.3."""

    context: bytes = field(repr=False)
    green: bytes = field(repr=False)
    rank: bytes = field(repr=False)


def derive_prf_keys(secret: bytes) -> PrfKeys:
    secret = _check_secret(secret)
    salt = b"tracemark/v1/prf"
    return PrfKeys(
        context=hkdf_sha256(secret, salt, b"context", 16),
        green=hkdf_sha256(secret, salt, b"green", 16),
        rank=hkdf_sha256(secret, salt, b"rank", 16),
    )


@dataclass(frozen=True)
class GumbelPrfKeys:
    """The SipHash keys of the Gumbel uniforms (watermark-gumbel §3.1): K_gumbel (key A) and
    K_gumbel_b (key B of `dual_gumbel`)."""

    a: bytes = field(repr=False)
    b: bytes = field(repr=False)


def derive_gumbel_prf_keys(secret: bytes) -> GumbelPrfKeys:
    """HKDF info "gumbel" and "gumbel-b" under the salt of spec §2.3: independent of the others."""
    secret = _check_secret(secret)
    salt = b"tracemark/v1/prf"
    return GumbelPrfKeys(a=hkdf_sha256(secret, salt, b"gumbel", 16), b=hkdf_sha256(secret, salt, b"gumbel-b", 16))


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


@dataclass(frozen=True)
class Scheme:
    """Scheme parameters (spec §2.4, watermark-gumbel §1) and the green threshold (spec §3.1).

    Two families: green lists (`lefthash`, `selfhash`: γ, δ) and the distortion-free Gumbel-max
    schemes (`gumbel`, `dual_gumbel`: no γ, no δ; α for `dual_gumbel`). Parameters left as None take
    the family's defaults: h = 1, γ = 0.25, δ = 2 for green lists; h = 4 for Gumbel, where γ is NaN,
    δ 0 and α 0.1 (`dual_gumbel`) or 0 (every other scheme), as in `@tracemark/core`.
    """

    name: str = "lefthash"
    context_width: int | None = None
    gamma: float | None = None
    delta: float | None = None
    alpha: float | None = None

    def __post_init__(self) -> None:
        if self.name not in SCHEME_NAMES:
            raise ValueError(f"scheme.name: expected one of {', '.join(SCHEME_NAMES)}, got {self.name!r}")
        gumbel = self.name in GUMBEL_SCHEME_NAMES
        width = self.context_width
        if width is None:
            width = DEFAULT_GUMBEL_CONTEXT_WIDTH if gumbel else 1
        if isinstance(width, float) and width.is_integer():
            width = int(width)
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= 16:
            raise ValueError(f"scheme.contextWidth: expected an integer from 1 to 16, got {width!r}")
        object.__setattr__(self, "context_width", width)
        if gumbel:
            self._gumbel_parameters()
            return
        if self.alpha is not None and self.alpha != 0:
            raise ValueError(f"scheme.alpha: only dual_gumbel has a key weight, got {self.alpha!r}")
        object.__setattr__(self, "alpha", 0.0)
        gamma = 0.25 if self.gamma is None else self.gamma
        if not _is_number(gamma) or not 0 < gamma < 1:
            raise ValueError(f"scheme.gamma: expected a number strictly between 0 and 1, got {gamma!r}")
        object.__setattr__(self, "gamma", gamma)
        if not 1 <= self.threshold <= TWO32 - 1:
            raise ValueError(f"scheme.gamma: {gamma} gives an empty or full green list at 32-bit resolution")
        delta = 2.0 if self.delta is None else self.delta
        if not _is_number(delta) or not 0 <= delta <= 32:
            raise ValueError(f"scheme.delta: expected a number from 0 to 32, got {delta!r}")
        object.__setattr__(self, "delta", delta)

    def _gumbel_parameters(self) -> None:
        # A scheme passed back in carries the family's placeholders (γ NaN, δ 0); anything else is a mistake.
        if self.gamma is not None and not (_is_number(self.gamma) and math.isnan(self.gamma)):
            raise ValueError(f"scheme.gamma: {self.name} has no green list; omit gamma")
        if self.delta is not None and self.delta != 0:
            raise ValueError(f"scheme.delta: {self.name} adds no bias; omit delta")
        object.__setattr__(self, "gamma", math.nan)
        object.__setattr__(self, "delta", 0.0)
        if self.name == "dual_gumbel":
            alpha = DEFAULT_DUAL_GUMBEL_ALPHA if self.alpha is None else self.alpha
            if not _is_number(alpha) or not 0 < alpha < 1:
                raise ValueError(f"scheme.alpha: expected a number strictly between 0 and 1, got {alpha!r}")
            object.__setattr__(self, "alpha", float(alpha))
        elif self.alpha is not None and self.alpha != 0:
            raise ValueError(f"scheme.alpha: only dual_gumbel has a key weight, got {self.alpha!r}")
        else:
            object.__setattr__(self, "alpha", 0.0)

    @property
    def family(self) -> str:
        """`green-list` or `gumbel`."""
        return "gumbel" if self.name in GUMBEL_SCHEME_NAMES else "green-list"

    @property
    def is_gumbel(self) -> bool:
        return self.name in GUMBEL_SCHEME_NAMES

    @property
    def threshold(self) -> int:
        """τ = floor(γ·2^32); γ·2^32 is exact for a double, so the floor has one answer.
        Gumbel schemes have no green list: a TypeError."""
        if self.is_gumbel:
            raise TypeError(f"scheme: {self.name} has no green list, so no green threshold")
        return math.floor(Fraction(self.gamma) * TWO32)

    @property
    def gamma_effective(self) -> float:
        """γ_eff = τ / 2^32, the exact null green probability every statistic uses (NaN for Gumbel)."""
        if self.is_gumbel:
            return math.nan
        return self.threshold / TWO32

    def biased_green_fraction(self) -> float:
        """γ_δ = γe^δ / (1 + γ(e^δ − 1)): the green fraction δ produces at high entropy."""
        if self.is_gumbel:
            raise TypeError(f"scheme: {self.name} has no green list, so no biased green fraction")
        g = self.gamma_effective
        e = math.exp(self.delta)
        return (g * e) / (1 + g * (e - 1))


@dataclass(frozen=True)
class WatermarkKey:
    """A tracemark key: the secret (hidden from repr), its key id, scheme and tokenizer."""

    key_id: str
    secret: bytes = field(repr=False)
    scheme: Scheme
    tokenizer: str = DEFAULT_TOKENIZER

    @staticmethod
    def create(
        secret: bytes | None = None, scheme: Scheme | None = None, tokenizer: str = DEFAULT_TOKENIZER
    ) -> WatermarkKey:
        """A key from a secret (a fresh 256-bit one by default) and scheme parameters."""
        secret = _check_secret(secrets.token_bytes(SECRET_LENGTH) if secret is None else secret)
        if not isinstance(tokenizer, str) or not tokenizer:
            raise ValueError("tokenizer: expected a non-empty string")
        return WatermarkKey(key_id_of(secret), secret, scheme or Scheme(), tokenizer)

    def derive_subkey(self, label: str) -> WatermarkKey:
        """A sub-key (epoch, tenant) with the same scheme and tokenizer (spec §2.2)."""
        return WatermarkKey.create(derive_subkey_secret(self.secret, label), self.scheme, self.tokenizer)

    def prf_keys(self) -> PrfKeys:
        return derive_prf_keys(self.secret)

    def gumbel_prf_keys(self) -> GumbelPrfKeys:
        return derive_gumbel_prf_keys(self.secret)


def parse_key_file(text: str) -> WatermarkKey:
    """Parses and validates the JSON key file of spec §2.5 (what `tracemark keygen` writes)."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError):
        raise KeyFileError("key file: not valid JSON") from None
    if not isinstance(data, dict):
        raise KeyFileError("key file: expected a JSON object")
    if data.get("format") != "tracemark-key":
        if data.get("format") == "tracemark-vllm-key" or data.get("kind") == "vllm":
            raise KeyFileError("key file: a vLLM engine key; this package reads tracemark keys only")
        raise KeyFileError('key file: "format" must be "tracemark-key"')
    if data.get("version") != 1 or isinstance(data.get("version"), bool):
        raise KeyFileError(f'key file: unsupported "version" {data.get("version")!r}')
    if "kind" in data and data["kind"] != "tracemark":
        raise KeyFileError('key file: "kind" must be "tracemark" when present')
    secret_hex = data.get("secret")
    if not isinstance(secret_hex, str) or not _HEX64.match(secret_hex):
        raise KeyFileError('key file: "secret" must be 64 lowercase hexadecimal characters')
    scheme = data.get("scheme")
    if not isinstance(scheme, dict):
        raise KeyFileError('key file: "scheme" is missing')
    tokenizer = data.get("tokenizer")
    try:
        key = WatermarkKey.create(
            bytes.fromhex(secret_hex), _scheme_of_file(scheme), tokenizer if isinstance(tokenizer, str) else ""
        )
    except (TypeError, ValueError) as error:
        raise KeyFileError(f"key file: {error}") from None
    if data.get("keyId") != key.key_id:
        raise KeyFileError('key file: "keyId" does not match the secret (the file is corrupt or was edited)')
    return key


def _scheme_of_file(scheme: dict[str, Any]) -> Scheme:
    """A green-list scheme is read from its four fields, as before; a Gumbel scheme object must not
    carry γ or δ (watermark-gumbel §1), and only `dual_gumbel` carries α."""
    name = scheme.get("name", "lefthash")
    for field_name in ("contextWidth", "gamma", "delta", "alpha"):
        if field_name in scheme and scheme[field_name] is None:
            raise ValueError(f"scheme.{field_name}: null is not a value")
    if name not in GUMBEL_SCHEME_NAMES:
        return Scheme(
            name=name,
            context_width=scheme.get("contextWidth", 1),
            gamma=scheme.get("gamma", 0.25),
            delta=scheme.get("delta", 2.0),
        )
    for field_name in ("gamma", "delta"):
        if field_name in scheme:
            raise ValueError(f"scheme.{field_name}: a {name} key has no {field_name}; remove it")
    if name == "gumbel" and "alpha" in scheme:
        raise ValueError("scheme.alpha: only dual_gumbel has a key weight; remove it")
    alpha = scheme.get("alpha", DEFAULT_DUAL_GUMBEL_ALPHA) if name == "dual_gumbel" else None
    return Scheme(name=name, context_width=scheme.get("contextWidth", DEFAULT_GUMBEL_CONTEXT_WIDTH), alpha=alpha)


def scheme_record(scheme: Scheme) -> dict[str, Any]:
    """The key file's `scheme` object: γ and δ for green lists, neither for `gumbel`, α for `dual_gumbel`."""
    if scheme.name == "gumbel":
        return {"name": scheme.name, "contextWidth": scheme.context_width}
    if scheme.name == "dual_gumbel":
        return {"name": scheme.name, "contextWidth": scheme.context_width, "alpha": scheme.alpha}
    return {"name": scheme.name, "contextWidth": scheme.context_width, "gamma": scheme.gamma, "delta": scheme.delta}


def load_key_file(path: str) -> WatermarkKey:
    """Reads a key file; errors name the path, never the secret."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise KeyFileError(f"{path}: cannot read key file ({error.__class__.__name__})") from None
    try:
        return parse_key_file(text)
    except KeyFileError as error:
        raise KeyFileError(f"{path}: {error}") from None


def serialize_key_file(key: WatermarkKey, created_at: datetime | None = None) -> str:
    """The key file text (holds the secret: write it with mode 0600)."""
    when = created_at or datetime.now(timezone.utc)
    stamp = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    record: dict[str, Any] = {
        "format": "tracemark-key",
        "version": 1,
        "keyId": key.key_id,
        "secret": key.secret.hex(),
        "scheme": scheme_record(key.scheme),
        "tokenizer": key.tokenizer,
        "createdAt": stamp,
    }
    return json.dumps(record, indent=2, ensure_ascii=False) + "\n"
