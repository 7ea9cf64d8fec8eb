"""secp256k1 keys, keccak256 and the identity-scheme registry."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

import enr._identity
from enr import (
    ENR,
    ENRSignatureError,
    InvalidPublicKey,
    Item,
    PrivateKey,
    PublicKey,
    V4IdentityScheme,
    Verified,
    identity_scheme,
    keccak256,
    register_identity_scheme,
)

from ._helpers import EIP778_KEY, KEY_A, KEY_B, SECP256K1_N, off_curve_uncompressed


def test_keccak256_is_not_sha3() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )


def test_eip778_node_id() -> None:
    """EIP-778: the example key's node id (enr_vectors.json valid_records[eip778-example])."""
    assert EIP778_KEY.public_key.node_id.hex() == (
        "a448f24c6d18e575453db13171562b71999873db5b286df957af199ec94617f7"
    )


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (bytes(31), "32 bytes, got 31"),
        (bytes(33), "32 bytes, got 33"),
        (bytes(32), "out of range"),
        (SECP256K1_N.to_bytes(32, "big"), "out of range"),
        (b"\xff" * 32, "out of range"),
    ],
)
def test_private_key_validation(secret: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        PrivateKey(secret)


def test_private_key_basics() -> None:
    top = PrivateKey((SECP256K1_N - 1).to_bytes(32, "big"))
    assert top.secret == (SECP256K1_N - 1).to_bytes(32, "big")
    assert PrivateKey(KEY_A.secret) == KEY_A
    assert KEY_A != KEY_B
    assert hash(KEY_A) == hash(PrivateKey(KEY_A.secret))
    assert KEY_A.secret.hex() not in repr(KEY_A)
    assert KEY_A.public_key.compressed.hex() in repr(KEY_A)


def test_generate_skips_out_of_range_secrets() -> None:
    draws = iter([bytes(32), b"\xff" * 32, b"\x05" * 32])
    key = PrivateKey.generate(lambda n: next(draws))
    assert key.secret == b"\x05" * 32
    assert PrivateKey.generate() != PrivateKey.generate()


def test_sign_verify() -> None:
    digest = keccak256(b"message")
    signature = KEY_A.sign(digest)
    assert len(signature) == 64
    assert signature == KEY_A.sign(digest)  # RFC 6979: deterministic
    assert int.from_bytes(signature[32:], "big") <= SECP256K1_N // 2
    assert KEY_A.public_key.verify(signature, digest)
    assert not KEY_B.public_key.verify(signature, digest)
    assert not KEY_A.public_key.verify(signature, keccak256(b"other"))
    assert not KEY_A.public_key.verify(signature[:63], digest)
    assert not KEY_A.public_key.verify(signature, digest[:31])
    r, s = signature[:32], int.from_bytes(signature[32:], "big")
    assert not KEY_A.public_key.verify(r + (SECP256K1_N - s).to_bytes(32, "big"), digest)
    assert not KEY_A.public_key.verify(b"\xff" * 64, digest)
    with pytest.raises(ValueError, match="32 bytes"):
        KEY_A.sign(b"short")


def test_ecdh_is_symmetric() -> None:
    shared = KEY_A.ecdh(KEY_B.public_key)
    assert len(shared) == 33
    assert shared[0] in (2, 3)
    assert shared == KEY_B.ecdh(KEY_A.public_key)
    assert shared != KEY_A.ecdh(EIP778_KEY.public_key)


def test_public_key_forms() -> None:
    public = KEY_A.public_key
    assert len(public.compressed) == 33
    assert len(public.uncompressed) == 64
    for form in (public.compressed, public.uncompressed, b"\x04" + public.uncompressed):
        assert PublicKey.from_bytes(form) == public
    assert hash(PublicKey.from_bytes(public.uncompressed)) == hash(public)
    assert public.node_id == keccak256(public.uncompressed)
    assert public.compressed.hex() in repr(public)
    assert public != KEY_B.public_key
    assert public != public.compressed


@pytest.mark.parametrize("size", [0, 32, 34, 63, 66])
def test_public_key_wrong_length(size: int) -> None:
    with pytest.raises(InvalidPublicKey, match=f"{size} bytes"):
        PublicKey.from_bytes(b"\x02" * size)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(off_curve_uncompressed(), id="64-off-curve"),
        pytest.param(b"\x04" + off_curve_uncompressed(), id="65-off-curve"),
        pytest.param(b"\x02" + off_curve_uncompressed()[:32], id="33-off-curve"),
        pytest.param(b"\x05" + KEY_A.public_key.compressed[1:], id="33-bad-prefix"),
        pytest.param(bytes(64), id="zeros"),
    ],
)
def test_public_key_not_on_curve(data: bytes) -> None:
    with pytest.raises(InvalidPublicKey, match="not a point on the secp256k1 curve"):
        PublicKey.from_bytes(data)


def test_identity_scheme_registry() -> None:
    assert isinstance(identity_scheme(b"v4"), V4IdentityScheme)
    with pytest.raises(ENRSignatureError, match="unknown identity scheme b'v5'"):
        identity_scheme(b"v5")
    with pytest.raises(ENRSignatureError, match="no 'id' entry"):
        identity_scheme(None)


class _NullScheme:
    """A scheme like go-ethereum's test "null" scheme: no signature, id from an 'nulladdr' key."""

    name = b"null"

    def identity_pairs(self, private_key: PrivateKey) -> dict[bytes, Item]:
        return {b"id": self.name, b"nulladdr": private_key.public_key.node_id}

    def sign(self, content: bytes, private_key: PrivateKey) -> bytes:
        return b""

    def verify(self, pairs: Mapping[bytes, Item], signature: bytes, content: bytes) -> Verified:
        return Verified(public_key=None, node_id=self.node_id(pairs))

    def node_id(self, pairs: Mapping[bytes, Item]) -> bytes:
        value = pairs.get(b"nulladdr")
        if not isinstance(value, bytes) or len(value) != 32:
            raise ENRSignatureError("null record needs a 32-byte nulladdr")
        return value


def test_register_identity_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    # Registered for this test only: the registry is restored afterwards.
    monkeypatch.setattr(enr._identity, "_REGISTRY", dict(enr._identity._REGISTRY))
    register_identity_scheme(_NullScheme())
    record = ENR.build(KEY_A, scheme="null", ip="127.0.0.1", udp=30303)
    assert record.identity_scheme == "null"
    assert record.signature == b""
    assert record.node_id == KEY_A.public_key.node_id
    assert record.public_key is None
    again = ENR.from_text(record.to_text())
    assert again == record
    assert again.verified
    assert again.udp == 30303
