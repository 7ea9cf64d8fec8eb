"""The Sidecar against a real loopback test network (our own nodes, some with onion3) and the
fake relay RPC, all in the test's trio loop on the real clock.

Waits are conditions polled under a ``trio.fail_after`` guard (never a fixed sleep that races);
the guards are generous because the sidecar's RPC backoff starts at one second.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from discv5 import Node, open_node
from discv5._testnet import Testnet as LocalNet
from discv5._testnet import open_testnet
from discv5.sidecar import (
    Log,
    Sidecar,
    SidecarSettings,
    check_enode,
    normalize_onion,
)
from enr import ENR, OnionServiceKey, enode_from_enr

from ._helpers import json_lines, key, onion_enode, plain_events, read_only_dir
from .conftest import TESTNET_SEED, TESTNET_SIZE, sidecar_key
from .rpcserver import FakeGeth

GUARD = 20.0
"""Seconds after which a test is considered hung (a guard, never a timing assertion)."""
POLL = 0.02


@pytest.fixture
async def testnet() -> AsyncIterator[LocalNet]:
    async with open_testnet(TESTNET_SIZE, seed=TESTNET_SEED) as net:
        yield net


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    """The sidecar's own discv5 node, on 127.0.0.1."""
    async with open_node(sidecar_key(), listen=("127.0.0.1", 0), maintain=False) as n:
        yield n


def onion_nodes(net: LocalNet) -> dict[str, str]:
    """onion3 address -> expected enode, for every onion node of the network."""
    out = {}
    for member in net.nodes:
        if member.expected_enode is not None:
            assert member.enr.onion3 is not None
            out[member.enr.onion3] = member.expected_enode
    return out


class Logs:
    """A Log writing into memory, with the lines parsed back."""

    def __init__(self, fmt: str = "plain") -> None:
        self.stream = io.StringIO()
        self.log = Log(fmt, self.stream)

    def events(self) -> list[tuple[str, str, dict[str, str]]]:
        return plain_events(self.stream.getvalue())

    def named(self, event: str) -> list[dict[str, str]]:
        return [fields for _, name, fields in self.events() if name == event]


async def wait_for(condition: Callable[[], bool], within: float = GUARD) -> None:
    """Poll ``condition`` until it holds (a bounded wait: TooSlowError after ``within``)."""
    with trio.fail_after(within):
        while True:
            if condition():
                return
            await trio.sleep(POLL)


def make_sidecar(node: Node, net: LocalNet, logs: Logs, **settings: object) -> Sidecar:
    s = SidecarSettings(**settings)  # type: ignore[arg-type]
    return Sidecar(node, [net.bootnode], s, logs.log)


# --- normalize_onion / Log ------------------------------------------------------------------


def test_normalize_onion() -> None:
    address = OnionServiceKey.from_seed(bytes(32)).address
    label = address.removesuffix(".onion")
    for text in (address, address.upper(), label, f"  {label.upper()}\n"):
        assert normalize_onion(text) == address
    broken = ("a" if label[0] != "a" else "b") + label[1:]
    for bad in (broken, label[:16], "example.com", ""):
        with pytest.raises(ValueError, match="invalid onion address"):
            normalize_onion(bad)


def test_log_formats() -> None:
    plain = io.StringIO()
    Log("plain", plain)("warning", "rpc-add-peer-failed", enode="enode://x@y:1",
                        reason="too many peers", missing=[], ids=["a", "b"])
    line = plain.getvalue()
    assert line.endswith("\n")
    assert line.count("\n") == 1
    assert plain_events(line) == [("WARNING", "rpc-add-peer-failed", {
        "enode": "enode://x@y:1", "reason": "too many peers", "missing": "-", "ids": "a,b"})]
    structured = io.StringIO()
    Log("json", structured)("info", "round", seen=3, missing=["x.onion"], file_written=True)
    (record,) = json_lines(structured.getvalue())
    assert record["level"] == "info"
    assert record["event"] == "round"
    assert (record["seen"], record["missing"], record["file_written"]) == (3, ["x.onion"], True)
    time.strptime(record["time"], "%Y-%m-%dT%H:%M:%SZ")


