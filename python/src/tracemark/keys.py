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
SCHEME_NAMES = ("lefthash", "selfhash")
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
class Scheme:
    """Scheme parameters (spec §2.4) and the green threshold (spec §3.1)."""

    name: str = "lefthash"
    context_width: int = 1
    gamma: float = 0.25
    delta: float = 2.0

    def __post_init__(self) -> None:
        if self.name not in SCHEME_NAMES:
            raise ValueError(f"scheme.name: expected one of {', '.join(SCHEME_NAMES)}, got {self.name!r}")
        width = self.context_width
        if isinstance(width, float) and width.is_integer():
            width = int(width)
            object.__setattr__(self, "context_width", width)
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= 16:
            raise ValueError(f"scheme.contextWidth: expected an integer from 1 to 16, got {width!r}")
        gamma = self.gamma
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma < 1:
            raise ValueError(f"scheme.gamma: expected a number strictly between 0 and 1, got {gamma!r}")
        if not 1 <= self.threshold <= TWO32 - 1:
            raise ValueError(f"scheme.gamma: {gamma} gives an empty or full green list at 32-bit resolution")
        delta = self.delta
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 <= delta <= 32:
            raise ValueError(f"scheme.delta: expected a number from 0 to 32, got {delta!r}")

    @property
    def threshold(self) -> int:
        """τ = floor(γ·2^32); γ·2^32 is exact for a double, so the floor has one answer."""
        return math.floor(Fraction(self.gamma) * TWO32)

    @property
    def gamma_effective(self) -> float:
        """γ_eff = τ / 2^32, the exact null green probability every statistic uses."""
        return self.threshold / TWO32

    def biased_green_fraction(self) -> float:
        """γ_δ = γe^δ / (1 + γ(e^δ − 1)): the green fraction δ produces at high entropy."""
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
            bytes.fromhex(secret_hex),
            Scheme(
                name=scheme.get("name", "lefthash"),
                context_width=scheme.get("contextWidth", 1),
                gamma=scheme.get("gamma", 0.25),
                delta=scheme.get("delta", 2.0),
            ),
            tokenizer if isinstance(tokenizer, str) else "",
        )
    except (TypeError, ValueError) as error:
        raise KeyFileError(f"key file: {error}") from None
    if data.get("keyId") != key.key_id:
        raise KeyFileError('key file: "keyId" does not match the secret (the file is corrupt or was edited)')
    return key


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
        "scheme": {
            "name": key.scheme.name,
            "contextWidth": key.scheme.context_width,
            "gamma": key.scheme.gamma,
            "delta": key.scheme.delta,
        },
        "tokenizer": key.tokenizer,
        "createdAt": stamp,
    }
    return json.dumps(record, indent=2, ensure_ascii=False) + "\n"
