"""discv5._session: the handshake as pure functions (make_handshake / accept_handshake).

Official vectors first (tests/vectors/discv5_wire_vectors.json "ping-handshake" and
"ping-handshake-enr", from ethereum/devp2p discv5-wire-test-vectors.md), then every rule of
discv5-theory "Handshake Steps" 3-4 as go-ethereum applies them (spec_digest.md section 5):
record included iff the challenger's enr-seq is lower, a record must be present when the
challenger knows none, it must verify and belong to the sender, the newer of the known and sent
records wins, the ephemeral key must be a compressed point, the id-signature must verify.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from discv5 import _crypto
from discv5._errors import DecryptionError, HandshakeError
from discv5._messages import Ping, decode_message_untrusted, encode_message
from discv5._packet import (
    Flag,
    HandshakeAuthdata,
    Packet,
    decode_packet_untrusted,
    decrypt_message_untrusted,
    encode_handshake_packet,
    encode_whoareyou_packet,
)
from discv5._session import Challenge, Session, accept_handshake, make_handshake
from discv5._types import NodeAddress, NodeId
from enr import ENR, PrivateKey
from tests.enr._helpers import make_record

from .test_protocol import key_for, seeded_rng

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "discv5_wire_vectors.json").read_text()
)
PACKETS = {v["name"]: v for v in VECTORS["packet_vectors"]}
KEY_A = PrivateKey(bytes.fromhex(VECTORS["keys"]["node_a"]["private_key"]))
KEY_B = PrivateKey(bytes.fromhex(VECTORS["keys"]["node_b"]["private_key"]))
ID_A = bytes.fromhex(VECTORS["keys"]["node_a"]["node_id"])
ID_B = bytes.fromhex(VECTORS["keys"]["node_b"]["node_id"])
ADDR_A = NodeAddress(NodeId(ID_A), "127.0.0.1", 30303)
ADDR_B = NodeAddress(NodeId(ID_B), "127.0.0.1", 30304)
PING_PT = bytes.fromhex("01c6840000000101")  # PING request-id 00000001, enr-seq 1


def vector_packet(name: str) -> Packet:
    return decode_packet_untrusted(bytes.fromhex(PACKETS[name]["encoded_packet"]), ID_B)


def vector_record_a() -> ENR:
    """node-a's seq-1 record, as carried by the ping-handshake-enr vector."""
    auth = vector_packet("ping-handshake-enr").authdata
    assert isinstance(auth, HandshakeAuthdata)
    assert auth.record is not None
    return ENR.from_rlp(auth.record)


def challenge_for(name: str, known: ENR | None) -> Challenge:
    data = bytes.fromhex(PACKETS[name]["inputs"]["whoareyou_challenge_data"])
    return Challenge(ADDR_A, b"", data, known, 10.0)


def feed(*chunks: bytes) -> Callable[[int], bytes]:
    """An rng that returns the given chunks in order (each call must ask for the next size)."""
    queue = list(chunks)

    def rng(n: int) -> bytes:
        chunk = queue.pop(0)
        assert len(chunk) == n, (len(chunk), n)
        return chunk

    return rng


# --- official vectors ---------------------------------------------------------------------------


def test_accept_the_official_handshake_with_record() -> None:
    challenge = challenge_for("ping-handshake-enr", None)
    session, plaintext = accept_handshake(
        local_key=KEY_B, local_id=ID_B, challenge=challenge,
        packet=vector_packet("ping-handshake-enr"),
    )
    assert plaintext == PING_PT
    assert decode_message_untrusted(plaintext) == Ping(b"\x00\x00\x00\x01", 1)
    read_key = bytes.fromhex(PACKETS["ping-handshake-enr"]["inputs"]["read_key"])
    assert session.decrypt_key == read_key
    assert session.node == ADDR_A
    assert session.enr == vector_record_a()
    assert session.enr is not None
    assert session.enr.node_id == ID_A
    assert session.counter == 0
    assert session.old_decrypt_keys == ()


