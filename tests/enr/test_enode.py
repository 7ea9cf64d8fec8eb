"""enode URLs: parsing (IPv4, [IPv6], DNS, onion3 hosts), formatting, and enode_from_enr."""

from __future__ import annotations

import ipaddress

import pytest

from enr import ENR, Enode, EnodeError, PublicKey, enode_from_enr, parse_enode

from ._helpers import KEY_A, make_record, off_curve_uncompressed, onion3_label, uint

PUB = KEY_A.public_key.uncompressed.hex()
ONION = onion3_label(bytes(range(32)), None, 3)


def test_ipv4() -> None:
    enode = parse_enode(f"enode://{PUB}@10.3.58.6:30303?discport=30301")
    assert enode.public_key == KEY_A.public_key
    assert enode.node_id == KEY_A.public_key.node_id
    assert enode.host == "10.3.58.6"
    assert enode.host_kind == "ipv4"
    assert enode.ip == ipaddress.IPv4Address("10.3.58.6")
    assert enode.onion3 is None
    assert (enode.tcp, enode.udp) == (30303, 30301)
    assert str(enode) == f"enode://{PUB}@10.3.58.6:30303?discport=30301"
    assert enode.problems() == []


def test_ipv6() -> None:
    enode = parse_enode(f"enode://{PUB}@[2001:DB8::0001]:30303")
    assert enode.host == "2001:db8::1"
    assert enode.host_kind == "ipv6"
    assert enode.ip == ipaddress.IPv6Address("2001:db8::1")
    assert (enode.tcp, enode.udp) == (30303, 30303)
    assert str(enode) == f"enode://{PUB}@[2001:db8::1]:30303"
    assert parse_enode(str(enode)) == enode


def test_dns_name() -> None:
    enode = parse_enode(f"enode://{PUB}@boot-1.example.org:30303?discport=30304")
    assert enode.host == "boot-1.example.org"
    assert enode.host_kind == "dns"
    assert enode.ip is None
    assert enode.onion3 is None
    assert str(enode) == f"enode://{PUB}@boot-1.example.org:30303?discport=30304"


def test_onion3_host() -> None:
    url = f"enode://{PUB}@{ONION}:30303"
    enode = parse_enode(url)
    assert enode.host == ONION
    assert enode.host_kind == "onion3"
    assert enode.onion3 == ONION
    assert enode.ip is None
    assert str(enode) == url
    assert str(parse_enode(f"enode://{PUB}@{ONION}:1?discport=2")) == (
        f"enode://{PUB}@{ONION}:1?discport=2"
    )


def test_incomplete_and_uppercase_key() -> None:
    enode = parse_enode(f"enode://{PUB.upper()}")
    assert enode.host is None
    assert enode.host_kind is None
    assert enode.ip is None
    assert (enode.tcp, enode.udp) == (None, None)
    assert str(enode) == f"enode://{PUB}"
    assert enode.problems() == ["no host: an incomplete enode cannot be dialled"]


def test_surrounding_whitespace_and_discport_equal_to_port() -> None:
    enode = parse_enode(f"  enode://{PUB}@1.2.3.4:5?discport=5\n")
    assert (enode.tcp, enode.udp) == (5, 5)
    assert str(enode) == f"enode://{PUB}@1.2.3.4:5"


def test_port_zero_is_parsed_but_not_dialable() -> None:
    enode = parse_enode(f"enode://{PUB}@1.2.3.4:0?discport=0")
    assert enode.problems() == ["tcp port is 0", "discport is 0"]


