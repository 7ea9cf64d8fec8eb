"""Tor v3 onion addresses (rend-spec-v3 "Encoding onion addresses") and the ``onion3`` entry."""

from __future__ import annotations

import base64
import hashlib

import pytest

from enr import (
    ENR,
    OnionAddressError,
    OnionServiceKey,
    onion3_from_public_key,
    onion3_problem,
    onion3_public_key,
)

from ._helpers import KEY_A, onion3_label

# RFC 8032 section 7.1, TEST 1: secret key (seed) and public key.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")

PUBLIC = bytes(range(32))
ADDRESS = onion3_from_public_key(PUBLIC)


def _good_checksum(public_key: bytes) -> bytes:
    return hashlib.sha3_256(b".onion checksum" + public_key + b"\x03").digest()[:2]


def _expected_address(public_key: bytes) -> str:
    """rend-spec-v3 spelled out: base32(PUBKEY || CHECKSUM || 0x03), lower case, '.onion'."""
    checksum = _good_checksum(public_key)
    return base64.b32encode(public_key + checksum + b"\x03").decode().lower() + ".onion"


def test_known_addresses() -> None:
    """Pinned answers (cross-checked with the rend-spec formula and, in test_tor.py, tor)."""
    assert ADDRESS == "aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyp3kead.onion"
    assert (
        onion3_from_public_key(RFC8032_PUBLIC)
        == "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"
    )


def test_address_from_public_key() -> None:
    assert _expected_address(PUBLIC) == ADDRESS
    assert len(ADDRESS) == 62
    assert ADDRESS.endswith("d.onion")  # version 3 always ends the label in 'd'
    assert ADDRESS.lower() == ADDRESS
    assert onion3_from_public_key(RFC8032_PUBLIC) == _expected_address(RFC8032_PUBLIC)


def test_public_key_from_address() -> None:
    assert onion3_public_key(ADDRESS) == PUBLIC
    assert onion3_public_key(ADDRESS.encode("ascii")) == PUBLIC
    assert onion3_problem(ADDRESS) is None
    assert onion3_problem(ADDRESS.encode()) is None


@pytest.mark.parametrize("seed", [bytes(32), b"\x01" * 32, RFC8032_SEED, bytes(range(32, 64))])
def test_roundtrip(seed: bytes) -> None:
    public = OnionServiceKey.from_seed(seed).public_key
    address = onion3_from_public_key(public)
    assert onion3_problem(address) is None
    assert onion3_public_key(address) == public
    assert onion3_from_public_key(onion3_public_key(address)) == address


def test_from_public_key_wrong_length() -> None:
    with pytest.raises(OnionAddressError, match="32 bytes, got 31"):
        onion3_from_public_key(bytes(31))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        pytest.param(ADDRESS[:-6], "missing '.onion' suffix", id="no-suffix"),
        pytest.param(ADDRESS + ".", "missing '.onion' suffix", id="trailing-dot"),
        pytest.param(ADDRESS[1:], "56 base32 characters before '.onion', got 55", id="short"),
        pytest.param("a" + ADDRESS, "got 57", id="long"),
        pytest.param("expyuzz4wqqyqhjn.onion", "got 16", id="v2-address"),
        pytest.param(".onion", "got 0", id="empty-label"),
        pytest.param(ADDRESS.upper(), "lower case", id="all-upper"),
        pytest.param(ADDRESS[:-6].upper() + ".onion", "lower case", id="upper-label"),
        pytest.param(ADDRESS[:10].upper() + ADDRESS[10:], "lower case", id="mixed-case"),
        pytest.param("1" + ADDRESS[1:], "outside the base32 alphabet", id="digit-1"),
        pytest.param("8" + ADDRESS[1:], "outside the base32 alphabet", id="digit-8"),
        pytest.param("=" + ADDRESS[1:], "outside the base32 alphabet", id="padding"),
        pytest.param("é" + ADDRESS[1:], "outside the base32 alphabet", id="non-ascii-str"),
        pytest.param(onion3_label(PUBLIC, b"\x00\x00", 3), "checksum mismatch", id="zero-checksum"),
        pytest.param(
            onion3_label(bytes(32), b"\x12\x34", 3), "checksum mismatch", id="wrong-checksum"
        ),
        pytest.param(
            onion3_label(PUBLIC, _good_checksum(PUBLIC[:31] + b"\x00"), 3),
            "checksum mismatch",
            id="other-keys-checksum",
        ),
        pytest.param(onion3_label(PUBLIC, None, 2), "version is 2, want 3", id="version-2"),
        pytest.param(onion3_label(PUBLIC, None, 4), "version is 4, want 3", id="version-4"),
        pytest.param(onion3_label(PUBLIC, None, 0), "version is 0, want 3", id="version-0"),
        pytest.param(
            onion3_label(PUBLIC, _good_checksum(PUBLIC), 4),
            "version is 4, want 3",
            id="version-4-v3-checksum",
        ),
    ],
)
def test_problems(address: str, reason: str) -> None:
    problem = onion3_problem(address)
    assert problem is not None
    assert reason in problem
    with pytest.raises(OnionAddressError, match="invalid onion3 address: ") as info:
        onion3_public_key(address)
    assert reason in str(info.value)


def test_problem_with_non_ascii_bytes() -> None:
    assert onion3_problem(b"\xff" * 62) == "not ASCII text"
    with pytest.raises(OnionAddressError, match="not ASCII"):
        onion3_public_key(b"\xff" * 62)


def test_every_public_key_byte_is_covered_by_the_checksum() -> None:
    """Changing any byte of the public key inside the address breaks the checksum."""
    raw = base64.b32decode(ADDRESS[:56].upper())
    for i in range(32):
        corrupt = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
        label = base64.b32encode(corrupt).decode().lower()
        assert onion3_problem(label + ".onion") == "onion address checksum mismatch", i


def test_enr_stores_lowercase_address_text() -> None:
    record = ENR.build(KEY_A, onion3=ADDRESS, tcp=30303)
    assert record.get("onion3") == ADDRESS.encode("ascii")
    assert record.onion3 == ADDRESS
    assert isinstance(record.onion3, str)
    again = ENR.from_text(record.to_text())
    assert again.onion3 == ADDRESS
    assert again.onion3_problem is None
    with pytest.raises(OnionAddressError, match="lower case"):
        ENR.build(KEY_A, onion3=ADDRESS.upper())
    with pytest.raises(OnionAddressError, match="checksum"):
        ENR.build(KEY_A, onion3=onion3_label(PUBLIC, b"\x00\x00", 3))


def test_onion_service_key_address() -> None:
    key = OnionServiceKey.from_seed(RFC8032_SEED)
    assert key.public_key == RFC8032_PUBLIC
    assert key.address == onion3_from_public_key(RFC8032_PUBLIC)
    assert onion3_public_key(key.address) == RFC8032_PUBLIC
