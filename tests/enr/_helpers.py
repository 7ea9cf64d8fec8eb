"""Shared helpers for the enr tests: the vector file, fixed keys and hand-made records.

Records with arbitrary (also invalid) content are made here by RLP-encoding by hand with the
``rlp`` package and signing keccak256 of the content, so the tests do not depend on
``ENR.build`` to produce what ``ENR.from_rlp`` must reject.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import rlp

from enr import Item, PrivateKey, keccak256

VECTORS_PATH = Path(__file__).resolve().parent.parent / "vectors" / "enr_vectors.json"
"""tests/vectors/enr_vectors.json: a verbatim copy of the project's shared ENR vector file."""

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F

# The EIP-778 example key (enr_vectors.json -> valid_records[eip778-example].private_key).
EIP778_KEY = PrivateKey(
    bytes.fromhex("b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291")
)
# Arbitrary fixed keys for records the tests make themselves.
KEY_A = PrivateKey(bytes.fromhex("11" * 32))
KEY_B = PrivateKey(bytes.fromhex("22" * 32))


@functools.cache
def load_vectors() -> dict[str, Any]:
    """The parsed enr_vectors.json (loaded once per process)."""
    with VECTORS_PATH.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def vector_section(name: str) -> Any:
    """One top-level section of enr_vectors.json, e.g. ``valid_records``."""
    return load_vectors()[name]


def uint(value: int) -> bytes:
    """Canonical RLP integer bytes (no leading zeros; 0 is empty)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def content_of(seq: bytes, pairs: list[tuple[bytes, Item]]) -> bytes:
    """RLP of [seq, k1, v1, ...]: what the "v4" scheme signs."""
    flat: list[Item] = [seq]
    for key, value in pairs:
        flat += [key, value]
    return bytes(rlp.encode(flat))


def make_record(
    pairs: list[tuple[bytes, Item]],
    *,
    key: PrivateKey | None = KEY_A,
    seq: bytes = b"\x01",
    identity: bool = True,
    signature: bytes | None = None,
) -> bytes:
    """Hand-encode and sign ``[sig, seq, k1, v1, ...]`` with the pairs in the order given.

    With ``identity`` the ``id``/``secp256k1`` pairs of ``key`` are merged in and everything is
    sorted; without it the pairs are used exactly as given (any order, duplicates allowed).
    ``signature`` replaces the computed signature.
    """
    if identity:
        assert key is not None
        merged = dict(pairs)
        merged.setdefault(b"id", b"v4")
        merged.setdefault(b"secp256k1", key.public_key.compressed)
        pairs = sorted(merged.items())
    content = content_of(seq, pairs)
    if signature is None:
        assert key is not None
        signature = key.sign(keccak256(content))
    flat: list[Item] = [signature, seq]
    for k, v in pairs:
        flat += [k, v]
    return bytes(rlp.encode(flat))


def to_text(raw: bytes) -> str:
    """``enr:`` + unpadded URL-safe base64, independent of ENR.to_text."""
    return "enr:" + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def off_curve_x() -> int:
    """The smallest x for which x^3 + 7 is not a square mod p (no curve point has this x)."""
    x = 1
    while pow((x**3 + 7) % SECP256K1_P, (SECP256K1_P - 1) // 2, SECP256K1_P) == 1:
        x += 1
    return x


def off_curve_uncompressed() -> bytes:
    """64 bytes x || y that are not a secp256k1 point (x has no point at all)."""
    return off_curve_x().to_bytes(32, "big") + (1).to_bytes(32, "big")


def onion3_label(public_key: bytes, checksum: bytes | None, version: int) -> str:
    """An address built from its parts, to make wrong checksums and versions on purpose.

    ``checksum`` None means the correct one for ``version`` (rend-spec-v3: the first two bytes
    of SHA3-256(".onion checksum" || PUBKEY || VERSION)).
    """
    if checksum is None:
        digest = hashlib.sha3_256(b".onion checksum" + public_key + bytes([version])).digest()
        checksum = digest[:2]
    raw = public_key + checksum + bytes([version])
    return base64.b32encode(raw).decode("ascii").lower() + ".onion"
