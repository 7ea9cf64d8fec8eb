"""Property tests for the wire codec (architecture rule 5: untrusted bytes fail one way).

- ``decode_packet_untrusted`` on arbitrary datagrams, on well-masked headers with arbitrary
  fields, and on byte-level mutations of the official vectors raises only PacketDecodeError;
  decrypting whatever it accepts raises only DecryptionError.
- ``decode_message_untrusted`` on arbitrary plaintexts (and on structured RLP under every type
  byte) raises only MessageDecodeError.
- encode/decode round trips for packets and messages.
"""

from __future__ import annotations

import ipaddress
import json
import struct
from pathlib import Path
from typing import Any

import rlp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discv5._crypto import aes_ctr
from discv5._errors import DecryptionError, MessageDecodeError, PacketDecodeError
from discv5._messages import (
    FindNode,
    Message,
    Nodes,
    Ping,
    Pong,
    TalkRequest,
    TalkResponse,
    decode_message_untrusted,
    encode_message,
)
from discv5._packet import (
    Flag,
    HandshakeAuthdata,
    MessageAuthdata,
    Packet,
    WhoAreYouAuthdata,
    decode_packet_untrusted,
    decrypt_message_untrusted,
    encode_handshake_packet,
    encode_message_packet,
    encode_whoareyou_packet,
)
from enr import ENR, PrivateKey

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "discv5_wire_vectors.json").read_text()
)
ID_B = bytes.fromhex(VECTORS["keys"]["node_b"]["node_id"])
SEEDS = [bytes.fromhex(v["encoded_packet"]) for v in VECTORS["packet_vectors"]]
SEEDS += [bytes.fromhex(v["packet"]) for v in VECTORS["negative_decode_vectors"]]

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=200, deadline=None)


def _decode_fully(data: bytes, local_id: bytes, key: bytes) -> None:
    """Run the whole receive path; only the documented errors may come out."""
    try:
        packet = decode_packet_untrusted(data, local_id)
    except PacketDecodeError:
        return
    assert isinstance(packet, Packet)
    assert packet.flag in (Flag.MESSAGE, Flag.WHOAREYOU, Flag.HANDSHAKE)
    try:
        plaintext = decrypt_message_untrusted(packet, key)
    except DecryptionError:
        return
    try:
        decode_message_untrusted(plaintext)
    except MessageDecodeError:
        pass


# --- packets: arbitrary input -------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=1400), st.binary(min_size=32, max_size=32))
def test_random_datagrams(data: bytes, local_id: bytes) -> None:
    _decode_fully(data, local_id, bytes(16))


@FUZZ
@given(
    flag=st.integers(0, 255),
    version=st.integers(0, 0xFFFF),
    authdata=st.binary(max_size=400),
    authdata_size=st.one_of(st.none(), st.integers(0, 0xFFFF)),
    tail=st.binary(max_size=200),
    iv=st.binary(min_size=16, max_size=16),
)
def test_well_masked_headers(
    flag: int, version: int, authdata: bytes, authdata_size: int | None, tail: bytes, iv: bytes
) -> None:
    # A correct protocol-id gets past the first check, so every later rule is exercised.
    size = len(authdata) if authdata_size is None else authdata_size
    header = struct.pack(">6sHB12sH", b"discv5", version, flag, bytes(12), size) + authdata
    data = iv + aes_ctr(ID_B[:16], iv, header) + tail
    _decode_fully(data, ID_B, bytes(16))


