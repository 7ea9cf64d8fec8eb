"""Tor v3 onion-service addresses, as carried in the ``onion3`` ENR entry.

rend-spec-v3 ("Encoding onion addresses"): the address is base32 of
``PUBKEY (32 bytes ed25519) || CHECKSUM (2 bytes) || VERSION (1 byte, 0x03)`` followed by
``.onion``, where ``CHECKSUM = SHA3-256(".onion checksum" || PUBKEY || VERSION)[:2]``.

The ENR stores the address exactly as go-ethereum's Tor fork (gethrelay, p2p/enr/entries.go)
does: the RLP string ``<56 base32 chars>.onion`` in lower case. Unlike that fork we check the
checksum and version, so a corrupt or uppercase value is reported as unusable instead of being
turned into an enode a relay would fail to dial.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Final

from ._errors import OnionAddressError

__all__ = [
    "ONION3_SUFFIX",
    "onion3_from_public_key",
    "onion3_problem",
    "onion3_public_key",
]

ONION3_SUFFIX: Final = ".onion"
_VERSION: Final = 3
_LABEL_RE: Final = re.compile(r"[a-z2-7]{56}")


def _checksum(public_key: bytes) -> bytes:
    return hashlib.sha3_256(b".onion checksum" + public_key + bytes([_VERSION])).digest()[:2]


def onion3_from_public_key(public_key: bytes) -> str:
    """The ``<56 chars>.onion`` address of a 32-byte ed25519 public key."""
    if len(public_key) != 32:
        raise OnionAddressError(f"ed25519 public key must be 32 bytes, got {len(public_key)}")
    raw = public_key + _checksum(public_key) + bytes([_VERSION])
    return base64.b32encode(raw).decode("ascii").lower() + ONION3_SUFFIX


def onion3_problem(address: str | bytes) -> str | None:
    """Why ``address`` is not a valid onion3 address as stored in an ENR, or None if it is.

    Accepted form: exactly 56 lower-case base32 characters followed by ``.onion``.
    """
    if isinstance(address, bytes):
        try:
            address = address.decode("ascii")
        except UnicodeDecodeError:
            return "not ASCII text"
    if not address.endswith(ONION3_SUFFIX):
        if address.lower().endswith(ONION3_SUFFIX):
            return "address must be lower case"
        return "missing '.onion' suffix"
    label = address[: -len(ONION3_SUFFIX)]
    if len(label) != 56:
        return f"address must have 56 base32 characters before '.onion', got {len(label)}"
    if not _LABEL_RE.fullmatch(label):
        if _LABEL_RE.fullmatch(label.lower()):
            return "address must be lower case"
        return "address has characters outside the base32 alphabet (a-z, 2-7)"
    raw = base64.b32decode(label.upper())
    public_key, checksum, version = raw[:32], raw[32:34], raw[34]
    if version != _VERSION:
        return f"onion address version is {version}, want 3"
    if checksum != _checksum(public_key):
        return "onion address checksum mismatch"
    return None


def onion3_public_key(address: str | bytes) -> bytes:
    """The 32-byte ed25519 public key inside a valid onion3 address.

    Raises:
        OnionAddressError: the address is not a valid onion3 address; the message says why.
    """
    problem = onion3_problem(address)
    if problem is not None:
        raise OnionAddressError(f"invalid onion3 address: {problem}")
    text = address.decode("ascii") if isinstance(address, bytes) else address
    return base64.b32decode(text[:56].upper())[:32]
