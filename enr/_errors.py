"""The ENR error hierarchy.

Every failure to read untrusted input (record text, RLP bytes, enode URLs, onion addresses, key
files) raises a subclass of :class:`ENRError`, which is a :class:`ValueError`. The message always
names the reason, so a command-line tool can print it as one line.
"""

from __future__ import annotations

__all__ = [
    "ENRDecodeError",
    "ENRError",
    "ENRSchemeError",
    "ENRSignatureError",
    "ENRTooLargeError",
    "EnodeError",
    "InvalidPublicKey",
    "KeyFileError",
    "OnionAddressError",
]


class ENRError(ValueError):
    """Base class of every error raised by the ``enr`` package."""


class ENRDecodeError(ENRError):
    """The bytes or text are not a well-formed record (RLP, base64, prefix, ordering, integers)."""


class ENRTooLargeError(ENRDecodeError):
    """The record's RLP encoding is larger than the 300 bytes EIP-778 allows."""


class ENRSignatureError(ENRError):
    """The record is well-formed but its signature or public key does not verify."""


class ENRSchemeError(ENRSignatureError):
    """The record names an identity scheme this library does not know (or none at all)."""


class InvalidPublicKey(ENRError):
    """A secp256k1 public key has the wrong length or is not a point on the curve."""


class OnionAddressError(ENRError):
    """A Tor v3 onion address (the ``onion3`` entry) is malformed or fails its checksum."""


class EnodeError(ENRError):
    """An enode URL cannot be parsed, or a record cannot be turned into a dialable enode."""


class KeyFileError(ENRError):
    """A key file (geth ``nodekey`` or Tor ``hs_ed25519_*``) is missing or malformed."""
