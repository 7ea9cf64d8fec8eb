"""``discv5 sidecar`` in-process (``discv5._cli.main``) against a loopback test network and the
fake relay RPC, both running in a background trio loop (the command runs its own
``trio.run``). The sidecar binds 127.0.0.1:0 and always gets ``--bootnodes``; nothing is sent
outside 127.0.0.0/8.

Every run uses the same sidecar nodekey, so the test network's tables hold one record for
"the sidecar" across runs and a later crawl never waits for an earlier, closed sidecar.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
import trio

from discv5 import Node, open_node
from discv5._cli import main
from discv5._testnet import Testnet as LocalNet
from enr import OnionServiceKey, enode_from_enr, write_nodekey

from ._helpers import (
    RANDOM_ID_ENODE,
    json_lines,
    key,
    onion_address,
    onion_enode,
    plain_events,
    read_only_dir,
    temp_files,
)
from .conftest import BackgroundTrio, sidecar_key
from .rpcserver import FakeGeth

GUARD = 20.0
"""Seconds a wait may take before the test is considered hung (a guard, not a timing)."""


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def events(self) -> list[tuple[str, str, dict[str, str]]]:
        return plain_events(self.err)

    def named(self, event: str) -> list[dict[str, str]]:
        return [fields for _, name, fields in self.events() if name == event]


@pytest.fixture
def nodekey(tmp_path: Path) -> Path:
    path = tmp_path / "sidecar.nodekey"
    write_nodekey(path, sidecar_key())
    return path


class Runner(Protocol):
    def __call__(self, *argv: str | Path, bootnodes: str | None = None) -> Result: ...


@pytest.fixture
def run(
    capsys: pytest.CaptureFixture[str], bg_testnet: LocalNet, nodekey: Path
) -> Runner:
    """``run(*argv)``: ``discv5 sidecar --bootnodes <testnet> --addr 127.0.0.1:0 ... *argv``."""

    def runner(*argv: str | Path, bootnodes: str | None = None) -> Result:
        capsys.readouterr()
        code = main([
            "sidecar", "--bootnodes", bootnodes or bg_testnet.bootnode.to_text(),
            "--addr", "127.0.0.1:0", "--nodekey", str(nodekey), *map(str, argv),
        ])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return runner


def onion_nodes(net: LocalNet) -> dict[str, str]:
    """onion3 address -> expected enode of every onion node, from the network's manifest."""
    manifest = net.manifest()
    return {n["onion3"]: n["enode"] for n in manifest["nodes"] if n["enode"] is not None}


def entries(path: Path) -> list[str]:
    data = json.loads(path.read_text())
    assert isinstance(data, list)
    return data


def check_file(path: Path) -> None:
    """``discv5 static-nodes check`` accepts the file."""
    assert main(["static-nodes", "check", str(path)]) == 0


def join_extra_node(background: BackgroundTrio, net: LocalNet, seed: int) -> Node:
    """One more onion node with a known key, joined into the test network."""
    onion = OnionServiceKey.from_seed(bytes([seed]) * 32)
    node = background.hold(open_node(
        key(seed), listen=("127.0.0.1", 0), maintain=False, seq=1,
        enr_fields={"tcp": 30400 + seed, "onion3": onion.address},
    ))

    async def bootstrap() -> None:
        with trio.fail_after(GUARD):
            await node.bootstrap([net.bootnode])

    background.run(bootstrap)
    return node


# --- once mode ------------------------------------------------------------------------------


def test_once_wanted_onions_to_file_and_rpc(
    run: Runner, bg_testnet: LocalNet, bg_geth: FakeGeth, tmp_path: Path
) -> None:
    onions = sorted(onion_nodes(bg_testnet).items())
    (a, ea), (b, eb), (c, ec) = onions[:3]
    wanted_file = tmp_path / "peer-onions.txt"
    wanted_file.write_text(f"# peers from the ConfigMap\n\n{c.removesuffix('.onion').upper()}\n")
    path = tmp_path / "static-nodes.json"
    result = run(
        "--once", "--timeout", "30s", "--static-nodes", path, "--rpc", bg_geth.http_url,
        "--want-onion", a, "--want-onion", b, "--want-onion-file", wanted_file,
    )
    assert result.code == 0, result.err
    assert sorted(entries(path)) == sorted([ea, eb, ec])
    check_file(path)
    assert temp_files(tmp_path) == []
    assert sorted(bg_geth.added()) == sorted([ea, eb, ec])
    assert bg_geth.calls_of("admin_addTrustedPeer") == []
    assert result.out.splitlines() == [f"{x} {e}" for x, e in sorted([(a, ea), (b, eb), (c, ec)])]
    assert result.named("round")
    assert result.named("done")
    assert all(level != "ERROR" for level, _, _ in result.events())


