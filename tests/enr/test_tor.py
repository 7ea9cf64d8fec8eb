"""Onion-service key files against the real tor daemon, run offline.

tor is started with ``DisableNetwork 1`` and ``SocksPort 0`` (no network, no listening port), a
private DataDirectory and a HiddenServiceDir in tmp_path. It loads (or generates) the service
keys and writes the ``hostname`` file at startup, which is all these tests need:

(a) keys we wrote with write_hidden_service_dir: tor accepts them and the hostname it writes
    is our address (we delete our own hostname and public key files first, so both must come
    from tor, derived from our secret key file);
(b) keys tor generated itself: read_hidden_service_dir gives the address in tor's hostname file;
(c) a secret key file with a wrong header: both tor and read_hidden_service_dir refuse it.

Only the tor process started here is ever stopped, by its Popen handle, in a ``finally``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from enr import (
    KeyFileError,
    OnionServiceKey,
    onion3_problem,
    read_hidden_service_dir,
    write_hidden_service_dir,
)

from .._tor import HOSTNAME_TIMEOUT, TOR, run_tor_until_hostname, start_tor, stop_tor, tor_output

pytestmark = [
    pytest.mark.tor,
    pytest.mark.skipif(
        TOR is None,
        reason="tor daemon not installed (apt-get install tor); onion-service key files"
        " not checked against tor",
    ),
]



def _run_tor_expecting_refusal(tmp_path: Path, hs_dir: Path) -> str:
    """Start tor and wait (bounded) for it to exit with an error; return its output."""
    proc = start_tor(tmp_path, hs_dir)
    try:
        returncode = proc.wait(timeout=HOSTNAME_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("tor kept running with a corrupt key file:\n" + tor_output(tmp_path))
    finally:
        stop_tor(proc)
    assert returncode != 0, tor_output(tmp_path)
    return tor_output(tmp_path)


def _empty_hs_dir(tmp_path: Path) -> Path:
    hs_dir = tmp_path / "hidden-service"
    hs_dir.mkdir(mode=0o700)
    os.chmod(hs_dir, 0o700)
    return hs_dir


def test_tor_accepts_keys_we_wrote(tmp_path: Path) -> None:
    hs_dir = tmp_path / "hidden-service"
    key = OnionServiceKey.from_seed(bytes(range(100, 132)))
    write_hidden_service_dir(hs_dir, key)
    secret_before = (hs_dir / "hs_ed25519_secret_key").read_bytes()
    public_before = (hs_dir / "hs_ed25519_public_key").read_bytes()
    # Prove the hostname file tor leaves is tor's own work, derived from our secret key file:
    # remove our hostname and public key files first.
    (hs_dir / "hostname").unlink()
    (hs_dir / "hs_ed25519_public_key").unlink()

    hostname = run_tor_until_hostname(tmp_path, hs_dir)

    assert hostname == key.address
    # tor used our secret key rather than replacing it...
    assert (hs_dir / "hs_ed25519_secret_key").read_bytes() == secret_before
    # ...and wrote back the same public key file we write.
    assert (hs_dir / "hs_ed25519_public_key").read_bytes() == public_before
    assert read_hidden_service_dir(hs_dir) == key


def test_we_read_keys_tor_generated(tmp_path: Path) -> None:
    hs_dir = _empty_hs_dir(tmp_path)

    hostname = run_tor_until_hostname(tmp_path, hs_dir)

    assert onion3_problem(hostname) is None
    key = read_hidden_service_dir(hs_dir)  # also checks tor's public key file and hostname
    assert key.address == hostname
    again = OnionServiceKey.from_expanded_secret(key.expanded_secret)
    assert again.public_key == key.public_key


def test_tor_and_we_both_refuse_a_corrupt_secret_key(tmp_path: Path) -> None:
    """A secret key file with the wrong header: read_hidden_service_dir and tor both refuse it."""
    hs_dir = tmp_path / "hidden-service"
    write_hidden_service_dir(hs_dir, OnionServiceKey.from_seed(b"\x09" * 32))
    secret_path = hs_dir / "hs_ed25519_secret_key"
    corrupt = secret_path.read_bytes().replace(b"type0", b"type9", 1)
    assert corrupt.startswith(b"== ed25519v1-secret: type9 ==")
    secret_path.write_bytes(corrupt)
    (hs_dir / "hostname").unlink()
    with pytest.raises(KeyFileError, match="not a tor ed25519v1 secret key file"):
        read_hidden_service_dir(hs_dir)

    output = _run_tor_expecting_refusal(tmp_path, hs_dir)

    assert "hs_ed25519_secret_key" in output
    assert not (hs_dir / "hostname").exists()
    assert secret_path.read_bytes() == corrupt  # tor did not replace it either
