"""Review findings: each test asserts the correct behaviour and currently fails."""

from __future__ import annotations

import ipaddress

import trio

from discv5._config import Config
from discv5._events import RequestFailed
from discv5._messages import Ping, Pong
from discv5._node import Node
from enr import ENR

from .test_protocol import key_for, make_peer, seeded_rng


def test_expired_queued_requests_are_not_transmitted_at_timeout() -> None:
    """Requests queued behind a first-contact handshake share its deadline. When the
    timer fires, each one is released (sent as a fresh random packet, provoking a WHOAREYOU)
    and then failed in the same handle_timer call: datagrams go out for requests that are
    already dead."""
    a, b = make_peer(1), make_peer(2)
    for _ in range(4):
        a.proto.send_request(b.enr, Ping(b"", 1), 0.0)
    assert len(a.out()) == 1  # one random packet; three requests queued
    a.proto.handle_timer(0.7)
    failed = [e for e in a.events() if isinstance(e, RequestFailed)]
    assert len(failed) == 4
    assert a.out() == []  # nothing should be sent on behalf of requests that timed out


class _FakeSock:
    async def sendto(self, data: bytes, address: object, /) -> int:
        return len(data)

    async def recvfrom(self, bufsize: int, /) -> tuple[bytes, object]:
        await trio.sleep_forever()
        raise AssertionError

    def getsockname(self) -> tuple[str, int]:
        return ("::1", 30303)

    def close(self) -> None:
        pass


async def test_ipv6_pong_votes_update_the_record_once() -> None:
    """An IPv6 node (record has ip6/udp6, no ip/udp): once PONG votes reach the quorum,
    _on_pong compares the winner against (local_enr.ip, local_enr.udp) == (None, None),
    so every later PONG re-signs the record and bumps seq again."""
    key = key_for(500)
    record = ENR.build(key, 1, ip6="2001:db8::5", udp6=30303)
    node = Node(key, record, _FakeSock(), Config(), seeded_rng(501), pinned=False)
    seen = ipaddress.IPv6Address("2001:db8::9")
    seqs = []
    for i in range(20):
        peer = ENR.build(key_for(600 + i), 1, ip="127.0.0.1", udp=31000 + i)
        node._on_pong(peer, Pong(b"\x01", 1, seen, 40404))
        seqs.append(node.local_enr.seq)
    assert node.local_enr.ip6 == seen
    assert node.local_enr.udp6 == 40404
    # One update when the quorum (10 votes) is reached, none afterwards.
    assert len(set(seqs)) == 2, seqs