def test_accept_the_official_handshake_without_record() -> None:
    known = vector_record_a()
    session, plaintext = accept_handshake(
        local_key=KEY_B, local_id=ID_B, challenge=challenge_for("ping-handshake", known),
        packet=vector_packet("ping-handshake"),
    )
    assert plaintext == PING_PT
    assert session.decrypt_key == bytes.fromhex(PACKETS["ping-handshake"]["inputs"]["read_key"])
    assert session.enr == known
    # Without a known record the same packet is unacceptable.
    with pytest.raises(HandshakeError):
        accept_handshake(
            local_key=KEY_B, local_id=ID_B, challenge=challenge_for("ping-handshake", None),
            packet=vector_packet("ping-handshake"),
        )


def test_make_handshake_reproduces_the_official_authdata_and_keys() -> None:
    vector = PACKETS["ping-handshake-enr"]
    # The WHOAREYOU node-b sent (enr-seq 0), as node-a decodes it.
    whoareyou_bytes, challenge_data = encode_whoareyou_packet(
        dest_id=ID_A, masking_iv=bytes(16),
        nonce=bytes.fromhex(vector["inputs"]["whoareyou_request_nonce"]),
        id_nonce=bytes.fromhex(vector["inputs"]["whoareyou_id_nonce"]), enr_seq=0,
    )
    assert challenge_data.hex() == vector["inputs"]["whoareyou_challenge_data"]
    whoareyou = decode_packet_untrusted(whoareyou_bytes, ID_A)
    rng = feed(bytes.fromhex(vector["inputs"]["ephemeral_key"]), b"\xff" * 8, bytes(16))
    datagram, nonce, session = make_handshake(
        local_key=KEY_A, local_enr=vector_record_a(), remote=ADDR_B,
        remote_enr=ENR.build(KEY_B, 1, ip="127.0.0.1", udp=30304), whoareyou=whoareyou,
        plaintext=PING_PT, rng=rng,
    )
    assert nonce == b"\x00\x00\x00\x01" + b"\xff" * 8  # counter 1 || random
    assert session.encrypt_key == bytes.fromhex(vector["inputs"]["read_key"])
    ours = decode_packet_untrusted(datagram, ID_B)
    theirs = vector_packet("ping-handshake-enr")
    assert ours.flag is Flag.HANDSHAKE
    assert ours.nonce == nonce
    # Same id-signature (RFC 6979 is deterministic), ephemeral key and record as the vector;
    # only the header nonce differs (ours carries the message counter).
    assert ours.authdata == theirs.authdata
    assert decrypt_message_untrusted(ours, session.encrypt_key) == PING_PT


# --- make_handshake -----------------------------------------------------------------------------


def whoareyou_for(dest: bytes, enr_seq: int, *, seed: int = 1) -> Packet:
    rng = seeded_rng(seed)
    datagram, _ = encode_whoareyou_packet(
        dest_id=dest, masking_iv=rng(16), nonce=rng(12), id_nonce=rng(16), enr_seq=enr_seq
    )
    return decode_packet_untrusted(datagram, dest)


def parties(seq_a: int = 5) -> tuple[PrivateKey, ENR, PrivateKey, ENR]:
    ka, kb = key_for(1), key_for(2)
    return (
        ka, ENR.build(ka, seq_a, ip="127.0.0.1", udp=30001),
        kb, ENR.build(kb, 1, ip="127.0.0.1", udp=30002),
    )


def node_of(record: ENR) -> NodeAddress:
    ip, udp, _ = record.endpoint()
    assert ip is not None
    assert udp is not None
    return NodeAddress(NodeId(record.node_id), str(ip), udp)


@pytest.mark.parametrize(
    ("enr_seq", "included"), [(0, True), (4, True), (5, False), (6, False), (2**64 - 1, False)]
)
def test_make_handshake_includes_the_record_iff_enr_seq_is_lower(
    enr_seq: int, included: bool
) -> None:
    ka, ra, _, rb = parties(seq_a=5)
    datagram, _, _ = make_handshake(
        local_key=ka, local_enr=ra, remote=node_of(rb), remote_enr=rb,
        whoareyou=whoareyou_for(ra.node_id, enr_seq), plaintext=PING_PT, rng=seeded_rng(3),
    )
    auth = decode_packet_untrusted(datagram, rb.node_id).authdata
    assert isinstance(auth, HandshakeAuthdata)
    assert auth.record == (ra.to_rlp() if included else None)
    assert len(auth.id_signature) == 64
    assert len(auth.eph_pubkey) == 33
    assert auth.src_id == ra.node_id


