"""A few smoke tests over real UDP sockets on 127.0.0.1.

Everything else runs on the fake network and the autojump clock; these check that the driver
works with real ``trio.socket`` sockets. They run on the real clock, so each is wrapped in a
generous ``trio.fail_after`` purely as a guard against hanging (a loopback round trip takes
well under a millisecond; nothing here waits for a timeout to expire).
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import trio

from discv5 import Node, NodeAddress, open_node
from enr import ENR

from .fakenet import make_key, seeded_rng

HANG_GUARD = 10.0
"""Seconds after which a loopback test is considered hung (not a timing assertion)."""


async def open_loopback(stack: AsyncExitStack, seed: int) -> Node:
    return await stack.enter_async_context(
        open_node(
            make_key(seed),
            listen=("127.0.0.1", 0),
            seq=1,
            rng=seeded_rng(seed + 10_000),
            maintain=False,
        )
    )


async def test_loopback_ping() -> None:
    with trio.fail_after(HANG_GUARD):
        async with AsyncExitStack() as stack:
            a = await open_loopback(stack, 1)
            b = await open_loopback(stack, 2)
            assert a.address[0] == "127.0.0.1"
            assert a.address[1] != 0
            assert (str(a.local_enr.ip), a.local_enr.udp) == a.address
            pong = await a.ping(b.local_enr)
            assert pong.enr_seq == 1
            assert (str(pong.recipient_ip), pong.recipient_port) == a.address
            pong = await b.ping(a.local_enr)
            assert (str(pong.recipient_ip), pong.recipient_port) == b.address
            assert await a.request_enr(b.local_enr) == b.local_enr


async def test_loopback_talk() -> None:
    async def upper(peer: NodeAddress, enr: ENR | None, payload: bytes) -> bytes:
        return payload.upper()

    with trio.fail_after(HANG_GUARD):
        async with AsyncExitStack() as stack:
            a = await open_loopback(stack, 1)
            b = await open_loopback(stack, 2)
            b.register_talk_handler(b"upper", upper)
            assert await a.talk(b.local_enr, b"upper", b"hello loopback") == b"HELLO LOOPBACK"
            assert await a.talk(b.local_enr, b"unknown", b"x") == b""


async def test_loopback_ten_node_lookup() -> None:
    with trio.fail_after(HANG_GUARD):
        async with AsyncExitStack() as stack:
            nodes = [await open_loopback(stack, 100 + i) for i in range(10)]
            boot = nodes[0]
            await boot.bootstrap()  # nobody to ask, but inbound contacts are admitted now
            for node in nodes[1:]:
                await node.bootstrap([boot.local_enr])
            # The bootnode relays only verified nodes: make sure each has answered a PING
            # (the driver also checks newcomers on its own, in the background).
            for node in nodes[1:]:
                await boot.ping(node.local_enr)
            assert sum(1 for e in boot.table.entries() if e.live) == 9
            last = nodes[-1]
            for other in nodes[:-1]:
                found = await last.lookup(other.node_id)
                assert found[0] == other.local_enr
            found = await nodes[1].lookup(last.node_id)
            assert found[0] == last.local_enr
            assert {r.node_id for r in await last.lookup(last.node_id)} <= {
                n.node_id for n in nodes[:-1]
            }