def test_random_hex_is_not_a_public_key() -> None:
    """64 random-looking bytes are (almost surely) not a curve point; the message says so."""
    for raw in (off_curve_uncompressed(), bytes(range(64)), b"\x11" * 64):
        with pytest.raises(EnodeError, match="not a point on the secp256k1 curve"):
            parse_enode(f"enode://{raw.hex()}@127.0.0.1:30303")
        with pytest.raises(EnodeError, match="not a point on the secp256k1 curve"):
            parse_enode(f"enode://{raw.hex()}")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        pytest.param(f"enode://{PUB[:-2]}@1.2.3.4:3", "126 characters", id="short-key"),
        pytest.param(f"enode://{PUB}00@1.2.3.4:3", "130 characters", id="long-key"),
        pytest.param(f"enode://{PUB[:-1]}g@1.2.3.4:3", "not hex", id="non-hex-key"),
        pytest.param(f"enode://0x{PUB[2:]}@1.2.3.4:3", "not hex", id="0x-key"),
        pytest.param("enode://@1.2.3.4:3", "want 128 hex", id="no-key"),
        pytest.param(f"enr://{PUB}@1.2.3.4:3", "invalid URL scheme", id="scheme"),
        pytest.param(f"ENODE://{PUB}@1.2.3.4:3", "invalid URL scheme", id="scheme-case"),
        pytest.param(f"enode://{PUB}@1.2.3.4:65536", "invalid port '65536'", id="port-big"),
        pytest.param(f"enode://{PUB}@1.2.3.4:-1", "invalid port", id="port-negative"),
        pytest.param(f"enode://{PUB}@1.2.3.4:", "invalid port ''", id="port-empty"),
        pytest.param(f"enode://{PUB}@1.2.3.4:123456", "invalid port", id="port-6-digits"),
        pytest.param(f"enode://{PUB}@1.2.3.4:30303x", "invalid port", id="port-garbage"),
        pytest.param(f"enode://{PUB}@1.2.3.4", "invalid port: missing", id="port-missing"),
        pytest.param(f"enode://{PUB}@:30303", "missing host", id="host-missing"),
        pytest.param(
            f"enode://{PUB}@1.2.3.4:1?discport=65536", "invalid discport", id="discport-big"
        ),
        pytest.param(f"enode://{PUB}@1.2.3.4:1?discport=", "invalid discport", id="discport-empty"),
        pytest.param(f"enode://{PUB}@1.2.3.4:1?discport=x1", "invalid discport", id="discport-x"),
        pytest.param(f"enode://{PUB}@1.2.3.4:1?discport=-5", "invalid discport", id="discport-neg"),
        pytest.param(f"enode://{PUB}@::1:30303", "must be written in brackets", id="bare-ipv6"),
        pytest.param(f"enode://{PUB}@[::1:30303", "unterminated", id="open-bracket"),
        pytest.param(f"enode://{PUB}@[1.2.3.4]:30303", "invalid IPv6", id="ipv4-in-brackets"),
        pytest.param(f"enode://{PUB}@[::1]30303", "invalid port", id="no-colon-after-bracket"),
        pytest.param(f"enode://{PUB}@bad_host.org:1", "invalid host", id="underscore-host"),
        pytest.param(f"enode://{PUB}@-bad.org:1", "invalid host", id="dash-label"),
        pytest.param(f"enode://{PUB}@a..b:1", "invalid host", id="empty-label"),
        pytest.param(f"enode://{PUB}@{'a' * 64}.org:1", "invalid host", id="label-too-long"),
        pytest.param(
            f"enode://{PUB}@{onion3_label(bytes(32), b'ab', 3)}:1",
            "invalid onion3 host: onion address checksum mismatch",
            id="onion-checksum",
        ),
        pytest.param(
            f"enode://{PUB}@{ONION.upper()}:1",
            "invalid onion3 host: address must be lower case",
            id="onion-upper",
        ),
        pytest.param(
            f"enode://{PUB}@{onion3_label(bytes(32), None, 2)}:1",
            "invalid onion3 host: onion address version is 2",
            id="onion-version",
        ),
        pytest.param(
            f"enode://{PUB}@{ONION[1:]}:1",
            "invalid onion3 host: address must have 56",
            id="onion-short",
        ),
        pytest.param(
            f"enode://{PUB}@expyuzz4wqqyqhjn.onion:30303",
            "v2 onion addresses",
            id="onion-v2",
        ),
    ],
)
def test_invalid(url: str, reason: str) -> None:
    with pytest.raises(EnodeError, match=reason.replace("?", r"\?")):
        parse_enode(url)


def test_not_a_string() -> None:
    with pytest.raises(EnodeError, match="must be a string"):
        parse_enode(b"enode://00")  # type: ignore[arg-type]


def test_unknown_query_parameters_are_ignored() -> None:
    enode = parse_enode(f"enode://{PUB}@1.2.3.4:1?foo=bar&discport=7&&x")
    assert (enode.tcp, enode.udp) == (1, 7)


def test_enode_value_semantics() -> None:
    one = parse_enode(f"enode://{PUB}@1.2.3.4:1")
    assert one == Enode(PublicKey.from_bytes(bytes.fromhex(PUB)), "1.2.3.4", 1, 1)
    assert hash(one) == hash(parse_enode(f"enode://{PUB}@1.2.3.4:1?discport=1"))


# --- enode_from_enr ----------------------------------------------------------------------------