@st.composite
def mutated_vector(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "append"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "append":
            data += draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


@FUZZ
@given(mutated_vector())
def test_mutated_vectors(data: bytes) -> None:
    # Read key of the ping-message vector, so mutations of it may even decrypt.
    _decode_fully(data, ID_B, bytes(16))


# --- messages: arbitrary input ------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=1300))
def test_random_plaintexts(plaintext: bytes) -> None:
    try:
        message = decode_message_untrusted(plaintext)
    except MessageDecodeError:
        return
    # Whatever decodes re-encodes to a plaintext that decodes to the same value.
    assert decode_message_untrusted(encode_message(message)) == message


rlp_items = st.recursive(
    st.binary(max_size=12),
    lambda children: st.lists(children, max_size=5),
    max_leaves=20,
)


@FUZZ
@given(st.integers(0, 12), st.lists(rlp_items, max_size=5))
def test_structured_plaintexts(message_type: int, items: list[Any]) -> None:
    plaintext = bytes((message_type,)) + bytes(rlp.encode(items))
    try:
        message = decode_message_untrusted(plaintext)
    except MessageDecodeError:
        return
    assert encode_message(message) == plaintext or isinstance(message, Nodes)


# --- round trips --------------------------------------------------------------------------------

_RECORDS = [
    ENR.build(PrivateKey(bytes(31) + bytes((i,))), seq=i, ip=f"10.0.0.{i}", udp=30000 + i)
    for i in range(1, 6)
]

request_ids = st.binary(max_size=8)
uint64 = st.integers(0, 2**64 - 1)
ips = st.one_of(
    st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1)),
    st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1)),
)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Ping, request_ids, uint64),
    st.builds(Pong, request_ids, uint64, ips, st.integers(0, 65535)),
    st.builds(FindNode, request_ids, st.lists(uint64, max_size=20).map(tuple)),
    st.builds(
        Nodes, request_ids, st.integers(0, 255), st.lists(st.sampled_from(_RECORDS)).map(tuple)
    ),
    st.builds(TalkRequest, request_ids, st.binary(max_size=32), st.binary(max_size=600)),
    st.builds(TalkResponse, request_ids, st.binary(max_size=600)),
)


@ROUND_TRIP
@given(messages)
def test_message_round_trip(message: Message) -> None:
    assert decode_message_untrusted(encode_message(message)) == message


node_ids = st.binary(min_size=32, max_size=32)
keys16 = st.binary(min_size=16, max_size=16)
nonces = st.binary(min_size=12, max_size=12)


@ROUND_TRIP
@given(node_ids, node_ids, keys16, nonces, keys16, st.binary(max_size=1100))
def test_message_packet_round_trip(
    dest: bytes, src: bytes, iv: bytes, nonce: bytes, key: bytes, plaintext: bytes
) -> None:
    data = encode_message_packet(
        dest_id=dest, src_id=src, masking_iv=iv, nonce=nonce, key=key, plaintext=plaintext
    )
    packet = decode_packet_untrusted(data, dest)
    assert (packet.flag, packet.masking_iv, packet.nonce) == (Flag.MESSAGE, iv, nonce)
    assert packet.authdata == MessageAuthdata(src)
    assert decrypt_message_untrusted(packet, key) == plaintext


@ROUND_TRIP
@given(node_ids, keys16, nonces, keys16, uint64)
def test_whoareyou_round_trip(
    dest: bytes, iv: bytes, nonce: bytes, id_nonce: bytes, enr_seq: int
) -> None:
    data, challenge = encode_whoareyou_packet(
        dest_id=dest, masking_iv=iv, nonce=nonce, id_nonce=id_nonce, enr_seq=enr_seq
    )
    assert len(data) == 63
    packet = decode_packet_untrusted(data, dest)
    assert packet.authdata == WhoAreYouAuthdata(id_nonce, enr_seq)
    assert packet.nonce == nonce
    assert packet.challenge_data == challenge


@ROUND_TRIP
@given(
    node_ids,
    node_ids,
    keys16,
    nonces,
    keys16,
    st.binary(max_size=400),
    st.binary(max_size=255),
    st.binary(max_size=255),
    st.one_of(st.none(), st.binary(min_size=1, max_size=300)),
)
def test_handshake_packet_round_trip(
    dest: bytes,
    src: bytes,
    iv: bytes,
    nonce: bytes,
    key: bytes,
    plaintext: bytes,
    signature: bytes,
    eph: bytes,
    record: bytes | None,
) -> None:
    data = encode_handshake_packet(
        dest_id=dest,
        src_id=src,
        masking_iv=iv,
        nonce=nonce,
        key=key,
        plaintext=plaintext,
        id_signature=signature,
        eph_pubkey=eph,
        record=record,
    )
    packet = decode_packet_untrusted(data, dest, max_size=4096)
    assert packet.flag is Flag.HANDSHAKE
    assert packet.authdata == HandshakeAuthdata(src, signature, eph, record)
    assert decrypt_message_untrusted(packet, key) == plaintext
