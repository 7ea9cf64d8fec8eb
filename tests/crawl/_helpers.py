"""Shared pieces of the crawler tests: keys, hand-signed records, scripted peers, networks.

* Keys, onion addresses and records are derived from small integer seeds, so every test sees
  the same node ids on every run.
* :func:`signed_record` encodes and signs a record by hand, so tests can have records that
  ``ENR.build`` refuses to make (an ``onion3`` entry with a bad checksum, say) but that still
  carry a valid signature, exactly as a buggy or hostile node would publish them.
* :class:`ScriptedPeer` is a discv5 peer made of the bare sans-IO :class:`discv5.Protocol`
  on any datagram socket (the fake network's or a real trio UDP socket). It does the
  handshake like any node, and answers FINDNODE however a test (or subclass) scripts it.
* :func:`fake_network` starts honest maintained nodes of ours on the in-memory network.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import rlp
import trio

from discv5 import (
    Config,
    DatagramSocket,
    FindNode,
    Node,
    Nodes,
    NodeStatistics,
    Ping,
    Pong,
    Protocol,
    RequestReceived,
    log_distance,
    open_node,
)
from discv5.crawl import Crawler, CrawlOutcome, Frontier, classify
from enr import ENR, OnionServiceKey, PrivateKey, enode_from_enr, keccak256, parse_enode

from ..driver.fakenet import FakeNetwork, seeded_rng

__all__ = [
    "Kind",
    "Member",
    "ScriptedPeer",
    "assert_valid_onion_enodes",
    "broken_onion",
    "crawl_from",
    "fake_network",
    "key_for",
    "keys_at_distance",
    "onion_enodes",
    "onion_for",
    "signed_record",
]

Kind = Literal["onion", "ip", "plain"]


# --- keys, onion addresses, records -------------------------------------------------------


def key_for(seed: int) -> PrivateKey:
    """A deterministic secp256k1 key (sha256 of the seed: always in range in practice)."""
    return PrivateKey(hashlib.sha256(b"discv5-crawl-test:%d" % seed).digest())


def onion_for(seed: int) -> str:
    """A deterministic, valid onion3 address."""
    return OnionServiceKey.from_seed(hashlib.sha256(b"onion:%d" % seed).digest()).address


def broken_onion(address: str) -> str:
    """``address`` with its first character changed: well-formed base32, wrong checksum."""
    first = "b" if address[0] == "a" else "a"
    return first + address[1:]


def _uint(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _value(key: str, value: Any) -> bytes:
    if key in ("ip", "ip6"):
        return ipaddress.ip_address(value).packed
    if isinstance(value, int):
        return _uint(value)
    if isinstance(value, str):
        return value.encode("ascii")
    assert isinstance(value, bytes)
    return value


def signed_record(key: PrivateKey, seq: int = 1, **fields: Any) -> ENR:
    """Encode and sign a "v4" record by hand, without ``ENR.build``'s checks of the values.

    ``ip``/``ip6`` are address text, ports are ints, any other value is str (ASCII) or bytes.
    The result is verified by ``ENR.from_rlp``: its signature is good whatever it holds.
    """
    pairs: dict[bytes, bytes] = {
        b"id": b"v4",
        b"secp256k1": key.public_key.compressed,
    }
    for name, value in fields.items():
        pairs[name.encode()] = _value(name, value)
    flat: list[bytes] = [_uint(seq)]
    for key_name in sorted(pairs):
        flat += [key_name, pairs[key_name]]
    signature = key.sign(keccak256(bytes(rlp.encode(flat))))
    return ENR.from_rlp(bytes(rlp.encode([signature, *flat])))


def keys_at_distance(
    origin: bytes, distances: Iterable[int], count: int, first_seed: int
) -> list[PrivateKey]:
    """The first ``count`` seeded keys whose node id lies at one of ``distances`` from
    ``origin`` (only the top few distances are reachable in reasonable time)."""
    wanted = set(distances)
    out: list[PrivateKey] = []
    seed = first_seed
    while len(out) < count:
        key = key_for(seed)
        seed += 1
        if log_distance(origin, key.public_key.node_id) in wanted:
            out.append(key)
    return out


# --- a scripted peer ------------------------------------------------------------------------


class ScriptedPeer:
    """A discv5 peer made of the sans-IO :class:`Protocol`, answering as its script says.

    By default it is honest about itself and knows nobody: FINDNODE [0] gets its own record,
    any other distance an empty NODES. Subclasses override :meth:`answer_findnode` (what to
    send back) or :meth:`on_datagram` (to bypass the protocol altogether).
    """

    def __init__(
        self,
        key: PrivateKey,
        sock: DatagramSocket,
        *,
        record: ENR | None = None,
        fields: dict[str, Any] | None = None,
        rng_seed: int = 0,
    ) -> None:
        self.key = key
        self.sock = sock
        ip, port = sock.getsockname()[:2]
        self.address: tuple[str, int] = (str(ip), int(port))
        self.record = (
            record if record is not None else ENR.build(key, 1, ip=ip, udp=port, **(fields or {}))
        )
        self.proto = Protocol(key, self.record, Config(), rng=seeded_rng(rng_seed))
        self.findnode_requests: list[tuple[int, ...]] = []
        """Distances of every FINDNODE received, in order."""
        self.nodes_messages_sent = 0
        self.records_sent = 0
        self.datagrams_received = 0
        self._raw_out: list[tuple[bytes, tuple[str, int]]] = []

    @property
    def node_id(self) -> bytes:
        return self.record.node_id

    # --- the script -----------------------------------------------------------------------

    def answer_findnode(self, request: FindNode) -> list[Nodes]:
        """The NODES messages answering ``request`` (default: own record for distance 0)."""
        own = (self.record,) if 0 in request.distances else ()
        return [Nodes(request.request_id, 1, own)]

    def on_datagram(self, data: bytes, src: tuple[str, int], now: float) -> None:
        """Handle one datagram (default: the protocol core decides)."""
        self.proto.receive_datagram(data, src, now)

    def send_raw(self, data: bytes, address: tuple[str, int]) -> None:
        """Queue a datagram that bypasses the protocol core."""
        self._raw_out.append((data, address))

    # --- the loop -------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        task_status.started()
        while True:
            await self._flush()
            deadline = self.proto.get_timer()
            received: tuple[bytes, Any] | None = None
            with trio.move_on_at(math.inf if deadline is None else deadline):
                try:
                    received = await self.sock.recvfrom(2048)
                except (ConnectionResetError, ConnectionRefusedError):
                    continue
            now = trio.current_time()
            if received is None:
                self.proto.handle_timer(now)
                continue
            data, src = received
            self.datagrams_received += 1
            self.on_datagram(data, (str(src[0]), int(src[1])), now)
            self._dispatch()

    def _dispatch(self) -> None:
        while (event := self.proto.next_event()) is not None:
            if not isinstance(event, RequestReceived):
                continue
            message, peer = event.message, event.node
            if isinstance(message, Ping):
                pong = Pong(message.request_id, self.record.seq, ipaddress.ip_address(peer.ip),
                            peer.port)
                self.proto.send_response(peer, pong)
            elif isinstance(message, FindNode):
                self.findnode_requests.append(message.distances)
                for response in self.answer_findnode(message):
                    self.proto.send_response(peer, response)
                    self.nodes_messages_sent += 1
                    self.records_sent += len(response.records)

    async def _flush(self) -> None:
        out = self.proto.datagrams_to_send() + self._raw_out
        self._raw_out = []
        for data, address in out:
            try:
                await self.sock.sendto(data, address)
            except OSError:
                pass


# --- honest networks on the fake network ----------------------------------------------------


@dataclass
class Member:
    """One honest node of a test network."""

    node: Node
    kind: Kind
    """onion: onion3 and tcp; ip: tcp only; plain: neither."""

    @property
    def record(self) -> ENR:
        return self.node.local_enr

    @property
    def expected_onion_enode(self) -> str | None:
        return str(enode_from_enr(self.record)) if self.kind == "onion" else None


def fields_for(kind: Kind, index: int) -> dict[str, Any]:
    if kind == "onion":
        return {"tcp": 30303 + index, "onion3": onion_for(index)}
    if kind == "ip":
        return {"tcp": 20000 + index}
    return {}


@asynccontextmanager
async def fake_network(
    net: FakeNetwork,
    count: int,
    *,
    kind_of: Callable[[int], Kind] = lambda i: "onion" if i % 3 == 0 else "plain",
    first_seed: int = 1000,
    join_every: float = 1.0,
    settle: float = 30.0,
) -> AsyncIterator[list[Member]]:
    """``count`` maintained nodes of ours; node 0 is everyone's bootnode. They join
    ``join_every`` seconds apart and run ``settle`` more seconds (virtual time)."""
    members: list[Member] = []
    async with AsyncExitStack() as stack:
        for i in range(count):
            kind = kind_of(i)
            node = await stack.enter_async_context(
                open_node(
                    key_for(first_seed + i),
                    sock=net.socket(),
                    seq=1,
                    rng=seeded_rng(first_seed + 50_000 + i),
                    maintain=True,
                    bootnodes=[members[0].record] if members else [],
                    enr_fields=fields_for(kind, i),
                )
            )
            members.append(Member(node, kind))
            await trio.sleep(join_every)
        await trio.sleep(settle)
        yield members


async def crawl_from(
    net: FakeNetwork,
    bootnodes: Iterable[ENR],
    *,
    parallel: int = 8,
    seed: int = 1,
    frontier: Frontier | None = None,
    time_limit: float | None = 600.0,
    config: Config | None = None,
) -> tuple[Crawler, CrawlOutcome, NodeStatistics]:
    """Crawl from ``bootnodes`` with a fresh node of ours on ``net``."""
    async with open_node(
        key_for(seed), sock=net.socket(), seq=1, rng=seeded_rng(seed + 70_000),
        maintain=False, config=config,
    ) as node:
        crawler = Crawler(node, parallel=parallel, frontier=frontier)
        outcome = await crawler.run(list(bootnodes), time_limit=time_limit)
        return crawler, outcome, node.statistics()


# --- what a crawl emits ----------------------------------------------------------------------


def onion_enodes(frontier: Frontier) -> set[str]:
    """The enodes ``--onion-only`` emits: a valid enode of a record with a valid onion3."""
    out: set[str] = set()
    for entry in frontier.entries():
        c = classify(entry)
        if c.enode is not None and c.onion3_status == "valid":
            out.add(c.enode)
    return out


def assert_valid_onion_enodes(enodes: Iterable[str], frontier: Frontier | None = None) -> None:
    """Every enode parses, has an onion3 host and a real TCP port; with ``frontier``, it
    belongs to a node that answered the crawl."""
    for text in enodes:
        enode = parse_enode(text)
        assert enode.host_kind == "onion3", text
        assert enode.tcp is not None, text
        assert enode.tcp > 0, text
        assert not enode.problems(), text
        if frontier is not None:
            entry = frontier.get(enode.node_id)
            assert entry is not None, text
            assert entry.live, text
