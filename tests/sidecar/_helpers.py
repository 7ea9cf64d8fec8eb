"""Shared helpers for the sidecar tests: fixed enodes, read-only directories, log lines."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from enr import OnionServiceKey, PrivateKey


def key(seed: int) -> PrivateKey:
    """A fixed secp256k1 key."""
    return PrivateKey(seed.to_bytes(32, "big"))


def onion_address(seed: int) -> str:
    """A fixed, checksum-valid onion3 address."""
    return OnionServiceKey.from_seed(bytes([seed % 256]) * 32).address


def onion_enode(seed: int, tcp: int = 30303) -> str:
    """A valid enode URL with an onion3 host, as the sidecar writes them."""
    return f"enode://{key(seed).public_key.uncompressed.hex()}@{onion_address(seed)}:{tcp}"


def ip_enode(seed: int, host: str = "203.0.113.7", tcp: int = 30303) -> str:
    """A valid enode URL with an IP host (documentation range: never dialled)."""
    return f"enode://{key(seed).public_key.uncompressed.hex()}@{host}:{tcp}"


def node_id(seed: int) -> bytes:
    return key(seed).public_key.node_id


RANDOM_ID_ENODE = "enode://" + "ab" * 64 + "@203.0.113.9:30303"
"""A made-up 64-byte "node id": not a point on secp256k1 (geth: "invalid public key")."""


def temp_files(directory: Path) -> list[str]:
    """Leftover temporary files of atomic writes in ``directory``."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def _writable(directory: Path) -> bool:
    probe = directory / ".probe"
    try:
        probe.write_text("x")
    except OSError:
        return False
    probe.unlink()
    return True


@contextmanager
def read_only_dir(directory: Path) -> Iterator[None]:
    """Make ``directory`` refuse new files for the duration of the block.

    Not root: mode 0555. Root ignores permission bits, so there the directory is made
    immutable with ``chattr +i`` (ext2/3/4, xfs, btrfs...; needs CAP_LINUX_IMMUTABLE); where
    that is not available the test is skipped rather than pretending.
    """
    if os.geteuid() != 0:
        mode = directory.stat().st_mode
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("running as root and chattr is not installed: cannot deny writes")
    done = subprocess.run([chattr, "+i", str(directory)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"running as root and chattr +i failed: {done.stderr.decode().strip()}")
    try:
        if _writable(directory):
            pytest.skip("running as root and the immutable flag does not deny writes here")
        yield
    finally:
        subprocess.run([chattr, "-i", str(directory)], capture_output=True, check=True)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` parsed as a JSON object (fails on any other line)."""
    out = []
    for line in text.splitlines():
        value = json.loads(line)
        assert isinstance(value, dict), line
        out.append(value)
    return out


_FIELD_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)')


def plain_events(text: str) -> list[tuple[str, str, dict[str, str]]]:
    """Plain log lines as (level, event, fields); other lines are skipped. A value with spaces
    is written JSON-quoted; it is unquoted here."""
    out = []
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3 or parts[1] not in ("INFO", "WARNING", "ERROR", "DEBUG"):
            continue
        fields: dict[str, str] = {}
        for match in _FIELD_RE.finditer(parts[3] if len(parts) > 3 else ""):
            value = match.group(2)
            fields[match.group(1)] = json.loads(value) if value.startswith('"') else value
        out.append((parts[1], parts[2], fields))
    return out