def test_make_handshake_is_deterministic_given_the_rng() -> None:
    ka, ra, _, rb = parties()
    w = whoareyou_for(ra.node_id, 0)
    first = make_handshake(
        local_key=ka, local_enr=ra, remote=node_of(rb), remote_enr=rb, whoareyou=w,
        plaintext=PING_PT, rng=seeded_rng(9),
    )
    second = make_handshake(
        local_key=ka, local_enr=ra, remote=node_of(rb), remote_enr=rb, whoareyou=w,
        plaintext=PING_PT, rng=seeded_rng(9),
    )
    assert first[0] == second[0]
    assert first[1] == second[1]
    other = make_handshake(
        local_key=ka, local_enr=ra, remote=node_of(rb), remote_enr=rb, whoareyou=w,
        plaintext=PING_PT, rng=seeded_rng(10),
    )
    assert other[0] != first[0]
    assert other[2].encrypt_key != first[2].encrypt_key  # a fresh ephemeral key


def test_make_handshake_needs_the_peers_public_key() -> None:
    ka, ra, kb, _ = parties()
    keyless = ENR.from_rlp(
        make_record([(b"id", b"v4"), (b"ip", b"\x7f\x00\x00\x01")], key=kb, identity=False),
        verify=False,
    )
    assert keyless.public_key is None
    with pytest.raises(HandshakeError):
        make_handshake(
            local_key=ka, local_enr=ra, remote=NodeAddress(NodeId(kb.public_key.node_id), "x", 1),
            remote_enr=keyless, whoareyou=whoareyou_for(ra.node_id, 0), plaintext=PING_PT,
            rng=seeded_rng(3),
        )


def handshake_pair(
    *, enr_seq: int = 0, known: ENR | None = None, seq_a: int = 5
) -> tuple[PrivateKey, ENR, PrivateKey, ENR, Challenge, bytes, Session]:
    """A handshake datagram from a to b answering b's challenge (which knew ``known``)."""
    ka, ra, kb, rb = parties(seq_a)
    rng = seeded_rng(11)
    datagram_w, challenge_data = encode_whoareyou_packet(
        dest_id=ra.node_id, masking_iv=rng(16), nonce=rng(12), id_nonce=rng(16), enr_seq=enr_seq
    )
    challenge = Challenge(node_of(ra), datagram_w, challenge_data, known, 1.0)
    datagram, _, session = make_handshake(
        local_key=ka, local_enr=ra, remote=node_of(rb), remote_enr=rb,
        whoareyou=decode_packet_untrusted(datagram_w, ra.node_id), plaintext=PING_PT,
        rng=seeded_rng(12),
    )
    return ka, ra, kb, rb, challenge, datagram, session


def accept(kb: PrivateKey, rb: ENR, challenge: Challenge, datagram: bytes) -> tuple[Session, bytes]:
    return accept_handshake(
        local_key=kb, local_id=rb.node_id, challenge=challenge,
        packet=decode_packet_untrusted(datagram, rb.node_id),
    )


def test_both_sides_derive_matching_sessions() -> None:
    _, ra, kb, rb, challenge, datagram, initiator = handshake_pair()
    recipient, plaintext = accept(kb, rb, challenge, datagram)
    assert plaintext == PING_PT
    assert initiator.encrypt_key == recipient.decrypt_key
    assert initiator.decrypt_key == recipient.encrypt_key
    assert initiator.encrypt_key != initiator.decrypt_key
    assert initiator.node == node_of(rb)
    assert recipient.node == node_of(ra)
    assert initiator.enr == rb
    assert recipient.enr == ra
    assert initiator.counter == 1  # the handshake message used nonce counter 1
    assert recipient.counter == 0