# --- rounds against the test network --------------------------------------------------------


async def test_run_once_resolves_wanted_onions(
    testnet: LocalNet, node: Node, geth: FakeGeth, tmp_path: Path
) -> None:
    onions = onion_nodes(testnet)
    assert len(onions) == TESTNET_SIZE // 2
    wanted = dict(sorted(onions.items())[:3])
    path = tmp_path / "static-nodes.json"
    logs = Logs()
    sidecar = make_sidecar(node, testnet, logs, static_nodes=path, rpc=geth.http_url,
                           wanted=set(wanted))
    sidecar.load_static_nodes()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sidecar.rpc_loop)
        with trio.fail_after(GUARD):
            missing = await sidecar.run_once(GUARD)
        assert missing == set()
        await geth.wait_until(lambda: len(geth.added()) == 3, GUARD)
        await wait_for(lambda: not sidecar.rpc_pending)
        nursery.cancel_scope.cancel()
    assert sidecar.resolved == wanted
    assert sorted(json.loads(path.read_text())) == sorted(wanted.values())
    assert sorted(geth.added()) == sorted(wanted.values())
    assert geth.calls_of("admin_addTrustedPeer") == []
    assert sorted(sidecar.rpc_added) == sorted(wanted.values())
    assert not sidecar.rpc_failed
    resolved = {f["onion"]: f["enode"] for f in logs.named("onion-resolved")}
    assert resolved == wanted
    (summary,) = logs.named("round")
    assert summary["live"] == str(TESTNET_SIZE)
    assert summary["onion"] == str(len(onions))
    assert summary["added"] == "3"
    assert summary["file_written"] == "True"


async def test_run_once_without_wanted_takes_every_onion_node_but_excluded(
    testnet: LocalNet, node: Node, tmp_path: Path
) -> None:
    onions = onion_nodes(testnet)
    relay = testnet.nodes[2]  # an onion node playing the relay itself
    assert relay.expected_enode is not None
    path = tmp_path / "static-nodes.json"
    pin = onion_enode(77)
    logs = Logs()
    sidecar = make_sidecar(node, testnet, logs, static_nodes=path, pins=[pin],
                           exclude={relay.enr.node_id})
    sidecar.load_static_nodes()
    with trio.fail_after(GUARD):
        assert await sidecar.run_once(GUARD) == set()
    written = json.loads(path.read_text())
    assert written[0] == pin
    assert set(written[1:]) == set(onions.values()) - {relay.expected_enode}
    for entry in written:
        check_enode(entry)


async def test_ttl_drops_unseen_entry_and_keeps_pin(
    testnet: LocalNet, node: Node, tmp_path: Path
) -> None:
    path = tmp_path / "static-nodes.json"
    gone, pin = onion_enode(50), onion_enode(51)
    path.write_text(json.dumps([gone, "enode://" + "ab" * 64 + "@203.0.113.1:30303"]))
    state = path.with_name(f".{path.name}.discv5-state.json")
    gone_id = check_enode(gone).node_id
    state.write_text(json.dumps({gone_id.hex(): time.time() - 7200}))
    logs = Logs()
    sidecar = make_sidecar(node, testnet, logs, static_nodes=path, ttl=3600.0, pins=[pin])
    sidecar.load_static_nodes()
    (invalid,) = logs.named("invalid-entry-dropped")
    assert "invalid public key" in invalid["reason"]
    with trio.fail_after(GUARD):
        report = await sidecar.run_round()
    assert report.dropped == [gone]
    assert [f["enode"] for f in logs.named("peer-dropped-ttl")] == [gone]
    written = json.loads(path.read_text())
    assert written[0] == pin
    assert gone not in written
    assert set(written[1:]) == set(onion_nodes(testnet).values())


