"""The trio driver: one UDP socket, one receive loop, the sans-IO core, the table and lookups.

This is the only module of ``discv5`` (below the tools) that touches sockets and the clock.
Everything it decides is delegated to pure objects: ``Protocol`` (packets, sessions,
requests), ``RoutingTable`` (who we know, who to revalidate), ``Lookup`` (whom to ask next)
and the responder functions. The driver executes:

* the receive loop hands each datagram to the core and dispatches the resulting events; it
  never awaits anything but the socket, so a slow consumer cannot stall it;
* one sender task drains the core's outgoing queue (trio allows one waiter per socket);
* the timer task calls ``handle_timer`` when the core's deadline passes;
* awaitables (``ping``, ``find_node``, ``talk``...) park on a per-request slot that the
  receive loop fills; a cancelled caller cancels its request in the core (h11's discipline);
* maintenance tasks revalidate table entries and refresh the table with lookups.
"""

from __future__ import annotations

import ipaddress
import math
import os
import random
import socket as _stdsocket
import time
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from typing import Protocol as TypingProtocol

import trio

from enr import ENR, ENRError, PrivateKey

from ._config import Config
from ._errors import LocalProtocolError, RequestRejected, RequestTimeout
from ._events import (
    Event,
    RequestFailed,
    RequestReceived,
    ResponseReceived,
    SessionEstablished,
)
from ._ip_vote import IPVote
from ._lookup import Lookup
from ._messages import FindNode, Message, Nodes, Ping, Pong, TalkRequest, TalkResponse
from ._protocol import Protocol
from ._responder import nodes_responses, pong_for, select_records
from ._routing import InsertResult, RoutingTable
from ._types import Address, NodeAddress, NodeId

__all__ = ["DatagramSocket", "Node", "NodeStatistics", "TalkHandler", "open_node"]

TalkHandler = Callable[[NodeAddress, ENR | None, bytes], Awaitable[bytes]]
"""An async TALKREQ handler: (who asked, their record if known, request payload) -> response."""


class DatagramSocket(TypingProtocol):
    """What the node needs from a UDP socket; ``trio.socket`` sockets satisfy it, and tests can
    pass an in-memory fake."""

    async def sendto(self, data: bytes, address: Any, /) -> int: ...

    async def recvfrom(self, bufsize: int, /) -> tuple[bytes, Any]: ...

    def getsockname(self) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class NodeStatistics:
    """A snapshot of the node's counters."""

    packets_in: int
    """Datagrams received."""
    packets_out: int
    """Datagrams sent."""
    bytes_in: int
    """Bytes received."""
    bytes_out: int
    """Bytes sent."""
    drops: Mapping[str, int]
    """Datagrams or messages dropped, by reason."""
    sessions: int
    """Sessions in the cache."""
    pending_requests: int
    """Requests waiting for a response."""
    handshakes_inbound: int
    """Handshakes completed where the peer initiated."""
    handshakes_outbound: int
    """Handshakes we initiated (answered WHOAREYOU)."""
    handshakes_failed: int
    """Handshake packets we rejected."""
    requests_sent: int
    """Requests sent."""
    requests_received: int
    """Requests received."""
    timeouts: int
    """Requests that got no (complete) answer in time."""
    send_errors: int
    """Datagrams the operating system refused to send."""
    table_size: int
    """Entries in the routing table."""
    talk_dropped: int
    """TALKREQ requests dropped because too many handlers were running."""
    records_rejected: int
    """Records dropped from NODES answers: bad signature, wrong distance, unusable address."""
    record_update_errors: int
    """Endpoint changes peers reported that could not go into our record (it would exceed
    300 bytes)."""


@dataclass(slots=True)
class _Waiter:
    done: trio.Event = field(default_factory=trio.Event)
    result: Event | None = None


def _normalize(address: Any) -> Address:
    """(ip, port) with IPv4-mapped IPv6 turned into IPv4 (go-ethereum does the same)."""
    ip, port = address[0], address[1]
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return (str(ip), int(port))
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return (str(parsed), int(port))


