"""discv5._messages: derived plaintext vectors, round trips, and every decode error.

Vectors: tests/vectors/discv5_wire_vectors.json "derived_message_plaintexts" (encoded
independently from ethereum/devp2p discv5/discv5-wire.md "Protocol Messages" and the field
order of go-ethereum p2p/discover/v5wire/msg.go; not upstream text).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
import rlp

from discv5._errors import LocalProtocolError, MessageDecodeError
from discv5._messages import (
    REQUEST_TYPES,
    RESPONSE_TYPES,
    FindNode,
    Message,
    MessageType,
    Nodes,
    Ping,
    Pong,
    TalkRequest,
    TalkResponse,
    decode_message_untrusted,
    encode_message,
    is_request,
    response_types_for,
)
from enr import ENR, PrivateKey

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "discv5_wire_vectors.json").read_text()
)
EXAMPLES = VECTORS["derived_message_plaintexts"]["examples"]
RID = b"\x00\x00\x00\x01"


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def expected_message(example: dict[str, Any]) -> Message:
    f = example["fields"]
    rid = h(f["request_id"])
    kind = example["message"]
    if kind == "PING":
        return Ping(rid, f["enr_seq"])
    if kind == "PONG":
        ip = ipaddress.ip_address(f["recipient_ip"])
        return Pong(rid, f["enr_seq"], ip, f["recipient_port"])
    if kind == "FINDNODE":
        return FindNode(rid, tuple(f["distances"]))
    if kind == "NODES":
        return Nodes(rid, f["total"], tuple(ENR.from_text(t) for t in f["enrs"]))
    if kind == "TALKREQ":
        return TalkRequest(rid, f["protocol"].encode(), f["request"].encode())
    assert kind == "TALKRESP"
    return TalkResponse(rid, f["response"].encode())


@pytest.mark.parametrize(
    "example", EXAMPLES, ids=lambda e: f"{e['message']}-{e['message_pt'][:24]}"
)
def test_derived_plaintext_vectors(example: dict[str, Any]) -> None:
    # Source: discv5_wire_vectors.json derived_message_plaintexts (see module docstring).
    message = expected_message(example)
    assert encode_message(message).hex() == example["message_pt"]
    decoded = decode_message_untrusted(h(example["message_pt"]))
    assert decoded == message
    assert type(decoded).message_type == h(example["message_pt"])[0]


def test_nodes_vector_embeds_record_rlp() -> None:
    # Source: derived NODES example: "each ENR is embedded as its full RLP list".
    example = next(e for e in EXAMPLES if e["message"] == "NODES" and e["fields"]["enrs"])
    record = ENR.from_text(example["fields"]["enrs"][0])
    assert record.to_rlp().hex() in example["message_pt"]
    decoded = decode_message_untrusted(h(example["message_pt"]))
    assert isinstance(decoded, Nodes)
    assert decoded.records[0].to_rlp() == record.to_rlp()
    assert decoded.records[0].verified
    assert decoded.invalid_records == 0


# --- round trips --------------------------------------------------------------------------------

KEY = PrivateKey(bytes(31) + b"\x2a")
RECORD_1 = ENR.build(KEY, seq=1, ip="192.0.2.1", udp=30303)
RECORD_2 = ENR.build(PrivateKey(bytes(31) + b"\x2b"), seq=9, ip6="2001:db8::1", udp=9000)

ROUND_TRIPS: list[Message] = [
    Ping(b"", 0),
    Ping(b"\xff" * 8, 2**64 - 1),
    Pong(b"\x01", 0, ipaddress.IPv4Address("0.0.0.0"), 0),
    Pong(RID, 7, ipaddress.IPv6Address("2001:db8::5"), 65535),
    Pong(RID, 7, ipaddress.IPv6Address("::ffff:1.2.3.4"), 1),  # 16 bytes stay IPv6
    FindNode(RID, ()),
    FindNode(RID, (0,)),
    FindNode(RID, (256, 255, 254)),
    FindNode(RID, (257, 1000, 2**64 - 1, 3, 3)),  # kept as given: the responder decides
    Nodes(RID, 1, ()),
    Nodes(RID, 255, (RECORD_1, RECORD_2)),
    TalkRequest(RID, b"", b""),
    TalkRequest(RID, b"portal", bytes(range(256)) * 3),
    TalkResponse(RID, b""),
    TalkResponse(b"12345678", b"\x00" * 1000),
]


@pytest.mark.parametrize("message", ROUND_TRIPS, ids=repr)
def test_round_trip(message: Message) -> None:
    plaintext = encode_message(message)
    assert plaintext[0] == message.message_type
    assert decode_message_untrusted(plaintext) == message
    assert decode_message_untrusted(bytearray(plaintext)) == message


def test_every_message_type_round_trips() -> None:
    assert {type(m).message_type for m in ROUND_TRIPS} == set(MessageType)


def test_requests_and_responses() -> None:
    assert (Ping, FindNode, TalkRequest) == REQUEST_TYPES
    assert (Pong, Nodes, TalkResponse) == RESPONSE_TYPES
    assert is_request(Ping(RID, 1))
    assert not is_request(Pong(RID, 1, ipaddress.IPv4Address("1.2.3.4"), 1))
    assert response_types_for(Ping(RID, 1)) == (Pong,)
    assert response_types_for(FindNode) == (Nodes,)
    assert response_types_for(TalkRequest(RID, b"", b"")) == (TalkResponse,)
    with pytest.raises(LocalProtocolError, match="not a request"):
        response_types_for(TalkResponse(RID, b""))  # type: ignore[arg-type]


def test_message_type_numbers() -> None:
    # discv5-wire "Protocol Messages".
    assert [(t.name, int(t)) for t in MessageType] == [
        ("PING", 1),
        ("PONG", 2),
        ("FINDNODE", 3),
        ("NODES", 4),
        ("TALKREQ", 5),
        ("TALKRESP", 6),
    ]


def test_invalid_records_not_compared() -> None:
    assert Nodes(RID, 1, (), invalid_records=3) == Nodes(RID, 1, ())


# --- decode errors ------------------------------------------------------------------------------


def pt(message_type: int, items: Any) -> bytes:
    return bytes((message_type,)) + bytes(rlp.encode(items))


INT_0 = b""  # RLP integer zero is the empty string
TOO_BIG_SEQ = (2**64).to_bytes(9, "big")

DECODE_ERRORS: list[tuple[str, bytes, str]] = [
    ("empty", b"", "no data"),
    ("type-0", pt(0, [RID, INT_0]), "unknown message type 0x00"),
    *[(f"type-{t}", pt(t, [RID]), f"unknown message type {t:#04x}") for t in range(7, 11)],
    ("type-255", b"\xff\xc0", "unknown message type 0xff"),
    ("no-body", b"\x01", "empty input"),
    ("truncated-rlp", b"\x01\xc6\x84\x00\x00\x00", "rlp"),
    ("trailing-bytes", pt(1, [RID, b"\x01"]) + b"\x00", "rlp"),
    ("two-items", b"\x01\xc0\xc0", "rlp"),
    ("non-canonical-prefix", b"\x01\xc3\x81\x05\x80", "rlp"),
    ("long-form-short-list", b"\x01\xf8\x02\x80\x80", "rlp"),
    ("not-a-list", pt(1, RID), "not an RLP list"),
    ("empty-list", pt(1, []), "empty message data list"),
    ("request-id-list", pt(1, [[RID], INT_0]), "request-id: expected a byte string"),
    ("request-id-9-bytes", pt(1, [b"\x01" * 9, INT_0]), "request-id of 9 bytes"),
    ("request-id-9-bytes-talkresp", pt(6, [b"\x01" * 9, b""]), "request-id of 9 bytes"),
    # PING
    ("ping-too-few", pt(1, [RID]), "PING: expected 2 list elements, got 1"),
    ("ping-too-many", pt(1, [RID, b"\x01", b""]), "PING: expected 2 list elements, got 3"),
    ("ping-seq-list", pt(1, [RID, []]), "enr-seq: expected an integer"),
    ("ping-seq-leading-zero", pt(1, [RID, b"\x00\x01"]), "non-canonical integer"),
    ("ping-seq-zero-byte", pt(1, [RID, b"\x00"]), "non-canonical integer"),
    ("ping-seq-2**64", pt(1, [RID, TOO_BIG_SEQ]), "larger than"),
    # PONG
    ("pong-too-few", pt(2, [RID, b"\x01", bytes(4)]), "PONG: expected 4 list elements"),
    ("pong-too-many", pt(2, [RID, b"", bytes(4), b"", b""]), "PONG: expected 4 list elements"),
    ("pong-seq-2**64", pt(2, [RID, TOO_BIG_SEQ, bytes(4), b""]), "enr-seq"),
    ("pong-ip-5-bytes", pt(2, [RID, b"", bytes(5), b""]), "recipient-ip of 5 bytes"),
    ("pong-ip-empty", pt(2, [RID, b"", b"", b""]), "recipient-ip of 0 bytes"),
    ("pong-ip-list", pt(2, [RID, b"", [bytes(4)], b""]), "recipient-ip: expected a byte"),
    ("pong-port-65536", pt(2, [RID, b"", bytes(4), b"\x01\x00\x00"]), "larger than 65535"),
    ("pong-port-leading-zero", pt(2, [RID, b"", bytes(4), b"\x00\x50"]), "non-canonical"),
    # FINDNODE
    ("findnode-too-few", pt(3, [RID]), "FINDNODE: expected 2 list elements"),
    ("findnode-too-many", pt(3, [RID, [], b""]), "FINDNODE: expected 2 list elements"),
    ("findnode-not-list", pt(3, [RID, b"\x01"]), "distances must be a list"),
    ("findnode-distance-list", pt(3, [RID, [[b"\x01"]]]), "distance: expected an integer"),
    ("findnode-distance-non-canonical", pt(3, [RID, [b"\x00\xff"]]), "non-canonical"),
    ("findnode-distance-2**64", pt(3, [RID, [TOO_BIG_SEQ]]), "larger than"),
    # NODES
    ("nodes-too-few", pt(4, [RID, b"\x01"]), "NODES: expected 3 list elements"),
    ("nodes-too-many", pt(4, [RID, b"\x01", [], b""]), "NODES: expected 3 list elements"),
    ("nodes-total-256", pt(4, [RID, b"\x01\x00", []]), "larger than 255"),
    ("nodes-total-list", pt(4, [RID, [], []]), "total: expected an integer"),
    ("nodes-total-non-canonical", pt(4, [RID, b"\x00", []]), "non-canonical"),
    ("nodes-records-not-list", pt(4, [RID, b"\x01", b"\x01"]), "records must be a list"),
    # TALKREQ / TALKRESP
    ("talkreq-too-few", pt(5, [RID, b"p"]), "TALKREQ: expected 3 list elements"),
    ("talkreq-too-many", pt(5, [RID, b"p", b"", b""]), "TALKREQ: expected 3 list elements"),
    ("talkreq-protocol-list", pt(5, [RID, [], b""]), "protocol: expected a byte string"),
    ("talkreq-request-list", pt(5, [RID, b"p", []]), "request: expected a byte string"),
    ("talkresp-too-few", pt(6, [RID]), "TALKRESP: expected 2 list elements"),
    ("talkresp-too-many", pt(6, [RID, b"", b""]), "TALKRESP: expected 2 list elements"),
    ("talkresp-response-list", pt(6, [RID, [b""]]), "response: expected a byte string"),
]


@pytest.mark.parametrize(
    ("plaintext", "reason"),
    [(p, r) for _, p, r in DECODE_ERRORS],
    ids=[n for n, _, _ in DECODE_ERRORS],
)
def test_decode_errors(plaintext: bytes, reason: str) -> None:
    with pytest.raises(MessageDecodeError, match=reason):
        decode_message_untrusted(plaintext)


def test_decode_request_id_limits() -> None:
    assert decode_message_untrusted(pt(1, [b"", b""])) == Ping(b"", 0)
    assert decode_message_untrusted(pt(1, [b"\x00" * 8, b""])) == Ping(b"\x00" * 8, 0)


def test_decode_deep_nesting_fails_cleanly() -> None:
    # Deeper than any datagram can carry; the RLP decoder recurses, the error must not leak.
    item: bytes = b"\xc0"
    for _ in range(3000):
        item = bytes(rlp.codec.length_prefix(len(item), 0xC0)) + item
    with pytest.raises(MessageDecodeError):
        decode_message_untrusted(b"\x06" + item)


def _nodes_with(record_items: list[bytes]) -> bytes:
    """A NODES plaintext whose records list is spliced from raw encodings."""
    records = b"".join(record_items)
    head = bytes(rlp.encode(RID)) + bytes(rlp.encode(1))
    payload = head + bytes(rlp.codec.length_prefix(len(records), 0xC0)) + records
    return b"\x04" + bytes(rlp.codec.length_prefix(len(payload), 0xC0)) + payload


def test_nodes_invalid_records_are_counted_not_fatal() -> None:
    good = RECORD_1.to_rlp()
    bad_signature = bytearray(RECORD_2.to_rlp())
    bad_signature[10] ^= 0xFF  # inside the 64-byte signature
    unsorted_keys = rlp.encode([b"\x00" * 64, b"\x01", b"udp", b"\x01", b"id", b"v4"])
    not_a_list = rlp.encode(b"enr")
    no_id = rlp.encode([b"\x00" * 64, b"\x01"])
    too_large = rlp.encode([b"\x00" * 64, b"\x01", b"id", b"v4", b"z", b"\x00" * 240])
    plaintext = _nodes_with(
        [good, bytes(bad_signature), unsorted_keys, not_a_list, no_id, too_large, good]
    )
    message = decode_message_untrusted(plaintext)
    assert isinstance(message, Nodes)
    assert message.records == (RECORD_1, RECORD_1)
    assert message.invalid_records == 5
    assert message.total == 1


# --- encode errors ------------------------------------------------------------------------------

V4 = ipaddress.IPv4Address("1.2.3.4")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (Ping(b"\x00" * 9, 1), "request-id of 9 bytes"),
        (Ping(RID, -1), "enr_seq"),
        (Ping(RID, 2**64), "enr_seq"),
        (Ping(RID, True), "enr_seq"),
        (Pong(RID, 1, V4, 65536), "recipient_port"),
        (Pong(RID, 1, V4, -1), "recipient_port"),
        (Pong(RID, 1, "1.2.3.4", 1), "recipient_ip"),  # type: ignore[arg-type]
        (FindNode(RID, (-1,)), "distance"),
        (Nodes(RID, 256, ()), "total"),
        (Nodes(RID, -1, ()), "total"),
    ],
    ids=repr,
)
def test_encode_errors(message: Message, reason: str) -> None:
    with pytest.raises(LocalProtocolError, match=reason):
        encode_message(message)


def test_encode_rejects_non_messages() -> None:
    class Fake:
        request_id = b""

    with pytest.raises(LocalProtocolError, match="not a discv5 message"):
        encode_message(Fake())  # type: ignore[arg-type]