async def test_write_failure_is_logged_and_the_sidecar_keeps_going(
    testnet: LocalNet, node: Node, tmp_path: Path
) -> None:
    directory = tmp_path / "geth"
    directory.mkdir()
    path = directory / "static-nodes.json"
    old = json.dumps([onion_enode(60)])
    path.write_text(old)
    logs = Logs()
    sidecar = make_sidecar(node, testnet, logs, static_nodes=path)
    sidecar.load_static_nodes()
    with read_only_dir(directory):
        with trio.fail_after(GUARD):
            report = await sidecar.run_round()
        assert not report.written
        (failure,) = logs.named("static-nodes-write-failed")
        assert failure["path"] == str(path)
        assert failure["reason"]
        assert path.read_text() == old
    with trio.fail_after(GUARD):
        report = await sidecar.run_round()
    assert report.written
    assert set(json.loads(path.read_text())) == {onion_enode(60), *onion_nodes(testnet).values()}


async def test_no_node_answers(node: Node, tmp_path: Path) -> None:
    """A bootnode nobody listens on: once mode gives up at its time limit."""
    async with open_node(key(90), listen=("127.0.0.1", 0), maintain=False) as dead:
        record = dead.local_enr
    logs = Logs()
    settings = SidecarSettings(static_nodes=tmp_path / "s.json", retry_interval=0.2)
    sidecar = Sidecar(node, [record], settings, logs.log)
    sidecar.load_static_nodes()
    with trio.fail_after(GUARD):
        missing = await sidecar.run_once(2.0)
    assert missing == {"(no node answered)"}
    assert logs.named("no-node-answered")


# --- the relay's RPC going away and coming back -----------------------------------------------


async def _reserve_port(server: FakeGeth, nursery: trio.Nursery) -> None:
    await server.start(nursery)
    await server.stop()


@pytest.mark.parametrize("transport", ["http", "ipc"])
async def test_rpc_down_at_start_then_up(
    testnet: LocalNet, node: Node, ipc_path: Path, tmp_path: Path, nursery: trio.Nursery,
    transport: str,
) -> None:
    server = FakeGeth(ipc_path)
    await _reserve_port(server, nursery)
    endpoint = server.http_url if transport == "http" else str(ipc_path)
    expected = set(onion_nodes(testnet).values())
    logs = Logs()
    sidecar = make_sidecar(node, testnet, logs, static_nodes=tmp_path / "s.json",
                           rpc=endpoint, interval=3600.0)
    sidecar.load_static_nodes()
    async with trio.open_nursery() as inner:
        inner.start_soon(sidecar.rpc_loop)
        inner.start_soon(sidecar.run_forever)
        await wait_for(lambda: bool(logs.named("rpc-unavailable")))
        assert set(sidecar.rpc_pending) == expected
        assert server.calls == []
        await server.start(nursery)
        await server.wait_until(lambda: set(server.added()) == expected, GUARD)
        await wait_for(lambda: not sidecar.rpc_pending)
        inner.cancel_scope.cancel()
    assert len(server.added()) == len(expected)  # each sent once
    assert logs.named("rpc-back")
    (down,) = logs.named("rpc-unavailable")  # logged once, not at every retry
    assert down["endpoint"] == endpoint
    await server.stop()


