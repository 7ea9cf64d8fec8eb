"""The node-level sans-IO protocol object: one per local node, no sockets, no clock.

Bytes in (``receive_datagram``), typed events out (``next_event``), datagrams to send out
(``datagrams_to_send``); time is passed in as ``now`` and randomness through the injected
``rng``. This is aioquic's ``QuicConnection`` shape, adapted to a connectionless protocol where
one object holds every session.

What lives here:

* the session cache: an LRU keyed by (node id, IP, port) (discv5-theory "Session Cache");
* WHOAREYOU challenges we sent, re-sent byte-identical while pending (go-ethereum's behaviour,
  required by the devp2p ``HandshakeResend`` test), forgotten after ``handshake_timeout`` or at
  the first handshake attempt, successful or not;
* requests we sent, matched to responses by request id, endpoint and response type; a WHOAREYOU
  is matched by the nonce of the packet it quotes, and each request gets one handshake attempt;
* while a first-contact handshake with an endpoint is under way, further requests to it wait in
  a queue and go out under the new session (go-ethereum also sends one request at a time then);
* NODES reassembly: ``total`` capped, each record checked against the requested distances and
  de-duplicated; the caller receives one ``ResponseReceived`` with every record.

Nothing a peer sends can make ``receive_datagram`` raise: every problem becomes a
``PacketDropped`` event and a counter.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, auto

from enr import ENR, ENRError, PrivateKey

from . import _packet
from ._config import Config
from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import (
    Event,
    FailureReason,
    PacketDropped,
    RequestFailed,
    RequestReceived,
    ResponseReceived,
    SessionEstablished,
)
from ._messages import (
    FindNode,
    Message,
    Nodes,
    Ping,
    TalkRequest,
    decode_message_untrusted,
    encode_message,
    is_request,
    response_types_for,
)
from ._responder import is_relayable
from ._session import Challenge, Session, accept_handshake, make_handshake
from ._types import Address, NodeAddress, NodeId, log_distance

__all__ = ["Protocol", "RequestState"]

Rng = Callable[[int], bytes]
Request = Ping | FindNode | TalkRequest

_CONTACT_NONCES = 4096
"""First-contact packet nonces remembered (a WHOAREYOU may quote one after its request ended)."""


class RequestState(Enum):
    """Where a request we sent stands."""

    QUEUED = auto()
    """Waiting for another request's first-contact handshake with the same endpoint."""
    SENT = auto()
    """Sent (as random bytes when there was no session); waiting for a response or WHOAREYOU."""
    HANDSHAKE_SENT = auto()
    """Re-sent inside a handshake packet; the first decrypted response confirms the session."""


@dataclass(slots=True)
class _Pending:
    request_id: bytes
    node: NodeAddress
    enr: ENR
    message: Request
    plaintext: bytes
    deadline_at: float
    state: RequestState = RequestState.QUEUED
    nonce: bytes | None = None
    handshake_attempted: bool = False
    nodes_total: int = 0
    nodes_received: int = 0
    records: dict[bytes, ENR] = field(default_factory=dict)
    rejected_records: int = 0


