"""discv5._crypto against the official cryptographic-primitive vectors and basic properties.

Vectors: tests/vectors/discv5_wire_vectors.json "crypto_vectors", transcribed from
ethereum/devp2p:discv5/discv5-wire-test-vectors.md "Cryptographic Primitives" (each entry also
names the go-ethereum test that checks the same values).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from discv5 import _crypto
from discv5._errors import DecryptionError
from enr import PrivateKey, PublicKey

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "discv5_wire_vectors.json").read_text()
)
CRYPTO = VECTORS["crypto_vectors"]
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_ecdh_vector() -> None:
    # Source: devp2p discv5-wire-test-vectors.md "ECDH" (go-ethereum TestVector_ECDH).
    v = CRYPTO["ecdh"]
    secret = _crypto.ecdh(
        PrivateKey(h(v["inputs"]["secret_key"])), PublicKey.from_bytes(h(v["inputs"]["public_key"]))
    )
    assert secret == h(v["expected"]["shared_secret"])
    assert len(secret) == 33


def test_ecdh_is_symmetric() -> None:
    a = PrivateKey(bytes(31) + b"\x07")
    b = PrivateKey(bytes(31) + b"\x0b")
    assert _crypto.ecdh(a, b.public_key) == _crypto.ecdh(b, a.public_key)


def test_key_derivation_vector() -> None:
    # Source: devp2p discv5-wire-test-vectors.md "Key Derivation" (go-ethereum TestVector_KDF).
    v = CRYPTO["key_derivation"]
    inputs = v["inputs"]
    secret = _crypto.ecdh(
        PrivateKey(h(inputs["ephemeral_key"])), PublicKey.from_bytes(h(inputs["dest_pubkey"]))
    )
    assert secret == h(v["derived"]["ecdh_secret"])
    keys = _crypto.derive_session_keys(
        secret, h(inputs["node_id_a"]), h(inputs["node_id_b"]), h(inputs["challenge_data"])
    )
    assert keys == _crypto.SessionKeys(
        initiator_key=h(v["expected"]["initiator_key"]),
        recipient_key=h(v["expected"]["recipient_key"]),
    )


def test_key_derivation_salt_is_challenge_data() -> None:
    # Source: derived value in the same vector: swapping salt and IKM gives another key, so
    # this guards against the pre-2026 wording of discv5-theory.
    v = CRYPTO["key_derivation"]
    inputs = v["inputs"]
    swapped = _crypto.derive_session_keys(
        h(inputs["challenge_data"]),
        h(inputs["node_id_a"]),
        h(inputs["node_id_b"]),
        h(v["derived"]["ecdh_secret"]),
    )
    assert swapped.initiator_key == h(v["derived"]["wrong_initiator_key_if_salt_and_ikm_swapped"])


def test_id_signature_vector() -> None:
    # Source: devp2p discv5-wire-test-vectors.md "ID Nonce Signing"
    # (go-ethereum TestVector_IDSignature); RFC 6979 makes the signature reproducible.
    v = CRYPTO["id_nonce_signing"]
    inputs = v["inputs"]
    key = PrivateKey(h(inputs["static_key"]))
    args = (h(inputs["challenge_data"]), h(inputs["ephemeral_pubkey"]), h(inputs["node_id_b"]))
    assert _crypto.id_signature_input(*args) == h(v["derived"]["id_signature_input_sha256"])
    signature = _crypto.id_sign(key, *args)
    assert signature == h(v["expected"]["id_signature"])
    assert key.public_key.compressed == h(v["derived"]["static_public_key"])
    assert _crypto.id_verify(key.public_key, signature, *args)


def test_id_verify_rejects_bad_signatures() -> None:
    # Source: devp2p "ID Nonce Signing" vector, then mutated.
    v = CRYPTO["id_nonce_signing"]
    inputs = v["inputs"]
    public = PrivateKey(h(inputs["static_key"])).public_key
    cdata, eph, dest = (
        h(inputs["challenge_data"]),
        h(inputs["ephemeral_pubkey"]),
        h(inputs["node_id_b"]),
    )
    sig = h(v["expected"]["id_signature"])
    assert not _crypto.id_verify(public, sig[:63], cdata, eph, dest)
    assert not _crypto.id_verify(public, sig + b"\x00", cdata, eph, dest)
    assert not _crypto.id_verify(public, b"", cdata, eph, dest)
    assert not _crypto.id_verify(public, sig, cdata, eph, bytes(32))
    assert not _crypto.id_verify(public, sig, cdata[:-1] + b"\x01", eph, dest)
    other = PrivateKey(bytes(31) + b"\x05").public_key
    assert not _crypto.id_verify(other, sig, cdata, eph, dest)
    # The same signature with s replaced by n - s is mathematically valid but high-S:
    # go-ethereum (libsecp256k1) rejects it, and so must we.
    s = int.from_bytes(sig[32:], "big")
    high_s = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big")
    assert not _crypto.id_verify(public, high_s, cdata, eph, dest)


def test_aes_gcm_vector() -> None:
    # Source: devp2p discv5-wire-test-vectors.md "Encryption/Decryption".
    v = CRYPTO["aes_gcm"]
    inputs = v["inputs"]
    key, nonce, pt, ad = (
        h(inputs["encryption_key"]),
        h(inputs["nonce"]),
        h(inputs["pt"]),
        h(inputs["ad"]),
    )
    ciphertext = _crypto.aes_gcm_encrypt(key, nonce, pt, ad)
    assert ciphertext == h(v["expected"]["message_ciphertext"])
    assert _crypto.aes_gcm_decrypt(key, nonce, ciphertext, ad) == pt


@pytest.mark.parametrize("mutation", ["key", "nonce", "ad", "body", "tag", "short", "empty"])
def test_aes_gcm_decrypt_failures(mutation: str) -> None:
    # Source: devp2p "Encryption/Decryption" vector, mutated one part at a time.
    v = CRYPTO["aes_gcm"]
    inputs = v["inputs"]
    key, nonce, ad = h(inputs["encryption_key"]), h(inputs["nonce"]), h(inputs["ad"])
    ciphertext = h(v["expected"]["message_ciphertext"])
    if mutation == "key":
        key = bytes(16)
    elif mutation == "nonce":
        nonce = bytes(12)
    elif mutation == "ad":
        ad = ad[:-1]
    elif mutation == "body":
        ciphertext = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    elif mutation == "tag":
        ciphertext = ciphertext[:-1] + bytes([ciphertext[-1] ^ 0x80])
    elif mutation == "short":
        ciphertext = ciphertext[:15]
    else:
        ciphertext = b""
    with pytest.raises(DecryptionError):
        _crypto.aes_gcm_decrypt(key, nonce, ciphertext, ad)


@pytest.mark.parametrize(
    "iv",
    [
        bytes(16),
        bytes(range(16)),
        b"\xff" * 16,  # the 128-bit counter wraps to zero after the first block
        b"\x00" * 8 + b"\xff" * 8,  # carry across the 64-bit halves (Go increments all 128 bits)
    ],
)
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 23, 55, 64, 200])
def test_aes_ctr_matches_reference_ctr(iv: bytes, size: int) -> None:
    # Reference: the backend's own AES-CTR mode, which discv5-wire "Protocol Header" names.
    key = bytes(range(100, 116))
    data = bytes((i * 7 + 3) & 0xFF for i in range(size))
    reference = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor().update(data)
    assert _crypto.aes_ctr(key, iv, data) == reference
    assert _crypto.aes_ctr(key, iv, reference) == data


def test_aes_ctr_rejects_bad_iv() -> None:
    with pytest.raises(ValueError, match="IV"):
        _crypto.aes_ctr(bytes(16), bytes(12), b"x")


def test_gcm_cache_is_bounded() -> None:
    for i in range(5000):
        _crypto.aes_gcm_encrypt(i.to_bytes(16, "big"), bytes(12), b"", b"")
    info = _crypto._gcm.cache_info()
    assert info.maxsize == 4096
    assert info.currsize <= info.maxsize
