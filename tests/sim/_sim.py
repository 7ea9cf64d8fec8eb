"""An in-memory network of sans-IO ``Protocol`` objects on a virtual clock.

Datagrams travel through a seeded "terrible network" (loss, duplication, reordering by random
latency). Every node answers requests the way the driver does: PONG, NODES from a fixed list,
TALKRESP echoing the request. Nothing here reads the wall clock or global randomness, so every
run with the same seed is identical.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from discv5._config import Config
from discv5._events import Event, RequestFailed, RequestReceived, ResponseReceived
from discv5._messages import FindNode, Ping, TalkRequest, TalkResponse
from discv5._protocol import Protocol
from discv5._responder import nodes_responses, pong_for, select_records
from discv5._types import Address
from enr import ENR, PrivateKey


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


@dataclass
class SimNode:
    key: PrivateKey
    enr: ENR
    proto: Protocol
    address: Address
    neighbours: list[ENR] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def outcomes(self) -> dict[bytes, Event]:
        return {
            e.request_id: e
            for e in self.events
            if isinstance(e, (ResponseReceived, RequestFailed))
        }


class Network:
    """Virtual-time network. ``loss``/``duplicate`` are probabilities; latency is uniform."""

    def __init__(
        self,
        seed: int = 0,
        *,
        loss: float = 0.0,
        duplicate: float = 0.0,
        latency: tuple[float, float] = (0.005, 0.005),
        config: Config | None = None,
    ) -> None:
        self.random = random.Random(seed)
        self.loss = loss
        self.duplicate = duplicate
        self.latency = latency
        self.config = config or Config()
        self.now = 0.0
        self.nodes: dict[Address, SimNode] = {}
        self._queue: list[tuple[float, int, bytes, Address, Address]] = []
        self._seq = 0
        self.delivered = 0
        self.intercept: Callable[[bytes, Address, Address], bool] | None = None

    def add_node(
        self, ip: str = "127.0.0.1", port: int | None = None, **enr_fields: object
    ) -> SimNode:
        port = port or 30000 + len(self.nodes)
        key = PrivateKey.generate(seeded_rng(self.random.getrandbits(64)))
        record = ENR.build(key, 1, ip=ip, udp=port, **enr_fields)
        known: dict[bytes, ENR] = {}
        proto = Protocol(
            key, record, self.config, rng=seeded_rng(self.random.getrandbits(64)),
            known_enr=known.get,
        )
        node = SimNode(key, record, proto, (ip, port))
        self.nodes[node.address] = node
        return node

    def _schedule(self, data: bytes, src: Address, dst: Address) -> None:
        if self.random.random() < self.loss:
            return
        copies = 2 if self.random.random() < self.duplicate else 1
        for _ in range(copies):
            self._seq += 1
            at = self.now + self.random.uniform(*self.latency)
            heapq.heappush(self._queue, (at, self._seq, data, src, dst))

    def _flush(self, node: SimNode) -> None:
        for data, dst in node.proto.datagrams_to_send():
            if self.intercept is not None and not self.intercept(data, node.address, dst):
                continue
            self._schedule(data, node.address, dst)
        while (event := node.proto.next_event()) is not None:
            node.events.append(event)
            if isinstance(event, RequestReceived):
                self._answer(node, event)
        for data, dst in node.proto.datagrams_to_send():
            self._schedule(data, node.address, dst)

    def _answer(self, node: SimNode, event: RequestReceived) -> None:
        msg = event.message
        peer = event.node
        if isinstance(msg, Ping):
            node.proto.send_response(peer, pong_for(msg, node.proto.local_enr, peer.ip, peer.port))
        elif isinstance(msg, FindNode):
            from discv5._types import log_distance

            def at(dist: int) -> list[ENR]:
                own = node.enr.node_id
                return [r for r in node.neighbours if log_distance(own, r.node_id) == dist]

            records = select_records(msg, node.proto.local_enr, at, peer.ip, 16)
            for response in nodes_responses(msg.request_id, records, self.config):
                node.proto.send_response(peer, response)
        elif isinstance(msg, TalkRequest):
            node.proto.send_response(peer, TalkResponse(msg.request_id, msg.request))

    def flush_all(self) -> None:
        for node in self.nodes.values():
            self._flush(node)

    def next_deadline(self) -> float | None:
        times = [t for n in self.nodes.values() if (t := n.proto.get_timer()) is not None]
        if self._queue:
            times.append(self._queue[0][0])
        return min(times) if times else None

    def step(self) -> bool:
        """Advance to the next datagram or timer; False when nothing is left to happen."""
        self.flush_all()
        at = self.next_deadline()
        if at is None:
            return False
        self.now = max(self.now, at)
        while self._queue and self._queue[0][0] <= self.now:
            _, _, data, src, dst = heapq.heappop(self._queue)
            target = self.nodes.get(dst)
            if target is not None:
                self.delivered += 1
                target.proto.receive_datagram(data, src, self.now)
                self._flush(target)
        for node in self.nodes.values():
            timer = node.proto.get_timer()
            if timer is not None and timer <= self.now:
                node.proto.handle_timer(self.now)
                self._flush(node)
        return True

    def run(self, until: float | None = None, max_steps: int = 1_000_000) -> None:
        """Run until nothing is pending (or virtual time passes ``until``)."""
        for _ in range(max_steps):
            if until is not None and self.now >= until:
                return
            if not self.step():
                return
        raise AssertionError("simulation did not settle (something loops)")