# --- accept_handshake rules ---------------------------------------------------------------------


def craft(
    ka: PrivateKey,
    ra: ENR,
    rb: ENR,
    challenge: Challenge,
    *,
    record: bytes | None,
    eph_pubkey: bytes | None = None,
    id_signature: bytes | None = None,
    plaintext: bytes = PING_PT,
    key: bytes | None = None,
) -> bytes:
    eph = key_for(77)
    eph_pub = eph.public_key.compressed if eph_pubkey is None else eph_pubkey
    remote_key = rb.public_key
    assert remote_key is not None
    keys = _crypto.derive_session_keys(
        _crypto.ecdh(eph, remote_key), ra.node_id, rb.node_id, challenge.challenge_data
    )
    if id_signature is None:
        id_signature = _crypto.id_sign(ka, challenge.challenge_data, eph_pub, rb.node_id)
    return encode_handshake_packet(
        dest_id=rb.node_id, src_id=ra.node_id, masking_iv=bytes(16), nonce=b"\x01" * 12,
        key=key or keys.initiator_key, plaintext=plaintext, id_signature=id_signature,
        eph_pubkey=eph_pub, record=record,
    )


def test_crafted_control_is_accepted() -> None:
    ka, ra, kb, rb, challenge, _, _ = handshake_pair()
    session, plaintext = accept(kb, rb, challenge, craft(ka, ra, rb, challenge, record=ra.to_rlp()))
    assert plaintext == PING_PT
    assert session.enr == ra


def test_no_record_and_none_known() -> None:
    ka, ra, kb, rb, challenge, _, _ = handshake_pair()
    with pytest.raises(HandshakeError, match="no record"):
        accept(kb, rb, challenge, craft(ka, ra, rb, challenge, record=None))


def test_record_of_another_node() -> None:
    ka, ra, kb, rb, challenge, _, _ = handshake_pair()
    with pytest.raises(HandshakeError, match="another node"):
        accept(kb, rb, challenge, craft(ka, ra, rb, challenge, record=rb.to_rlp()))


@pytest.mark.parametrize(
    "record",
    [b"\xc0", b"\x01\x02\x03", b"\xf8" + b"\xff" * 40],
    ids=["empty-list", "not-a-list", "truncated"],
)
def test_record_that_does_not_decode(record: bytes) -> None:
    ka, ra, kb, rb, challenge, _, _ = handshake_pair()
    with pytest.raises(HandshakeError, match="record in handshake is invalid"):
        accept(kb, rb, challenge, craft(ka, ra, rb, challenge, record=record))


def test_record_with_a_bad_signature() -> None:
    ka, ra, kb, rb, challenge, _, _ = handshake_pair()
    raw = bytearray(ra.to_rlp())
    raw[20] ^= 0x40
    with pytest.raises(HandshakeError, match="invalid"):
        accept(kb, rb, challenge, craft(ka, ra, rb, challenge, record=bytes(raw)))


def test_newer_record_in_the_handshake_wins() -> None:
    ka, ra, kb, rb, _, _, _ = handshake_pair()
    older = ENR.build(ka, 2, ip="127.0.0.1", udp=1)
    ka, ra, kb, rb, challenge, _, _ = handshake_pair(enr_seq=2, known=older)
    session, _ = accept(kb, rb, challenge, craft(ka, ra, rb, challenge, record=ra.to_rlp()))
    assert session.enr == ra


def test_older_or_equal_record_in_the_handshake_loses_to_the_known_one() -> None:
    ka, ra, _, _ = parties()
    newer = ENR.build(ka, 9, ip="127.0.0.1", udp=2)
    same_seq = ENR.build(ka, 5, ip="127.0.0.1", udp=3)
    for known in (newer, same_seq):
        ka, ra, kb, rb, challenge, _, _ = handshake_pair(enr_seq=known.seq, known=known)
        session, _ = accept(kb, rb, challenge, craft(ka, ra, rb, challenge, record=ra.to_rlp()))
        assert session.enr == known


