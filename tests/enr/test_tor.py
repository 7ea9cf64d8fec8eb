"""Onion-service key files against the real tor daemon, run offline.

tor is started with ``DisableNetwork 1`` and ``SocksPort 0`` (no network, no listening port), a
private DataDirectory and a HiddenServiceDir in tmp_path. It loads (or generates) the service
keys and writes the ``hostname`` file at startup, which is all these tests need:

(a) keys we wrote with write_hidden_service_dir: tor accepts them and the hostname it writes
    is our address (we delete our own hostname file first, so the file must come from tor);
(b) keys tor generated itself: read_hidden_service_dir gives the address in tor's hostname file.

Only the tor process started here is ever stopped, by its Popen handle, in a ``finally``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from enr import OnionServiceKey, onion3_problem, read_hidden_service_dir, write_hidden_service_dir

TOR = shutil.which("tor")

pytestmark = [
    pytest.mark.tor,
    pytest.mark.skipif(
        TOR is None,
        reason="tor daemon not installed (apt-get install tor); onion-service key files"
        " not checked against tor",
    ),
]

HOSTNAME_TIMEOUT = 30.0
_HOSTNAME_RE = re.compile(r"[a-z2-7]{56}\.onion\n")


def _write_torrc(tmp_path: Path, hs_dir: Path) -> Path:
    data_dir = tmp_path / "tor-data"
    data_dir.mkdir(mode=0o700)
    os.chmod(data_dir, 0o700)
    torrc = tmp_path / "torrc"
    lines = [
        "DisableNetwork 1",
        "SocksPort 0",
        "ControlPort 0",
        "RunAsDaemon 0",
        "AvoidDiskWrites 1",
        f"DataDirectory {data_dir}",
        f"HiddenServiceDir {hs_dir}",
        "HiddenServicePort 80 127.0.0.1:1",
        f"Log notice file {tmp_path / 'tor.log'}",
    ]
    # As root tor only warns ("You are running Tor as root"); no User option is needed, and
    # leaving it out keeps every file owned by whoever runs the tests.
    torrc.write_text("\n".join(lines) + "\n")
    return torrc


def _tor_log(tmp_path: Path) -> str:
    log = tmp_path / "tor.log"
    return log.read_text(errors="replace") if log.exists() else "(no tor log)"


def _run_tor_until_hostname(tmp_path: Path, hs_dir: Path) -> str:
    """Start tor, wait (bounded) for a complete hostname file in ``hs_dir``, stop tor."""
    assert TOR is not None
    torrc = _write_torrc(tmp_path, hs_dir)
    defaults = tmp_path / "torrc-defaults"
    defaults.write_text("")
    output_path = tmp_path / "tor.out"
    with output_path.open("wb") as output:
        proc = subprocess.Popen(
            [TOR, "--defaults-torrc", str(defaults), "-f", str(torrc)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        hostname_path = hs_dir / "hostname"
        deadline = time.monotonic() + HOSTNAME_TIMEOUT
        while True:
            if hostname_path.exists():
                text = hostname_path.read_text("ascii", "replace")
                if _HOSTNAME_RE.fullmatch(text):
                    return text.strip()
            if proc.poll() is not None:
                pytest.fail(
                    f"tor exited with status {proc.returncode} before writing {hostname_path}:\n"
                    f"{output_path.read_text(errors='replace')}\n{_tor_log(tmp_path)}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"tor did not write {hostname_path} within {HOSTNAME_TIMEOUT:.0f} s:\n"
                    f"{_tor_log(tmp_path)}"
                )
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _empty_hs_dir(tmp_path: Path) -> Path:
    hs_dir = tmp_path / "hidden-service"
    hs_dir.mkdir(mode=0o700)
    os.chmod(hs_dir, 0o700)
    return hs_dir


def test_tor_accepts_keys_we_wrote(tmp_path: Path) -> None:
    hs_dir = tmp_path / "hidden-service"
    key = OnionServiceKey.generate()
    write_hidden_service_dir(hs_dir, key)
    secret_before = (hs_dir / "hs_ed25519_secret_key").read_bytes()
    # Prove the hostname file tor leaves is tor's own work, not ours.
    (hs_dir / "hostname").unlink()

    hostname = _run_tor_until_hostname(tmp_path, hs_dir)

    assert hostname == key.address
    # tor used our key rather than replacing it.
    assert (hs_dir / "hs_ed25519_secret_key").read_bytes() == secret_before
    assert read_hidden_service_dir(hs_dir) == key


def test_we_read_keys_tor_generated(tmp_path: Path) -> None:
    hs_dir = _empty_hs_dir(tmp_path)

    hostname = _run_tor_until_hostname(tmp_path, hs_dir)

    assert onion3_problem(hostname) is None
    key = read_hidden_service_dir(hs_dir)  # also checks tor's public key file and hostname
    assert key.address == hostname
    again = OnionServiceKey.from_expanded_secret(key.expanded_secret)
    assert again.public_key == key.public_key