class Node:
    """A running discv5 node. Create it with :func:`open_node`."""

    def __init__(
        self,
        private_key: PrivateKey,
        local_enr: ENR,
        sock: DatagramSocket,
        config: Config,
        rng: Callable[[int], bytes],
        pinned: bool,
    ) -> None:
        self._key = private_key
        self._sock = sock
        self.config = config
        self._rng = rng
        self._random = random.Random(rng(16))
        self.table = RoutingTable(local_enr.node_id, config)
        """The routing table (read it; the node maintains it)."""
        self._proto = Protocol(private_key, local_enr, config, rng=rng, known_enr=self.table.get)
        self._pinned = pinned
        self._votes = IPVote(config.ip_vote_min_votes, config.ip_vote_window)
        self._waiters: dict[bytes, _Waiter] = {}
        self._talk_handlers: dict[bytes, TalkHandler] = {}
        self._talk_running = 0
        self._talk_dropped = 0
        self._send_errors = 0
        self._outgoing: deque[tuple[bytes, Address]] = deque()
        self._send_wakeup = trio.Event()
        self._timer_wakeup = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._fetching: set[bytes] = set()
        self._bootnodes: list[ENR] = []
        self._enr_update_errors = 0

    # --- identity ---------------------------------------------------------------------------

    @property
    def local_enr(self) -> ENR:
        """Our current record."""
        return self._proto.local_enr

    @property
    def node_id(self) -> NodeId:
        """Our node id."""
        return self._proto.local_id

    @property
    def address(self) -> Address:
        """The local (ip, port) the socket is bound to."""
        return _normalize(self._sock.getsockname())

    def update_enr(self, **changes: Any) -> ENR:
        """Change entries of our record (seq + 1, re-signed); peers learn it through PONG.

        Keyword arguments as for :meth:`enr.ENR.updated` (None removes a key).
        """
        new = self.local_enr.updated(self._key, **changes)
        self._proto.update_local_enr(new)
        return new

    def statistics(self) -> NodeStatistics:
        """Counters since the node started."""
        c = self._proto.counters
        drops = {k.split(".", 1)[1]: v for k, v in c.items() if k.startswith("dropped.")}
        return NodeStatistics(
            packets_in=c["packets_in"],
            packets_out=c["packets_out"],
            bytes_in=c["bytes_in"],
            bytes_out=c["bytes_out"],
            drops=drops,
            sessions=self._proto.session_count,
            pending_requests=self._proto.pending_count,
            handshakes_inbound=c["handshakes_inbound"],
            handshakes_outbound=c["handshakes_outbound"],
            handshakes_failed=c["handshakes_failed"],
            requests_sent=c["requests_sent"],
            requests_received=c["requests_received"],
            timeouts=c["requests_timed_out"],
            send_errors=self._send_errors,
            table_size=len(self.table),
            talk_dropped=self._talk_dropped,
            records_rejected=c["records_rejected"],
            record_update_errors=self._enr_update_errors,
        )

    # --- TALK -------------------------------------------------------------------------------

    def register_talk_handler(self, protocol: bytes, handler: TalkHandler) -> None:
        """Answer TALKREQ for ``protocol`` with ``handler``'s result. Other protocols get an
        empty TALKRESP (discv5-wire TALKREQ: unknown protocols MUST get one)."""
        self._talk_handlers[bytes(protocol)] = handler

    def unregister_talk_handler(self, protocol: bytes) -> None:
        """Stop answering ``protocol`` (it gets empty responses again)."""
        self._talk_handlers.pop(bytes(protocol), None)

    # --- requests ---------------------------------------------------------------------------

    async def _request(self, enr: ENR, message: Ping | FindNode | TalkRequest,
                       address: Address | None) -> Message:
        now = trio.current_time()
        try:
            request_id = self._proto.send_request(enr, message, now, address=address)
        except LocalProtocolError as exc:
            raise RequestRejected(str(exc)) from None
        waiter = _Waiter()
        self._waiters[request_id] = waiter
        self._pump()
        try:
            await waiter.done.wait()
        finally:
            if not waiter.done.is_set():
                # Cancelled: forget the request so no state is left behind.
                self._waiters.pop(request_id, None)
                self._proto.cancel_request(request_id, trio.current_time())
                self._pump()
        result = waiter.result
        if isinstance(result, RequestFailed):
            raise RequestTimeout(
                f"{type(message).__name__} to {enr.node_id.hex()[:16]} at"
                f" {result.node.ip}:{result.node.port}: {result.detail or result.reason.value}"
            )
        assert isinstance(result, ResponseReceived)
        return result.message

    async def ping(self, enr: ENR, *, address: Address | None = None) -> Pong:
        """PING a node; returns its PONG (its record seq and the address it sees us at).

        Raises:
            RequestTimeout: no answer in time.
            RequestRejected: the record has no endpoint or key, or is our own.
        """
        pong = await self._request(enr, Ping(b"", self.local_enr.seq), address)
        assert isinstance(pong, Pong)
        self._on_pong(enr, pong)
        return pong

    async def find_node(
        self, enr: ENR, distances: Iterable[int], *, address: Address | None = None
    ) -> list[ENR]:
        """FINDNODE: the node's records at the given log distances (0 = its own record).

        Records are signature-checked, de-duplicated and filtered to the distances asked.

        Raises:
            RequestTimeout, RequestRejected.
        """
        nodes = await self._request(enr, FindNode(b"", tuple(distances)), address)
        assert isinstance(nodes, Nodes)
        return list(nodes.records)

    async def request_enr(self, enr: ENR, *, address: Address | None = None) -> ENR:
        """The node's current record, fetched with FINDNODE [0].

        Raises:
            RequestTimeout: no answer, or an answer without exactly one record of that node.
            RequestRejected.
        """
        records = await self.find_node(enr, [0], address=address)
        own = [r for r in records if r.node_id == enr.node_id]
        if len(own) != 1:
            raise RequestTimeout(f"node answered FINDNODE [0] with {len(records)} records")
        return own[0]

    async def talk(
        self, enr: ENR, protocol: bytes, payload: bytes, *, address: Address | None = None
    ) -> bytes:
        """TALKREQ: send ``payload`` for ``protocol``; returns the TALKRESP payload.

        Raises:
            RequestTimeout, RequestRejected.
        """
        response = await self._request(enr, TalkRequest(b"", protocol, payload), address)
        assert isinstance(response, TalkResponse)
        return response.response

    # --- lookups ----------------------------------------------------------------------------

    async def lookup(self, target: bytes | None = None) -> list[ENR]:
        """Iterative lookup: the (up to) k closest live nodes to ``target`` (random if None).

        Every node that answers is added to the routing table; the first lookup that gets
        an answer marks the table bootstrapped.
        """
        if target is None:
            target = self._rng(32)
        seeds = self.table.closest(target, self.config.bucket_size, live_only=False)
        lookup: Lookup[ENR] = Lookup(self.node_id, target, seeds, self.config)
        progress = trio.Event()

        async def query(record: ENR, distances: tuple[int, ...]) -> None:
            nonlocal progress
            try:
                found = await self.find_node(record, distances)
            except (RequestTimeout, RequestRejected):
                lookup.on_failure(record.node_id)
            else:
                now = trio.current_time()
                self.table.add(record, now)
                self.table.mark_live(record.node_id, now)
                for item in found:
                    self.table.add(item, now)
                lookup.on_response(record.node_id, found)
            progress.set()

        async with trio.open_nursery() as nursery:
            while not lookup.finished:
                for q in lookup.next_queries(trio.current_time()):
                    nursery.start_soon(query, q.enr, q.distances)
                if lookup.finished or lookup.in_flight == 0:
                    break
                await progress.wait()
                progress = trio.Event()
            nursery.cancel_scope.cancel()
        if lookup.stats().succeeded:
            self.table.mark_bootstrapped()
        return lookup.result()

    async def bootstrap(self, bootnodes: Sequence[ENR] = ()) -> int:
        """Add ``bootnodes`` to the table and run a self lookup; returns the table size.

        Afterwards the table counts as bootstrapped even if nobody answered (a first node of a
        network has nobody to ask), so nodes that contact us are admitted from then on, as
        go-ethereum does once its first refresh is done.
        """
        now = trio.current_time()
        for record in bootnodes:
            if record.node_id != self.node_id:
                self.table.add(record, now)
                if record not in self._bootnodes:
                    self._bootnodes.append(record)
        await self.lookup(self.node_id)
        # A self lookup only asks for buckets near our own id; a node that joins next to its
        # bootnode finds them empty. Random lookups fill the far buckets, as go-ethereum's
        # first refresh does (one self lookup, three random ones).
        for _ in range(3):
            await self.lookup()
        self.table.mark_bootstrapped()
        return len(self.table)

    async def random_walk(self) -> AsyncGenerator[ENR, None]:
        """Random lookups forever, yielding each node the first time it is seen."""
        seen: set[bytes] = set()
        while True:
            found = await self.lookup()
            for entry in self.table.entries():
                if entry.enr.node_id not in seen:
                    seen.add(entry.enr.node_id)
                    yield entry.enr
            if not found:
                await trio.sleep(1.0)

    # --- the loops --------------------------------------------------------------------------

    async def _receive_loop(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                            ) -> None:
        task_status.started()
        bufsize = self.config.max_packet_size + 1
        while True:
            try:
                data, address = await self._sock.recvfrom(bufsize)
            except (ConnectionResetError, ConnectionRefusedError):
                continue  # ICMP errors surface on some platforms as exceptions on recv
            self._proto.receive_datagram(data, _normalize(address), trio.current_time())
            self._pump()

    async def _send_loop(self) -> None:
        while True:
            await self._send_wakeup.wait()
            self._send_wakeup = trio.Event()
            while self._outgoing:
                data, address = self._outgoing.popleft()
                try:
                    await self._sock.sendto(data, address)
                except OSError:
                    self._send_errors += 1

    async def _timer_loop(self) -> None:
        while True:
            deadline = self._proto.get_timer()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._timer_wakeup.wait()
            self._timer_wakeup = trio.Event()
            now = trio.current_time()
            if deadline is not None and now >= deadline:
                self._proto.handle_timer(now)
                self._pump()

    def _pump(self) -> None:
        """Dispatch the core's events and hand its datagrams to the sender. Never blocks."""
        while (event := self._proto.next_event()) is not None:
            self._dispatch(event)
        datagrams = self._proto.datagrams_to_send()
        if datagrams:
            self._outgoing.extend(datagrams)
            self._send_wakeup.set()
        self._timer_wakeup.set()

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, (ResponseReceived, RequestFailed)):
            waiter = self._waiters.pop(event.request_id, None)
            if waiter is not None:
                waiter.result = event
                waiter.done.set()
        elif isinstance(event, RequestReceived):
            self._answer(event)
            if event.enr is not None and event.enr.node_id not in self.table:
                # A node we have a session with but no table entry for (it came while our
                # table was not bootstrapped, or its bucket was full, or it was dropped while
                # we were busy): offer it again, as for a fresh inbound contact.
                self._offer_inbound(event.enr)
        elif isinstance(event, SessionEstablished):
            if event.inbound:
                self._offer_inbound(event.enr)
            else:
                # Outbound sessions are confirmed by a response from the peer's endpoint.
                now = trio.current_time()
                self.table.add(event.enr, now)
                self.table.mark_live(event.enr.node_id, now)

    def _offer_inbound(self, record: ENR) -> None:
        result = self.table.add(record, trio.current_time(), inbound=True)
        if result is InsertResult.ADDED and self._nursery is not None:
            # A new entry is relayed only once a PONG proves it live; check it right away
            # instead of waiting for its turn on the revalidation list, so that a node that
            # just contacted us becomes findable within one round trip.
            self._nursery.start_soon(self._revalidate, record)

    def _answer(self, event: RequestReceived) -> None:
        message, peer = event.message, event.node
        if isinstance(message, Ping):
            self._proto.send_response(peer, pong_for(message, self.local_enr, peer.ip, peer.port))
            if event.enr is not None and message.enr_seq > event.enr.seq:
                self._fetch_record(event.enr, peer.address)
        elif isinstance(message, FindNode):
            records = select_records(
                message, self.local_enr,
                lambda d: self.table.nodes_at_distances([d], self.config.max_nodes_per_response,
                                                         rng=self._random),
                peer.ip, self.config.max_nodes_per_response,
            )
            for response in nodes_responses(message.request_id, records, self.config):
                self._proto.send_response(peer, response)
        elif isinstance(message, TalkRequest):
            handler = self._talk_handlers.get(message.protocol)
            if handler is None:
                self._proto.send_response(peer, TalkResponse(message.request_id, b""))
            elif self._talk_running >= self.config.max_talk_handlers or self._nursery is None:
                self._talk_dropped += 1
            else:
                self._talk_running += 1
                self._nursery.start_soon(self._run_talk_handler, handler, event, message)

    async def _run_talk_handler(
        self, handler: TalkHandler, event: RequestReceived, message: TalkRequest
    ) -> None:
        response = b""
        try:
            with trio.move_on_after(self.config.talk_handler_timeout):
                response = await handler(event.node, event.enr, message.request)
        except Exception:  # a user's handler must not take the node down
            response = b""
        finally:
            self._talk_running -= 1
        if not isinstance(response, bytes):
            response = b""  # a handler returning anything else is a handler bug: answer empty
        try:
            self._proto.send_response(event.node, TalkResponse(message.request_id, response))
        except LocalProtocolError:
            if self._proto.session(event.node) is None:
                return  # the session was evicted meanwhile; the peer will ask again
            # Too large for one packet: the protocol still owes the peer an answer.
            self._proto.send_response(event.node, TalkResponse(message.request_id, b""))
        self._pump()

    def _fetch_record(self, enr: ENR, address: Address | None) -> None:
        """Fetch a newer record of ``enr``'s node in the background (once at a time)."""
        if self._nursery is None or enr.node_id in self._fetching:
            return
        self._fetching.add(enr.node_id)

        async def fetch() -> None:
            try:
                new = await self.request_enr(enr, address=address)
            except (RequestTimeout, RequestRejected):
                return
            finally:
                self._fetching.discard(enr.node_id)
            self.table.add(new, trio.current_time())

        self._nursery.start_soon(fetch)

    def _on_pong(self, enr: ENR, pong: Pong) -> None:
        now = trio.current_time()
        if self.table.mark_live(enr.node_id, now, pong.enr_seq):
            self._fetch_record(enr, None)
        if self._pinned:
            return
        self._votes.add(enr.node_id, (str(pong.recipient_ip), pong.recipient_port), now)
        winner = self._votes.winner(now)
        if winner is None:
            return
        ip = ipaddress.ip_address(winner[0])
        ours = self.local_enr
        current = (ours.ip, ours.udp) if ip.version == 4 else (ours.ip6, ours.udp6)
        if (ip, winner[1]) == current:
            return
        changes = {"ip": str(ip), "udp": winner[1]} if ip.version == 4 else {
            "ip6": str(ip), "udp6": winner[1]
        }
        try:
            self.update_enr(**changes)
        except ENRError:
            self._enr_update_errors += 1  # e.g. the record would exceed 300 bytes: keep ours

    async def _revalidation_loop(self) -> None:
        while True:
            plan = self.table.next_revalidation(trio.current_time(), self._random)
            for record in plan.nodes:
                assert self._nursery is not None
                self._nursery.start_soon(self._revalidate, record)
            await trio.sleep_until(plan.next_at)

    async def _revalidate(self, record: ENR) -> None:
        try:
            await self.ping(record)
        except (RequestTimeout, RequestRejected):
            self.table.mark_failed(record.node_id, trio.current_time())

    async def _refresh_loop(self) -> None:
        retry = _EMPTY_TABLE_RETRY
        while True:
            if len(self.table) == 0 and self._bootnodes:
                # Everyone we knew failed (or the bootnodes were unreachable when we started):
                # go back to the bootnodes soon, backing off, instead of staying isolated until
                # the next refresh (go-ethereum reloads its seed nodes the same way).
                await trio.sleep(retry)
                retry = min(retry * 2, self.config.refresh_interval)
                if len(self.table) == 0:
                    await self.bootstrap(self._bootnodes)
                continue
            retry = _EMPTY_TABLE_RETRY
            await trio.sleep(self.config.refresh_interval * (0.5 + self._random.random() / 2))
            await self.lookup(self.node_id)
            for _ in range(3):
                await self.lookup()