def test_from_enr_ipv4_same_ports() -> None:
    record = ENR.build(KEY_A, ip="203.0.113.9", tcp=30303, udp=30303)
    enode = enode_from_enr(record)
    assert str(enode) == f"enode://{PUB}@203.0.113.9:30303"
    assert "discport" not in str(enode)
    assert enode.node_id == record.node_id
    assert parse_enode(str(enode)) == enode


def test_from_enr_discport_when_udp_differs() -> None:
    record = ENR.build(KEY_A, ip="203.0.113.9", tcp=30303, udp=30301)
    assert str(enode_from_enr(record)) == f"enode://{PUB}@203.0.113.9:30303?discport=30301"


def test_from_enr_without_udp() -> None:
    record = ENR.build(KEY_A, ip="203.0.113.9", tcp=30303)
    enode = enode_from_enr(record)
    assert (enode.tcp, enode.udp) == (30303, 30303)
    assert str(enode) == f"enode://{PUB}@203.0.113.9:30303"


def test_from_enr_ipv6() -> None:
    record = ENR.build(KEY_A, ip6="2001:db8::7", tcp=1, udp=2, tcp6=3, udp6=3)
    assert str(enode_from_enr(record)) == f"enode://{PUB}@[2001:db8::7]:3"


def test_from_enr_onion_preferred() -> None:
    record = ENR.build(KEY_A, ip="203.0.113.9", tcp=30303, udp=30301, onion3=ONION)
    enode = enode_from_enr(record)
    assert enode.host == ONION
    assert enode.host_kind == "onion3"
    assert str(enode) == f"enode://{PUB}@{ONION}:30303?discport=30301"
    assert parse_enode(str(enode)) == enode
    by_ip = enode_from_enr(record, prefer_onion=False)
    assert str(by_ip) == f"enode://{PUB}@203.0.113.9:30303?discport=30301"


def test_from_enr_onion_only() -> None:
    record = ENR.build(KEY_A, tcp=30303, udp=30303, onion3=ONION)
    assert str(enode_from_enr(record)) == f"enode://{PUB}@{ONION}:30303"
    with pytest.raises(EnodeError, match="neither an IP address nor an onion3"):
        enode_from_enr(record, prefer_onion=False)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"ip": "203.0.113.9", "udp": 30303}, id="ip-no-tcp"),
        pytest.param({"onion3": ONION, "udp": 30303}, id="onion-no-tcp"),
        pytest.param({"ip": "203.0.113.9", "tcp": 0, "udp": 30303}, id="tcp-zero"),
    ],
)
def test_from_enr_without_tcp(fields: dict[str, object]) -> None:
    record = ENR.build(KEY_A, **fields)  # type: ignore[arg-type]
    with pytest.raises(EnodeError, match="no tcp port"):
        enode_from_enr(record)


def test_from_enr_without_host() -> None:
    with pytest.raises(EnodeError, match="neither an IP address nor an onion3"):
        enode_from_enr(ENR.build(KEY_A, tcp=30303))


@pytest.mark.parametrize(
    ("onion", "reason"),
    [
        pytest.param(ONION.upper().encode(), "lower case", id="upper"),
        pytest.param(onion3_label(bytes(32), b"zz", 3).encode(), "checksum", id="checksum"),
        pytest.param(b"expyuzz4wqqyqhjn.onion", "56 base32", id="v2"),
    ],
)
def test_from_enr_invalid_onion3(onion: bytes, reason: str) -> None:
    raw = make_record([(b"ip", bytes([203, 0, 113, 9])), (b"onion3", onion), (b"tcp", uint(30303))])
    record = ENR.from_rlp(raw)  # validly signed: the record itself is accepted
    assert record.onion3 is None
    with pytest.raises(EnodeError, match=f"onion3 entry is unusable: .*{reason}"):
        enode_from_enr(record)
    # Asked not to use the onion address, the IP still works.
    assert str(enode_from_enr(record, prefer_onion=False)) == f"enode://{PUB}@203.0.113.9:30303"


def test_from_enr_without_public_key() -> None:
    raw = make_record([(b"ip", bytes(4)), (b"tcp", b"\x01")], signature=bytes(64))
    bad_key = raw.replace(KEY_A.public_key.compressed, b"\x05" + bytes(32))
    record = ENR.from_rlp(bad_key, verify=False)
    assert record.public_key is None
    with pytest.raises(EnodeError, match="no usable secp256k1 public key"):
        enode_from_enr(record)
