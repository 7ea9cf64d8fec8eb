"""Key files: geth's ``nodekey`` and the Tor v3 onion-service keys of a HiddenServiceDir.

geth ``nodekey``: the 32-byte secp256k1 secret as 64 hex characters (``crypto.SaveECDSA``
writes no newline; ``crypto.LoadECDSA`` accepts trailing whitespace and nothing else).

tor (rend-spec-v3, src/feature/hs): ``hs_ed25519_secret_key`` is the 32-byte header
``"== ed25519v1-secret: type0 ==\\0\\0\\0"`` followed by the 64-byte *expanded* ed25519 secret
(clamped scalar || hash prefix); ``hs_ed25519_public_key`` is ``"== ed25519v1-public: type0
==\\0\\0\\0"`` followed by the 32-byte public key; ``hostname`` is the address and a newline.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from Crypto.PublicKey import ECC

from ._errors import KeyFileError
from ._keys import PrivateKey
from ._onion import onion3_from_public_key

__all__ = [
    "OnionServiceKey",
    "read_hidden_service_dir",
    "read_nodekey",
    "write_file_atomic",
    "write_hidden_service_dir",
    "write_nodekey",
]

_SECRET_HEADER: Final = b"== ed25519v1-secret: type0 ==\x00\x00\x00"
_PUBLIC_HEADER: Final = b"== ed25519v1-public: type0 ==\x00\x00\x00"
# RFC 8032 base point of edwards25519.
_ED25519_G: Final = (
    15112221349535400772501151409588531511454012693041857206046113283949847762202,
    46316835694926478169428394003475163141307993866256225615783033603165251855960,
)


def write_file_atomic(
    path: str | os.PathLike[str],
    data: bytes | str | Iterable[bytes | str],
    *,
    mode: int | None = None,
) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old file or the new one, never
    a partial or empty file: a temporary file in the same directory, flushed and fsynced,
    renamed over ``path``, then the directory fsynced.

    Args:
        data: bytes, text (written as UTF-8), or an iterable of such pieces (written one by
            one, so a large document need not exist in memory at once).
        mode: permission bits of the new file; default: those of the file it replaces, or
            0o644 for a new file.

    Raises:
        OSError: the directory is not writable, the disk is full...; the old file is untouched.
    """
    target = Path(path)
    pieces: Iterable[bytes | str] = [data] if isinstance(data, (bytes, str)) else data
    if mode is None:
        try:
            mode = target.stat().st_mode & 0o777
        except OSError:
            mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            for piece in pieces:
                f.write(piece.encode("utf-8") if isinstance(piece, str) else piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dir_fd = os.open(target.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def read_nodekey(path: str | os.PathLike[str]) -> PrivateKey:
    """Read a geth ``nodekey`` file.

    Raises:
        KeyFileError: unreadable file, not 64 hex characters, trailing garbage, or a value that
            is not a valid secp256k1 secret.
    """
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read node key {os.fspath(path)}: {exc.strerror}") from None
    if text[:2] in (b"0x", b"0X"):
        raise KeyFileError("node key must be 64 hex characters without a '0x' prefix")
    head, tail = text[:64], text[64:]
    if tail.strip(b" \t\r\n"):
        raise KeyFileError("node key file has data after the 64 hex characters")
    if len(head.strip()) != 64:
        raise KeyFileError(f"node key must be 64 hex characters, got {len(head.strip())}")
    try:
        secret = bytes.fromhex(head.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise KeyFileError("node key file contains characters that are not hex") from None
    try:
        return PrivateKey(secret)
    except ValueError as exc:
        raise KeyFileError(f"node key is not a valid secp256k1 key: {exc}") from None


def write_nodekey(path: str | os.PathLike[str], key: PrivateKey) -> None:
    """Write ``key`` as geth does (64 hex characters, no newline, mode 0600), atomically."""
    write_file_atomic(path, key.secret.hex().encode("ascii"), mode=0o600)


@dataclass(frozen=True, slots=True, repr=False)
class OnionServiceKey:
    """A Tor v3 onion-service identity: the expanded ed25519 secret and its public key."""

    expanded_secret: bytes
    """64 bytes: clamped scalar (little-endian) || hash prefix, as tor stores it."""
    public_key: bytes
    """32-byte ed25519 public key."""

    @classmethod
    def generate(cls, rng: Callable[[int], bytes] | None = None) -> OnionServiceKey:
        """A new key from a 32-byte seed (``rng``, default ``os.urandom``)."""
        return cls.from_seed((rng or os.urandom)(32))

    @classmethod
    def from_seed(cls, seed: bytes) -> OnionServiceKey:
        """Derive the expanded key and public key from an RFC 8032 32-byte seed."""
        if len(seed) != 32:
            raise ValueError("ed25519 seed must be 32 bytes")
        digest = bytearray(hashlib.sha512(seed).digest())
        digest[0] &= 248
        digest[31] &= 127
        digest[31] |= 64
        ed_key = ECC.construct(curve="Ed25519", seed=seed)  # type: ignore[arg-type]
        public = ed_key.public_key().export_key(format="raw")
        return cls(bytes(digest), bytes(public))

    @classmethod
    def from_expanded_secret(cls, expanded: bytes) -> OnionServiceKey:
        """Rebuild from tor's 64-byte expanded secret (the public key is scalar * G)."""
        if len(expanded) != 64:
            raise KeyFileError(f"expanded ed25519 secret must be 64 bytes, got {len(expanded)}")
        scalar = int.from_bytes(expanded[:32], "little")
        point = ECC.EccPoint(*_ED25519_G, curve="Ed25519") * scalar
        public = ECC.EccKey(curve="Ed25519", point=point).export_key(format="raw")
        return cls(bytes(expanded), bytes(public))

    @property
    def address(self) -> str:
        """The ``<56 base32>.onion`` address."""
        return onion3_from_public_key(self.public_key)

    def __repr__(self) -> str:
        return f"OnionServiceKey(<secret>, address={self.address})"


def write_hidden_service_dir(directory: str | os.PathLike[str], key: OnionServiceKey) -> None:
    """Write ``hs_ed25519_secret_key``, ``hs_ed25519_public_key`` and ``hostname`` for tor.

    The directory is created with mode 0700 (tor refuses group/world-readable directories).
    """
    path = Path(directory)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    files = {
        "hs_ed25519_secret_key": _SECRET_HEADER + key.expanded_secret,
        "hs_ed25519_public_key": _PUBLIC_HEADER + key.public_key,
        "hostname": (key.address + "\n").encode("ascii"),
    }
    for name, data in files.items():
        write_file_atomic(path / name, data, mode=0o600)


def read_hidden_service_dir(directory: str | os.PathLike[str]) -> OnionServiceKey:
    """Read the keys tor keeps in a HiddenServiceDir, checking the files agree.

    Raises:
        KeyFileError: missing or malformed secret key file, or a public key / hostname file
            that does not match the secret key.
    """
    path = Path(directory)
    try:
        secret_file = (path / "hs_ed25519_secret_key").read_bytes()
    except OSError as exc:
        where = path / "hs_ed25519_secret_key"
        raise KeyFileError(f"cannot read {where}: {exc.strerror}") from None
    if not secret_file.startswith(_SECRET_HEADER) or len(secret_file) != 96:
        raise KeyFileError("hs_ed25519_secret_key: not a tor ed25519v1 secret key file")
    key = OnionServiceKey.from_expanded_secret(secret_file[32:])
    public_path = path / "hs_ed25519_public_key"
    if public_path.exists():
        public_file = public_path.read_bytes()
        if public_file != _PUBLIC_HEADER + key.public_key:
            raise KeyFileError("hs_ed25519_public_key does not match hs_ed25519_secret_key")
    hostname_path = path / "hostname"
    if hostname_path.exists():
        hostname = hostname_path.read_text("ascii", "replace").strip()
        if hostname != key.address:
            raise KeyFileError(f"hostname file says {hostname}, but the key gives {key.address}")
    return key
