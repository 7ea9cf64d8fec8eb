"""Hostile peers do not break, stall or fool the crawl.

An honest network of our own nodes runs on the fake network (autojump clock); hostile peers,
built on the sans-IO :class:`discv5.Protocol` (or answering with raw datagrams), are given to
the crawler as extra bootnodes. Every test checks the same three things:

* the crawl completes within a bounded amount of virtual time;
* every honest node is found and live, and the emitted onion enodes are exactly the honest
  onion nodes' (nothing from a hostile peer or a record it made up);
* what the hostile peers cost is bounded and counted (timeouts, failures by reason,
  rejected records, dropped packets).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.testing

from discv5 import FindNode, Nodes, NodeStatistics, log_distance, open_node
from discv5.crawl import Crawler, CrawlOutcome, Frontier, classify
from enr import ENR

from ..driver.fakenet import FakeNetwork, seeded_rng
from ._helpers import (
    Kind,
    Member,
    ScriptedPeer,
    assert_valid_onion_enodes,
    fake_network,
    key_for,
    keys_at_distance,
    onion_enodes,
    onion_for,
)

Clock = trio.testing.MockClock

HONEST = 12
REQUEST_TIMEOUT = 0.7  # Config's default, which the crawler node uses
RECORDS_PER_MESSAGE = 4  # ~200-byte records: four fit one 1280-byte packet


def kind_of(i: int) -> Kind:
    return "onion" if i % 2 == 0 else ("ip" if i % 3 == 0 else "plain")


# --- records a hostile peer hands out -----------------------------------------------------


_phantom_port = 60000


def phantoms(origin: bytes, distances: Sequence[int], count: int, first_seed: int) -> list[ENR]:
    """Valid signed records at ``distances`` from ``origin``, of nodes that do not exist (no
    socket on the fake network answers at their address). They advertise onion3 and tcp."""
    global _phantom_port
    out = []
    for key in keys_at_distance(origin, distances, count, first_seed):
        _phantom_port += 1
        seed = first_seed + _phantom_port
        out.append(ENR.build(key, 1, ip="127.0.0.1", udp=_phantom_port, tcp=30303,
                             onion3=onion_for(seed)))
    return out


def forged(record: ENR) -> ENR:
    """``record`` with one bit of its signature flipped (it no longer verifies)."""
    raw = bytearray(record.to_rlp())
    raw[5] ^= 0x01
    return ENR.from_rlp(bytes(raw), verify=False)


def at(origin: bytes, records: Sequence[ENR], distances: Sequence[int]) -> list[ENR]:
    return [r for r in records if log_distance(origin, r.node_id) in distances]


def chunks(records: Sequence[ENR], size: int = RECORDS_PER_MESSAGE) -> list[tuple[ENR, ...]]:
    return [tuple(records[i:i + size]) for i in range(0, len(records), size)] or [()]


# --- hostile peers ----------------------------------------------------------------------------


class SilentPeer(ScriptedPeer):
    """Receives everything, answers nothing."""

    def on_datagram(self, data: bytes, src: tuple[str, int], now: float) -> None:
        return


class GarbagePeer(ScriptedPeer):
    """Answers every datagram with three datagrams of random bytes (too short, plausible,
    oversized)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.random = random.Random(self.node_id)
        self.garbage_sent = 0

    def on_datagram(self, data: bytes, src: tuple[str, int], now: float) -> None:
        for size in (self.random.randrange(1, 63), self.random.randrange(63, 1280), 1500):
            self.send_raw(self.random.randbytes(size), src)
            self.garbage_sent += 1


