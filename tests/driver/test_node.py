"""Driver tests for two or a handful of nodes on the fake network and trio's autojump clock.

Every node gets a seeded key and a seeded ``rng``; the fake network delivers at once, so the
only passage of time is the virtual one (timeouts, handler deadlines), and every run is
identical. Where a test needs bytes no well-behaved node would send, it drives a bare sans-IO
``Protocol`` (:class:`RawPeer`) over a fake socket and builds the packet by hand.
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import cast

import pytest
import rlp
import trio
import trio.testing

from discv5 import (
    Config,
    Event,
    Node,
    NodeAddress,
    NodeId,
    Ping,
    Pong,
    Protocol,
    RequestFailed,
    RequestRejected,
    RequestTimeout,
    ResponseReceived,
    log_distance,
    open_node,
)
from discv5._packet import encode_message_packet, encode_whoareyou_packet
from enr import ENR

from .fakenet import FakeNetwork, FakeSocket, make_key, seeded_rng

Clock = trio.testing.MockClock


@asynccontextmanager
async def node_on(
    net: FakeNetwork,
    seed: int,
    *,
    config: Config | None = None,
    sock: FakeSocket | None = None,
    maintain: bool = False,
    external: tuple[str, int] | None = None,
) -> AsyncIterator[Node]:
    """A node with key and rng derived from ``seed``, on a fresh socket of ``net``."""
    async with open_node(
        make_key(seed),
        sock=sock if sock is not None else net.socket(),
        config=config,
        seq=1,
        rng=seeded_rng(seed + 10_000),
        maintain=maintain,
        external=external,
    ) as node:
        yield node


async def settle(seconds: float = 5.0) -> None:
    """Let background work (revalidation pings, record fetches) finish, in virtual time."""
    await trio.sleep(seconds)


class RawPeer:
    """A bare sans-IO :class:`Protocol` on a fake socket, driven step by step by the test."""

    def __init__(self, net: FakeNetwork, seed: int) -> None:
        self.key = make_key(seed)
        self.rng = seeded_rng(seed + 10_000)
        self.sock = net.socket()
        ip, port = self.sock.address
        self.enr = ENR.build(self.key, 1, ip=ip, udp=port)
        self.proto = Protocol(self.key, self.enr, Config(), rng=self.rng)
        self.events: list[Event] = []

    async def flush(self) -> None:
        for data, address in self.proto.datagrams_to_send():
            await self.sock.sendto(data, address)

    async def run_until_outcome(self, request_id: bytes) -> Event:
        """Feed received datagrams and timers to the core until ``request_id`` is settled."""
        while True:
            await self.flush()
            for event in self._take_events():
                if isinstance(event, (ResponseReceived, RequestFailed)) and (
                    event.request_id == request_id
                ):
                    return event
            deadline = self.proto.get_timer()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                data, src = await self.sock.recvfrom(2048)
                self.proto.receive_datagram(data, src, trio.current_time())
                continue
            self.proto.handle_timer(trio.current_time())

    async def request(self, enr: ENR, message: Ping) -> Event:
        request_id = self.proto.send_request(enr, message, trio.current_time())
        return await self.run_until_outcome(request_id)

    async def received_within(self, seconds: float) -> list[bytes]:
        """Every datagram that arrives within ``seconds`` of virtual time."""
        got: list[bytes] = []
        with trio.move_on_after(seconds):
            while True:
                data, _ = await self.sock.recvfrom(2048)
                got.append(data)
        return got

    def _take_events(self) -> list[Event]:
        out = []
        while (event := self.proto.next_event()) is not None:
            self.events.append(event)
            out.append(event)
        return out


# --- PING / FINDNODE / request_enr ----------------------------------------------------------


async def test_ping_returns_pong_with_the_observed_endpoint(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        pong = await a.ping(b.local_enr)
        assert isinstance(pong, Pong)
        assert pong.enr_seq == b.local_enr.seq == 1
        assert (str(pong.recipient_ip), pong.recipient_port) == a.address
        stats_a, stats_b = a.statistics(), b.statistics()
        assert stats_a.handshakes_outbound == 1
        assert stats_b.handshakes_inbound == 1
        assert stats_a.sessions == stats_b.sessions == 1
        # A second ping reuses the session: no further handshake.
        await a.ping(b.local_enr)
        assert a.statistics().handshakes_outbound == 1
        assert b.statistics().handshakes_inbound == 1


async def test_ping_answers_in_both_directions_over_one_session(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        await a.ping(b.local_enr)
        pong = await b.ping(a.local_enr)
        assert pong.enr_seq == a.local_enr.seq
        assert (str(pong.recipient_ip), pong.recipient_port) == b.address
        assert a.statistics().handshakes_inbound == 0
        assert b.statistics().handshakes_outbound == 0


async def test_find_node_zero_returns_the_exact_current_record(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        assert await a.find_node(b.local_enr, [0]) == [b.local_enr]
        new = b.update_enr(tcp=30303)
        records = await a.find_node(b.local_enr, [0])
        assert records == [new]
        assert records[0].to_rlp() == b.local_enr.to_rlp()
        assert records[0].seq == 2
        assert records[0].tcp == 30303
        # Duplicate distances give the record once.
        assert await a.find_node(b.local_enr, [0, 0]) == [new]


async def test_find_node_returns_live_entries_at_the_asked_distance(
    autojump_clock: Clock,
) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b, node_on(net, 3) as c:
        await b.ping(c.local_enr)  # B now holds C as a live entry
        await settle()
        entry = b.table.entry(c.node_id)
        assert entry is not None
        assert entry.live
        d = log_distance(b.node_id, c.node_id)
        assert await a.find_node(b.local_enr, [d]) == [c.local_enr]
        assert await a.find_node(b.local_enr, [0, d]) == [b.local_enr, c.local_enr]
        other = 256 if d != 256 else 255
        assert await a.find_node(b.local_enr, [other]) == []


async def test_request_enr_fetches_the_current_record(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        assert await a.request_enr(b.local_enr) == b.local_enr
        b.update_enr(tcp=9000)
        fetched = await a.request_enr(b.local_enr)
        assert fetched == b.local_enr
        assert fetched.seq == 2


async def test_ping_through_an_explicit_address(autojump_clock: Clock) -> None:
    """A record without an endpoint is usable when the caller names the address."""
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        bare = ENR.build(make_key(2), 1)  # B's key, no ip/udp
        assert bare.node_id == b.node_id
        pong = await a.ping(bare, address=b.address)
        assert pong.enr_seq == 1


# --- TALK -----------------------------------------------------------------------------------


async def test_talk_with_a_registered_handler(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    seen: list[tuple[NodeAddress, ENR | None, bytes]] = []

    async def echo(peer: NodeAddress, enr: ENR | None, payload: bytes) -> bytes:
        seen.append((peer, enr, payload))
        return b"echo:" + payload

    async with node_on(net, 1) as a, node_on(net, 2) as b:
        b.register_talk_handler(b"echo", echo)
        assert await a.talk(b.local_enr, b"echo", b"hello") == b"echo:hello"
        assert await a.talk(b.local_enr, b"echo", b"") == b"echo:"
        assert len(seen) == 2
        peer, enr, payload = seen[0]
        assert peer == NodeAddress(NodeId(a.node_id), *a.address)
        assert enr == a.local_enr
        assert payload == b"hello"
        b.unregister_talk_handler(b"echo")
        assert await a.talk(b.local_enr, b"echo", b"again") == b""
        assert len(seen) == 2


async def test_talk_unknown_protocol_gets_an_empty_response(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        t0 = trio.current_time()
        assert await a.talk(b.local_enr, b"nobody-home", b"payload") == b""
        assert trio.current_time() == t0  # answered at once, not by a timeout


async def test_talk_handler_that_raises_gets_an_empty_response(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    calls = 0

    async def broken(peer: NodeAddress, enr: ENR | None, payload: bytes) -> bytes:
        nonlocal calls
        calls += 1
        raise ValueError("handler bug")

    async def fine(peer: NodeAddress, enr: ENR | None, payload: bytes) -> bytes:
        return payload[::-1]

    async with node_on(net, 1) as a, node_on(net, 2) as b:
        b.register_talk_handler(b"broken", broken)
        b.register_talk_handler(b"fine", fine)
        assert await a.talk(b.local_enr, b"broken", b"x") == b""
        assert await a.talk(b.local_enr, b"broken", b"y") == b""
        assert calls == 2
        # The node is still fully alive.
        assert await a.talk(b.local_enr, b"fine", b"abc") == b"cba"
        assert (await a.ping(b.local_enr)).enr_seq == 1
        assert (await b.ping(a.local_enr)).enr_seq == 1


async def test_slow_talk_handler_gets_an_empty_response_after_its_timeout(
    autojump_clock: Clock,
) -> None:
    net = FakeNetwork()
    config = Config(talk_handler_timeout=0.25)
    finished = False

    async def slow(peer: NodeAddress, enr: ENR | None, payload: bytes) -> bytes:
        nonlocal finished
        await trio.sleep(60)
        finished = True
        return b"too late"

    async with node_on(net, 1) as a, node_on(net, 2, config=config) as b:
        b.register_talk_handler(b"slow", slow)
        await a.ping(b.local_enr)  # set up the session first so only the handler's time counts
        t0 = trio.current_time()
        assert await a.talk(b.local_enr, b"slow", b"x") == b""
        assert trio.current_time() - t0 == pytest.approx(config.talk_handler_timeout)
        await settle(120)
        assert not finished  # the handler was cancelled, not left running
        assert b.statistics().talk_dropped == 0


async def test_slow_talk_handler_answered_in_time_with_default_config(
    autojump_clock: Clock,
) -> None:
    """With default configs on both sides, a handler that overruns still produces the empty
    TALKRESP *before* the requester gives up (go-ethereum peers also wait 0.7 s)."""
    net = FakeNetwork()

    async def stuck(peer: NodeAddress, enr: ENR | None, payload: bytes) -> bytes:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async with node_on(net, 1) as a, node_on(net, 2) as b:
        b.register_talk_handler(b"stuck", stuck)
        await a.ping(b.local_enr)
        assert await a.talk(b.local_enr, b"stuck", b"x") == b""


async def test_talk_handler_returning_a_non_bytes_value_gets_an_empty_response(
    autojump_clock: Clock,
) -> None:
    """A handler that breaks its contract by returning ``str`` or ``None`` is a failing
    handler like one that raises: the peer gets an empty TALKRESP and the node stays up."""
    net = FakeNetwork()

    async def text(peer: NodeAddress, enr: ENR | None, payload: bytes) -> bytes:
        return cast(bytes, "not bytes")

    async def nothing(peer: NodeAddress, enr: ENR | None, payload: bytes) -> bytes:
        return cast(bytes, None)

    async with node_on(net, 1) as a, node_on(net, 2) as b:
        b.register_talk_handler(b"text", text)
        b.register_talk_handler(b"none", nothing)
        assert await a.talk(b.local_enr, b"text", b"x") == b""
        assert await a.talk(b.local_enr, b"none", b"x") == b""
        assert (await a.ping(b.local_enr)).enr_seq == 1


async def test_talk_response_too_large_for_a_packet_gets_an_empty_response(
    autojump_clock: Clock,
) -> None:
    """A TALKRESP payload that cannot fit in one 1280-byte packet cannot be sent; the peer
    must still get an answer (an empty one, as for any failing handler), not a timeout."""
    net = FakeNetwork()

    async def huge(peer: NodeAddress, enr: ENR | None, payload: bytes) -> bytes:
        return b"x" * 2000

    async def fits(peer: NodeAddress, enr: ENR | None, payload: bytes) -> bytes:
        return b"y" * 1000

    async with node_on(net, 1) as a, node_on(net, 2) as b:
        b.register_talk_handler(b"huge", huge)
        b.register_talk_handler(b"fits", fits)
        assert await a.talk(b.local_enr, b"fits", b"") == b"y" * 1000
        t0 = trio.current_time()
        assert await a.talk(b.local_enr, b"huge", b"") == b""
        assert trio.current_time() == t0
        assert (await a.ping(b.local_enr)).enr_seq == 1


async def test_talk_requests_beyond_max_talk_handlers_are_dropped(
    autojump_clock: Clock,
) -> None:
    net = FakeNetwork()
    config = Config(max_talk_handlers=1, talk_handler_timeout=0.5)
    entered = trio.Event()

    async def busy(peer: NodeAddress, enr: ENR | None, payload: bytes) -> bytes:
        entered.set()
        await trio.sleep(0.2)
        return b"done:" + payload

    async with node_on(net, 1) as a, node_on(net, 2, config=config) as b:
        b.register_talk_handler(b"busy", busy)
        await a.ping(b.local_enr)
        results: dict[str, bytes | Exception] = {}

        async def talk(name: str) -> None:
            try:
                results[name] = await a.talk(b.local_enr, b"busy", name.encode())
            except RequestTimeout as exc:
                results[name] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(talk, "first")
            await entered.wait()
            nursery.start_soon(talk, "second")
        assert results["first"] == b"done:first"
        assert isinstance(results["second"], RequestTimeout)
        assert b.statistics().talk_dropped == 1
        # Once the first handler is done, requests are served again.
        assert await a.talk(b.local_enr, b"busy", b"third") == b"done:third"


# --- failures -------------------------------------------------------------------------------


async def test_unreachable_node_times_out_after_request_timeout(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    config = Config(request_timeout=2.5)
    ghost = ENR.build(make_key(99), 1, ip="127.0.0.1", udp=9)  # nobody listens there
    async with node_on(net, 1, config=config) as a:
        for call in (
            lambda: a.ping(ghost),
            lambda: a.find_node(ghost, [256]),
            lambda: a.talk(ghost, b"p", b"x"),
            lambda: a.request_enr(ghost),
        ):
            t0 = trio.current_time()
            with pytest.raises(RequestTimeout):
                await call()
            elapsed = trio.current_time() - t0
            assert elapsed == pytest.approx(config.request_timeout)
        stats = a.statistics()
        assert stats.timeouts == 4
        assert stats.pending_requests == 0


async def test_default_request_timeout(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    ghost = ENR.build(make_key(99), 1, ip="127.0.0.1", udp=9)
    async with node_on(net, 1) as a:
        t0 = trio.current_time()
        with pytest.raises(RequestTimeout):
            await a.ping(ghost)
        assert trio.current_time() - t0 == pytest.approx(a.config.request_timeout)


async def test_record_without_endpoint_is_rejected(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    bare = ENR.build(make_key(5), 1)
    no_udp = ENR.build(make_key(6), 1, ip="127.0.0.1")
    async with node_on(net, 1) as a:
        for record in (bare, no_udp):
            t0 = trio.current_time()
            with pytest.raises(RequestRejected):
                await a.ping(record)
            with pytest.raises(RequestRejected):
                await a.find_node(record, [0])
            with pytest.raises(RequestRejected):
                await a.talk(record, b"p", b"")
            assert trio.current_time() == t0  # refused at once
        assert a.statistics().pending_requests == 0
        assert a.statistics().packets_out == 0


async def test_request_to_ourselves_is_rejected(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a:
        with pytest.raises(RequestRejected):
            await a.ping(a.local_enr)
        with pytest.raises(RequestRejected):
            await a.find_node(a.local_enr, [0])
        with pytest.raises(RequestRejected):
            await a.talk(a.local_enr, b"p", b"")
        assert a.statistics().pending_requests == 0
        assert a.statistics().packets_out == 0


async def test_too_many_requests_in_flight_to_one_node_are_rejected(
    autojump_clock: Clock,
) -> None:
    net = FakeNetwork()
    ghost = ENR.build(make_key(99), 1, ip="127.0.0.1", udp=9)
    async with node_on(net, 1) as a:
        limit = a.config.max_pending_requests_per_node
        outcomes: list[type[Exception]] = []

        async def ping() -> None:
            try:
                await a.ping(ghost)
            except (RequestTimeout, RequestRejected) as exc:
                outcomes.append(type(exc))

        async with trio.open_nursery() as nursery:
            for _ in range(limit + 2):
                nursery.start_soon(ping)
        assert outcomes.count(RequestRejected) == 2
        assert outcomes.count(RequestTimeout) == limit
        assert a.statistics().pending_requests == 0


async def test_send_errors_are_counted_and_the_request_times_out(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    ghost = ENR.build(make_key(99), 1, ip="127.0.0.1", udp=9)
    net.refuse.add(("127.0.0.1", 9))
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        with pytest.raises(RequestTimeout):
            await a.ping(ghost)
        assert a.statistics().send_errors == 1
        assert (await a.ping(b.local_enr)).enr_seq == 1


# --- cancellation ---------------------------------------------------------------------------


async def test_cancelled_ping_to_unreachable_node_leaves_nothing_behind(
    autojump_clock: Clock,
) -> None:
    net = FakeNetwork()
    ghost = ENR.build(make_key(99), 1, ip="127.0.0.1", udp=9)
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        with trio.move_on_after(0.3) as scope:
            await a.ping(ghost)
        assert scope.cancelled_caught
        assert a.statistics().pending_requests == 0
        assert a._waiters == {}
        await settle()  # past the request timeout: nothing fires for the cancelled request
        assert a.statistics().timeouts == 0
        assert (await a.ping(b.local_enr)).enr_seq == 1
        assert a.statistics().pending_requests == 0


async def test_cancelled_ping_within_a_session_leaves_nothing_behind(
    autojump_clock: Clock,
) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        await a.ping(b.local_enr)
        await settle()  # the driver's own check of the new entry is done
        assert a.statistics().pending_requests == 0
        with trio.move_on_after(0) as scope:
            await a.ping(b.local_enr)
        assert scope.cancelled_caught
        assert a.statistics().pending_requests == 0
        assert a._waiters == {}
        await settle()
        # The PONG to the forgotten request is dropped, not matched to anything else.
        assert a.statistics().drops.get("unsolicited-response", 0) <= 1
        assert a.statistics().timeouts == 0
        assert (await a.ping(b.local_enr)).enr_seq == 1
        assert await a.talk(b.local_enr, b"x", b"") == b""


async def test_cancelled_find_node_leaves_nothing_behind(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        with trio.move_on_after(0):
            await a.find_node(b.local_enr, [0])
        assert a.statistics().pending_requests == 0
        assert a._waiters == {}
        await settle()
        assert a.statistics().pending_requests == 0
        assert await a.find_node(b.local_enr, [0]) == [b.local_enr]


async def test_ping_right_after_a_cancelled_first_contact_succeeds(
    autojump_clock: Clock,
) -> None:
    """Cancel the very first request to a peer while its handshake is under way, then ask
    again at once: the new request must be answered.

    The peer still holds the WHOAREYOU it sent for the cancelled request and repeats it
    (go-ethereum's HandshakeResend behaviour) for the new request's random packet; the new
    request must not be left to time out because of a cancellation the peer knows nothing of.
    """
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        with trio.move_on_after(0) as scope:
            await a.ping(b.local_enr)
        assert scope.cancelled_caught
        assert a.statistics().pending_requests == 0
        assert a._waiters == {}
        pong = await a.ping(b.local_enr)
        assert pong.enr_seq == 1


async def test_node_works_once_the_peers_challenge_of_a_cancelled_contact_expired(
    autojump_clock: Clock,
) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        with trio.move_on_after(0):
            await a.ping(b.local_enr)
        await settle(b.config.handshake_timeout + 1)
        assert a.statistics().pending_requests == 0
        assert (await a.ping(b.local_enr)).enr_seq == 1


# --- record updates -------------------------------------------------------------------------


async def test_update_enr_bumps_seq_and_a_pinging_peer_fetches_it(
    autojump_clock: Clock,
) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        await a.ping(b.local_enr)
        await settle()
        known = a.table.get(b.node_id)
        assert known is not None
        assert known.seq == 1
        new = b.update_enr(tcp=30303)
        assert new.seq == 2
        assert b.local_enr == new
        assert b.local_enr.tcp == 30303
        assert (b.local_enr.ip, b.local_enr.udp) == (ipaddress.ip_address(b.address[0]),
                                                     b.address[1])
        pong = await a.ping(known)
        assert pong.enr_seq == 2
        await settle()
        fetched = a.table.get(b.node_id)
        assert fetched == new
        assert fetched is not None
        assert fetched.tcp == 30303


async def test_ping_with_a_higher_seq_makes_the_responder_fetch_the_record(
    autojump_clock: Clock,
) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        await a.ping(b.local_enr)  # A holds B's seq 1 record in its table
        await settle()
        new = b.update_enr(tcp=4000)
        await b.ping(a.local_enr)  # carries enr-seq 2 in the PING
        await settle()
        assert a.table.get(b.node_id) == new


async def test_pinned_external_address_never_changes(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    external = ("198.51.100.77", 9000)
    nat = net.socket("10.0.0.5", 30303, public=("203.0.113.5", 40404))
    async with AsyncExitStack() as stack:
        n = await stack.enter_async_context(node_on(net, 1, sock=nat, external=external))
        peers = [await stack.enter_async_context(node_on(net, 100 + i)) for i in range(12)]
        assert (str(n.local_enr.ip), n.local_enr.udp) == external
        for peer in peers:
            pong = await n.ping(peer.local_enr)
            assert (str(pong.recipient_ip), pong.recipient_port) == ("203.0.113.5", 40404)
        await settle()
        assert n.local_enr.seq == 1
        assert (str(n.local_enr.ip), n.local_enr.udp) == external


async def test_pong_votes_move_the_record_to_the_public_endpoint(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    public = ("203.0.113.5", 40404)
    nat = net.socket("10.0.0.5", 30303, public=public)
    async with AsyncExitStack() as stack:
        n = await stack.enter_async_context(node_on(net, 1, sock=nat))
        peers = [await stack.enter_async_context(node_on(net, 100 + i)) for i in range(12)]
        assert (str(n.local_enr.ip), n.local_enr.udp) == ("10.0.0.5", 30303)
        needed = n.config.ip_vote_min_votes
        for peer in peers[: needed - 1]:
            await n.ping(peer.local_enr)
        await settle()
        assert n.local_enr.seq == 1  # not enough distinct voters yet
        for peer in peers[needed - 1 :]:
            await n.ping(peer.local_enr)
        await settle()
        assert (str(n.local_enr.ip), n.local_enr.udp) == public
        assert n.local_enr.seq == 2  # bumped once, not once per vote
        # Peers learn the new seq from PONG and can fetch the new record.
        pong = await peers[0].ping(n.local_enr, address=public)
        assert pong.enr_seq == 2
        assert await peers[0].request_enr(n.local_enr) == n.local_enr


# --- hostile input --------------------------------------------------------------------------


async def test_garbage_datagrams_are_dropped_and_the_node_keeps_answering(
    autojump_clock: Clock,
) -> None:
    net = FakeNetwork()
    junk = random.Random(7)
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        raw = RawPeer(net, 3)
        # A well-formed first packet from the raw peer (random content: provokes WHOAREYOU).
        rid = raw.proto.send_request(a.local_enr, Ping(b"", 1), trio.current_time())
        ((first_packet, _),) = raw.proto.datagrams_to_send()
        raw.proto.cancel_request(rid, trio.current_time())
        header_end = 16 + 23 + 32  # masking-iv, static header, message authdata
        garbage: list[bytes] = [
            b"",
            b"\x00",
            junk.randbytes(10),
            junk.randbytes(62),
            junk.randbytes(63),
            junk.randbytes(200),
            junk.randbytes(1280),
            junk.randbytes(1281),  # over the packet size limit
            junk.randbytes(4000),
            first_packet[:20],
            first_packet[: header_end - 1],  # truncated inside the header
            b"\xff" * 100,
        ]
        # A WHOAREYOU quoting a nonce A never used.
        whoareyou, _ = encode_whoareyou_packet(
            dest_id=a.node_id, masking_iv=junk.randbytes(16), nonce=junk.randbytes(12),
            id_nonce=junk.randbytes(16), enr_seq=0,
        )
        # A message packet for somebody else (masked with another id).
        wrong_dest = encode_message_packet(
            dest_id=b.node_id, src_id=raw.enr.node_id, masking_iv=junk.randbytes(16),
            nonce=junk.randbytes(12), key=junk.randbytes(16), plaintext=b"\x01\xc2\x01\x01",
        )
        for data in garbage:
            await raw.sock.sendto(data, a.address)
        await raw.sock.sendto(whoareyou, a.address)
        await raw.sock.sendto(wrong_dest, a.address)
        await settle(1)
        drops = a.statistics().drops
        assert drops.get("decode", 0) == len(garbage) + 1
        assert drops.get("unexpected-whoareyou", 0) == 1
        assert await raw.received_within(2) == []  # garbage is never answered
        assert a.statistics().packets_in == len(garbage) + 2
        # The receive loop is alive: A answers and asks.
        assert (await b.ping(a.local_enr)).enr_seq == 1
        assert (await a.ping(b.local_enr)).enr_seq == 1
        outcome = await raw.request(a.local_enr, Ping(b"", 1))
        assert isinstance(outcome, ResponseReceived)
        assert isinstance(outcome.message, Pong)


async def test_socket_errors_on_receive_do_not_stop_the_node(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        a_sock = net.sockets[a.address]
        a_sock.fail_next_receive(ConnectionResetError())
        a_sock.fail_next_receive(ConnectionRefusedError())
        await settle(1)
        assert (await b.ping(a.local_enr)).enr_seq == 1
        assert (await a.ping(b.local_enr)).enr_seq == 1


def _ping_plaintext(request_id: bytes, enr_seq: int) -> bytes:
    """PING message-pt built by hand, so the request-id length is not checked."""
    return b"\x01" + bytes(rlp.encode([request_id, enr_seq]))


async def test_nine_byte_request_id_in_a_valid_session_gets_no_reply(
    autojump_clock: Clock,
) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a:
        raw = RawPeer(net, 3)
        outcome = await raw.request(a.local_enr, Ping(b"", 1))
        assert isinstance(outcome, ResponseReceived)  # the session is up
        session = raw.proto.session(NodeAddress(NodeId(a.node_id), *a.address))
        assert session is not None
        await settle()
        before = a.statistics()

        def packet(plaintext: bytes) -> bytes:
            assert session is not None
            return encode_message_packet(
                dest_id=a.node_id, src_id=raw.enr.node_id, masking_iv=raw.rng(16),
                nonce=session.next_nonce(raw.rng), key=session.encrypt_key, plaintext=plaintext,
            )

        # Control: the same hand-made PING with an 8-byte id is answered.
        await raw.sock.sendto(packet(_ping_plaintext(b"\x07" * 8, 1)), a.address)
        replies = await raw.received_within(1)
        assert len(replies) == 1
        # With a 9-byte id: dropped as a malformed message, nothing sent back.
        await raw.sock.sendto(packet(_ping_plaintext(b"\x07" * 9, 1)), a.address)
        assert await raw.received_within(5) == []
        after = a.statistics()
        assert after.drops.get("message", 0) == before.drops.get("message", 0) + 1
        assert after.requests_received == before.requests_received + 1
        assert after.packets_out == before.packets_out + 1  # only the control PONG
        # The session still works.
        outcome = await raw.request(a.local_enr, Ping(b"", 1))
        assert isinstance(outcome, ResponseReceived)


# --- statistics -----------------------------------------------------------------------------


async def test_statistics_count_traffic(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        empty = a.statistics()
        assert empty.packets_in == empty.packets_out == 0
        assert empty.table_size == 0
        assert dict(empty.drops) == {}
        await a.ping(b.local_enr)
        await a.talk(b.local_enr, b"x", b"y")
        await settle()
        sa, sb = a.statistics(), b.statistics()
        assert sa.packets_out == sb.packets_in
        assert sb.packets_out == sa.packets_in
        assert sa.bytes_out == sb.bytes_in
        assert sb.bytes_out == sa.bytes_in
        assert sa.requests_sent == sb.requests_received >= 2
        assert sa.table_size == 1  # B, added when the session came up
        assert sa.pending_requests == sb.pending_requests == 0
        assert sa.timeouts == sb.timeouts == 0
        assert sa.send_errors == sb.send_errors == 0