async def test_rpc_lost_midway_then_back(
    testnet: LocalNet, node: Node, geth: FakeGeth, nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The relay goes down after the first round; a node that joins meanwhile reaches the RPC
    once the relay is back."""
    expected = set(onion_nodes(testnet).values())
    logs = Logs()
    path = tmp_path / "s.json"
    sidecar = make_sidecar(node, testnet, logs, static_nodes=path, rpc=str(geth.ipc_path),
                           interval=0.3)
    sidecar.load_static_nodes()
    async with trio.open_nursery() as inner, AsyncExitStack() as stack:
        inner.start_soon(sidecar.rpc_loop)
        inner.start_soon(sidecar.run_forever)
        await geth.wait_until(lambda: set(geth.added()) == expected, GUARD)
        await geth.stop(remove_socket=False)  # crashed: a stale socket file stays
        late_key, late_onion = key(91), OnionServiceKey.from_seed(bytes([91]) * 32)
        late = await stack.enter_async_context(open_node(
            late_key, listen=("127.0.0.1", 0), maintain=False, seq=1,
            enr_fields={"tcp": 30391, "onion3": late_onion.address},
        ))
        late_enode = str(enode_from_enr(late.local_enr))
        with trio.fail_after(GUARD):
            await late.bootstrap([testnet.bootnode])
        await wait_for(lambda: late_enode in sidecar.rpc_pending)
        await wait_for(lambda: bool(logs.named("rpc-unavailable")))
        assert late_enode in json.loads(path.read_text())
        await geth.start(nursery)
        await geth.wait_until(lambda: late_enode in geth.added(), GUARD)
        inner.cancel_scope.cancel()
    # Every round offers the enodes again (a restarted relay gets them back): compare sets.
    assert set(geth.added()) == expected | {late_enode}


async def test_rpc_connection_reset_is_retried_not_fatal(
    testnet: LocalNet, node: Node, geth: FakeGeth, tmp_path: Path
) -> None:
    """A relay that resets the connection mid-call (restarting, crashing) must not end the
    sidecar: it is "unavailable" and retried with backoff like a refused connection."""
    geth.fault = "reset"
    expected = set(onion_nodes(testnet).values())
    logs = Logs()
    sidecar = make_sidecar(node, testnet, logs, static_nodes=tmp_path / "s.json",
                           rpc=geth.http_url, interval=3600.0)
    sidecar.load_static_nodes()
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as inner:
            inner.start_soon(sidecar.rpc_loop)
            inner.start_soon(sidecar.run_forever)
            await wait_for(lambda: geth.connections > 0 and bool(logs.named("rpc-unavailable")))
            geth.fault = "none"
            await geth.wait_until(lambda: set(geth.added()) == expected, GUARD)
            inner.cancel_scope.cancel()


async def test_json_rpc_error_is_logged_with_enode_and_reason(
    testnet: LocalNet, node: Node, geth: FakeGeth, tmp_path: Path
) -> None:
    onions = onion_nodes(testnet)
    refused = sorted(onions.values())[0]
    geth.reject[refused] = "too many peers"
    logs = Logs()
    sidecar = make_sidecar(node, testnet, logs, static_nodes=tmp_path / "s.json",
                           rpc=geth.http_url, trusted=True, interval=0.3)
    sidecar.load_static_nodes()
    async with trio.open_nursery() as inner:
        inner.start_soon(sidecar.rpc_loop)
        inner.start_soon(sidecar.run_forever)
        await geth.wait_until(
            lambda: len(geth.added("admin_addTrustedPeer")) == len(onions) - 1, GUARD
        )
        await wait_for(lambda: len(logs.named("round")) >= 3)  # later rounds: no resend
        inner.cancel_scope.cancel()
    (failed,) = logs.named("rpc-add-peer-failed")
    assert failed == {"enode": refused, "reason": "too many peers"}
    assert ("ERROR", "rpc-add-peer-failed") in {(lvl, ev) for lvl, ev, _ in logs.events()}
    assert sidecar.rpc_failed == {refused: "too many peers"}
    assert len({c.params[0] for c in geth.calls_of("admin_addTrustedPeer")}) == len(onions)
    assert geth.calls_of("admin_addPeer") == []


def test_enr_helpers_agree_with_manifest() -> None:
    """The expected enodes the tests compare against come from the records themselves."""
    record = ENR.build(key(3), 1, ip="127.0.0.1", udp=30000, tcp=30303,
                       onion3=OnionServiceKey.from_seed(bytes([3]) * 32).address)
    enode = str(enode_from_enr(record))
    assert enode.startswith(f"enode://{key(3).public_key.uncompressed.hex()}@")
    assert enode.endswith(".onion:30303?discport=30000")
