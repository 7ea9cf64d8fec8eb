"""The real entry points: ``python -m discv5`` and the ``discv5`` console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ._helpers import EIP778_NODE_ID, EIP778_RECORD


def run(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "discv5", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_module_entry_point_decodes_eip778() -> None:
    proc = run("enr", "decode", EIP778_RECORD)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Node ID:     {EIP778_NODE_ID}\n")
    assert proc.stderr == ""


def test_module_entry_point_errors_without_traceback(tmp_path: Path) -> None:
    proc = run("enr", "decode", "enr:AAAA")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("discv5: error: invalid record")
    assert "Traceback" not in proc.stderr

    proc = run("key", "to-enode", "--nodekey", str(tmp_path / "missing"), "--host", "1.2.3.4")
    assert proc.returncode == 1
    assert proc.stderr.startswith("discv5: error: cannot read node key")
    assert "Traceback" not in proc.stderr

    proc = run("enr", "create")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1


def test_module_entry_point_static_nodes_from_stdin() -> None:
    bad = json.dumps(["enode://" + "ab" * 64 + "@10.0.0.1:30303"])
    proc = run("static-nodes", "check", "--json", "-", stdin=bad)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["bad"] == 1
    assert proc.stderr.startswith("discv5: error: <stdin>: 1 bad of 1 entries")


def test_console_script() -> None:
    script = Path(sys.executable).with_name("discv5")
    found = str(script) if script.exists() else shutil.which("discv5")
    if found is None:
        pytest.skip("the discv5 console script is not installed next to this interpreter")
    proc = subprocess.run(
        [found, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("discv5 ")
