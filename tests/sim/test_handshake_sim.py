"""Two-peer and N-peer simulations of the sans-IO core on virtual time."""

from __future__ import annotations

import pytest

from discv5._config import Config
from discv5._events import (
    FailureReason,
    PacketDropped,
    RequestFailed,
    RequestReceived,
    ResponseReceived,
    SessionEstablished,
)
from discv5._messages import FindNode, Nodes, Ping, Pong, TalkRequest, TalkResponse
from discv5._packet import Flag, decode_packet_untrusted

from ._sim import Network


def test_ping_pong_completes_handshake_both_ways() -> None:
    net = Network(1)
    a, b = net.add_node(), net.add_node()
    rid = a.proto.send_request(b.enr, Ping(b"", a.enr.seq), net.now)
    net.run()
    outcome = a.outcomes[rid]
    assert isinstance(outcome, ResponseReceived)
    assert isinstance(outcome.message, Pong)
    assert outcome.message.recipient_port == a.address[1]
    assert str(outcome.message.recipient_ip) == a.address[0]
    # Each side saw the session come up once, in its own role.
    assert [e.inbound for e in a.events if isinstance(e, SessionEstablished)] == [False]
    assert [e.inbound for e in b.events if isinstance(e, SessionEstablished)] == [True]
    # B learned A's record from the handshake (it knew none, so A had to send it).
    inbound = next(e for e in b.events if isinstance(e, SessionEstablished))
    assert inbound.enr == a.enr
    # The reverse direction reuses the session: no new handshake.
    rid2 = b.proto.send_request(a.enr, Ping(b"", b.enr.seq), net.now)
    net.run()
    assert isinstance(b.outcomes[rid2], ResponseReceived)
    assert a.proto.counters["handshakes_inbound"] == 0
    assert b.proto.counters["handshakes_outbound"] == 0
    assert a.proto.pending_count == b.proto.pending_count == 0


def test_talk_and_findnode_distance_zero() -> None:
    net = Network(2)
    a, b = net.add_node(), net.add_node()
    talk = a.proto.send_request(b.enr, TalkRequest(b"", b"proto", b"hello"), net.now)
    find = a.proto.send_request(b.enr, FindNode(b"", (0,)), net.now)
    net.run()
    talk_out = a.outcomes[talk]
    assert isinstance(talk_out, ResponseReceived)
    assert talk_out.message == TalkResponse(talk, b"hello")
    find_out = a.outcomes[find]
    assert isinstance(find_out, ResponseReceived)
    assert isinstance(find_out.message, Nodes)
    assert find_out.message.records == (b.enr,)
    # The second request waited for the handshake and then went out under the session.
    assert a.proto.counters["handshakes_outbound"] == 1


def test_nodes_split_over_messages_and_filtered_by_distance() -> None:
    net = Network(3)
    a, b = net.add_node(), net.add_node()
    others = [net.add_node() for _ in range(40)]
    b.neighbours = [o.enr for o in others]
    from discv5._types import log_distance

    dists = sorted({log_distance(b.enr.node_id, o.enr.node_id) for o in others}, reverse=True)
    rid = a.proto.send_request(b.enr, FindNode(b"", tuple(dists[:3])), net.now)
    net.run()
    out = a.outcomes[rid]
    assert isinstance(out, ResponseReceived)
    assert isinstance(out.message, Nodes)
    # The responder collects distances in the order asked, up to 16 records.
    expected = [
        o.enr for d in dists[:3] for o in others if log_distance(b.enr.node_id, o.enr.node_id) == d
    ][:16]
    assert set(out.message.records) == set(expected)
    assert len(expected) == 16
    assert out.message.total >= 2  # 16 records do not fit one NODES message


def test_unanswered_request_times_out() -> None:
    net = Network(4)
    a, b = net.add_node(), net.add_node()
    net.intercept = lambda data, src, dst: dst != b.address  # everything to B is lost
    rid = a.proto.send_request(b.enr, Ping(b"", 1), net.now)
    net.run()
    out = a.outcomes[rid]
    assert isinstance(out, RequestFailed)
    assert out.reason is FailureReason.TIMEOUT
    assert net.now == pytest.approx(a.proto.config.request_timeout)
    assert a.proto.get_timer() is None


def test_whoareyou_is_resent_identically_while_pending() -> None:
    """devp2p HandshakeResend: a second undecryptable packet gets the same challenge."""
    net = Network(5)
    a, b = net.add_node(), net.add_node()
    whoareyous: list[bytes] = []

    def keep(data: bytes, src: tuple[str, int], dst: tuple[str, int]) -> bool:
        if src == b.address:
            whoareyous.append(data)
            return False  # A never sees the challenge
        return True

    net.intercept = keep
    a.proto.send_request(b.enr, Ping(b"", 1), net.now)
    net.run(until=0.05)
    assert len(whoareyous) == 1
    # A second undecryptable packet from the same endpoint, with another nonce.
    from discv5._packet import encode_random_packet

    again = encode_random_packet(
        dest_id=b.enr.node_id, src_id=a.enr.node_id, masking_iv=bytes(16),
        nonce=bytes(12), random_message=bytes(20),
    )
    b.proto.receive_datagram(again, a.address, net.now)
    resent = b.proto.datagrams_to_send()
    assert [d for d, _ in resent] == [whoareyous[0]]
    assert b.proto.counters["whoareyou_resent"] == 1
    packet = decode_packet_untrusted(resent[0][0], a.enr.node_id)
    assert packet.flag is Flag.WHOAREYOU


