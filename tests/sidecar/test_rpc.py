"""AdminRPC against the fake geth admin API, over HTTP and over the IPC UNIX socket.

Real sockets on 127.0.0.1 and under tmp_path, on trio's real clock; every wait is bounded by a
``trio.fail_after`` guard or by the client's own (short) timeout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
import trio

from discv5.sidecar import AdminRPC, RPCError, RPCUnavailable
from enr import ENR, OnionServiceKey, PrivateKey

from .rpcserver import FakeGeth

Transport = Literal["http", "ipc"]
TRANSPORTS: tuple[Transport, ...] = ("http", "ipc")
GUARD = 10.0
"""Seconds after which a test is considered hung (a guard, never a timing assertion)."""


def onion_enode(seed: int, tcp: int = 30303) -> str:
    """A valid enode with an onion3 host, from fixed keys."""
    key = PrivateKey(seed.to_bytes(32, "big"))
    onion = OnionServiceKey.from_seed(bytes([seed]) * 32)
    return f"enode://{key.public_key.uncompressed.hex()}@{onion.address}:{tcp}"


RANDOM_ID = "enode://" + "ab" * 64 + "@203.0.113.9:30303"
"""A made-up 64-byte "node id": not a point on secp256k1, which geth rejects."""


def endpoint(server: FakeGeth, transport: Transport) -> str:
    return server.http_url if transport == "http" else str(server.ipc_path)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_add_peer_and_read_back(geth: FakeGeth, transport: Transport) -> None:
    rpc = AdminRPC(endpoint(geth, transport))
    first, second = onion_enode(1), onion_enode(2, tcp=30400)
    with trio.fail_after(GUARD):
        assert await rpc.add_peer(first) is True
        assert await rpc.add_peer(second, trusted=True) is True
        peers = await rpc.peers()
        info = await rpc.node_info()
    assert [(c.transport, c.method, c.params) for c in geth.calls] == [
        (transport, "admin_addPeer", [first]),
        (transport, "admin_addTrustedPeer", [second]),
        (transport, "admin_peers", []),
        (transport, "admin_nodeInfo", []),
    ]
    assert [p["enode"] for p in peers] == [first, second]
    assert [p["network"]["trusted"] for p in peers] == [False, True]
    assert peers[1]["network"]["remoteAddress"].endswith(".onion:30400")
    assert info["enode"] == geth.enode
    assert info["id"] == geth.key.public_key.node_id.hex()
    assert ENR.from_text(info["enr"]).node_id.hex() == info["id"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_invalid_enode_is_a_json_rpc_error(geth: FakeGeth, transport: Transport) -> None:
    rpc = AdminRPC(endpoint(geth, transport))
    with trio.fail_after(GUARD), pytest.raises(RPCError) as info:
        await rpc.add_peer(RANDOM_ID)
    assert info.value.code == -32000
    assert info.value.message.startswith("invalid enode: invalid public key")
    assert "-32000" in str(info.value)
    assert geth.calls[-1].error is not None
    assert geth.added() == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_other_errors(geth: FakeGeth, transport: Transport) -> None:
    rpc = AdminRPC(endpoint(geth, transport))
    valid = onion_enode(3)
    geth.reject[valid] = "too many peers"
    with trio.fail_after(GUARD):
        with pytest.raises(RPCError) as info:
            await rpc.add_peer(valid, trusted=True)
        assert (info.value.code, info.value.message) == (-32000, "too many peers")
        with pytest.raises(RPCError) as info:
            await rpc.call("admin_noSuchThing", [])
        assert info.value.code == -32601
        with pytest.raises(RPCError) as info:
            await rpc.call("admin_addPeer", [])
        assert info.value.code == -32602
        # The connection is still usable after errors.
        assert await rpc.peers() == []


async def test_chunked_http_answer(geth: FakeGeth) -> None:
    geth.chunked = True
    rpc = AdminRPC(geth.http_url)
    enodes = [onion_enode(i) for i in range(1, 9)]
    with trio.fail_after(GUARD):
        for enode in enodes:
            assert await rpc.add_peer(enode) is True
        peers = await rpc.peers()  # a few KiB in 7-byte chunks
        with pytest.raises(RPCError, match="invalid enode"):
            await rpc.add_peer(RANDOM_ID)
    assert [p["enode"] for p in peers] == enodes


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_answer_in_small_pieces(geth: FakeGeth, transport: Transport) -> None:
    geth.fault = "drip"
    rpc = AdminRPC(endpoint(geth, transport))
    with trio.fail_after(GUARD):
        assert await rpc.add_peer(onion_enode(4)) is True
        info = await rpc.node_info()
    assert info["enode"] == geth.enode


async def test_http_path_and_default_port_parsing(geth: FakeGeth) -> None:
    rpc = AdminRPC(f"http://127.0.0.1:{geth.http_port}/rpc/admin")
    with trio.fail_after(GUARD):
        assert await rpc.add_peer(onion_enode(5)) is True
    assert AdminRPC("http://localhost")._http == ("localhost", 80, "/")


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1:8545", "ws://127.0.0.1:8546", "http://:8545", "ftp://x"]
)
def test_unsupported_endpoint(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported RPC endpoint"):
        AdminRPC(url)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_down(
    nursery: trio.Nursery, ipc_path: Path, transport: Transport
) -> None:
    server = FakeGeth(ipc_path)
    await server.start(nursery)
    url = endpoint(server, transport)
    await server.stop()
    rpc = AdminRPC(url, timeout=5.0)
    with trio.fail_after(GUARD), pytest.raises(RPCUnavailable) as info:
        await rpc.add_peer(onion_enode(6))
    assert url.rstrip("/") in str(info.value)
    # Back on the same address: the same client works again.
    await server.start(nursery)
    assert endpoint(server, transport) == url
    with trio.fail_after(GUARD):
        assert await rpc.add_peer(onion_enode(6)) is True
    await server.stop()


async def test_stale_ipc_socket_is_unavailable(nursery: trio.Nursery, ipc_path: Path) -> None:
    """A relay that crashed leaves its socket file behind: connecting is refused."""
    server = FakeGeth(ipc_path)
    await server.start(nursery)
    await server.stop(remove_socket=False)
    assert await trio.Path(ipc_path).is_socket()
    with trio.fail_after(GUARD), pytest.raises(RPCUnavailable):
        await AdminRPC(str(ipc_path)).peers()


async def test_not_a_socket_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "geth.ipc"
    path.write_text("not a socket")
    with trio.fail_after(GUARD), pytest.raises(RPCUnavailable):
        await AdminRPC(str(path)).peers()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_answer_times_out(geth: FakeGeth, transport: Transport) -> None:
    geth.fault = "hang"
    rpc = AdminRPC(endpoint(geth, transport), timeout=0.3)
    with trio.fail_after(GUARD), pytest.raises(RPCUnavailable, match=r"no answer within 0\.3s"):
        await rpc.peers()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_garbage_answer(geth: FakeGeth, transport: Transport) -> None:
    geth.fault = "garbage"
    rpc = AdminRPC(endpoint(geth, transport), timeout=5.0)
    with trio.fail_after(GUARD), pytest.raises(RPCUnavailable):
        await rpc.peers()


async def test_http_error_status(geth: FakeGeth) -> None:
    geth.fault = "http-500"
    with trio.fail_after(GUARD), pytest.raises(RPCUnavailable, match="HTTP 500"):
        await AdminRPC(geth.http_url).peers()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connection_reset_is_unavailable(geth: FakeGeth, transport: Transport) -> None:
    """A relay that dies mid-call resets the connection: that is "unavailable" (retried by
    the sidecar), not an unexpected exception that ends the sidecar."""
    geth.fault = "reset"
    rpc = AdminRPC(endpoint(geth, transport), timeout=5.0)
    with trio.fail_after(GUARD), pytest.raises(RPCUnavailable):
        await rpc.add_peer(onion_enode(7))