class LyingTotalPeer(ScriptedPeer):
    """Answers FINDNODE with ``messages`` NODES messages that all claim ``total`` = 100."""

    def __init__(self, *args: Any, messages: int, pool: Sequence[ENR] = (), **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.messages = messages
        self.pool = list(pool)

    def answer_findnode(self, request: FindNode) -> list[Nodes]:
        records = [self.record] if 0 in request.distances else []
        records += at(self.node_id, self.pool, request.distances)
        groups = chunks(records)
        return [Nodes(request.request_id, 100, groups[i % len(groups)])
                for i in range(self.messages)]


class FloodPeer(ScriptedPeer):
    """Answers every FINDNODE with ``messages`` NODES messages (claiming that many) full of
    records at the wrong distance, forged signatures, duplicates, and made-up nodes at the
    right distance."""

    def __init__(self, *args: Any, messages: int, pool: Sequence[ENR], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.messages = messages
        self.pool = list(pool)
        self.forged_pool = [forged(r) for r in self.pool]
        self.rejectable_in_accepted_messages = 0
        """Forged and misplaced records in the messages a client accepts (five per answer)."""

    def answer_findnode(self, request: FindNode) -> list[Nodes]:
        wanted = set(request.distances)
        right = [r for r in self.pool if log_distance(self.node_id, r.node_id) in wanted]
        wrong = [r for r in self.pool if log_distance(self.node_id, r.node_id) not in wanted]
        out = []
        for i in range(self.messages):
            picks: list[ENR] = []
            if right:
                picks.append(right[i % len(right)])  # duplicates across messages
                picks.append(right[i % len(right)])  # and within one
            if wrong:
                picks.append(wrong[i % len(wrong)])
            picks.append(self.forged_pool[i % len(self.forged_pool)])
            if i < 5:
                self.rejectable_in_accepted_messages += 1 + bool(wrong)
            out.append(Nodes(request.request_id, min(self.messages, 255),
                             tuple(picks[:RECORDS_PER_MESSAGE])))
        return out


class PhantomPeer(ScriptedPeer):
    """Honest in form: answers each FINDNODE with up to 16 records at the distances asked, but
    of nodes that do not exist."""

    def __init__(self, *args: Any, pool: Sequence[ENR], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.pool = list(pool)

    def answer_findnode(self, request: FindNode) -> list[Nodes]:
        records = [self.record] if 0 in request.distances else []
        records += at(self.node_id, self.pool, request.distances)[:16]
        groups = chunks(records)
        return [Nodes(request.request_id, len(groups), g) for g in groups]


# --- running a crawl among them -------------------------------------------------------------


@dataclass
class Result:
    frontier: Frontier
    outcome: CrawlOutcome
    stats: NodeStatistics
    counters: dict[str, int] = field(default_factory=dict)
    """The crawler node's protocol counters (white box: records_rejected is not public)."""


@asynccontextmanager
async def honest_network(net: FakeNetwork) -> AsyncIterator[list[Member]]:
    async with fake_network(net, HONEST, kind_of=kind_of, first_seed=20_000) as members:
        yield members


async def crawl_among(
    net: FakeNetwork, members: list[Member], peers: Sequence[ScriptedPeer], *,
    parallel: int = 8, time_limit: float = 300.0,
) -> Result:
    async with trio.open_nursery() as nursery:
        for peer in peers:
            await nursery.start(peer.serve)
        async with open_node(key_for(2), sock=net.socket(), seq=1, rng=seeded_rng(77),
                             maintain=False) as node:
            crawler = Crawler(node, parallel=parallel)
            outcome = await crawler.run(
                [members[0].record, *(p.record for p in peers)], time_limit=time_limit
            )
            stats = node.statistics()
            counters = dict(node._proto.counters)
        nursery.cancel_scope.cancel()
    return Result(crawler.frontier, outcome, stats, counters)


def check_honest_crawl(result: Result, members: list[Member], bound: float) -> None:
    f = result.frontier
    assert result.outcome.completed, "the crawl did not finish"
    assert result.outcome.duration <= bound, result.outcome.duration
    honest = {m.record.node_id for m in members}
    live = {e.node_id for e in f.entries() if e.live}
    assert honest <= live, f"missed {len(honest - live)} honest nodes"
    expected = {m.expected_onion_enode for m in members if m.expected_onion_enode}
    assert onion_enodes(f) == expected
    assert_valid_onion_enodes(onion_enodes(f), f)
    # Nothing but honest nodes yields any enode at all (hostile peers advertise no tcp; the
    # nodes they made up never answer).
    for entry in f.entries():
        if entry.node_id not in honest:
            assert classify(entry).enode is None
    # Work is bounded per node.
    assert f.stats.requests <= len(f) * f.max_requests


def hostile_ids(peers: Sequence[ScriptedPeer]) -> set[bytes]:
    return {p.node_id for p in peers}


# --- the tests --------------------------------------------------------------------------------


async def test_peers_that_never_answer(autojump_clock: Clock) -> None:
    net = FakeNetwork(seed=31)
    async with honest_network(net) as members:
        peers = [SilentPeer(key_for(21_000 + i), net.socket(), rng_seed=i) for i in range(6)]
        result = await crawl_among(net, members, peers)
    # Each costs two request timeouts (first contact and one retry), in parallel.
    check_honest_crawl(result, members, bound=4 * REQUEST_TIMEOUT + 1)
    f = result.frontier
    for peer in peers:
        entry = f.get(peer.node_id)
        assert entry is not None
        assert not entry.live
        assert entry.failure == "no answer"
        assert peer.datagrams_received == 2  # one first-contact packet per attempt
    assert f.failures == {"no answer": 6}
    assert (f.stats.timeouts, f.stats.retries, f.stats.failed) == (12, 6, 6)


async def test_peers_that_answer_with_garbage(autojump_clock: Clock) -> None:
    net = FakeNetwork(seed=32)
    async with honest_network(net) as members:
        peers = [GarbagePeer(key_for(22_000 + i), net.socket(), rng_seed=i) for i in range(5)]
        result = await crawl_among(net, members, peers)
    check_honest_crawl(result, members, bound=4 * REQUEST_TIMEOUT + 1)
    f = result.frontier
    assert f.failures == {"no answer": 5}
    assert f.stats.timeouts == 10
    garbage = sum(p.garbage_sent for p in peers)
    assert garbage == 5 * 2 * 3
    # Every garbage datagram was dropped, by reason, and none was taken for an answer.
    assert sum(result.stats.drops.values()) == garbage
    assert result.stats.drops.get("decode", 0) == garbage


async def test_peers_that_lie_about_total_and_stop_early(autojump_clock: Clock) -> None:
    """total = 100 but only two messages: the request runs into its timeout (restarted by
    each message, capped by the protocol at 5 messages); records of the unfinished answer are
    not used, and the liar is not live."""
    net = FakeNetwork(seed=33)
    async with honest_network(net) as members:
        peers = []
        for i in range(4):
            key = key_for(23_000 + i)
            pool = phantoms(key.public_key.node_id, [256, 255, 254], 6, 23_100 + 100 * i)
            peers.append(LyingTotalPeer(key, net.socket(), messages=2, pool=pool, rng_seed=i))
        result = await crawl_among(net, members, peers)
    check_honest_crawl(result, members, bound=4 * REQUEST_TIMEOUT + 1)
    f = result.frontier
    for peer in peers:
        entry = f.get(peer.node_id)
        assert entry is not None
        assert not entry.live
        assert len(peer.findnode_requests) == 2  # first contact + retry
    assert len(f) == HONEST + len(peers)  # nothing from the unfinished answers
    assert f.failures == {"no answer": 4}


async def test_peers_that_lie_about_total_and_keep_sending(autojump_clock: Clock) -> None:
    """total = 100 and forty messages per answer: the protocol takes five and drops the
    rest as unsolicited; the peer answered, so it is live, and its records are all phantoms
    that cost two timeouts each."""
    net = FakeNetwork(seed=34)
    async with honest_network(net) as members:
        peers = []
        pools = []
        for i in range(3):
            key = key_for(24_000 + i)
            pool = phantoms(key.public_key.node_id, [256, 255, 254], 8, 24_100 + 100 * i)
            pools.append(pool)
            peers.append(LyingTotalPeer(key, net.socket(), messages=40, pool=pool, rng_seed=i))
        result = await crawl_among(net, members, peers)
    made_up = {r.node_id for pool in pools for r in pool}
    check_honest_crawl(result, members, bound=60)
    f = result.frontier
    sent = sum(p.nodes_messages_sent for p in peers)
    answered = sum(len(p.findnode_requests) for p in peers)
    assert sent == 40 * answered
    # Five messages per request are accepted, the other 35 dropped (none lost to timeouts).
    assert result.stats.drops.get("unsolicited-response", 0) == 35 * answered
    for peer in peers:
        entry = f.get(peer.node_id)
        assert entry is not None
        assert entry.live
    learned = {e.node_id for e in f.entries()} & made_up
    assert learned, "the phantom records were not learned at all"
    for node_id in learned:
        entry = f.get(node_id)
        assert entry is not None
        assert not entry.live
        assert classify(entry).enode is None
    assert f.failures == {"no answer": len(learned)}
    assert len(f) <= HONEST + len(peers) + len(made_up)


async def test_peers_that_flood_thousands_of_records(autojump_clock: Clock) -> None:
    net = FakeNetwork(seed=35)
    async with honest_network(net) as members:
        peers = []
        made_up: set[bytes] = set()
        for i in range(3):
            key = key_for(25_000 + i)
            pool = phantoms(key.public_key.node_id, [256, 255, 254, 253], 12, 25_100 + 100 * i)
            made_up |= {r.node_id for r in pool}
            peers.append(FloodPeer(key, net.socket(), messages=100, pool=pool, rng_seed=i))
        result = await crawl_among(net, members, peers)
    check_honest_crawl(result, members, bound=60)
    f = result.frontier
    sent = sum(p.records_sent for p in peers)
    assert sent >= 2000, sent
    for peer in peers:
        assert len(peer.findnode_requests) <= f.max_requests
    # The crawl state holds no more than the distinct, verified records at the right
    # distances: the forged, duplicate and misplaced ones were rejected on the way in.
    assert len(f) <= HONEST + len(peers) + len(made_up)
    assert f.stats.records_received < sent / 10
    assert result.stats.records_rejected == sum(p.rejectable_in_accepted_messages for p in peers)
    for entry in f.entries():
        if entry.node_id in made_up:
            assert not entry.live
            assert classify(entry).enode is None
    assert set(f.failures) <= {"no answer"}


async def test_rejected_records_are_counted_in_public_statistics(autojump_clock: Clock) -> None:
    """Every forged or misplaced record in the NODES messages the crawler accepted (the first
    five of each answer) is counted in ``NodeStatistics.records_rejected``; duplicates are
    merged, not counted; honest nodes cause no rejections."""
    net = FakeNetwork(seed=36)
    async with honest_network(net) as members:
        key = key_for(26_000)
        pool = phantoms(key.public_key.node_id, [256, 255], 6, 26_100)
        peer = FloodPeer(key, net.socket(), messages=20, pool=pool, rng_seed=1)
        result = await crawl_among(net, members, [peer])
    check_honest_crawl(result, members, bound=60)
    assert peer.findnode_requests
    assert result.stats.records_rejected == peer.rejectable_in_accepted_messages > 0
    assert result.stats.records_rejected == result.counters["records_rejected"]


async def test_peers_that_point_at_nodes_that_do_not_exist(autojump_clock: Clock) -> None:
    net = FakeNetwork(seed=37)
    async with honest_network(net) as members:
        peers = []
        made_up: set[bytes] = set()
        for i in range(2):
            key = key_for(27_000 + i)
            pool = phantoms(key.public_key.node_id, [256, 255, 254], 20, 27_100 + 100 * i)
            made_up |= {r.node_id for r in pool}
            peers.append(PhantomPeer(key, net.socket(), pool=pool, rng_seed=i))
        result = await crawl_among(net, members, peers)
    f = result.frontier
    learned = {e.node_id for e in f.entries()} & made_up
    # Each made-up node costs two timeouts; eight workers share them.
    bound = 2 * REQUEST_TIMEOUT * (len(learned) / 8 + 2) + 1
    check_honest_crawl(result, members, bound=bound)
    assert len(learned) >= 20
    for peer in peers:
        entry = f.get(peer.node_id)
        assert entry is not None
        assert entry.live
        assert classify(entry).enode is None  # no tcp: no enode, although live
    for node_id in learned:
        entry = f.get(node_id)
        assert entry is not None
        assert not entry.live
        assert classify(entry).rejected == "not live (never answered us)"
    assert f.failures == {"no answer": len(learned)}
    assert f.stats.timeouts == 2 * len(learned)


async def test_all_of_them_at_once(autojump_clock: Clock) -> None:
    net = FakeNetwork(seed=38)
    async with honest_network(net) as members:
        peers: list[ScriptedPeer] = []
        for i in range(3):
            peers.append(SilentPeer(key_for(28_000 + i), net.socket(), rng_seed=i))
            peers.append(GarbagePeer(key_for(28_100 + i), net.socket(), rng_seed=10 + i))
            key = key_for(28_200 + i)
            pool = phantoms(key.public_key.node_id, [256, 255, 254], 8, 28_300 + 100 * i)
            peers.append(LyingTotalPeer(key, net.socket(), messages=2, pool=pool,
                                        rng_seed=20 + i))
            key = key_for(28_600 + i)
            pool = phantoms(key.public_key.node_id, [256, 255, 254], 8, 28_700 + 100 * i)
            peers.append(FloodPeer(key, net.socket(), messages=60, pool=pool, rng_seed=30 + i))
        result = await crawl_among(net, members, peers, parallel=4)
    check_honest_crawl(result, members, bound=120)
    f = result.frontier
    assert f.stats.failed >= 9  # silent, garbage and short-total liars at least
    assert set(f.failures) == {"no answer"}
    assert sum(result.stats.drops.values()) > 0