def test_once_trusted_over_ipc_takes_every_onion_node(
    run: Runner, bg_testnet: LocalNet, bg_geth: FakeGeth, tmp_path: Path
) -> None:
    path = tmp_path / "static-nodes.json"
    result = run(
        "--once", "--timeout", "30s", "--static-nodes", path, "--rpc", bg_geth.ipc_path,
        "--trusted",
    )
    assert result.code == 0, result.err
    expected = sorted(onion_nodes(bg_testnet).values())
    assert sorted(entries(path)) == expected
    check_file(path)
    assert sorted(bg_geth.added("admin_addTrustedPeer")) == expected
    assert bg_geth.calls_of("admin_addPeer") == []
    assert {c.transport for c in bg_geth.calls} == {"ipc"}


def test_relay_itself_never_added(
    run: Runner, background: BackgroundTrio, bg_testnet: LocalNet, tmp_path: Path
) -> None:
    """The relay's own node, by --exclude-nodekey (its geth nodekey file) or --exclude-enode,
    is never written, though the crawl finds it."""
    relay = join_extra_node(background, bg_testnet, 93)
    relay_enode = str(enode_from_enr(relay.local_enr))
    relay_key = tmp_path / "relay.nodekey"
    write_nodekey(relay_key, key(93))
    other = bg_testnet.nodes[4]
    assert other.expected_enode is not None

    control = tmp_path / "control.json"
    result = run("--once", "--timeout", "30s", "--static-nodes", control)
    assert result.code == 0, result.err
    assert relay_enode in entries(control)
    assert other.expected_enode in entries(control)

    path = tmp_path / "static-nodes.json"
    result = run(
        "--once", "--timeout", "30s", "--static-nodes", path,
        "--exclude-nodekey", relay_key, "--exclude-enode", other.expected_enode,
    )
    assert result.code == 0, result.err
    assert set(entries(path)) == set(onion_nodes(bg_testnet).values()) - {other.expected_enode}
    assert relay_enode not in entries(path)


def test_entries_kept_across_restarts_and_pins_first(
    run: Runner, bg_testnet: LocalNet, tmp_path: Path
) -> None:
    onions = sorted(onion_nodes(bg_testnet).items())
    path = tmp_path / "static-nodes.json"
    pins = [onion_enode(70), onion_enode(71)]
    pin_file = tmp_path / "pinned.txt"
    pin_file.write_text(f"# always\n{pins[0]}\n{pins[1]}  # second\n")
    first = run("--once", "--timeout", "30s", "--static-nodes", path,
                "--want-onion", onions[0][0], "--pin", pin_file)
    assert first.code == 0, first.err
    assert entries(path) == [*pins, onions[0][1]]
    second = run("--once", "--timeout", "30s", "--static-nodes", path,
                 "--want-onion", onions[1][0], "--pin", pin_file)
    assert second.code == 0, second.err
    assert entries(path)[:2] == pins
    assert sorted(entries(path)[2:]) == sorted([onions[0][1], onions[1][1]])
    check_file(path)
    (loaded,) = second.named("static-nodes-loaded")
    assert loaded["entries"] == "3"
    assert loaded["pinned"] == "2"


def test_wanted_onion_nobody_has_times_out(
    run: Runner, bg_testnet: LocalNet, tmp_path: Path
) -> None:
    present, _ = sorted(onion_nodes(bg_testnet).items())[0]
    absent = onion_address(200)
    assert absent not in onion_nodes(bg_testnet)
    result = run(
        "--once", "--timeout", "3s", "--static-nodes", tmp_path / "static-nodes.json",
        "--want-onion", present, "--want-onion", absent,
    )
    assert result.code == 1
    assert f"missing: {absent}" in result.err.splitlines()
    (timeout,) = result.named("timeout")
    assert timeout["missing"] == absent
    assert present not in result.err.split("missing:", 1)[1]
    assert result.out == ""


def test_json_log_lines(run: Runner, bg_testnet: LocalNet, tmp_path: Path) -> None:
    present, _ = sorted(onion_nodes(bg_testnet).items())[0]
    result = run(
        "--once", "--timeout", "30s", "--static-nodes", tmp_path / "static-nodes.json",
        "--want-onion", present, "--log-format", "json",
    )
    assert result.code == 0, result.err
    records = json_lines(result.err)
    assert all({"time", "level", "event"} <= r.keys() for r in records)
    events = [r["event"] for r in records]
    for event in ("static-nodes-loaded", "started", "onion-resolved", "round", "done"):
        assert event in events
    (summary,) = [r for r in records if r["event"] == "round"]
    assert {"seen", "live", "onion", "added", "dropped", "file_written", "missing",
            "rpc_pending", "seconds"} <= summary.keys()
    assert summary["live"] == len(bg_testnet.nodes)
    assert summary["missing"] == []


