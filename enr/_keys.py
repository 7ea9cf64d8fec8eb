"""secp256k1 keys, ECDSA, ECDH and keccak256: the only ``enr`` module that touches the backend.

coincurve (libsecp256k1) gives deterministic RFC 6979 signatures that are always low-S, and its
verifier rejects high-S signatures, which is what go-ethereum does for records and handshakes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import coincurve
from coincurve._libsecp256k1 import lib as _lib
from coincurve.ecdsa import deserialize_compact
from eth_hash.auto import keccak as _keccak

from ._errors import InvalidPublicKey

__all__ = ["SECP256K1_N", "PrivateKey", "PublicKey", "is_high_s", "keccak256"]

#: Order of the secp256k1 group.
SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N: Final = SECP256K1_N // 2


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 (the pre-standard Keccak, not SHA3-256)."""
    return bytes(_keccak(data))


def _verify_compact(pub: coincurve.PublicKey, sig64: bytes, digest: bytes) -> bool:
    # coincurve's verify() takes DER; parse r || s with libsecp256k1's compact parser instead and
    # call the library directly (saves a DER round trip on the hottest path of record decoding).
    try:
        sig = deserialize_compact(sig64)
    except (ValueError, TypeError):
        return False
    return bool(_lib.secp256k1_ecdsa_verify(pub.context.ctx, sig, digest, pub.public_key))


class PublicKey:
    """A secp256k1 public key (a point on the curve). Immutable; equal keys compare equal."""

    __slots__ = ("_key", "_uncompressed", "compressed")

    compressed: bytes
    """33-byte SEC1 compressed form (0x02/0x03 prefix), as stored in the ``secp256k1`` entry."""

    def __init__(self, key: coincurve.PublicKey, compressed: bytes | None = None) -> None:
        self._key = key
        self.compressed = compressed if compressed is not None else key.format(compressed=True)
        self._uncompressed: bytes | None = None

    @property
    def uncompressed(self) -> bytes:
        """64-byte x || y (no 0x04 prefix), as written in enode URLs."""
        if self._uncompressed is None:
            self._uncompressed = bytes(self._key.format(compressed=False)[1:])
        return self._uncompressed

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKey:
        """Parse a key from 33 (compressed), 64 (x || y) or 65 (0x04 || x || y) bytes.

        Raises:
            InvalidPublicKey: wrong length, or the bytes are not a point on secp256k1.
        """
        if len(data) == 64:
            data = b"\x04" + data
        if len(data) not in (33, 65):
            raise InvalidPublicKey(
                f"invalid public key: {len(data)} bytes (want 33 compressed or 64 uncompressed)"
            )
        try:
            return cls(coincurve.PublicKey(bytes(data)), bytes(data) if len(data) == 33 else None)
        except (ValueError, TypeError) as exc:
            raise InvalidPublicKey(
                "invalid public key: not a point on the secp256k1 curve"
            ) from exc

    @property
    def node_id(self) -> bytes:
        """keccak256(x || y): the 32-byte node id of the "v4" identity scheme."""
        return keccak256(self.uncompressed)

    def verify(self, signature: bytes, digest: bytes) -> bool:
        """Check a 64-byte r || s signature over a 32-byte digest. High-S signatures fail."""
        if len(signature) != 64 or len(digest) != 32:
            return False
        return _verify_compact(self._key, signature, digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.compressed == self.compressed

    def __hash__(self) -> int:
        return hash(self.compressed)

    def __repr__(self) -> str:
        return f"PublicKey({self.compressed.hex()})"


def is_high_s(signature: bytes) -> bool:
    """True when the s half of a 64-byte signature is above n/2 (non-canonical, rejected)."""
    return int.from_bytes(signature[32:64], "big") > _HALF_N


class PrivateKey:
    """A secp256k1 private key. ``repr`` never shows the secret."""

    __slots__ = ("_key", "public_key")

    public_key: PublicKey

    def __init__(self, secret: bytes) -> None:
        """Wrap a 32-byte secret.

        Raises:
            ValueError: the secret is not 32 bytes or is not in [1, n-1].
        """
        if len(secret) != 32:
            raise ValueError(f"private key must be 32 bytes, got {len(secret)}")
        value = int.from_bytes(secret, "big")
        if not 0 < value < SECP256K1_N:
            raise ValueError("private key out of range for secp256k1")
        self._key = coincurve.PrivateKey(bytes(secret))
        self.public_key = PublicKey(self._key.public_key)

    @classmethod
    def generate(cls, rng: Callable[[int], bytes] | None = None) -> PrivateKey:
        """A new random key. ``rng(n)`` returns n random bytes; default: ``os.urandom``."""
        if rng is None:
            import os

            rng = os.urandom
        while True:
            secret = rng(32)
            if 0 < int.from_bytes(secret, "big") < SECP256K1_N:
                return cls(secret)

    @property
    def secret(self) -> bytes:
        """The 32-byte secret."""
        return bytes(self._key.secret)

    def sign(self, digest: bytes) -> bytes:
        """Deterministic (RFC 6979), low-S signature over a 32-byte digest: 64 bytes r || s."""
        if len(digest) != 32:
            raise ValueError("digest must be 32 bytes")
        return bytes(self._key.sign_recoverable(digest, hasher=None)[:64])

    def ecdh(self, public_key: PublicKey) -> bytes:
        """The shared point ``public_key * self`` in 33-byte compressed form (discv5 "v4")."""
        point = public_key._key.multiply(self.secret)
        return bytes(point.format(compressed=True))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrivateKey) and other.secret == self.secret

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __repr__(self) -> str:
        return f"PrivateKey(<secret>, public_key={self.public_key.compressed.hex()})"