_RECEIVE_BUFFER = 4 * 1024 * 1024
_EMPTY_TABLE_RETRY = 1.0
"""First wait before going back to the bootnodes when the table is empty (then doubling)."""


class _TrioUDPSocket:
    """A ``trio.socket`` UDP socket seen through :class:`DatagramSocket`."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self._sock = sock

    async def sendto(self, data: bytes, address: Any, /) -> int:
        return await self._sock.sendto(data, address)

    async def recvfrom(self, bufsize: int, /) -> tuple[bytes, Any]:
        return await self._sock.recvfrom(bufsize)

    def getsockname(self) -> Any:
        return self._sock.getsockname()

    def close(self) -> None:
        self._sock.close()


async def _bind_udp(listen: Address) -> DatagramSocket:
    family = _stdsocket.AF_INET6 if ":" in listen[0] else _stdsocket.AF_INET
    raw = trio.socket.socket(family, _stdsocket.SOCK_DGRAM)
    try:
        # A larger receive buffer absorbs bursts (many peers answering a crawl at once)
        # while the event loop is busy; the kernel caps it at net.core.rmem_max.
        raw.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_RCVBUF, _RECEIVE_BUFFER)
        await raw.bind(listen)
    except OSError:
        raw.close()
        raise
    return _TrioUDPSocket(raw)


@asynccontextmanager
async def open_node(
    private_key: PrivateKey | None = None,
    *,
    listen: Address = ("127.0.0.1", 0),
    sock: DatagramSocket | None = None,
    config: Config | None = None,
    external: Address | None = None,
    enr_fields: Mapping[str, Any] | None = None,
    seq: int | None = None,
    bootnodes: Sequence[ENR] = (),
    maintain: bool = True,
    rng: Callable[[int], bytes] | None = None,
) -> AsyncIterator[Node]:
    """Run a discv5 node for the duration of the ``async with`` block.

    Args:
        private_key: the node key (generated if None).
        listen: address to bind when no ``sock`` is given. Binding ``0.0.0.0`` is allowed;
            the record then carries no IP until ``external`` is given or PONG votes agree.
        sock: an already bound UDP socket (or an in-memory fake for tests).
        config: limits and timeouts.
        external: the public (ip, udp port) to put in our record. A pinned address is never
            replaced by what peers report (relays behind Kubernetes services need this).
        enr_fields: extra record entries, e.g. ``{"tcp": 30303, "onion3": "...onion"}``.
        seq: initial record seq; default: the current Unix time in milliseconds, so a
            restarted node's record is always newer (go-ethereum does the same).
        bootnodes: records to seed the table with; a self lookup runs in the background.
        maintain: bootstrap (even without bootnodes), revalidate the table and refresh it
            periodically. Without it the node only answers and does what it is asked.
        rng: randomness source (``os.urandom`` by default).

    Raises:
        OSError: the socket cannot be bound.
    """
    config = config or Config()
    rng = rng or os.urandom
    key = private_key or PrivateKey.generate(rng)
    if sock is None:
        sock = await _bind_udp(listen)
    try:
        bound = _normalize(sock.getsockname())
        ip, port = external if external is not None else bound
        fields: dict[str, Any] = dict(enr_fields or {})
        addr = ipaddress.ip_address(ip)
        if not addr.is_unspecified:
            fields["ip" if addr.version == 4 else "ip6"] = str(addr)
            fields["udp" if addr.version == 4 else "udp6"] = port
        record = ENR.build(key, seq if seq is not None else int(time.time() * 1000), **fields)
        node = Node(key, record, sock, config, rng, pinned=external is not None)
        async with trio.open_nursery() as nursery:
            node._nursery = nursery
            await nursery.start(node._receive_loop)
            nursery.start_soon(node._send_loop)
            nursery.start_soon(node._timer_loop)
            if maintain:
                nursery.start_soon(node._revalidation_loop)
                nursery.start_soon(node._refresh_loop)
            if maintain or bootnodes:
                nursery.start_soon(node.bootstrap, list(bootnodes))
            try:
                yield node
            finally:
                nursery.cancel_scope.cancel()
    finally:
        sock.close()