def test_sidecar_mode_recrawls_until_interrupted(
    bg_testnet: LocalNet, bg_geth: FakeGeth, nodekey: Path, tmp_path: Path
) -> None:
    """Without --once: a round every --interval, new enodes to the file and the RPC; SIGINT
    ends it with status 130 and the file intact. (A real process: SIGINT needs one.)"""
    path = tmp_path / "static-nodes.json"
    log_path = tmp_path / "sidecar.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "discv5", "sidecar", "--bootnodes",
             bg_testnet.bootnode.to_text(), "--addr", "127.0.0.1:0", "--nodekey", str(nodekey),
             "--static-nodes", str(path), "--rpc", str(bg_geth.ipc_path), "--interval", "300ms",
             "--log-format", "json"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file, env=env,
        )
        try:
            deadline = time.monotonic() + GUARD
            while sum(r["event"] == "round" for r in _records(log_path)) < 3:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "fewer than 3 rounds in time"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(GUARD)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(GUARD)
    expected = sorted(onion_nodes(bg_testnet).values())
    assert code == 130, log_path.read_text()
    assert "discv5: error: interrupted" in log_path.read_text()
    assert sorted(entries(path)) == expected
    # Offered again every round (a restarted relay gets its peers back), logged once.
    assert sorted(set(bg_geth.added())) == expected
    assert log_path.read_text().count("rpc-peer-added") == len(expected)
    check_file(path)


def _records(path: Path) -> list[dict[str, object]]:
    """The complete JSON log lines written so far."""
    lines = path.read_text().split("\n")[:-1]
    return [json.loads(line) for line in lines if line.startswith("{")]


# --- the relay's RPC ------------------------------------------------------------------------


class WatchedStream(io.StringIO):
    """A stderr stand-in that tells another thread when a given text has been written."""

    def __init__(self, needle: str) -> None:
        super().__init__()
        self.needle = needle
        self.seen = threading.Event()
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            n = super().write(text)
            if self.needle in self.getvalue():
                self.seen.set()
            return n


