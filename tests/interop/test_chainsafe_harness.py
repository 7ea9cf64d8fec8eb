"""The ChainSafe harness on its own: ChainSafe discv5 nodes talking to each other on 127.0.0.1.

These pin down what the interop tests rely on (the harness protocol, records with onion3,
TALK behaviour) and a few ChainSafe behaviours worth knowing when our nodes talk to theirs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from enr import ENR, PrivateKey, onion3_problem

from .chainsafe import ChainSafeHarness, ChainSafeNode, HarnessError

pytestmark = pytest.mark.node


def _xor(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def log2_distance(a: bytes, b: bytes) -> int:
    return _xor(a, b).bit_length()


async def test_start_two_nodes_records(chainsafe: ChainSafeHarness) -> None:
    a, b = await chainsafe.start(count=2, with_onion3=[1])
    assert [a.index, b.index] == [0, 1]
    for node in (a, b):
        record = node.record  # parsed and signature-checked by our own enr package
        assert record.node_id == node.node_id
        assert str(record.ip) == "127.0.0.1" == node.ip
        assert record.udp == node.udp_port
        assert record.verified
    assert a.onion3 is None
    assert a.tcp_port is None
    assert a.record.get("onion3") is None
    assert a.record.tcp is None
    assert b.onion3 is not None
    assert onion3_problem(b.onion3) is None
    assert b.record.get("onion3") == b.onion3.encode("ascii")
    assert b.record.onion3 == b.onion3
    assert b.record.tcp == b.tcp_port == b.udp_port  # default tcp: the udp port number
    assert await chainsafe.enr(b) == b.enr


async def test_onion3_options(chainsafe: ChainSafeHarness) -> None:
    nodes = await chainsafe.start(count=10, with_onion3=0.3, tcp_port=9050)
    onion = [n for n in nodes if n.onion3 is not None]
    assert len(onion) == 3
    assert len({n.onion3 for n in onion}) == 3  # a fresh ed25519 key each
    for n in onion:
        assert n.record.onion3 == n.onion3
        assert n.record.tcp == 9050
    assert all(n.record.tcp is None for n in nodes if n.onion3 is None)
    everyone = await chainsafe.start(count=2, with_onion3=True, tcp_port=[1, 2])
    assert [n.record.tcp for n in everyone] == [1, 2]


async def test_fixed_private_key(chainsafe: ChainSafeHarness) -> None:
    key = bytes.fromhex("eef77acb6c6a6eebc5b363a475ac583ec7eccdb42b6481424c60f59aa326547f")
    (node,) = await chainsafe.start(private_keys=[key])
    # node id of this key: the discv5 wire test vectors' "node-a"
    assert node.node_id.hex() == "aaaa8419e9f49d0083561b48287df592939a8d19947d8c0ef88f2a4856a69fbb"


async def test_ping(chainsafe: ChainSafeHarness) -> None:
    a, b = await chainsafe.start(count=2)
    pong = await chainsafe.ping(a, b.enr)
    assert pong.enr_seq == b.seq
    assert (pong.ip, pong.port) == ("127.0.0.1", a.udp_port)  # where b saw the PING come from
    # the handshake put each node in the other's table
    assert b.enr in await chainsafe.known_enrs(a)
    assert await _eventually(lambda: _in_table(chainsafe, b, a))


async def test_find_node_distance_zero_is_own_record(chainsafe: ChainSafeHarness) -> None:
    a, b = await chainsafe.start(count=2, with_onion3=[1])
    assert await chainsafe.find_node(a, b.enr, [0]) == [b.enr]
    # b now knows a (the handshake), at their log2 distance, and nothing else
    d = log2_distance(a.node_id, b.node_id)
    assert await chainsafe.find_node(a, b.enr, [d]) == [a.enr]
    assert sorted(await chainsafe.find_node(a, b.enr, [0, d])) == sorted([a.enr, b.enr])
    other = 256 if d != 256 else 255
    assert await chainsafe.find_node(a, b.enr, [other]) == []


async def test_onion3_survives_relaying_byte_exact(chainsafe: ChainSafeHarness) -> None:
    """An onion3 record passed on by a third node arrives with the same bytes."""
    a, relay, onion = await chainsafe.start(count=3, with_onion3=[2], tcp_port=[0, 0, 443])
    assert onion.onion3 is not None
    await chainsafe.ping(relay, onion.enr)  # relay now has onion in its table
    d = log2_distance(relay.node_id, onion.node_id)
    got = await chainsafe.find_node(a, relay.enr, [d])
    assert onion.enr in got
    assert set(got) <= {onion.enr, a.enr}  # a too, if it happens to be at distance d
    record = ENR.from_text(onion.enr)  # == the relayed text, so the relayed bytes
    assert record.to_rlp() == ENR.from_text(onion.enr).to_rlp()
    assert record.get("onion3") == onion.onion3.encode("ascii")
    assert record.onion3_problem is None
    assert record.tcp == 443


async def test_talk(chainsafe: ChainSafeHarness) -> None:
    a, b = await chainsafe.start(count=2)
    await chainsafe.register_talk(b, b"demo", b"\x01pong")
    assert await chainsafe.talk(a, b.enr, b"demo", b"ping\x00") == b"\x01pong"
    # an unregistered protocol gets an empty TALKRESP (the harness's default; see register_talk)
    assert await chainsafe.talk(a, b.enr, b"nobody-speaks-this", b"x") == b""
    log = await chainsafe.talk_requests(b)
    assert [(r.from_node_id, r.protocol, r.payload) for r in log] == [
        (a.node_id, b"demo", b"ping\x00"),
        (a.node_id, b"nobody-speaks-this", b"x"),
    ]


async def test_talk_silent_protocol_times_out(chainsafe: ChainSafeHarness) -> None:
    """``response=None`` reproduces bare ChainSafe, which never answers a TALKREQ itself."""
    a, b = await chainsafe.start(count=2, config={"requestTimeout": 300})
    await chainsafe.register_talk(b, b"quiet", None)
    with pytest.raises(HarnessError, match="Timeout"):
        await chainsafe.talk(a, b.enr, b"quiet", b"")
    assert [r.protocol for r in await chainsafe.talk_requests(b)] == [b"quiet"]


async def test_errors_are_replies(chainsafe: ChainSafeHarness) -> None:
    (a,) = await chainsafe.start()
    with pytest.raises(HarnessError, match="unknown cmd"):
        await chainsafe.request("no-such-command")
    with pytest.raises(HarnessError, match="no node with index 7"):
        await chainsafe.ping(7, a.enr)
    # the harness refuses to send anything off 127.0.0.1
    elsewhere = ENR.build(_key(), ip="192.0.2.1", udp=30303)
    with pytest.raises(HarnessError, match="refusing ENR"):
        await chainsafe.ping(a, elsewhere)
    with pytest.raises(HarnessError, match="refusing ENR"):
        await chainsafe.start(bootnodes=[elsewhere])
    # nobody answers there: the request fails, the harness lives on
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
        await sock.bind(("127.0.0.1", 0))
        silent = ENR.build(_key(), ip="127.0.0.1", udp=sock.getsockname()[1])
        with pytest.raises(HarnessError, match="RPC failure"):
            await chainsafe.find_node(a, silent, [256])
    assert await chainsafe.enr(a) == a.enr
    await chainsafe.stop_nodes([a])
    with pytest.raises(HarnessError, match="node 0 is stopped"):
        await chainsafe.enr(a)


async def test_port_below_256_quirk(chainsafe: ChainSafeHarness) -> None:
    """ChainSafe reads ports only as 2 bytes: a canonical RLP port below 256 is unreadable.

    EIP-778 ports are RLP integers (no leading zeros), so udp=200 is the single byte 0xc8;
    ChainSafe's ``enr.udp`` throws on it (its setters always write two bytes).
    """
    (a,) = await chainsafe.start()
    low = ENR.build(_key(), ip="127.0.0.1", udp=200)
    with pytest.raises(HarnessError, match="protocol length should be 2"):
        await chainsafe.ping(a, low)


async def test_twenty_nodes_lookups_find_each_other(chainsafe: ChainSafeHarness) -> None:
    (boot,) = await chainsafe.start()
    rest = await chainsafe.start(count=19, bootnodes=[boot.enr], with_onion3=0.25)
    nodes = [boot, *rest]
    everyone = {n.enr for n in nodes}
    sizes = await chainsafe.bootstrap()  # one self-lookup per node, one node at a time
    assert len(sizes) == 20
    assert sizes[0] == 19  # everyone handshaked with the bootnode
    assert min(sizes) >= 1

    # a lookup for a node's id, from the last node (which started knowing only the bootnode),
    # finds that node first (distance 0 to the target): every node is reachable by lookups.
    # (Retried: on a loaded machine a 1 s ChainSafe request timeout can drop a peer from one
    # lookup.) Random targets would not do: a node that only the bootnode knows is found only
    # when the target's distance to the bootnode is near its own.
    searcher = nodes[19]
    results: dict[int, list[str]] = {}

    async def look_for(target: ChainSafeNode) -> None:
        results[target.index] = await _lookup_until_first(chainsafe, searcher, target)

    async with trio.open_nursery() as nursery:
        for target in nodes[:19]:
            nursery.start_soon(look_for, target)
    for target in nodes[:19]:
        found = results[target.index]
        assert found[0] == target.enr
        assert set(found) <= everyone - {searcher.enr}
        assert len(found) <= 16
        distances = [_xor(ENR.from_text(e).node_id, target.node_id) for e in found]
        assert distances == sorted(distances)  # closest first
    onion = [n for n in nodes[:19] if n.onion3 is not None]
    assert onion
    for n in onion:  # the onion records came through the lookups intact
        assert ENR.from_text(results[n.index][0]).onion3 == n.onion3


async def test_seeded_network(chainsafe: ChainSafeHarness) -> None:
    nodes = await chainsafe.start(count=60)
    sizes = await chainsafe.seed_tables()
    assert min(sizes) >= 16  # full buckets at distance 256 at least
    assert await chainsafe.lookup(nodes[0], nodes[42].node_id, limit=1) == [nodes[42].enr]


@pytest.mark.slow
async def test_two_hundred_nodes_in_one_harness(chainsafe: ChainSafeHarness) -> None:
    nodes = await chainsafe.start(count=200, with_onion3=0.1)
    assert len({n.udp_port for n in nodes}) == 200
    assert sum(n.onion3 is not None for n in nodes) == 20
    sizes = await chainsafe.seed_tables()
    assert min(sizes) >= 48  # buckets 256, 255, 254 full at least
    got = await chainsafe.find_node(nodes[0], nodes[1].enr, [256])
    assert len(got) == 15  # see test_full_table_nodes_quirk
    for text in got:
        assert log2_distance(ENR.from_text(text).node_id, nodes[1].node_id) == 256


@pytest.mark.slow
async def test_full_table_nodes_quirk(chainsafe: ChainSafeHarness) -> None:
    """ChainSafe answers at most 16 records, 3 per NODES packet, and reads at most 5 packets.

    So ChainSafe asking ChainSafe for a full bucket gets 15 records, not 16.
    """
    (hub,) = await chainsafe.start()
    others = await chainsafe.start(count=80)
    for n in others:
        await chainsafe.add_enr(hub, n.enr)
    known = await chainsafe.known_enrs(hub)
    at_256 = [e for e in known if log2_distance(ENR.from_text(e).node_id, hub.node_id) == 256]
    assert len(at_256) == 16  # a full bucket (80 random ids: ~40 at distance 256)
    (asker,) = await chainsafe.start()
    got = await chainsafe.find_node(asker, hub.enr, [256])
    assert len(got) == 15
    assert set(got) <= set(at_256)


# ---------------------------------------------------------------------------------- helpers


def _key() -> PrivateKey:
    return PrivateKey.generate()


async def _lookup_until_first(
    harness: ChainSafeHarness, searcher: ChainSafeNode, target: ChainSafeNode, attempts: int = 5
) -> list[str]:
    """Look ``target`` up from ``searcher`` until it comes first; the last result either way."""
    found: list[str] = []
    for _ in range(attempts):
        found = await harness.lookup(searcher, target.node_id)
        if found and found[0] == target.enr:
            break
    return found


async def _in_table(harness: ChainSafeHarness, node: ChainSafeNode, of: ChainSafeNode) -> bool:
    return node.enr in await harness.known_enrs(of)


async def _eventually(
    check: Callable[[], Awaitable[bool]], *, attempts: int = 50, pause: float = 0.05
) -> bool:
    """Poll the async predicate ``check`` until it holds; at most ``attempts`` times."""
    for _ in range(attempts):
        if await check():
            return True
        await trio.sleep(pause)
    return False