def test_known_record_without_public_key() -> None:
    ka, ra, kb, rb, _, _, _ = handshake_pair()
    keyless = ENR.from_rlp(
        make_record([(b"id", b"v4")], key=ka, identity=False), verify=False
    )
    _, _, _, _, challenge, _, _ = handshake_pair(known=keyless)
    with pytest.raises(HandshakeError, match="public key"):
        accept(kb, rb, challenge, craft(ka, ra, rb, challenge, record=None))


def test_ephemeral_key_must_be_a_compressed_point() -> None:
    ka, ra, kb, rb, challenge, _, _ = handshake_pair()
    point = key_for(55).public_key
    for eph in (point.uncompressed, b"\x04" + point.uncompressed, b"\x05" + bytes(32), b""):
        with pytest.raises(HandshakeError, match="ephemeral key"):
            accept(kb, rb, challenge, craft(ka, ra, rb, challenge, record=ra.to_rlp(),
                                            eph_pubkey=eph))


@pytest.mark.parametrize("what", ["other-key", "other-challenge", "other-destination", "zero"])
def test_id_signature_must_verify(what: str) -> None:
    ka, ra, kb, rb, challenge, _, _ = handshake_pair()
    eph = key_for(77).public_key.compressed
    signature = {
        "other-key": _crypto.id_sign(kb, challenge.challenge_data, eph, rb.node_id),
        "other-challenge": _crypto.id_sign(ka, b"\x00" * 63, eph, rb.node_id),
        "other-destination": _crypto.id_sign(ka, challenge.challenge_data, eph, ra.node_id),
        "zero": bytes(64),
    }[what]
    with pytest.raises(HandshakeError, match="id-signature"):
        accept(kb, rb, challenge, craft(ka, ra, rb, challenge, record=ra.to_rlp(),
                                        id_signature=signature))


def test_message_must_decrypt_with_the_derived_key() -> None:
    ka, ra, kb, rb, challenge, _, _ = handshake_pair()
    with pytest.raises(DecryptionError):
        accept(kb, rb, challenge, craft(ka, ra, rb, challenge, record=ra.to_rlp(),
                                        key=b"\x00" * 16))


def test_a_handshake_for_another_challenge_fails() -> None:
    """Replaying a handshake against a later challenge (security_bar T11)."""
    _, _, kb, rb, challenge, datagram, _ = handshake_pair()
    later = Challenge(challenge.node, b"", challenge.challenge_data[:-1] + b"\x07", None, 2.0)
    with pytest.raises(HandshakeError):
        accept(kb, rb, later, datagram)
    accept(kb, rb, challenge, datagram)  # the original still matches its own challenge


# --- Session and Challenge values ---------------------------------------------------------------


def test_session_nonce_is_counter_then_random() -> None:
    session = Session(ADDR_A, b"\x01" * 16, b"\x02" * 16, None)
    rng = seeded_rng(5)
    expected_random = seeded_rng(5)
    nonces = [session.next_nonce(rng) for _ in range(3)]
    assert [int.from_bytes(n[:4], "big") for n in nonces] == [1, 2, 3]
    assert [n[4:] for n in nonces] == [expected_random(8) for _ in range(3)]
    assert all(len(n) == 12 for n in nonces)
    assert session.counter == 3


def test_session_nonce_counter_wraps_at_32_bits() -> None:
    session = Session(ADDR_A, b"\x01" * 16, b"\x02" * 16, None, counter=0xFFFFFFFE)
    assert session.next_nonce(seeded_rng(1))[:4] == b"\xff\xff\xff\xff"
    assert session.next_nonce(seeded_rng(1))[:4] == b"\x00\x00\x00\x00"
    assert session.counter == 0


def test_challenge_is_frozen() -> None:
    challenge = Challenge(ADDR_A, b"w", b"c" * 63, None, 1.0)
    assert challenge.resends == 0
    with pytest.raises(AttributeError):
        challenge.resends = 1  # type: ignore[misc]


def test_encode_message_matches_the_vector_plaintext() -> None:
    assert encode_message(Ping(b"\x00\x00\x00\x01", 1)) == PING_PT