def test_session_is_bound_to_the_endpoint() -> None:
    """devp2p PingMultiIP: the same node id from another port must re-handshake."""
    net = Network(6)
    a, b = net.add_node(), net.add_node()
    rid = a.proto.send_request(b.enr, Ping(b"", 1), net.now)
    net.run()
    assert isinstance(a.outcomes[rid], ResponseReceived)
    # Copy A's session datagram but make it arrive from another port.
    moved: list[bytes] = []

    def reroute(data: bytes, src: tuple[str, int], dst: tuple[str, int]) -> bool:
        if src == a.address:
            moved.append(data)
            return False
        return True

    net.intercept = reroute
    a.proto.send_request(b.enr, Ping(b"", 1), net.now)
    net.flush_all()
    assert len(moved) == 1
    b.proto.receive_datagram(moved[0], ("127.0.0.2", a.address[1]), net.now)
    (reply,) = b.proto.datagrams_to_send()
    assert reply[1] == ("127.0.0.2", a.address[1])
    assert decode_packet_untrusted(reply[0], a.enr.node_id).flag is Flag.WHOAREYOU
    events = []
    while (event := b.proto.next_event()) is not None:
        events.append(event)
    assert not any(isinstance(e, RequestReceived) for e in events)


def test_session_eviction_leads_to_a_new_handshake() -> None:
    net = Network(7, config=Config(session_cache_size=2))
    a = net.add_node()
    peers = [net.add_node() for _ in range(3)]
    for p in peers:
        a.proto.send_request(p.enr, Ping(b"", 1), net.now)
    net.run()
    assert a.proto.session_count == 2
    assert a.proto.counters["sessions_evicted"] == 1
    rid = a.proto.send_request(peers[0].enr, Ping(b"", 1), net.now)
    net.run()
    assert isinstance(a.outcomes[rid], ResponseReceived)
    assert a.proto.counters["handshakes_outbound"] == 4


def test_expired_challenge_rejects_late_handshake() -> None:
    # WHOAREYOU + handshake take 1.2 s, more than the 1 s a challenge lives.
    net = Network(8, latency=(0.6, 0.6), config=Config(request_timeout=5.0))
    a, b = net.add_node(), net.add_node()
    rid = a.proto.send_request(b.enr, Ping(b"", 1), net.now)
    net.run()
    out = a.outcomes[rid]
    assert isinstance(out, RequestFailed)
    assert out.reason is FailureReason.TIMEOUT
    drops = [e for e in b.events if isinstance(e, PacketDropped)]
    assert [d.reason for d in drops] == ["unexpected-handshake"]


def test_crossing_handshakes_all_succeed() -> None:
    """Every node pings every other at the same instant: handshakes cross in flight, and
    each side ends up sending with the keys of a different handshake (old keys cover it)."""
    net = Network(9, latency=(0.001, 0.05))
    nodes = [net.add_node() for _ in range(6)]
    requests = [
        (i, n.proto.send_request(m.enr, Ping(b"", 1), net.now))
        for i, n in enumerate(nodes)
        for j, m in enumerate(nodes)
        if i != j
    ]
    net.run()
    assert all(isinstance(nodes[i].outcomes[r], ResponseReceived) for i, r in requests)
    assert not [e for n in nodes for e in n.events if isinstance(e, PacketDropped)]


@pytest.mark.parametrize("seed", range(12))
def test_terrible_network_never_hangs(seed: int) -> None:
    net = Network(seed, loss=0.15, duplicate=0.15, latency=(0.001, 0.05))
    nodes = [net.add_node() for _ in range(6)]
    requests: list[tuple[int, bytes]] = []
    for i, n in enumerate(nodes):
        for j, m in enumerate(nodes):
            if i != j:
                msg = Ping(b"", 1) if (i + j) % 2 else TalkRequest(b"", b"p", bytes([i, j]))
                requests.append((i, n.proto.send_request(m.enr, msg, net.now)))
    net.run()
    for i, rid in requests:
        outcome = nodes[i].outcomes.get(rid)
        assert isinstance(outcome, (ResponseReceived, RequestFailed)), "request left hanging"
    assert all(n.proto.pending_count == 0 for n in nodes)
    assert all(n.proto.get_timer() is None for n in nodes)
    # A first contact needs four datagrams to survive 15 % loss each (about 52 %).
    succeeded = sum(isinstance(nodes[i].outcomes[r], ResponseReceived) for i, r in requests)
    assert succeeded >= len(requests) // 3
