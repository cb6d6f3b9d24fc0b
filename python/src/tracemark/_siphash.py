"""SipHash-2-4 and HKDF-SHA-256 (spec §1), scalar and, with numpy, vectorized over token ids."""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Any

MASK64 = (1 << 64) - 1

_C0 = 0x736F6D6570736575
_C1 = 0x646F72616E646F6D
_C2 = 0x6C7967656E657261
_C3 = 0x7465646279746573


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & MASK64


def _rounds(v0: int, v1: int, v2: int, v3: int, n: int) -> tuple[int, int, int, int]:
    for _ in range(n):
        v0 = (v0 + v1) & MASK64
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & MASK64
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & MASK64
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & MASK64
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def split_key(key: bytes) -> tuple[int, int]:
    if len(key) != 16:
        raise ValueError("a SipHash key is 16 bytes")
    return struct.unpack("<QQ", key)


def siphash24_words(k0: int, k1: int, blocks: list[int], last: int) -> int:
    """SipHash-2-4 over full little-endian 64-bit message blocks, then the final block `last`
    (the trailing bytes with the message length in its top byte)."""
    v0, v1, v2, v3 = k0 ^ _C0, k1 ^ _C1, k0 ^ _C2, k1 ^ _C3
    for m in (*blocks, last):
        v3 ^= m
        v0, v1, v2, v3 = _rounds(v0, v1, v2, v3, 2)
        v0 ^= m
    v2 ^= 0xFF
    v0, v1, v2, v3 = _rounds(v0, v1, v2, v3, 4)
    return v0 ^ v1 ^ v2 ^ v3


def siphash24(key: bytes, message: bytes) -> int:
    """SipHash-2-4 of `message` under the 16-byte `key`, as the u64 read little-endian."""
    k0, k1 = split_key(key)
    n = len(message)
    end = n - n % 8
    blocks = [int.from_bytes(message[i : i + 8], "little") for i in range(0, end, 8)]
    last = ((n & 0xFF) << 56) | int.from_bytes(message[end:], "little")
    return siphash24_words(k0, k1, blocks, last)


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF with HMAC-SHA-256: extract, then expand."""
    if not 0 < length <= 255 * 32:
        raise ValueError("HKDF output length out of range")
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm = b""
    block = b""
    counter = 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


# ---------------------------------------------------------------------------------------------
# Vectorized (numpy): the same function over arrays of blocks, for green lists over a vocabulary.
# numpy's uint64 arithmetic wraps modulo 2^64, which is exactly SipHash's addition.
# ---------------------------------------------------------------------------------------------


def siphash24_words_np(np: Any, k0: int, k1: int, blocks: list[Any], last: Any) -> Any:
    """`siphash24_words` where each block may be a uint64 array (all broadcast to one shape).
    Works in place on four state arrays and one scratch array: about 30 array operations a round."""
    shape = np.broadcast(*(np.asarray(b, dtype=np.uint64) for b in (*blocks, last))).shape
    v0 = np.full(shape, k0 ^ _C0, dtype=np.uint64)
    v1 = np.full(shape, k1 ^ _C1, dtype=np.uint64)
    v2 = np.full(shape, k0 ^ _C2, dtype=np.uint64)
    v3 = np.full(shape, k1 ^ _C3, dtype=np.uint64)
    scratch = np.empty(shape, dtype=np.uint64)
    shifts = {b: (np.uint64(b), np.uint64(64 - b)) for b in (13, 16, 17, 21, 32)}

    def rotl(v: Any, b: int) -> None:
        left, right = shifts[b]
        np.right_shift(v, right, out=scratch)
        np.left_shift(v, left, out=v)
        np.bitwise_or(v, scratch, out=v)

    def rounds(n: int) -> None:
        for _ in range(n):
            np.add(v0, v1, out=v0)
            rotl(v1, 13)
            np.bitwise_xor(v1, v0, out=v1)
            rotl(v0, 32)
            np.add(v2, v3, out=v2)
            rotl(v3, 16)
            np.bitwise_xor(v3, v2, out=v3)
            np.add(v0, v3, out=v0)
            rotl(v3, 21)
            np.bitwise_xor(v3, v0, out=v3)
            np.add(v2, v1, out=v2)
            rotl(v1, 17)
            np.bitwise_xor(v1, v2, out=v1)
            rotl(v2, 32)

    for block in (*blocks, last):
        m = np.asarray(block, dtype=np.uint64)
        np.bitwise_xor(v3, m, out=v3)
        rounds(2)
        np.bitwise_xor(v0, m, out=v0)
    np.bitwise_xor(v2, np.uint64(0xFF), out=v2)
    rounds(4)
    np.bitwise_xor(v0, v1, out=v0)
    np.bitwise_xor(v0, v2, out=v0)
    np.bitwise_xor(v0, v3, out=v0)
    return v0