def test_rpc_down_at_start_then_up(
    background: BackgroundTrio, bg_testnet: LocalNet, nodekey: Path, ipc_path: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The relay's IPC socket is absent when the init container starts; it appears after the
    first attempt failed: the enodes arrive within the command's wait for the RPC."""
    server = FakeGeth(ipc_path)
    stderr = WatchedStream("rpc-unavailable")
    monkeypatch.setattr(sys, "stderr", stderr)

    async def start_when_refused() -> None:
        with trio.fail_after(GUARD):
            await trio.to_thread.run_sync(stderr.seen.wait, abandon_on_cancel=True)
        await server.start(background.nursery)

    background.start_soon(start_when_refused)
    path = tmp_path / "static-nodes.json"
    code = main([
        "sidecar", "--bootnodes", bg_testnet.bootnode.to_text(), "--addr", "127.0.0.1:0",
        "--nodekey", str(nodekey), "--once", "--timeout", "30s", "--static-nodes", str(path),
        "--rpc", str(ipc_path),
    ])
    err = stderr.getvalue()
    assert code == 0, err
    expected = sorted(onion_nodes(bg_testnet).values())
    assert sorted(server.added()) == expected
    names = [event for _, event, _ in plain_events(err)]
    assert names.index("rpc-unavailable") < names.index("rpc-back")
    assert len([n for n in names if n == "rpc-peer-added"]) == len(expected)


def test_rpc_error_logged_with_enode_and_reason(
    run: Runner, bg_testnet: LocalNet, bg_geth: FakeGeth, tmp_path: Path
) -> None:
    expected = sorted(onion_nodes(bg_testnet).values())
    bg_geth.reject[expected[0]] = "too many peers"
    result = run(
        "--once", "--timeout", "30s", "--static-nodes", tmp_path / "static-nodes.json",
        "--rpc", bg_geth.http_url,
    )
    assert result.code == 0, result.err
    errors = [(ev, f) for level, ev, f in result.events() if level == "ERROR"]
    assert errors == [("rpc-add-peer-failed", {"enode": expected[0], "reason": "too many peers"})]
    assert sorted(bg_geth.added()) == expected[1:]


# --- file faults ----------------------------------------------------------------------------


def test_corrupt_file_refused_unless_asked(
    run: Runner, bg_testnet: LocalNet, tmp_path: Path
) -> None:
    path = tmp_path / "static-nodes.json"
    corrupt = '["enode://abc", '
    path.write_text(corrupt)
    result = run("--once", "--timeout", "30s", "--static-nodes", path)
    assert result.code == 1
    last = result.err.splitlines()[-1]
    assert last.startswith("discv5: error: ")
    assert "not valid JSON" in last
    assert "--replace-corrupt" in last
    assert str(path) in last
    assert path.read_text() == corrupt
    assert "Traceback" not in result.err
    result = run("--once", "--timeout", "30s", "--static-nodes", path,
                 "--replace-corrupt")
    assert result.code == 0, result.err
    assert sorted(entries(path)) == sorted(onion_nodes(bg_testnet).values())
    check_file(path)


def test_invalid_existing_entries_dropped_and_reported(
    run: Runner, bg_testnet: LocalNet, tmp_path: Path
) -> None:
    path = tmp_path / "static-nodes.json"
    kept = onion_enode(72)
    path.write_text(json.dumps([RANDOM_ID_ENODE, kept]))
    result = run("--once", "--timeout", "30s", "--static-nodes", path)
    assert result.code == 0, result.err
    (dropped,) = result.named("invalid-entry-dropped")
    assert "invalid public key" in dropped["reason"]
    assert RANDOM_ID_ENODE.startswith(dropped["entry"])
    assert set(entries(path)) == {kept, *onion_nodes(bg_testnet).values()}
    check_file(path)


def test_directory_not_writable_fails_once_and_keeps_old_file(
    run: Runner, bg_testnet: LocalNet, tmp_path: Path
) -> None:
    """An init container that could not write static-nodes.json must not report success:
    the error names the file, the old file is untouched, the exit status is non-zero."""
    directory = tmp_path / "geth"
    directory.mkdir()
    path = directory / "static-nodes.json"
    old = json.dumps([onion_enode(73)]) + "\n"
    path.write_text(old)
    with read_only_dir(directory):
        result = run("--once", "--timeout", "10s", "--static-nodes", path)
        assert path.read_text() == old
        assert temp_files(directory) == []
    failures = result.named("static-nodes-write-failed")
    assert failures
    assert failures[0]["path"] == str(path)
    assert result.code != 0, "write failed but --once reported success"


# --- command-line usage (no network) --------------------------------------------------------


def _usage(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["sidecar", *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("discv5: error: "), err
    return code, lines[0]


BOOT = "enode://" + key(1).public_key.uncompressed.hex() + "@127.0.0.1:30303"


def test_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    static = str(tmp_path / "s.json")
    code, line = _usage(capsys, "--bootnodes", BOOT, "--once")
    assert code == 2
    assert "nothing to do" in line
    code, line = _usage(capsys, "--static-nodes", static, "--once")
    assert code == 2
    assert "--bootnodes is required" in line
    code, line = _usage(capsys, "--bootnodes", BOOT, "--want-onion", "example.onion")
    assert code == 2
    assert "invalid onion address" in line
    code, line = _usage(capsys, "--bootnodes", BOOT, "--rpc", "https://127.0.0.1:8545")
    assert code == 2
    assert "unsupported RPC endpoint" in line
    code, line = _usage(capsys, "--bootnodes", BOOT, "--static-nodes", static, "--timeout", "0s")
    assert code == 2
    assert "duration" in line
    code, line = _usage(capsys, "--bootnodes", "enode://" + "ab" * 64 + "@127.0.0.1:1",
                        "--static-nodes", static)
    assert code == 2
    assert "bad bootnode" in line


def test_bad_input_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pins = tmp_path / "pins.txt"
    pins.write_text(RANDOM_ID_ENODE + "\n")
    code, line = _usage(capsys, "--bootnodes", BOOT, "--static-nodes",
                        str(tmp_path / "s.json"), "--pin", str(pins))
    assert code == 1
    assert "not a valid enode" in line
    assert "invalid public key" in line
    code, line = _usage(capsys, "--bootnodes", BOOT, "--want-onion-file",
                        str(tmp_path / "absent.txt"))
    assert code == 1
    assert "cannot read wanted onion file" in line
    code, line = _usage(capsys, "--bootnodes", BOOT, "--static-nodes",
                        str(tmp_path / "no" / "such" / "s.json"))
    assert code == 1
    assert "does not exist" in line
    code, line = _usage(capsys, "--bootnodes", BOOT, "--static-nodes",
                        str(tmp_path / "s.json"), "--exclude-nodekey", str(pins))
    assert code == 1
    code, line = _usage(capsys, "--bootnodes", BOOT, "--static-nodes",
                        str(tmp_path / "s.json"), "--exclude-enode", RANDOM_ID_ENODE)
    assert code == 1
    assert "invalid public key" in line
