"""Fixtures for the ``discv5`` command-line tests: an in-process runner and fixed keys.

Most tests call :func:`discv5._cli.main` in-process (fast, captured with capsys); a few in
``test_cli_entrypoint.py`` run ``python -m discv5`` to prove the real entry point.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from discv5._cli import main
from enr import OnionServiceKey, PrivateKey, write_hidden_service_dir, write_nodekey

from ._helpers import EIP778_SECRET, ONION_SEED, Result, Runner


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Runner:
    """``cli(*argv, stdin=None)`` runs ``discv5 *argv`` in-process and returns a Result."""

    def run(*argv: str | Path, stdin: str | bytes | None = None) -> Result:
        if stdin is not None:
            data = stdin.encode() if isinstance(stdin, str) else stdin
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def eip778_nodekey(tmp_path: Path) -> Path:
    """A geth nodekey file holding EIP-778's example private key."""
    path = tmp_path / "eip778.nodekey"
    write_nodekey(path, PrivateKey(bytes.fromhex(EIP778_SECRET)))
    return path


@pytest.fixture
def onion_key() -> OnionServiceKey:
    """A fixed Tor v3 onion-service key."""
    return OnionServiceKey.from_seed(ONION_SEED)


@pytest.fixture
def onion_dir(tmp_path: Path, onion_key: OnionServiceKey) -> Path:
    """A HiddenServiceDir with the fixed onion key, as tor would have it."""
    path = tmp_path / "hs"
    write_hidden_service_dir(path, onion_key)
    return path
