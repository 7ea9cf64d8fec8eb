"""Run the real tor daemon offline for tests: ``DisableNetwork 1``, ``SocksPort 0``, a private
DataDirectory and a HiddenServiceDir, all under a work directory of the test's. Only the tor
process started here is ever stopped, by its Popen handle.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

TOR = shutil.which("tor")
"""The tor executable, or None when it is not installed (tests then skip)."""

HOSTNAME_TIMEOUT = 30.0
_HOSTNAME_RE = re.compile(r"[a-z2-7]{56}\.onion\n")


def write_torrc(tmp_path: Path, hs_dir: Path) -> Path:
    data_dir = tmp_path / "tor-data"
    data_dir.mkdir(mode=0o700, parents=True)
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


def tor_log(tmp_path: Path) -> str:
    log = tmp_path / "tor.log"
    return log.read_text(errors="replace") if log.exists() else "(no tor log)"


def start_tor(tmp_path: Path, hs_dir: Path) -> subprocess.Popen[bytes]:
    assert TOR is not None
    torrc = write_torrc(tmp_path, hs_dir)
    defaults = tmp_path / "torrc-defaults"
    defaults.write_text("")  # never read /etc/tor/torrc-defaults
    with (tmp_path / "tor.out").open("wb") as output:
        return subprocess.Popen(
            [TOR, "--defaults-torrc", str(defaults), "-f", str(torrc)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def stop_tor(proc: subprocess.Popen[bytes]) -> None:
    """Stop the tor this test started (and only it), by its handle."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def tor_output(tmp_path: Path) -> str:
    return (tmp_path / "tor.out").read_text(errors="replace") + tor_log(tmp_path)


def run_tor_until_hostname(tmp_path: Path, hs_dir: Path) -> str:
    """Start tor, wait (bounded) for a complete hostname file in ``hs_dir``, stop tor."""
    proc = start_tor(tmp_path, hs_dir)
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
                    + tor_output(tmp_path)
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"tor did not write {hostname_path} within {HOSTNAME_TIMEOUT:.0f} s:\n"
                    + tor_output(tmp_path)
                )
            time.sleep(0.05)
    finally:
        stop_tor(proc)
