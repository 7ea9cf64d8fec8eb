"""`discv5 listen`, `ping`, `resolve`, `conformance` and `testnet` against real nodes on loopback.

A `discv5 listen` subprocess is the node under test; the other commands run in-process through
``main()`` (each starts its own trio loop), so their exit status and output are checked
directly. Everything binds and sends on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from discv5._cli import main
from enr import ENR, PrivateKey, write_nodekey

REPO = Path(__file__).resolve().parents[2]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def listener(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ENR, subprocess.Popen[str]]]:
    """A `discv5 listen` node on 127.0.0.1 with a known key and a tcp port in its record."""
    directory = tmp_path_factory.mktemp("listen")
    nodekey = directory / "nodekey"
    write_nodekey(nodekey, PrivateKey(bytes(31) + b"\x2a"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "discv5", "listen", "--addr", "127.0.0.1:0", "--nodekey",
         str(nodekey), "--tcp", "30303"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the record is printed first, then the node serves
    try:
        record = ENR.from_text(line.strip())
        yield record, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=10)  # also closes the pipes
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_listen_prints_its_record(listener: tuple[ENR, subprocess.Popen[str]]) -> None:
    record, proc = listener
    assert proc.poll() is None
    assert record.public_key == PrivateKey(bytes(31) + b"\x2a").public_key
    assert str(record.ip) == "127.0.0.1"
    assert record.tcp == 30303
    assert record.udp is not None
    assert record.udp > 0


def test_ping_a_running_node(
    listener: tuple[ENR, subprocess.Popen[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    record, _ = listener
    assert main(["ping", "--timeout", "5s", record.to_text()]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"PONG from {record.node_id.hex()[:16]}")
    assert "sees us at 127.0.0.1:" in out


def test_ping_by_enode_url(
    listener: tuple[ENR, subprocess.Popen[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    record, _ = listener
    enode = f"enode://{record.public_key.uncompressed.hex()}@127.0.0.1:30303?discport={record.udp}"
    assert record.public_key is not None
    assert main(["ping", "--timeout", "5s", enode]) == 0
    assert "PONG from" in capsys.readouterr().out


def test_resolve_prints_the_newest_record(
    listener: tuple[ENR, subprocess.Popen[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    record, _ = listener
    assert record.public_key is not None
    enode = f"enode://{record.public_key.uncompressed.hex()}@127.0.0.1:30303?discport={record.udp}"
    # Known only by its enode URL, the node gives us its signed record.
    assert main(["resolve", "--timeout", "5s", enode]) == 0
    assert capsys.readouterr().out.strip() == record.to_text()


def test_conformance_of_our_listening_node(
    listener: tuple[ENR, subprocess.Popen[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    record, _ = listener
    assert main(["conformance", record.to_text()]) == 0
    out = capsys.readouterr().out
    for name in ("Ping", "PingLargeRequestID", "PingMultiIP", "HandshakeResend", "TalkRequest",
                 "FindnodeZeroDistance", "FindnodeResults"):
        assert f"-- OK {name} (" in out
    assert out.rstrip().endswith("7/7 tests passed.")


def test_ping_unreachable_node_fails_within_the_timeout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    nobody = ENR.build(PrivateKey(bytes(31) + b"\x2b"), 1, ip="127.0.0.1", udp=_free_udp_port())
    started = time.monotonic()
    assert main(["ping", "--timeout", "1s", nobody.to_text()]) == 1
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert err.startswith("discv5: error: no answer within 1s")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_conformance_of_an_unreachable_node_reports_failures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    nobody = ENR.build(PrivateKey(bytes(31) + b"\x2c"), 1, ip="127.0.0.1", udp=_free_udp_port())
    assert main(["conformance", "--run", "^Ping$|TalkRequest", nobody.to_text()]) == 1
    out = capsys.readouterr().out
    assert "-- FAIL Ping (" in out
    assert "-- FAIL TalkRequest (" in out
    assert out.rstrip().endswith("0/2 tests passed.")


def test_bad_node_arguments_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ping", "enode://" + "ab" * 64 + "@127.0.0.1:30303"]) == 1
    err = capsys.readouterr().err
    assert "not a point on the secp256k1 curve" in err
    assert err.count("\n") == 1
    assert main(["conformance", "enr:-IS4Q"]) == 1
    assert capsys.readouterr().err.startswith("discv5: error:")


def test_testnet_runs_for_a_while_and_writes_its_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "net.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "discv5", "testnet", "--nodes", "5", "--onion-fraction", "0.4",
         "--seed", "4", "--manifest", str(manifest), "--duration", "1s"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    bootnode = ENR.from_text(proc.stdout.strip())
    import json

    data = json.loads(manifest.read_text(encoding="utf-8"))
    assert data["bootnode"] == bootnode.to_text()
    assert len(data["nodes"]) == 5
    assert sum(1 for n in data["nodes"] if n["enode"]) == 2
