"""Identity schemes (EIP-778 "identity scheme"): how a record is signed and what its node id is.

Schemes live in a registry keyed by the value of the record's ``id`` entry, so a new scheme can
be added with :func:`register_identity_scheme` without touching the record code. Only "v4"
(secp256k1 + keccak256) exists today.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ._errors import ENRSchemeError, ENRSignatureError, InvalidPublicKey
from ._keys import PrivateKey, PublicKey, is_high_s, keccak256
from ._rlp import Item

__all__ = [
    "IdentityScheme",
    "V4IdentityScheme",
    "Verified",
    "identity_scheme",
    "register_identity_scheme",
]


@dataclass(frozen=True, slots=True)
class Verified:
    """What a scheme learns from a record it verified."""

    public_key: PublicKey | None
    """The secp256k1 public key, for schemes that have one."""
    node_id: bytes | None = None
    """32-byte node id, when the scheme computed it already (else it is derived on demand
    with :meth:`IdentityScheme.node_id`)."""


class IdentityScheme(Protocol):
    """The operations a record needs from an identity scheme."""

    name: bytes
    """Value of the ``id`` entry, e.g. ``b"v4"``."""

    def identity_pairs(self, private_key: PrivateKey) -> dict[bytes, Item]:
        """Entries a record signed by ``private_key`` must carry (``id`` and the public key)."""
        ...

    def sign(self, content: bytes, private_key: PrivateKey) -> bytes:
        """Signature over the RLP encoding of [seq, k1, v1, ...]."""
        ...

    def verify(self, pairs: Mapping[bytes, Item], signature: bytes, content: bytes) -> Verified:
        """Check the signature; return the node id. Raises ENRSignatureError."""
        ...

    def node_id(self, pairs: Mapping[bytes, Item]) -> bytes:
        """The node id without checking the signature. Raises ENRSignatureError."""
        ...


class V4IdentityScheme:
    """EIP-778 "v4": keccak256 of the content, secp256k1 ECDSA as 64-byte r || s, low-S only."""

    name = b"v4"

    def identity_pairs(self, private_key: PrivateKey) -> dict[bytes, Item]:
        return {b"id": self.name, b"secp256k1": private_key.public_key.compressed}

    def sign(self, content: bytes, private_key: PrivateKey) -> bytes:
        return private_key.sign(keccak256(content))

    def _public_key(self, pairs: Mapping[bytes, Item]) -> PublicKey:
        raw = pairs.get(b"secp256k1")
        if raw is None:
            raise ENRSignatureError("v4 record has no secp256k1 public key")
        if not isinstance(raw, bytes) or len(raw) != 33:
            size = len(raw) if isinstance(raw, bytes) else "a list"
            raise ENRSignatureError(f"secp256k1 public key must be 33 bytes, got {size}")
        try:
            return PublicKey.from_bytes(raw)
        except InvalidPublicKey:
            raise ENRSignatureError(
                "secp256k1 public key is not a point on the secp256k1 curve"
            ) from None

    def verify(self, pairs: Mapping[bytes, Item], signature: bytes, content: bytes) -> Verified:
        public_key = self._public_key(pairs)
        if len(signature) != 64:
            raise ENRSignatureError(f"invalid signature length {len(signature)} (want 64)")
        if is_high_s(signature):
            raise ENRSignatureError("invalid signature: high S value (not canonical)")
        if not public_key.verify(signature, keccak256(content)):
            raise ENRSignatureError("invalid signature on node record")
        # The node id (another keccak256) is computed only when someone asks for it.
        return Verified(public_key)

    def node_id(self, pairs: Mapping[bytes, Item]) -> bytes:
        return self._public_key(pairs).node_id


_REGISTRY: dict[bytes, IdentityScheme] = {}


def register_identity_scheme(scheme: IdentityScheme) -> None:
    """Make records whose ``id`` entry equals ``scheme.name`` verifiable."""
    _REGISTRY[scheme.name] = scheme


def identity_scheme(name: bytes | Item | None) -> IdentityScheme:
    """The registered scheme for an ``id`` value.

    Raises:
        ENRSchemeError: no ``id`` entry, or a scheme nobody registered.
    """
    if name is None:
        raise ENRSchemeError("record has no 'id' entry (unknown identity scheme)")
    if not isinstance(name, bytes):
        raise ENRSchemeError("record 'id' entry is a list (unknown identity scheme)")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ENRSchemeError(f"unknown identity scheme {name!r}") from None


V4 = V4IdentityScheme()
register_identity_scheme(V4)
