"""Ethereum Node Records (EIP-778) with the ``onion3`` (Tor v3) entry, enode URLs and key files.

This package never imports ``discv5``; it is usable on its own::

    from enr import ENR, PrivateKey
    key = PrivateKey.generate()
    record = ENR.build(key, ip="127.0.0.1", udp=30303, tcp=30303)
    assert ENR.from_text(record.to_text()) == record
"""

from ._enode import Enode, enode_from_enr, parse_enode, unsigned_record
from ._errors import (
    EnodeError,
    ENRDecodeError,
    ENRError,
    ENRSchemeError,
    ENRSignatureError,
    ENRTooLargeError,
    InvalidPublicKey,
    KeyFileError,
    OnionAddressError,
)
from ._identity import (
    IdentityScheme,
    V4IdentityScheme,
    Verified,
    identity_scheme,
    register_identity_scheme,
)
from ._keyfiles import (
    OnionServiceKey,
    read_hidden_service_dir,
    read_nodekey,
    write_file_atomic,
    write_hidden_service_dir,
    write_nodekey,
)
from ._keys import PrivateKey, PublicKey, keccak256
from ._onion import onion3_from_public_key, onion3_problem, onion3_public_key
from ._record import ENR, MAX_RECORD_SIZE, Endpoint, IPAddress
from ._rlp import Item

__all__ = [
    "ENR",
    "MAX_RECORD_SIZE",
    "ENRDecodeError",
    "ENRError",
    "ENRSchemeError",
    "ENRSignatureError",
    "ENRTooLargeError",
    "Endpoint",
    "Enode",
    "EnodeError",
    "IPAddress",
    "IdentityScheme",
    "InvalidPublicKey",
    "Item",
    "KeyFileError",
    "OnionAddressError",
    "OnionServiceKey",
    "PrivateKey",
    "PublicKey",
    "V4IdentityScheme",
    "Verified",
    "enode_from_enr",
    "identity_scheme",
    "keccak256",
    "onion3_from_public_key",
    "onion3_problem",
    "onion3_public_key",
    "parse_enode",
    "read_hidden_service_dir",
    "read_nodekey",
    "register_identity_scheme",
    "unsigned_record",
    "write_file_atomic",
    "write_hidden_service_dir",
    "write_nodekey",
]
