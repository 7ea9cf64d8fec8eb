"""A discv5 conformance tester: the seven scenarios of go-ethereum's ``devp2p discv5 test``.

Re-implemented from the tester's side (see shared/docs/conformance_scenarios.md): every test
opens a fresh tester identity with UDP listeners on two local addresses and drives the node
under test with hand-built packets, so it can send what a normal node never would (an
oversized request id, a session replayed from another address, a second undecryptable packet
while a challenge is pending). Every read waits 300 ms, like the original harness.

The tester is built from the protocol pieces directly (codec, handshake, messages) rather than
from :class:`discv5.Node`, because a well-behaved node cannot misbehave on purpose.
"""

from __future__ import annotations

import os
import re
import socket as _stdsocket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import trio

from enr import ENR, PrivateKey, _rlp

from . import _packet
from ._config import Config
from ._errors import RemoteProtocolError
from ._events import RequestReceived
from ._messages import (
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
from ._protocol import Protocol
from ._responder import nodes_responses, pong_for
from ._session import Session, make_handshake
from ._types import Address, NodeAddress, NodeId, log_distance

__all__ = ["TESTS", "ConformanceResult", "run_conformance"]

WAIT_TIME: Final = 0.3
"""How long every read waits for a reply (devp2p v5test waitTime)."""


class TestFailure(Exception):
    """A scenario's expectation was not met."""


@dataclass(frozen=True, slots=True)
class ConformanceResult:
    """Outcome of one scenario."""

    name: str
    """Scenario name, as in go-ethereum's suite."""
    passed: bool
    """Whether the node behaved as expected."""
    reason: str
    """Why it failed (empty when passed)."""
    duration: float
    """Seconds the scenario took."""


@dataclass(slots=True)
class _Reply:
    kind: str  # "whoareyou" | "message" | "timeout" | "undecryptable" | "handshake"
    packet: _packet.Packet | None = None
    message: Message | None = None


class _Listener:
    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        ip, port = sock.getsockname()[:2]
        self.address: Address = (str(ip), int(port))


class _Conn:
    """One tester identity: a fresh key, a record without endpoint, listeners, one session."""

    def __init__(self, remote: ENR, remote_address: Address, listeners: list[_Listener]) -> None:
        self.key = PrivateKey.generate()
        self.enr = ENR.build(self.key, int(time.time() * 1000))
        self.remote = remote
        self.remote_address = remote_address
        self.listeners = listeners
        self.session: Session | None = None
        self._next_id = 0

    def next_request_id(self) -> bytes:
        self._next_id += 1
        return self._next_id.to_bytes(4, "big")

    def node(self) -> NodeAddress:
        return NodeAddress(NodeId(self.remote.node_id), *self.remote_address)

    async def send_random(self, listener: _Listener) -> bytes:
        nonce = os.urandom(12)
        datagram = _packet.encode_random_packet(
            dest_id=self.remote.node_id, src_id=self.enr.node_id, masking_iv=os.urandom(16),
            nonce=nonce, random_message=os.urandom(20),
        )
        await listener.sock.sendto(datagram, self.remote_address)
        return nonce

    async def send_encrypted(self, listener: _Listener, plaintext: bytes) -> bytes:
        assert self.session is not None
        nonce = self.session.next_nonce(os.urandom)
        datagram = _packet.encode_message_packet(
            dest_id=self.remote.node_id, src_id=self.enr.node_id, masking_iv=os.urandom(16),
            nonce=nonce, key=self.session.encrypt_key, plaintext=plaintext,
        )
        await listener.sock.sendto(datagram, self.remote_address)
        return nonce

    async def send_handshake(
        self, listener: _Listener, whoareyou: _packet.Packet, plaintext: bytes
    ) -> None:
        datagram, _, session = make_handshake(
            local_key=self.key, local_enr=self.enr, remote=self.node(), remote_enr=self.remote,
            whoareyou=whoareyou, plaintext=plaintext, rng=os.urandom,
        )
        self.session = session
        await listener.sock.sendto(datagram, self.remote_address)

    async def read(self, listener: _Listener, wait: float = WAIT_TIME) -> _Reply:
        with trio.move_on_after(wait):
            while True:
                data, _ = await listener.sock.recvfrom(2048)
                try:
                    packet = _packet.decode_packet_untrusted(data, self.enr.node_id)
                except RemoteProtocolError:
                    continue
                if packet.flag is _packet.Flag.WHOAREYOU:
                    return _Reply("whoareyou", packet)
                if packet.flag is _packet.Flag.HANDSHAKE or self.session is None:
                    return _Reply("handshake" if packet.flag else "undecryptable", packet)
                for key in (self.session.decrypt_key, *self.session.old_decrypt_keys):
                    try:
                        plaintext = _packet.decrypt_message_untrusted(packet, key)
                    except RemoteProtocolError:
                        continue
                    try:
                        return _Reply("message", packet, decode_message_untrusted(plaintext))
                    except RemoteProtocolError as exc:
                        raise TestFailure(f"undecodable message from node: {exc}") from None
                return _Reply("undecryptable", packet)
        return _Reply("timeout")

    async def reqresp(self, listener: _Listener, plaintext: bytes) -> _Reply:
        """Send a request; complete a handshake if challenged; return the reply after it."""
        if self.session is None:
            nonce = await self.send_random(listener)
        else:
            nonce = await self.send_encrypted(listener, plaintext)
        reply = await self.read(listener)
        if reply.kind != "whoareyou":
            return reply
        assert reply.packet is not None
        if reply.packet.nonce != nonce:
            raise TestFailure(f"wrong nonce {reply.packet.nonce.hex()} in WHOAREYOU")
        await self.send_handshake(listener, reply.packet, plaintext)
        return await self.read(listener)

    async def findnode(self, listener: _Listener, distances: Sequence[int]) -> list[ENR]:
        request_id = self.next_request_id()
        plaintext = encode_message(FindNode(request_id, tuple(distances)))
        reply = await self.reqresp(listener, plaintext)
        records: list[ENR] = []
        total: int | None = None
        received = 0
        while True:
            if reply.kind == "message" and isinstance(reply.message, Ping):
                # The node may revalidate us meanwhile; answer as a node would.
                pong = pong_for(reply.message, self.enr, *listener.address)
                await self.send_encrypted(listener, encode_message(pong))
            elif reply.kind == "message" and isinstance(reply.message, Nodes):
                msg = reply.message
                if msg.request_id != request_id:
                    raise TestFailure("NODES with the wrong request id")
                if total is None:
                    if not 1 <= msg.total <= 6:
                        raise TestFailure(f"invalid NODES response count {msg.total}")
                    total = msg.total
                elif msg.total != total:
                    raise TestFailure("NODES total changed between messages")
                if msg.invalid_records:
                    raise TestFailure("invalid node in NODES response")
                records.extend(msg.records)
                received += 1
                if received >= total:
                    return records
            else:
                raise TestFailure(f"expected NODES, got {_describe(reply)}")
            reply = await self.read(listener)


def _describe(reply: _Reply) -> str:
    if reply.kind == "message" and reply.message is not None:
        return type(reply.message).__name__.upper()
    return {"timeout": "no reply (timeout)", "whoareyou": "WHOAREYOU"}.get(
        reply.kind, reply.kind
    )


class _Suite:
    def __init__(self, remote: ENR, listen1: str, listen2: str) -> None:
        ip, udp, _ = remote.endpoint()
        if ip is None or not udp:
            raise ValueError("the node's record has no IP address and UDP port")
        self.remote = remote
        self.remote_address: Address = (str(ip), udp)
        self.listen_ips = (listen1, listen2)
        self._sockets: list[trio.socket.SocketType] = []

    async def listener(self, index: int) -> _Listener:
        ip = self.listen_ips[index]
        sock = trio.socket.socket(
            _stdsocket.AF_INET6 if ":" in ip else _stdsocket.AF_INET, _stdsocket.SOCK_DGRAM
        )
        await sock.bind((ip, 0))
        self._sockets.append(sock)
        return _Listener(sock)

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()

    async def conn(self, *indexes: int) -> _Conn:
        return _Conn(self.remote, self.remote_address, [await self.listener(i) for i in indexes])

    # --- the scenarios ---------------------------------------------------------------------

    async def ping(self) -> None:
        """PING through a fresh handshake; the PONG must report our envelope address."""
        conn = await self.conn(0)
        l1 = conn.listeners[0]
        request_id = conn.next_request_id()
        reply = await conn.reqresp(l1, encode_message(Ping(request_id, 0)))
        _expect_pong(reply, request_id, l1)

    async def ping_large_request_id(self) -> None:
        """A PING with a 9-byte request id must get no reply at all."""
        conn = await self.conn(0)
        oversized = bytes([Ping.message_type]) + _rlp.encode([bytes(9), b""])
        reply = await conn.reqresp(conn.listeners[0], oversized)
        if reply.kind == "message" and isinstance(reply.message, Pong):
            raise TestFailure("PONG response with unknown request ID")
        if reply.kind != "timeout":
            raise TestFailure(f"expected no reply, got {_describe(reply)}")

    async def ping_multi_ip(self) -> None:
        """Sessions are bound to the endpoint: the same keys from another IP get WHOAREYOU."""
        conn = await self.conn(0, 1)
        l1, l2 = conn.listeners
        rid = conn.next_request_id()
        _expect_pong(await conn.reqresp(l1, encode_message(Ping(rid, 0))), rid, l1)
        rid = conn.next_request_id()
        plaintext = encode_message(Ping(rid, 0))
        nonce = await conn.send_encrypted(l2, plaintext)
        reply = await conn.read(l2)
        if reply.kind == "message":
            raise TestFailure(
                f"remote responded to PING from {l2.address[0]} for session on {l1.address[0]}"
            )
        if reply.kind != "whoareyou" or reply.packet is None:
            raise TestFailure(f"expected WHOAREYOU, got {_describe(reply)}")
        if reply.packet.nonce != nonce:
            raise TestFailure("wrong nonce in WHOAREYOU")
        await conn.send_handshake(l2, reply.packet, plaintext)
        _expect_pong(await conn.read(l2), rid, l2)
        rid = conn.next_request_id()
        await conn.send_encrypted(l1, encode_message(Ping(rid, 0)))
        reply = await conn.read(l1)
        if reply.kind == "message":
            raise TestFailure(
                f"remote responded to PING from {l1.address[0]} for session on {l2.address[0]}"
            )
        if reply.kind != "whoareyou":
            raise TestFailure(f"expected WHOAREYOU, got {_describe(reply)}")

    async def handshake_resend(self) -> None:
        """A second undecryptable packet while challenged: the identical WHOAREYOU again."""
        conn = await self.conn(0)
        l1 = conn.listeners[0]
        nonce1 = await conn.send_random(l1)
        first = await conn.read(l1)
        if first.kind != "whoareyou" or first.packet is None:
            raise TestFailure(f"expected WHOAREYOU, got {_describe(first)}")
        if first.packet.nonce != nonce1:
            raise TestFailure("wrong nonce in WHOAREYOU")
        await conn.send_random(l1)
        second = await conn.read(l1)
        if second.kind != "whoareyou" or second.packet is None:
            raise TestFailure(f"expected WHOAREYOU, got {_describe(second)}")
        if second.packet.nonce != nonce1:
            raise TestFailure("wrong nonce in resent WHOAREYOU (want the first packet's)")
        if second.packet.challenge_data != first.packet.challenge_data:
            raise TestFailure("wrong ChallengeData in resent WHOAREYOU")

    async def talk_request(self) -> None:
        """Unknown TALK protocol: an empty TALKRESP echoing the id, also for an empty id."""
        conn = await self.conn(0)
        l1 = conn.listeners[0]
        for request_id in (conn.next_request_id(), b""):
            msg = TalkRequest(request_id, b"test-protocol", b"")
            reply = await conn.reqresp(l1, encode_message(msg))
            if reply.kind != "message" or not isinstance(reply.message, TalkResponse):
                raise TestFailure(f"expected TALKRESP, got {_describe(reply)}")
            if reply.message.request_id != request_id:
                raise TestFailure(
                    f"wrong request ID {reply.message.request_id.hex()} in TALKRESP,"
                    f" want {request_id.hex() or 'empty byte array'}"
                )
            if reply.message.response:
                raise TestFailure("non-empty message in TALKRESP")

    async def findnode_zero_distance(self) -> None:
        """FINDNODE [0] must return exactly the node's own record."""
        conn = await self.conn(0)
        records = await conn.findnode(conn.listeners[0], [0])
        if len(records) != 1:
            raise TestFailure(f"remote returned {len(records)} records for distance 0, want 1")
        if records[0].node_id != self.remote.node_id:
            raise TestFailure("remote returned a record of another node for distance 0")

    async def findnode_results(self) -> None:
        """Nodes that contacted the node are revalidated within 60 s and then returned."""
        bystanders = [await _Bystander.open(self, i) for i in range(5)]
        try:
            records = [b.enr for b in bystanders]
            for b in bystanders:
                b.known = records
            async with trio.open_nursery() as nursery:
                for b in bystanders:
                    nursery.start_soon(b.serve)
                for b in bystanders:
                    await b.ping_remote(self.remote, self.remote_address)
                all_pinged = trio.Event()
                for b in bystanders:
                    b.on_pinged = lambda: (
                        all_pinged.set() if all(x.pinged for x in bystanders) else None
                    )
                with trio.move_on_after(60):
                    await all_pinged.wait()
                done = sum(b.pinged for b in bystanders)
                if done < len(bystanders):
                    raise TestFailure(
                        f"remote revalidated {done} bystander nodes in 60s, need 5 to continue"
                    )
                distances = sorted(
                    {log_distance(self.remote.node_id, r.node_id) for r in records}
                )
                want = {r.node_id for r in records}
                for attempt in range(5):
                    conn = await self.conn(0)
                    found = await conn.findnode(conn.listeners[0], distances)
                    if want <= {r.node_id for r in found}:
                        break
                    if attempt < 4:
                        await trio.sleep(2)
                else:
                    raise TestFailure("missing nodes in FINDNODE result after 5 attempts")
                nursery.cancel_scope.cancel()
        finally:
            for b in bystanders:
                b.sock.close()


class _Bystander:
    """A well-behaved node with its endpoint in its record (FindnodeResults)."""

    def __init__(self, sock: trio.socket.SocketType, address: Address) -> None:
        self.sock = sock
        self.address = address
        self.key = PrivateKey.generate()
        self.enr = ENR.build(self.key, 1, ip=address[0], udp=address[1])
        self.proto = Protocol(self.key, self.enr, Config(), rng=os.urandom)
        self.known: list[ENR] = []
        self.pinged = False
        self.on_pinged: Callable[[], None] = lambda: None

    @classmethod
    async def open(cls, suite: _Suite, index: int) -> _Bystander:
        listener = await suite.listener(0)
        return cls(listener.sock, listener.address)

    async def _flush(self) -> None:
        for data, address in self.proto.datagrams_to_send():
            await self.sock.sendto(data, address)

    def _answer(self) -> None:
        while (event := self.proto.next_event()) is not None:
            if not isinstance(event, RequestReceived):
                continue
            msg, peer = event.message, event.node
            if isinstance(msg, Ping):
                self.pinged = True
                self.on_pinged()
                self.proto.send_response(peer, pong_for(msg, self.enr, peer.ip, peer.port))
            elif isinstance(msg, FindNode):
                matches = [
                    r for r in self.known
                    if log_distance(self.enr.node_id, r.node_id) in msg.distances
                ]
                for response in nodes_responses(msg.request_id, matches, self.proto.config):
                    self.proto.send_response(peer, response)
            elif isinstance(msg, TalkRequest):
                self.proto.send_response(peer, TalkResponse(msg.request_id, b""))

    async def ping_remote(self, remote: ENR, address: Address) -> None:
        self.proto.send_request(remote, Ping(b"", self.enr.seq), trio.current_time(),
                                address=address)
        await self._flush()

    async def serve(self) -> None:
        while True:
            timer = self.proto.get_timer()
            with trio.move_on_at(timer if timer is not None else trio.current_time() + 1):
                data, src = await self.sock.recvfrom(2048)
                self.proto.receive_datagram(data, (str(src[0]), int(src[1])),
                                            trio.current_time())
            self.proto.handle_timer(trio.current_time())
            self._answer()
            await self._flush()


def _expect_pong(reply: _Reply, request_id: bytes, listener: _Listener) -> None:
    if reply.kind != "message" or not isinstance(reply.message, Pong):
        raise TestFailure(f"expected PONG, got {_describe(reply)}")
    pong = reply.message
    if pong.request_id != request_id:
        raise TestFailure(f"wrong request ID {pong.request_id.hex()} in PONG")
    if (str(pong.recipient_ip), pong.recipient_port) != listener.address:
        raise TestFailure(
            f"PONG reports {pong.recipient_ip}:{pong.recipient_port},"
            f" want {listener.address[0]}:{listener.address[1]}"
        )


TESTS: Final[tuple[tuple[str, Callable[[_Suite], Awaitable[None]]], ...]] = (
    ("Ping", _Suite.ping),
    ("PingLargeRequestID", _Suite.ping_large_request_id),
    ("PingMultiIP", _Suite.ping_multi_ip),
    ("HandshakeResend", _Suite.handshake_resend),
    ("TalkRequest", _Suite.talk_request),
    ("FindnodeZeroDistance", _Suite.findnode_zero_distance),
    ("FindnodeResults", _Suite.findnode_results),
)
"""The scenarios in go-ethereum's run order."""


def _first_leaf(group: BaseExceptionGroup[TestFailure]) -> TestFailure:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    assert isinstance(exc, TestFailure)
    return exc


async def run_conformance(
    remote: ENR,
    *,
    listen1: str = "127.0.0.1",
    listen2: str = "127.0.0.2",
    run: str | None = None,
    report: Callable[[ConformanceResult], None] | None = None,
) -> list[ConformanceResult]:
    """Run the scenarios against the node whose record is ``remote``.

    Args:
        remote: the node under test (its record must carry ip and udp).
        listen1, listen2: two local addresses for the tester's listeners.
        run: a regular expression; only scenarios whose name matches run.
        report: called with each result as soon as it is known.

    Raises:
        ValueError: the record has no endpoint, or ``run`` is not a valid expression.
    """
    pattern = re.compile(run) if run else None
    suite = _Suite(remote, listen1, listen2)
    results: list[ConformanceResult] = []
    for name, test in TESTS:
        if pattern is not None and not pattern.search(name):
            continue
        started = time.monotonic()
        try:
            try:
                await test(suite)
            except BaseExceptionGroup as group:  # a failure raised inside a nursery
                failures = group.subgroup(TestFailure)
                if failures is None:
                    raise
                raise _first_leaf(failures) from None
        except TestFailure as exc:
            result = ConformanceResult(name, False, str(exc), time.monotonic() - started)
        except OSError as exc:
            result = ConformanceResult(
                name, False, f"network error: {exc}", time.monotonic() - started
            )
        else:
            result = ConformanceResult(name, True, "", time.monotonic() - started)
        finally:
            suite.close()
        results.append(result)
        if report is not None:
            report(result)
    return results
