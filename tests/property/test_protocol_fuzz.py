"""Property tests of the protocol core: nothing a peer sends makes ``receive_datagram`` raise,
and no interleaving of local calls and network events leaves a request without an outcome.

- random datagrams, byte mutations of real captured datagrams (random packet, WHOAREYOU,
  handshake, message packets of a real exchange) and well-masked packets with arbitrary fields
  are fed to Protocols at every stage of an exchange;
- handshake packets with arbitrary signatures, ephemeral keys and records are fed to a node
  holding a challenge;
- arbitrary plaintexts are sent inside a valid session;
- two or three Protocols run random interleavings of sends, deliveries, duplicates, losses,
  corruption, cancellations, restarts, record updates and timer calls.

After each input the object must be consistent: bounded counts, internal indexes that agree,
a usable ``get_timer``, and every datagram it emits within 1280 bytes. All examples are
derandomized (the tests are deterministic) and small enough to run in a few seconds.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field

import rlp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discv5 import _crypto
from discv5._config import Config
from discv5._errors import LocalProtocolError
from discv5._events import (
    Event,
    PacketDropped,
    RequestFailed,
    RequestReceived,
    ResponseReceived,
    SessionEstablished,
)
from discv5._messages import FindNode, Ping, TalkRequest, encode_message
from discv5._packet import encode_handshake_packet
from discv5._protocol import Protocol, RequestState
from discv5._types import Address
from enr import ENR
from tests.core.test_protocol import (
    Peer,
    answer,
    decode_for,
    deliver,
    key_for,
    make_peer,
    raw_message,
    seeded_rng,
    session_packet,
)

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
INTERLEAVE = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- consistency --------------------------------------------------------------------------------


def check_state(proto: Protocol) -> None:
    """Assert what must hold after any input (nothing is drained)."""
    config = proto.config
    assert proto.session_count <= config.session_cache_size
    assert proto.challenge_count <= config.max_pending_challenges
    # Internal indexes agree with each other (white-box: receive_datagram, handle_timer and
    # cancel_request index into them without guards).
    pending = proto._pending
    assert all(rid in pending for rid in proto._by_nonce.values())
    for rid, p in pending.items():
        assert p.nonce is None or proto._by_nonce.get(p.nonce) == rid
    assert sum(proto._per_node.values()) == len(pending)
    assert all(count > 0 for count in proto._per_node.values())
    for node, queue in proto._queued.items():
        assert queue, "empty queues are removed"
        for rid in queue:
            assert pending[rid].state is RequestState.QUEUED
            assert pending[rid].node == node
    for node, rid in proto._handshaking.items():
        assert pending[rid].node == node
    # get_timer is exactly the next deadline of a live request or challenge.
    deadlines = [p.deadline_at for p in pending.values()]
    deadlines += [c.expires_at for c in proto._challenges.values()]
    assert proto.get_timer() == (min(deadlines) if deadlines else None)


def take_all(proto: Protocol) -> tuple[list[Event], list[tuple[bytes, Address]]]:
    """Drain events and datagrams; no datagram may exceed the packet limit."""
    events: list[Event] = []
    while (event := proto.next_event()) is not None:
        assert isinstance(event, Event)
        events.append(event)
    out = proto.datagrams_to_send()
    assert all(len(data) <= 1280 for data, _ in out)
    return events, out


def check_consistent(proto: Protocol) -> list[Event]:
    check_state(proto)
    events, _ = take_all(proto)
    return events


def drain_to_the_end(proto: Protocol, now: float) -> None:
    """Far in the future every request and challenge is gone."""
    later = now + 3600.0
    proto.handle_timer(later)
    check_state(proto)
    take_all(proto)
    assert proto.pending_count == 0
    assert proto.challenge_count == 0
    assert proto.get_timer() is None


# --- a real exchange, captured ------------------------------------------------------------------

A_SEED, B_SEED = 1, 2
STAGES = 7


def stage(n: int) -> tuple[Peer, Peer]:
    """Fresh a and b, replayed to step ``n`` of a fixed exchange (deterministic, so the
    datagrams are byte-identical to ``captured()``)."""
    a, b = make_peer(A_SEED), make_peer(B_SEED)
    if n >= 1:  # a: random packet; b holds nothing yet
        a.proto.send_request(b.enr, Ping(b"", 1), 0.0)
        a.proto.send_request(b.enr, FindNode(b"", (0, 256)), 0.0)  # queued behind it
    if n >= 2:  # b: WHOAREYOU (b holds a challenge)
        deliver(a, b, 0.0)
    if n >= 3:  # a: handshake + the queued FINDNODE (a holds a session)
        deliver(b, a, 0.0)
    if n >= 4:  # b: session, answers PING and FINDNODE
        deliver(a, b, 0.0)
        for event in b.events():
            if isinstance(event, RequestReceived):
                answer(b, event)
    if n >= 5:  # a: responses in; a sends TALKREQ in the session
        deliver(b, a, 0.0)
        a.events()
        a.proto.send_request(b.enr, TalkRequest(b"", b"p", b"x"), 0.0)
    if n >= 6:  # b answers the TALKREQ
        deliver(a, b, 0.0)
        for event in b.events():
            if isinstance(event, RequestReceived):
                answer(b, event)
    if n >= 7:  # a has every answer; nothing is pending anywhere
        deliver(b, a, 0.0)
        a.events()
    return a, b


@functools.cache
def captured() -> tuple[tuple[str, bytes], ...]:
    """(sender, datagram) for every datagram of the exchange, in order."""
    a, b = make_peer(A_SEED), make_peer(B_SEED)
    out: list[tuple[str, bytes]] = []

    def move(src: Peer, dst: Peer, name: str) -> None:
        for data in deliver(src, dst, 0.0):
            out.append((name, data))

    a.proto.send_request(b.enr, Ping(b"", 1), 0.0)
    a.proto.send_request(b.enr, FindNode(b"", (0, 256)), 0.0)
    move(a, b, "a")  # random packet
    move(b, a, "b")  # WHOAREYOU
    move(a, b, "a")  # handshake, FINDNODE
    for event in b.events():
        if isinstance(event, RequestReceived):
            answer(b, event)
    move(b, a, "b")  # PONG, NODES
    a.proto.send_request(b.enr, TalkRequest(b"", b"p", b"x"), 0.0)
    move(a, b, "a")  # TALKREQ
    for event in b.events():
        if isinstance(event, RequestReceived):
            answer(b, event)
    move(b, a, "b")  # TALKRESP
    assert [who for who, _ in out] == ["a", "b", "a", "a", "b", "b", "a", "b"]
    return tuple(out)


def test_stage_replay_matches_the_capture() -> None:
    a, b = stage(STAGES)
    assert a.proto.counters["packets_out"] == 4
    assert b.proto.counters["packets_out"] == 4
    assert a.proto.counters["responses_received"] == 3
    assert a.proto.pending_count == b.proto.pending_count == 0
    a1, _ = stage(1)
    assert [d for d, _ in a1.out()] == [captured()[0][1]]
    _, b2 = stage(2)
    assert [d for d, _ in b2.out()] == [captured()[1][1]]


@st.composite
def mutation(draw: st.DrawFn) -> tuple[int, bytes]:
    """(index of a captured datagram, mutated bytes)."""
    index = draw(st.integers(0, len(captured()) - 1))
    data = bytearray(captured()[index][1])
    kind = draw(st.sampled_from(["flip", "set", "truncate", "extend", "splice"]))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 4))):
            pos = draw(st.integers(0, len(data) - 1))
            data[pos] ^= 1 << draw(st.integers(0, 7))
    elif kind == "set":
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    elif kind == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif kind == "extend":
        data += draw(st.binary(min_size=1, max_size=64))
    else:
        start = draw(st.integers(0, len(data)))
        data[start : start + draw(st.integers(0, 40))] = draw(st.binary(max_size=40))
    return index, bytes(data)


@FUZZ
@given(mutation(), st.integers(0, STAGES), st.booleans(), st.booleans())
def test_mutated_captured_datagrams(
    mutated: tuple[int, bytes], at_stage: int, to_a: bool, from_elsewhere: bool
) -> None:
    a, b = stage(at_stage)
    target, source = (a, b) if to_a else (b, a)
    address: Address = ("127.0.0.3", 1234) if from_elsewhere else source.address
    _, data = mutated
    target.proto.receive_datagram(data, address, 0.1)
    check_consistent(target.proto)
    drain_to_the_end(target.proto, 0.1)


@FUZZ
@given(st.integers(0, len(captured()) - 1), st.integers(0, STAGES), st.booleans())
def test_unmodified_captured_datagrams_replayed_at_any_stage(
    index: int, at_stage: int, to_a: bool
) -> None:
    """Replays (security_bar T11): a datagram out of its place never raises, and a replayed
    response never produces a second outcome."""
    a, b = stage(at_stage)
    target = a if to_a else b
    source = b if to_a else a
    check_consistent(target.proto)
    target.proto.receive_datagram(captured()[index][1], source.address, 0.2)
    events = check_consistent(target.proto)
    drain_to_the_end(target.proto, 0.2)
    if at_stage == STAGES:
        # Everything was already answered or has its outcome: replays are dropped or
        # challenged, never re-reported as responses.
        assert not [e for e in events if isinstance(e, ResponseReceived)]


@FUZZ
@given(st.binary(max_size=1400), st.integers(0, STAGES), st.booleans())
def test_random_datagrams(data: bytes, at_stage: int, to_a: bool) -> None:
    a, b = stage(at_stage)
    target, source = (a, b) if to_a else (b, a)
    target.proto.receive_datagram(data, source.address, 0.1)
    events = check_consistent(target.proto)
    assert [type(e) for e in events] == [PacketDropped]
    drain_to_the_end(target.proto, 0.1)


@st.composite
def masked_packet(
    draw: st.DrawFn, receiver_id: bytes, sender_id: bytes, nonces: list[bytes]
) -> bytes:
    """A correctly masked packet for ``receiver_id`` with arbitrary flag, nonce and authdata."""
    flag = draw(st.integers(0, 3))
    nonce = draw(st.sampled_from(nonces) | st.binary(min_size=12, max_size=12))
    if flag == 0:
        authdata = draw(st.just(sender_id) | st.binary(max_size=40))
    elif flag == 1:
        authdata = draw(st.binary(min_size=24, max_size=24) | st.binary(max_size=30))
    else:
        head = sender_id + bytes([draw(st.integers(0, 80)), draw(st.integers(0, 40))])
        authdata = draw(st.just(head) | st.binary(max_size=4)) + draw(st.binary(max_size=140))
    version = draw(st.sampled_from([1, 1, 1, 0, 2]))
    size = draw(st.just(len(authdata)) | st.integers(0, 0xFFFF))
    header = struct.pack(">6sHB12sH", b"discv5", version, flag, nonce, size) + authdata
    iv = draw(st.binary(min_size=16, max_size=16))
    body = draw(st.binary(max_size=120))
    return iv + _crypto.aes_ctr(receiver_id[:16], iv, header) + body


@FUZZ
@given(st.data(), st.integers(0, STAGES), st.booleans())
def test_well_masked_packets_with_arbitrary_fields(
    data: st.DataObject, at_stage: int, to_a: bool
) -> None:
    a, b = stage(at_stage)
    target, source = (a, b) if to_a else (b, a)
    # Nonces the target is waiting on make WHOAREYOUs reach the handshake code.
    nonces = list(target.proto._by_nonce) or [bytes(12)]
    packet = data.draw(masked_packet(target.id, source.id, nonces))
    target.proto.receive_datagram(packet, source.address, 0.1)
    check_consistent(target.proto)
    drain_to_the_end(target.proto, 0.1)


@FUZZ
@given(
    st.binary(max_size=80) | st.just(b"valid"),
    st.binary(max_size=70) | st.just(b"valid"),
    st.sampled_from(["none", "own", "other", "garbage", "truncated"]),
    st.binary(max_size=40),
    st.booleans(),
)
def test_handshakes_with_arbitrary_authdata(
    signature: bytes, eph_pubkey: bytes, record: str, garbage: bytes, right_key: bool
) -> None:
    a, b = stage(2)  # b holds a challenge for a; a received nothing yet
    [(whoareyou, _)] = b.out()
    challenge_data = decode_for(whoareyou, a).challenge_data
    eph = key_for(4242)
    eph_pub = eph.public_key.compressed if eph_pubkey == b"valid" else eph_pubkey
    if signature == b"valid":
        signature = _crypto.id_sign(a.key, challenge_data, eph_pub, b.id)
    keys = _crypto.derive_session_keys(
        _crypto.ecdh(eph, b.key.public_key), a.id, b.id, challenge_data
    )
    record_bytes = {
        "none": None,
        "own": a.enr.to_rlp(),
        "other": ENR.build(key_for(9), 1, ip="127.0.0.1", udp=9).to_rlp(),
        "garbage": garbage or None,
        "truncated": a.enr.to_rlp()[: max(1, len(garbage))],
    }[record]
    packet = encode_handshake_packet(
        dest_id=b.id, src_id=a.id, masking_iv=bytes(16), nonce=b"\x01" * 12,
        key=keys.initiator_key if right_key else bytes(16),
        plaintext=encode_message(Ping(b"\x01", 1)), id_signature=signature,
        eph_pubkey=eph_pub, record=record_bytes,
    )
    b.proto.receive_datagram(packet, a.address, 0.1)
    events = check_consistent(b.proto)
    assert b.proto.challenge_count == 0  # consumed, whatever the outcome
    established = [e for e in events if isinstance(e, SessionEstablished)]
    if established:
        assert established[0].enr == a.enr
        assert b.proto.session(a.at()) is not None
    else:
        assert b.proto.session(a.at()) is None
        assert [type(e) for e in events] == [PacketDropped]
    drain_to_the_end(b.proto, 0.1)


def _uint_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


rlp_items: st.SearchStrategy[object] = st.recursive(
    st.binary(max_size=12) | st.integers(0, 2**70).map(_uint_bytes),
    lambda children: st.lists(children, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(
    st.binary(max_size=300)
    | st.builds(
        lambda t, items: raw_message(t, *items),
        st.integers(0, 12),
        st.lists(rlp_items, max_size=5),
    )
    | st.builds(
        lambda t, rid, rest: raw_message(t, rid, *rest),
        st.integers(1, 6),
        st.binary(max_size=10),
        st.lists(rlp_items, max_size=3),
    ),
    st.booleans(),
)
def test_arbitrary_plaintexts_inside_a_session(plaintext: bytes, to_a: bool) -> None:
    a, b = stage(5)  # sessions both ways; a waits for a TALKRESP
    target, source = (a, b) if to_a else (b, a)
    target.proto.receive_datagram(session_packet(source, target, plaintext), source.address, 0.1)
    events = check_consistent(target.proto)
    assert len(events) <= 1
    assert target.out() == []  # a message is never answered by the core itself
    drain_to_the_end(target.proto, 0.1)


def test_rlp_strategy_produces_encodable_items() -> None:
    assert rlp.encode([b"", [b"\x01"]]) == b"\xc3\x80\xc1\x01"


# --- random interleavings -----------------------------------------------------------------------

Op = tuple[str, int, int, int]
OP_NAMES = [
    "send", "send", "send", "send", "deliver", "deliver", "deliver", "deliver", "deliver",
    "deliver", "duplicate", "drop", "corrupt", "misroute", "advance", "advance", "cancel",
    "restart", "update",
]
OPS: st.SearchStrategy[Op] = st.tuples(
    st.sampled_from(OP_NAMES), st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000)
)
STEPS = [0.0, 0.01, 0.3, 0.69, 0.7, 1.0, 2.5]
MESSAGES: list[Ping | FindNode | TalkRequest] = [
    Ping(b"", 1), FindNode(b"", (0, 256, 255)), TalkRequest(b"", b"t", b"hi"),
]


@dataclass
class Sim:
    """Three Protocols, a wire of datagrams in flight, and the outcome of every request."""

    peers: list[Peer]
    now: float = 0.0
    wire: list[tuple[bytes, Address, Address]] = field(default_factory=list)
    outcomes: dict[bytes, Event] = field(default_factory=dict)
    live: dict[bytes, int] = field(default_factory=dict)
    """request id -> index of the sender, unless cancelled or lost with a restart."""
    restarts: int = 0

    def flush(self) -> None:
        for i, peer in enumerate(self.peers):
            check_state(peer.proto)
            for event in take_events(peer):
                if isinstance(event, RequestReceived):
                    answer(peer, event)
                elif isinstance(event, (ResponseReceived, RequestFailed)):
                    assert self.live.get(event.request_id) == i, "outcome of an unknown request"
                    assert event.request_id not in self.outcomes, "second outcome"
                    self.outcomes[event.request_id] = event
            _, out = take_all(peer.proto)
            self.wire += [(data, peer.address, dst) for data, dst in out]

    def receive(self, data: bytes, src: Address, dst: Address) -> None:
        for peer in self.peers:
            if peer.address == dst:
                peer.proto.receive_datagram(data, src, self.now)

    def restart(self, i: int) -> None:
        """Peer i loses all state; it comes back with the same key and a newer record."""
        old = self.peers[i]
        self.restarts += 1
        record = old.proto.local_enr.updated(old.key)
        proto = Protocol(
            old.key, record, old.proto.config, rng=seeded_rng(1_000_000 + self.restarts),
            known_enr=old.known.get,
        )
        self.peers[i] = Peer(old.key, record, proto, old.address, old.known)
        for rid in [rid for rid, owner in self.live.items() if owner == i]:
            if rid not in self.outcomes:
                del self.live[rid]

    def apply(self, op: Op) -> None:
        name, x, y, z = op
        if name == "send":
            i, j = x % 3, (x % 3 + 1 + y % 2) % 3
            sender, receiver = self.peers[i], self.peers[j]
            try:
                rid = sender.proto.send_request(
                    receiver.proto.local_enr, MESSAGES[z % 3], self.now
                )
            except LocalProtocolError:
                limit = sender.proto.config.max_pending_requests_per_node
                assert sender.proto._per_node[receiver.at()] >= limit
            else:
                assert rid not in self.live
                self.live[rid] = i
        elif name == "advance":
            self.now += STEPS[x % len(STEPS)]
            for peer in self.peers:
                timer = peer.proto.get_timer()
                if timer is not None and timer <= self.now:
                    peer.proto.handle_timer(self.now)
        elif name == "cancel":
            mine = [rid for rid, owner in self.live.items() if owner == x % 3]
            if mine:
                rid = mine[y % len(mine)]
                self.peers[x % 3].proto.cancel_request(rid, self.now)
                if rid not in self.outcomes:
                    del self.live[rid]
        elif name == "restart":
            self.restart(x % 3)
        elif name == "update":
            peer = self.peers[x % 3]
            peer.proto.update_local_enr(peer.proto.local_enr.updated(peer.key))
        elif self.wire:
            index = x % len(self.wire)
            data, src, dst = self.wire[index]
            if name != "duplicate":
                del self.wire[index]
            if name == "corrupt":
                pos = y % len(data)
                data = data[:pos] + bytes([data[pos] ^ (1 + z % 255)]) + data[pos + 1 :]
            elif name == "misroute":
                src = (src[0], src[1] + 1)
            if name != "drop":
                self.receive(data, src, dst)
        self.flush()

    def settle(self) -> None:
        """Deliver everything in flight, then run the clock out."""
        for _ in range(20):
            for _ in range(500):
                if not self.wire:
                    break
                data, src, dst = self.wire.pop(0)
                self.receive(data, src, dst)
                self.flush()
            assert not self.wire, "datagrams keep bouncing"
            self.now += 1.0
            for peer in self.peers:
                peer.proto.handle_timer(self.now)
            self.flush()


def take_events(peer: Peer) -> list[Event]:
    events: list[Event] = []
    while (event := peer.proto.next_event()) is not None:
        events.append(event)
    return events


def make_sim() -> Sim:
    small = Config(max_pending_requests_per_node=3, session_cache_size=1)
    normal = Config(max_pending_requests_per_node=3)
    peers = [make_peer(1, config=small), make_peer(2, config=normal), make_peer(3, config=normal)]
    return Sim(peers)


@INTERLEAVE
@given(st.lists(OPS, min_size=10, max_size=50))
def test_random_interleavings_of_three_protocols(ops: list[Op]) -> None:
    sim = make_sim()
    for op in ops:
        sim.apply(op)
    sim.settle()
    for peer in sim.peers:
        drain_to_the_end(peer.proto, sim.now)
    # Every request still owned by a running Protocol got exactly one outcome (duplicates are
    # caught in flush); cancelled ones got none.
    assert [rid for rid in sim.live if rid not in sim.outcomes] == []


def test_interleaving_without_faults_answers_everything() -> None:
    """Control for the property above: with nothing lost, every request succeeds."""
    sim = make_sim()
    for i in range(3):
        for j in range(3):
            if i != j:
                for message in MESSAGES:
                    rid = sim.peers[i].proto.send_request(sim.peers[j].enr, message, 0.0)
                    sim.live[rid] = i
    sim.flush()
    sim.settle()
    assert len(sim.outcomes) == 18
    # Peer 0 keeps one session: its two peers' answers can arrive after an eviction, so only
    # the others are guaranteed to succeed.
    for rid, owner in sim.live.items():
        if owner != 0:
            assert isinstance(sim.outcomes[rid], ResponseReceived), sim.outcomes[rid]
