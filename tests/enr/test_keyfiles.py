"""Key files: geth's ``nodekey`` and a Tor v3 HiddenServiceDir (hs_ed25519_* and hostname)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from enr import (
    KeyFileError,
    OnionServiceKey,
    PrivateKey,
    onion3_from_public_key,
    onion3_problem,
    read_hidden_service_dir,
    read_nodekey,
    write_hidden_service_dir,
    write_nodekey,
)

from ._helpers import KEY_A, SECP256K1_N

SECRET_HEADER = b"== ed25519v1-secret: type0 ==\x00\x00\x00"
PUBLIC_HEADER = b"== ed25519v1-public: type0 ==\x00\x00\x00"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _counter_rng() -> Callable[[int], bytes]:
    """A deterministic rng(n) -> n bytes for generate()."""
    state = {"i": 0}

    def rng(n: int) -> bytes:
        state["i"] += 1
        return bytes([state["i"]]) * n

    return rng


# --- nodekey ------------------------------------------------------------------------------------


def test_nodekey_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "nodekey"
    write_nodekey(path, KEY_A)
    data = path.read_bytes()
    assert data == KEY_A.secret.hex().encode("ascii")
    assert len(data) == 64
    assert not data.endswith(b"\n")
    assert _mode(path) == 0o600
    assert read_nodekey(path) == KEY_A
    assert read_nodekey(str(path)) == KEY_A
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nodekey"]  # no temp files left


def test_nodekey_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "nodekey"
    path.write_text("garbage")
    os.chmod(path, 0o644)
    key = PrivateKey.generate()
    write_nodekey(path, key)
    assert read_nodekey(path) == key
    assert _mode(path) == 0o600


@pytest.mark.parametrize("suffix", [b"\n", b"\r\n", b"  \n\n", b"\t"])
def test_nodekey_trailing_whitespace_accepted(tmp_path: Path, suffix: bytes) -> None:
    path = tmp_path / "nodekey"
    path.write_bytes(KEY_A.secret.hex().encode() + suffix)
    assert read_nodekey(path) == KEY_A


def test_nodekey_uppercase_hex_accepted(tmp_path: Path) -> None:
    path = tmp_path / "nodekey"
    path.write_bytes(KEY_A.secret.hex().upper().encode())
    assert read_nodekey(path) == KEY_A


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(b"", "64 hex characters, got 0", id="empty"),
        pytest.param(b"ab" * 31, "64 hex characters, got 62", id="short"),
        pytest.param(b"ab" * 31 + b"\n", "64 hex characters, got 62", id="short-newline"),
        pytest.param(b"zz" * 32, "not hex", id="not-hex"),
        pytest.param(b"\xff" * 64, "not hex", id="binary"),
        pytest.param(b"ab" * 32 + b"cd", "data after the 64 hex characters", id="long"),
        pytest.param(b"ab" * 32 + b"\nab", "data after", id="second-line"),
        pytest.param(b"0" * 64, "not a valid secp256k1 key", id="zero"),
        pytest.param(
            SECP256K1_N.to_bytes(32, "big").hex().encode(),
            "not a valid secp256k1 key",
            id="order",
        ),
        pytest.param(b"\n" + b"ab" * 32, "64 hex characters", id="leading-newline"),
        pytest.param(KEY_A.secret, "64 hex characters, got 32", id="raw-32-bytes"),
    ],
)
def test_nodekey_garbage_rejected(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "nodekey"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=reason):
        read_nodekey(path)


def test_nodekey_missing(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read node key"):
        read_nodekey(tmp_path / "absent")
    with pytest.raises(KeyFileError, match="cannot read node key"):
        read_nodekey(tmp_path)  # a directory


# --- onion-service keys -------------------------------------------------------------------------


def test_generate_matches_expanded_secret() -> None:
    for _ in range(3):
        key = OnionServiceKey.generate()
        again = OnionServiceKey.from_expanded_secret(key.expanded_secret)
        assert again == key
        assert again.address == key.address
        assert onion3_problem(key.address) is None
        assert key.address == onion3_from_public_key(key.public_key)


def test_generate_with_rng_is_deterministic() -> None:
    one = OnionServiceKey.generate(rng=_counter_rng())
    two = OnionServiceKey.generate(rng=_counter_rng())
    assert one == two
    assert one == OnionServiceKey.from_seed(b"\x01" * 32)


def test_expanded_secret_is_clamped() -> None:
    key = OnionServiceKey.from_seed(bytes(range(32)))
    assert len(key.expanded_secret) == 64
    assert len(key.public_key) == 32
    scalar = key.expanded_secret[:32]
    assert scalar[0] & 7 == 0
    assert scalar[31] & 0x80 == 0
    assert scalar[31] & 0x40 == 0x40
    assert OnionServiceKey.from_expanded_secret(key.expanded_secret).public_key == key.public_key


def test_rfc8032_seed() -> None:
    """RFC 8032 section 7.1 TEST 1: the public key of the seed; from_expanded_secret agrees."""
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    want = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    key = OnionServiceKey.from_seed(seed)
    assert key.public_key == want
    assert OnionServiceKey.from_expanded_secret(key.expanded_secret).public_key == want


def test_bad_sizes() -> None:
    with pytest.raises(KeyFileError, match="64 bytes, got 32"):
        OnionServiceKey.from_expanded_secret(bytes(32))
    with pytest.raises(ValueError, match="32 bytes"):
        OnionServiceKey.from_seed(bytes(31))


def test_repr_hides_secret() -> None:
    key = OnionServiceKey.from_seed(b"\x07" * 32)
    text = repr(key)
    assert key.address in text
    assert key.expanded_secret.hex() not in text
    assert key.expanded_secret[:8].hex() not in text


def test_hidden_service_dir_roundtrip(tmp_path: Path) -> None:
    directory = tmp_path / "hs" / "nested"
    key = OnionServiceKey.from_seed(b"\x42" * 32)
    write_hidden_service_dir(directory, key)
    assert _mode(directory) == 0o700
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["hostname", "hs_ed25519_public_key", "hs_ed25519_secret_key"]
    for name in names:
        assert _mode(directory / name) == 0o600
    secret = (directory / "hs_ed25519_secret_key").read_bytes()
    assert secret == SECRET_HEADER + key.expanded_secret
    assert len(secret) == 96
    public = (directory / "hs_ed25519_public_key").read_bytes()
    assert public == PUBLIC_HEADER + key.public_key
    assert len(public) == 64
    assert (directory / "hostname").read_bytes() == (key.address + "\n").encode("ascii")
    assert read_hidden_service_dir(directory) == key
    assert read_hidden_service_dir(str(directory)).address == key.address


def test_hidden_service_dir_existing_dir_gets_0700(tmp_path: Path) -> None:
    directory = tmp_path / "hs"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    write_hidden_service_dir(directory, OnionServiceKey.from_seed(b"\x01" * 32))
    assert _mode(directory) == 0o700


def test_hidden_service_dir_secret_only(tmp_path: Path) -> None:
    key = OnionServiceKey.from_seed(b"\x43" * 32)
    write_hidden_service_dir(tmp_path, key)
    (tmp_path / "hostname").unlink()
    (tmp_path / "hs_ed25519_public_key").unlink()
    assert read_hidden_service_dir(tmp_path) == key


def test_hidden_service_dir_mismatched_public_key(tmp_path: Path) -> None:
    key = OnionServiceKey.from_seed(b"\x44" * 32)
    other = OnionServiceKey.from_seed(b"\x45" * 32)
    write_hidden_service_dir(tmp_path, key)
    (tmp_path / "hs_ed25519_public_key").write_bytes(PUBLIC_HEADER + other.public_key)
    with pytest.raises(KeyFileError, match="hs_ed25519_public_key does not match"):
        read_hidden_service_dir(tmp_path)
    (tmp_path / "hs_ed25519_public_key").write_bytes(key.public_key)  # header missing
    with pytest.raises(KeyFileError, match="hs_ed25519_public_key does not match"):
        read_hidden_service_dir(tmp_path)


def test_hidden_service_dir_mismatched_hostname(tmp_path: Path) -> None:
    key = OnionServiceKey.from_seed(b"\x46" * 32)
    other = OnionServiceKey.from_seed(b"\x47" * 32)
    write_hidden_service_dir(tmp_path, key)
    (tmp_path / "hostname").write_text(other.address + "\n")
    with pytest.raises(KeyFileError, match=f"hostname file says {other.address}"):
        read_hidden_service_dir(tmp_path)
    (tmp_path / "hostname").write_text(key.address.upper() + "\n")
    with pytest.raises(KeyFileError, match="hostname file says"):
        read_hidden_service_dir(tmp_path)
    (tmp_path / "hostname").write_text(key.address)  # no newline is fine
    assert read_hidden_service_dir(tmp_path) == key


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(SECRET_HEADER + bytes(63), id="short"),
        pytest.param(SECRET_HEADER + bytes(65), id="long"),
        pytest.param(PUBLIC_HEADER + bytes(64), id="public-header"),
        pytest.param(b"x" * 96, id="no-header"),
    ],
)
def test_hidden_service_dir_bad_secret_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "hs_ed25519_secret_key").write_bytes(content)
    with pytest.raises(KeyFileError, match="not a tor ed25519v1 secret key file"):
        read_hidden_service_dir(tmp_path)


def test_hidden_service_dir_missing_secret(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"cannot read .*hs_ed25519_secret_key"):
        read_hidden_service_dir(tmp_path)
    with pytest.raises(KeyFileError, match="cannot read"):
        read_hidden_service_dir(tmp_path / "absent")
