"""discv5._responder: relay rules, FINDNODE record selection, NODES packing, PONG.

References: discv5-wire "FINDNODE Request" / "NODES Response" (spec_digest.md section 7),
go-ethereum ``netutil.CheckRelayIP`` (special networks never relayed; loopback only to loopback
requesters; LAN only to LAN or loopback requesters) and ``collectTableNodes`` / ``packNodes``
(duplicate and > 256 distances skipped, distances in order, 16 results, <= 1000 record bytes per
NODES message), security_bar.md T8 (every datagram <= 1280 bytes, empty answer = one NODES with
total 1, total within 1..6).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

import pytest

from discv5._config import Config
from discv5._events import RequestReceived, ResponseReceived
from discv5._messages import FindNode, Nodes, Ping, Pong
from discv5._responder import is_relayable, nodes_responses, pong_for, select_records
from discv5._types import log_distance
from enr import ENR, ENRTooLargeError

from .test_protocol import (
    deliver,
    establish,
    key_for,
    make_peer,
    of_type,
    record_pool,
)


def record(ip: str | None = None, *, ip6: str | None = None, udp: int | None = 30303) -> ENR:
    fields: dict[str, object] = {}
    if ip is not None:
        fields["ip"] = ip
        fields["udp"] = udp
    if ip6 is not None:
        fields["ip6"] = ip6
        fields["udp6"] = udp
    return ENR.build(key_for(31337), 1, **fields)


@functools.cache
def big_record(i: int) -> ENR:
    """A record of 296..300 bytes (the ENR size limit is 300)."""
    key = key_for(20_000 + i)
    for pad in range(170, 0, -1):
        try:
            rec = ENR.build(key, 1, ip="127.0.0.1", udp=50_000 + i, extra={b"z": bytes(pad)})
        except ENRTooLargeError:
            continue
        assert len(rec) >= 296
        return rec
    raise AssertionError("unreachable")


# --- is_relayable -------------------------------------------------------------------------------

LOOPBACK, LAN, INTERNET = "127.0.0.5", "192.168.7.7", "93.184.216.34"


@pytest.mark.parametrize(
    ("record_ip", "requester", "expected"),
    [
        # loopback records only to loopback requesters
        ("127.0.0.1", LOOPBACK, True),
        ("127.0.0.1", LAN, False),
        ("127.0.0.1", INTERNET, False),
        # LAN records to LAN and loopback requesters
        ("192.168.1.5", LOOPBACK, True),
        ("192.168.1.5", "10.1.2.3", True),
        ("10.0.0.8", LAN, True),
        ("172.16.4.4", LAN, True),
        ("172.31.255.1", INTERNET, False),
        ("192.168.1.5", INTERNET, False),
        ("10.0.0.8", INTERNET, False),
        # Internet records to everyone
        ("8.8.8.8", LOOPBACK, True),
        ("8.8.8.8", LAN, True),
        ("8.8.8.8", INTERNET, True),
        ("172.32.0.1", INTERNET, True),  # just outside 172.16/12
        # never
        ("0.0.0.0", LOOPBACK, False),
        ("0.0.0.0", INTERNET, False),
        ("224.0.0.1", LOOPBACK, False),
        ("255.255.255.255", LAN, False),
        ("240.0.0.1", INTERNET, False),
    ],
)
def test_is_relayable_ipv4(record_ip: str, requester: str, expected: bool) -> None:
    assert is_relayable(record(record_ip), requester) is expected


@pytest.mark.parametrize(
    ("record_ip6", "requester", "expected"),
    [
        ("::1", "::1", True),
        ("::1", LOOPBACK, True),
        ("::1", "2a00:1450:4001::1", False),
        ("fe80::1", "::1", True),
        ("fd00::5", "fd12::1", True),
        ("fd00::5", "2a00:1450:4001::1", False),
        ("fe80::1", INTERNET, False),
        ("2a00:1450:4001::1", "::1", True),
        ("2a00:1450:4001::1", "2a00:1450:4001::2", True),
        ("::", "::1", False),
        ("ff02::1", "::1", False),
    ],
)
def test_is_relayable_ipv6(record_ip6: str, requester: str, expected: bool) -> None:
    assert is_relayable(record(ip6=record_ip6), requester) is expected


@pytest.mark.parametrize(
    "special",
    [
        "192.0.2.1",  # TEST-NET-1
        "198.51.100.7",  # TEST-NET-2
        "203.0.113.9",  # TEST-NET-3
        "198.18.0.1",  # benchmarking
        "192.88.99.1",  # 6to4 relay anycast
        "192.0.0.1",  # IPv4 service continuity
        "0.1.2.3",  # "this network" (go-ethereum counts 0.0.0.0/8 as LAN)
    ],
)
def test_special_purpose_ipv4_records_are_not_relayed_to_internet_requesters(
    special: str,
) -> None:
    """go-ethereum CheckRelayIP: special-purpose networks are never valid relay targets
    (errSpecial), and 0.0.0.0/8 is LAN (errLAN from a WAN host). The module promises
    "go-ethereum netutil rules"."""
    assert not is_relayable(record(special), INTERNET)


@pytest.mark.parametrize("special", ["2001:db8::1", "2002::1", "100::1", "2001::1"])
def test_special_purpose_ipv6_records_are_not_relayed(special: str) -> None:
    assert not is_relayable(record(ip6=special), "2a00:1450:4001::1")


def test_is_relayable_needs_ip_and_udp() -> None:
    assert not is_relayable(ENR.build(key_for(5), 1), LOOPBACK)
    assert not is_relayable(ENR.build(key_for(5), 1, ip="8.8.8.8"), LOOPBACK)
    assert not is_relayable(ENR.build(key_for(5), 1, ip="8.8.8.8", udp=0), LOOPBACK)
    assert is_relayable(ENR.build(key_for(5), 1, ip="8.8.8.8", udp=1), LOOPBACK)


@pytest.mark.parametrize("requester", ["", "not-an-ip", "256.1.1.1", "127.0.0.1:30303"])
def test_is_relayable_with_an_unparsable_requester(requester: str) -> None:
    assert not is_relayable(record("8.8.8.8"), requester)


# --- select_records -----------------------------------------------------------------------------


class Table:
    """A fake "records at distance" source that remembers which distances were asked."""

    def __init__(self, by_distance: dict[int, Sequence[ENR]]) -> None:
        self.by_distance = by_distance
        self.asked: list[int] = []

    def __call__(self, dist: int) -> Sequence[ENR]:
        self.asked.append(dist)
        return self.by_distance.get(dist, ())


LOCAL = ENR.build(key_for(1), 3, ip="127.0.0.1", udp=30001)
POOL = record_pool()  # 40 loopback records


def test_distance_zero_is_our_own_record() -> None:
    table = Table({})
    assert select_records(FindNode(b"", (0,)), LOCAL, table, LOOPBACK, 16) == [LOCAL]
    assert table.asked == []
    # Even for an Internet requester, and when the record is loopback.
    assert select_records(FindNode(b"", (0,)), LOCAL, table, INTERNET, 16) == [LOCAL]


def test_duplicate_and_out_of_range_distances_are_ignored() -> None:
    table = Table({256: POOL[:2], 255: POOL[2:3]})
    request = FindNode(b"", (256, 0, 256, 257, 1000, 2**64 - 1, 0, 255, 255))
    got = select_records(request, LOCAL, table, LOOPBACK, 16)
    assert got == [POOL[0], POOL[1], LOCAL, POOL[2]]
    assert table.asked == [256, 255]


def test_empty_and_useless_requests_give_nothing() -> None:
    table = Table({256: POOL[:2]})
    assert select_records(FindNode(b"", ()), LOCAL, table, LOOPBACK, 16) == []
    assert select_records(FindNode(b"", (257, 4234098)), LOCAL, table, LOOPBACK, 16) == []
    assert select_records(FindNode(b"", (17,)), LOCAL, table, LOOPBACK, 16) == []
    assert table.asked == [17]


def test_distances_are_served_in_the_order_asked() -> None:
    table = Table({254: POOL[10:12], 255: POOL[5:8], 256: POOL[:2]})
    got = select_records(FindNode(b"", (255, 256, 254)), LOCAL, table, LOOPBACK, 16)
    assert got == [*POOL[5:8], *POOL[:2], *POOL[10:12]]
    assert table.asked == [255, 256, 254]


def test_results_are_capped_and_later_distances_not_asked() -> None:
    table = Table({256: POOL[:20], 255: POOL[20:30], 254: POOL[30:]})
    got = select_records(FindNode(b"", (256, 255)), LOCAL, table, LOOPBACK, 16)
    assert got == list(POOL[:16])
    assert table.asked == [256]
    table = Table({256: POOL[:10], 255: POOL[10:20], 254: POOL[20:]})
    got = select_records(FindNode(b"", (256, 255, 254)), LOCAL, table, LOOPBACK, 16)
    assert got == list(POOL[:16])
    assert table.asked == [256, 255]
    assert select_records(FindNode(b"", (0, 256)), LOCAL, table, LOOPBACK, 3) == [
        LOCAL, *POOL[:2]
    ]


def test_all_256_distances_still_give_at_most_16() -> None:
    """security_bar T8: FINDNODE with every distance listed."""
    table = Table({d: POOL[(d % 20) : (d % 20) + 2] for d in range(1, 257)})
    got = select_records(FindNode(b"", tuple(range(257))), LOCAL, table, LOOPBACK, 16)
    assert len(got) == 16
    assert got[0] == LOCAL
    assert len(table.asked) <= 16


def test_records_the_requester_cannot_use_are_skipped() -> None:
    lan = [ENR.build(key_for(700 + i), 1, ip=f"192.168.0.{i + 1}", udp=30303) for i in range(3)]
    public = [ENR.build(key_for(800 + i), 1, ip=f"8.8.4.{i + 1}", udp=30303) for i in range(2)]
    loop = list(POOL[:2])
    no_endpoint = [ENR.build(key_for(900), 1)]
    table = Table({256: [*lan, *public, *loop, *no_endpoint]})
    request = FindNode(b"", (256,))
    assert select_records(request, LOCAL, table, INTERNET, 16) == public
    assert select_records(request, LOCAL, table, "10.0.0.1", 16) == [*lan, *public]
    assert select_records(request, LOCAL, table, LOOPBACK, 16) == [*lan, *public, *loop]
    # Skipped records do not count towards the limit.
    assert select_records(request, LOCAL, table, INTERNET, 1) == public[:1]


# --- nodes_responses ----------------------------------------------------------------------------


def test_empty_result_is_one_nodes_with_total_one() -> None:
    assert nodes_responses(b"\x01", [], Config()) == [Nodes(b"\x01", 1, ())]


def test_small_results_fit_one_message() -> None:
    got = nodes_responses(b"id", POOL[:7], Config())
    assert got == [Nodes(b"id", 1, tuple(POOL[:7]))]
    assert sum(len(r) for r in POOL[:7]) <= Config().nodes_message_payload


def test_sixteen_large_records_are_split_with_a_common_total() -> None:
    records = [big_record(i) for i in range(16)]
    config = Config()
    messages = nodes_responses(b"\x00" * 8, records, config)
    assert len(messages) == 6  # 3 records of ~300 bytes per message
    assert {m.total for m in messages} == {6}
    assert 1 <= messages[0].total <= 6  # devp2p test suite bound
    assert [r for m in messages for r in m.records] == records
    assert all(m.request_id == b"\x00" * 8 for m in messages)
    assert all(sum(len(r) for r in m.records) <= config.nodes_message_payload for m in messages)


def test_a_record_larger_than_the_payload_goes_alone() -> None:
    config = Config(nodes_message_payload=100)
    messages = nodes_responses(b"", POOL[:3], config)
    assert [m.records for m in messages] == [(POOL[0],), (POOL[1],), (POOL[2],)]
    assert {m.total for m in messages} == {3}


def test_payload_limit_packs_greedily() -> None:
    size = len(POOL[0])
    assert all(len(r) == size for r in POOL[:10])
    config = Config(nodes_message_payload=3 * size)
    messages = nodes_responses(b"", POOL[:10], config)
    assert [len(m.records) for m in messages] == [3, 3, 3, 1]


# --- the packets on the wire --------------------------------------------------------------------


@pytest.mark.parametrize("request_id", [b"", b"\x01", b"\xff" * 8])
def test_every_nodes_packet_fits_1280_bytes(request_id: bytes) -> None:
    """16 records of ~300 bytes encoded through Protocol.send_response."""
    a, b = make_peer(1), make_peer(2)
    establish(a, b)
    records = [big_record(i) for i in range(16)]
    assert all(len(r) >= 296 for r in records)
    for message in nodes_responses(request_id, records, b.proto.config):
        b.proto.send_response(a.at(), message)
    out = b.out()
    assert len(out) == 6
    assert all(to == a.address for _, to in out)
    sizes = [len(d) for d, _ in out]
    assert max(sizes) <= 1280, sizes


def test_sixteen_records_reach_the_requester_intact() -> None:
    """End to end: a FINDNODE answered with 16 records of ~250 bytes (4 messages)."""
    a, b = make_peer(1), make_peer(2)
    establish(a, b)
    records = []
    for i in range(16):
        key = key_for(30_000 + i)
        padding = {b"z": bytes(110)}
        records.append(ENR.build(key, 1, ip="127.0.0.1", udp=40_000 + i, extra=padding))
    assert all(240 <= len(r) <= 260 for r in records)
    dists = (256, 255, 254, 253, 252, 251)
    wanted = [r for r in records if log_distance(b.id, r.node_id) in dists]
    assert len(wanted) >= 12
    rid = a.proto.send_request(b.enr, FindNode(b"", dists), 1.0)
    deliver(a, b, 1.0)
    [received] = of_type(b.events(), RequestReceived)
    assert received.message == FindNode(rid, dists)
    messages = nodes_responses(rid, wanted, b.proto.config)
    assert len(messages) <= a.proto.config.max_nodes_messages
    for message in messages:
        b.proto.send_response(a.at(), message)
    assert all(len(d) <= 1280 for d in deliver(b, a, 1.1))
    [response] = of_type(a.events(), ResponseReceived)
    assert isinstance(response.message, Nodes)
    assert list(response.message.records) == wanted
    assert response.message.invalid_records == 0


# --- pong_for -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("ip", "port"), [("127.0.0.1", 30303), ("::1", 9000), ("10.2.3.4", 0)])
def test_pong_reports_the_envelope_address(ip: str, port: int) -> None:
    pong = pong_for(Ping(b"\x07", 1), LOCAL, ip, port)
    assert pong == Pong(b"\x07", LOCAL.seq, ipaddress.ip_address(ip), port)