class Protocol:
    """discv5.1 for one local node. Not thread-safe; drive it from one task.

    Args:
        private_key: the node's static secp256k1 key.
        local_enr: the node's current record (signed by ``private_key``).
        config: limits and timeouts.
        rng: ``rng(n)`` returns n random bytes (ids, nonces, ephemeral keys, masking IVs).
        known_enr: a side-effect-free query for the newest record we hold for a node id
            (fills WHOAREYOU's enr-seq and lets a handshake omit the record).
    """

    def __init__(
        self,
        private_key: PrivateKey,
        local_enr: ENR,
        config: Config | None = None,
        *,
        rng: Rng,
        known_enr: Callable[[bytes], ENR | None] | None = None,
    ) -> None:
        if local_enr.public_key != private_key.public_key:
            raise LocalProtocolError("local record is not signed by the given private key")
        self._key = private_key
        self._enr = local_enr
        self._local_id = local_enr.node_id
        self.config = config or Config()
        self._rng = rng
        self._known_enr = known_enr or (lambda _node_id: None)
        self._sessions: OrderedDict[NodeAddress, Session] = OrderedDict()
        self._challenges: OrderedDict[NodeAddress, Challenge] = OrderedDict()
        self._pending: dict[bytes, _Pending] = {}
        self._by_nonce: dict[bytes, bytes] = {}
        self._handshaking: dict[NodeAddress, bytes] = {}
        self._contact_nonces: dict[bytes, Address] = {}
        self._queued: dict[NodeAddress, deque[bytes]] = {}
        self._per_node: Counter[NodeAddress] = Counter()
        self._timers: list[tuple[float, int, str, object]] = []
        self._timer_seq = 0
        self._outgoing: deque[tuple[bytes, Address]] = deque()
        self._events: deque[Event] = deque()
        self.counters: Counter[str] = Counter()
        """Running totals: packets and bytes in/out, drops by reason, handshakes, timeouts."""

    # --- local record ---------------------------------------------------------------------

    @property
    def local_enr(self) -> ENR:
        """Our current record."""
        return self._enr

    @property
    def local_id(self) -> NodeId:
        """Our node id."""
        return NodeId(self._local_id)

    def update_local_enr(self, enr: ENR) -> None:
        """Use a new version of our record (e.g. after an endpoint change).

        Raises:
            LocalProtocolError: the record is for another node or not newer.
        """
        if enr.node_id != self._local_id:
            raise LocalProtocolError("new local record has another node id")
        if enr.seq <= self._enr.seq:
            raise LocalProtocolError("new local record must have a higher seq")
        self._enr = enr

    # --- introspection --------------------------------------------------------------------

    def session(self, node: NodeAddress) -> Session | None:
        """The session with ``node`` at that endpoint, if any (does not touch the LRU order)."""
        return self._sessions.get(node)

    @property
    def session_count(self) -> int:
        """Sessions in the cache."""
        return len(self._sessions)

    @property
    def pending_count(self) -> int:
        """Requests waiting for a response."""
        return len(self._pending)

    @property
    def challenge_count(self) -> int:
        """WHOAREYOU challenges waiting for a handshake."""
        return len(self._challenges)

    # --- output ---------------------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Everything the driver must send now, in order; the queue is emptied."""
        out = list(self._outgoing)
        self._outgoing.clear()
        return out

    def next_event(self) -> Event | None:
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The absolute time at which ``handle_timer`` must next be called, or None."""
        while self._timers and self._timer_is_stale(self._timers[0]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def handle_timer(self, now: float) -> None:
        """Expire requests and challenges whose time has come."""
        while self._timers and self._timers[0][0] <= now:
            entry = heapq.heappop(self._timers)
            if self._timer_is_stale(entry):
                continue
            _, _, kind, key = entry
            if kind == "request":
                assert isinstance(key, bytes)
                pending = self._pending[key]
                self.counters["requests_timed_out"] += 1
                self._fail(pending, FailureReason.TIMEOUT, "no response in time", now)
            else:
                assert isinstance(key, NodeAddress)
                del self._challenges[key]

    def _timer_is_stale(self, entry: tuple[float, int, str, object]) -> bool:
        at, _, kind, key = entry
        if kind == "request":
            pending = self._pending.get(key)  # type: ignore[call-overload]
            return pending is None or pending.deadline_at != at
        challenge = self._challenges.get(key)  # type: ignore[call-overload]
        return challenge is None or challenge.expires_at != at

    def _set_timer(self, at: float, kind: str, key: object) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (at, self._timer_seq, kind, key))

    def _send(self, datagram: bytes, address: Address) -> None:
        self.counters["packets_out"] += 1
        self.counters["bytes_out"] += len(datagram)
        self._outgoing.append((datagram, address))

    def _drop(self, address: Address, reason: str, detail: str = "") -> None:
        self.counters[f"dropped.{reason}"] += 1
        self._events.append(PacketDropped(address, reason, detail))

    # --- requests -------------------------------------------------------------------------

    def send_request(
        self, enr: ENR, message: Request, now: float, *, address: Address | None = None
    ) -> bytes:
        """Send a request; its outcome arrives later as ``ResponseReceived`` or ``RequestFailed``.

        Args:
            enr: the peer's record (its public key is needed for the handshake).
            message: PING, FINDNODE or TALKREQ; its request id is replaced by a fresh one.
            now: current time.
            address: send to this endpoint instead of the record's ip/udp.

        Returns:
            The request id, which the events carry.

        Raises:
            LocalProtocolError: a request to ourselves, a record without public key or
                endpoint, or too many requests in flight to that endpoint.
        """
        if enr.node_id == self._local_id:
            raise LocalProtocolError("cannot send a request to ourselves")
        if enr.public_key is None:
            raise LocalProtocolError("the record has no usable secp256k1 public key")
        if address is None:
            ip, udp, _ = enr.endpoint()
            if ip is None or not udp:
                raise LocalProtocolError("the record has no IP address and UDP port")
            address = (str(ip), udp)
        node = NodeAddress(NodeId(enr.node_id), address[0], address[1])
        if self._per_node[node] >= self.config.max_pending_requests_per_node:
            raise LocalProtocolError("too many requests in flight to this node")
        # 8 random bytes, never starting with a zero byte: some implementations (ChainSafe's)
        # echo request ids as minimal integers, which would drop a leading zero and make the
        # response unmatchable.
        request_id = self._rng(8)
        while request_id[0] == 0 or request_id in self._pending:
            request_id = self._rng(8)
        message = dataclasses.replace(message, request_id=request_id)
        plaintext = encode_message(message)
        # The request may have to travel inside a handshake packet carrying our record.
        size = _packet.handshake_packet_size(len(plaintext), record_size=len(self._enr))
        if size > self.config.max_packet_size:
            raise LocalProtocolError(
                f"request too large: {size} bytes in a handshake packet, limit"
                f" {self.config.max_packet_size}"
            )
        pending = _Pending(
            request_id, node, enr, message, plaintext, now + self.config.request_timeout
        )
        self._pending[request_id] = pending
        self._per_node[node] += 1
        self._set_timer(pending.deadline_at, "request", request_id)
        self.counters["requests_sent"] += 1
        if node in self._sessions or node not in self._handshaking:
            self._transmit(pending)
        else:
            self._queued.setdefault(node, deque()).append(request_id)
        return request_id

    def _transmit(self, pending: _Pending) -> None:
        """Send a request under the session, or as random bytes to provoke a WHOAREYOU."""
        node = pending.node
        session = self._sessions.get(node)
        if session is not None:
            self._sessions.move_to_end(node)
            nonce = session.next_nonce(self._rng)
            datagram = _packet.encode_message_packet(
                dest_id=node.node_id, src_id=self._local_id, masking_iv=self._rng(16),
                nonce=nonce, key=session.encrypt_key, plaintext=pending.plaintext,
            )
        else:
            # discv5-theory step 1: no session, so send random content; the peer cannot
            # decrypt it and answers with WHOAREYOU quoting this packet's nonce.
            self._handshaking[node] = pending.request_id
            nonce = self._rng(12)
            self._contact_nonces[nonce] = node.address
            if len(self._contact_nonces) > _CONTACT_NONCES:
                del self._contact_nonces[next(iter(self._contact_nonces))]
            datagram = _packet.encode_random_packet(
                dest_id=node.node_id, src_id=self._local_id, masking_iv=self._rng(16),
                nonce=nonce, random_message=self._rng(self.config.random_packet_size),
            )
        self._set_nonce(pending, nonce)
        pending.state = RequestState.SENT
        self._send(datagram, node.address)

    def _set_nonce(self, pending: _Pending, nonce: bytes) -> None:
        if pending.nonce is not None:
            self._by_nonce.pop(pending.nonce, None)
        pending.nonce = nonce
        self._by_nonce[nonce] = pending.request_id

    def cancel_request(self, request_id: bytes, now: float) -> None:
        """Forget a request (the caller gave up); no event is emitted. Unknown ids are ignored."""
        pending = self._pending.get(request_id)
        if pending is not None:
            self._finish(pending, now)

    def _finish(self, pending: _Pending, now: float) -> None:
        del self._pending[pending.request_id]
        if pending.nonce is not None:
            self._by_nonce.pop(pending.nonce, None)
        node = pending.node
        self._per_node[node] -= 1
        if self._per_node[node] <= 0:
            del self._per_node[node]
        queue = self._queued.get(node)
        if queue is not None and pending.request_id in queue:
            queue.remove(pending.request_id)
        if self._handshaking.get(node) == pending.request_id:
            del self._handshaking[node]
            self._release_queue(node, now)
        elif queue is not None and not queue:
            del self._queued[node]

    def _release_queue(self, node: NodeAddress, now: float) -> None:
        """The handshake with ``node`` is done (or failed): send what waited for it.

        Requests whose deadline has already passed are not sent: their timer fails them.
        """
        queue = self._queued.pop(node, None)
        while queue:
            pending = self._pending[queue.popleft()]
            if pending.deadline_at <= now:
                continue
            self._transmit(pending)
            if node not in self._sessions:
                # Still no session: this request now leads a new handshake; the rest wait.
                if queue:
                    self._queued[node] = queue
                return

    def _fail(self, pending: _Pending, reason: FailureReason, detail: str, now: float) -> None:
        self._finish(pending, now)
        self._events.append(
            RequestFailed(
                pending.request_id, pending.node, reason, detail,
                tuple(pending.records.values()),
            )
        )

    # --- responses we give ----------------------------------------------------------------

    def send_response(self, node: NodeAddress, message: Message) -> None:
        """Send a response (PONG, NODES, TALKRESP) to a peer we have a session with.

        Raises:
            LocalProtocolError: no session with that node at that endpoint.
        """
        session = self._sessions.get(node)
        if session is None:
            raise LocalProtocolError("no session with that node at that endpoint")
        plaintext = encode_message(message)
        size = _packet.message_packet_size(len(plaintext))
        if size > self.config.max_packet_size:
            raise LocalProtocolError(
                f"response too large: {size} bytes, limit {self.config.max_packet_size}"
            )
        datagram = _packet.encode_message_packet(
            dest_id=node.node_id, src_id=self._local_id, masking_iv=self._rng(16),
            nonce=session.next_nonce(self._rng), key=session.encrypt_key, plaintext=plaintext,
        )
        self._send(datagram, node.address)

    # --- input ----------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, address: Address, now: float) -> None:
        """Process one datagram. Never raises because of what the datagram contains."""
        self.counters["packets_in"] += 1
        self.counters["bytes_in"] += len(data)
        try:
            packet = _packet.decode_packet_untrusted(
                data, self._local_id, max_size=self.config.max_packet_size
            )
        except RemoteProtocolError as exc:
            self._drop(address, "decode", str(exc))
            return
        try:
            if packet.flag is _packet.Flag.MESSAGE:
                self._on_message_packet(packet, address, now)
            elif packet.flag is _packet.Flag.WHOAREYOU:
                self._on_whoareyou(packet, address, now)
            else:
                self._on_handshake(packet, address, now)
        except (RemoteProtocolError, ENRError) as exc:
            self._drop(address, "invalid", str(exc))

    def _on_message_packet(self, packet: _packet.Packet, address: Address, now: float) -> None:
        authdata = packet.authdata
        assert isinstance(authdata, _packet.MessageAuthdata)
        node = NodeAddress(NodeId(authdata.src_id), address[0], address[1])
        session = self._sessions.get(node)
        if session is not None:
            plaintext = self._decrypt(session, packet)
            if plaintext is not None:
                self._sessions.move_to_end(node)
                self._on_plaintext(node, session, plaintext, now)
                return
            # Neither key works (the peer restarted or lost our session): challenge it.
        self._challenge(node, packet.nonce, now)

    @staticmethod
    def _decrypt(session: Session, packet: _packet.Packet) -> bytes | None:
        for key in (session.decrypt_key, *session.old_decrypt_keys):
            try:
                return _packet.decrypt_message_untrusted(packet, key)
            except RemoteProtocolError:
                continue
        return None

    def _challenge(self, node: NodeAddress, nonce: bytes, now: float) -> None:
        """discv5-theory step 2: answer an undecryptable packet with WHOAREYOU."""
        pending = self._challenges.get(node)
        if pending is not None and pending.expires_at > now:
            # go-ethereum (HandshakeResend): repeat the identical challenge, same nonce.
            self._challenges[node] = dataclasses.replace(pending, resends=pending.resends + 1)
            self.counters["whoareyou_resent"] += 1
            self._send(pending.datagram, node.address)
            return
        session = self._sessions.get(node)
        known = session.enr if session is not None and session.enr is not None else None
        if known is None:
            known = self._known_enr(node.node_id)
        datagram, challenge_data = _packet.encode_whoareyou_packet(
            dest_id=node.node_id, masking_iv=self._rng(16), nonce=nonce,
            id_nonce=self._rng(16), enr_seq=known.seq if known is not None else 0,
        )
        self._challenges.pop(node, None)
        while len(self._challenges) >= self.config.max_pending_challenges:
            self._challenges.popitem(last=False)
            self.counters["challenges_evicted"] += 1
        expires_at = now + self.config.handshake_timeout
        self._challenges[node] = Challenge(node, datagram, challenge_data, known, expires_at)
        self._set_timer(expires_at, "challenge", node)
        self.counters["whoareyou_sent"] += 1
        self._send(datagram, node.address)

    def _on_whoareyou(self, packet: _packet.Packet, address: Address, now: float) -> None:
        request_id = self._by_nonce.get(packet.nonce)
        if request_id is None and self._contact_nonces.get(packet.nonce) == address:
            # go-ethereum re-sends a pending challenge unchanged, quoting the nonce of the
            # packet that caused it. If that packet was one of our first contacts whose request
            # is gone (cancelled, timed out), the challenge still stands for this endpoint:
            # answer it with the request now making first contact there. Only nonces we sent
            # are accepted, so a spoofed WHOAREYOU cannot burn a request's handshake.
            request_id = next(
                (rid for node, rid in self._handshaking.items() if node.address == address),
                None,
            )
        pending = self._pending.get(request_id) if request_id is not None else None
        if pending is None or pending.node.address != address:
            self._drop(address, "unexpected-whoareyou", "no request with that nonce")
            return
        if pending.handshake_attempted:
            # One handshake per request (go-ethereum errChallengeTwice): a duplicated or
            # repeated challenge is ignored and the request runs into its timeout.
            self._drop(address, "whoareyou-repeat", "request already answered a challenge")
            return
        node = pending.node
        datagram, nonce, session = make_handshake(
            local_key=self._key, local_enr=self._enr, remote=node, remote_enr=pending.enr,
            whoareyou=packet, plaintext=pending.plaintext, rng=self._rng,
        )
        pending.handshake_attempted = True
        pending.state = RequestState.HANDSHAKE_SENT
        pending.deadline_at = now + self.config.request_timeout
        self._set_timer(pending.deadline_at, "request", pending.request_id)
        self._set_nonce(pending, nonce)
        self._store_session(session)
        self.counters["handshakes_outbound"] += 1
        self._send(datagram, node.address)
        if self._handshaking.get(node) == pending.request_id:
            del self._handshaking[node]
        self._release_queue(node, now)

    def _on_handshake(self, packet: _packet.Packet, address: Address, now: float) -> None:
        authdata = packet.authdata
        assert isinstance(authdata, _packet.HandshakeAuthdata)
        node = NodeAddress(NodeId(authdata.src_id), address[0], address[1])
        # Any handshake attempt consumes the challenge, successful or not (go-ethereum).
        challenge = self._challenges.pop(node, None)
        if challenge is None or challenge.expires_at <= now:
            self._drop(address, "unexpected-handshake", "no pending challenge for this endpoint")
            return
        try:
            session, plaintext = accept_handshake(
                local_key=self._key, local_id=self._local_id, challenge=challenge, packet=packet
            )
        except RemoteProtocolError as exc:
            self.counters["handshakes_failed"] += 1
            self._drop(address, "handshake", str(exc))
            return
        self._store_session(session)
        self.counters["handshakes_inbound"] += 1
        assert session.enr is not None
        self._events.append(SessionEstablished(node, session.enr, inbound=True))
        self._on_plaintext(node, session, plaintext, now)

    def _store_session(self, session: Session) -> None:
        previous = self._sessions.get(session.node)
        if previous is not None:
            keys = (previous.decrypt_key, *previous.old_decrypt_keys)
            session.old_decrypt_keys = tuple(k for k in keys if k != session.decrypt_key)[:2]
        self._sessions[session.node] = session
        self._sessions.move_to_end(session.node)
        while len(self._sessions) > self.config.session_cache_size:
            self._sessions.popitem(last=False)
            self.counters["sessions_evicted"] += 1

    def _on_plaintext(
        self, node: NodeAddress, session: Session, plaintext: bytes, now: float
    ) -> None:
        try:
            message = decode_message_untrusted(plaintext)
        except RemoteProtocolError as exc:
            self._drop(node.address, "message", str(exc))
            return
        if is_request(message):
            self.counters["requests_received"] += 1
            self._events.append(RequestReceived(node, session.enr, message))
            return
        pending = self._pending.get(message.request_id)
        if (
            pending is None
            or pending.node != node
            or type(message) not in response_types_for(pending.message)
        ):
            self._drop(node.address, "unsolicited-response", type(message).__name__)
            return
        if pending.state is RequestState.HANDSHAKE_SENT:
            # discv5-theory step 5: the keys are good once a response decrypts with them.
            pending.state = RequestState.SENT
            if session.enr is not None:
                self._events.append(SessionEstablished(node, session.enr, inbound=False))
        if isinstance(message, Nodes):
            self._on_nodes(pending, message, now)
            return
        self.counters["responses_received"] += 1
        self._finish(pending, now)
        self._events.append(ResponseReceived(pending.request_id, node, message))

    def _on_nodes(self, pending: _Pending, message: Nodes, now: float) -> None:
        request = pending.message
        assert isinstance(request, FindNode)
        if pending.nodes_received == 0:
            # The first message fixes the count; a peer cannot make us wait for more than
            # max_nodes_messages (go-ethereum accepts 5).
            pending.nodes_total = max(1, min(message.total, self.config.max_nodes_messages))
        pending.nodes_received += 1
        rejected = message.invalid_records
        responder = pending.node.node_id
        wanted = set(request.distances)
        for record in message.records:
            node_id = record.node_id
            dist = log_distance(responder, node_id)
            # discv5-wire NODES: the requester should check each record lies at a distance it
            # asked for. go-ethereum (verifyResponseNode) also drops records whose address the
            # responder could not legitimately know (a loopback or LAN address from a host
            # outside it) and records with a privileged UDP port.
            if dist not in wanted or (
                dist != 0
                and (
                    not is_relayable(record, pending.node.ip)
                    or (record.endpoint().udp or 0) < self.config.min_record_udp_port
                )
            ):
                rejected += 1
                continue
            known = pending.records.get(node_id)
            if known is None or record.seq > known.seq:
                pending.records[node_id] = record
        pending.rejected_records += rejected
        self.counters["records_rejected"] += rejected
        if pending.nodes_received < pending.nodes_total:
            pending.deadline_at = now + self.config.request_timeout
            self._set_timer(pending.deadline_at, "request", pending.request_id)
            return
        self.counters["responses_received"] += 1
        self._finish(pending, now)
        result = Nodes(
            pending.request_id, pending.nodes_total, tuple(pending.records.values()),
            invalid_records=pending.rejected_records,
        )
        self._events.append(ResponseReceived(pending.request_id, pending.node, result))
