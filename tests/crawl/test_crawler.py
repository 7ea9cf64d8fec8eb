"""The crawler over networks of our own nodes.

Most tests run on the in-memory fake network with trio's autojump clock: the nodes join and
settle in virtual time, delivery is immediate, every key and every node's randomness is
seeded. One test crawls a real loopback network made by :func:`discv5._testnet.open_testnet`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
import trio
import trio.testing

from discv5 import FindNode, Nodes, log_distance, open_node
from discv5._testnet import open_testnet
from discv5.crawl import CrawlEntry, Crawler, EntryState, Frontier, classify
from enr import ENR, enode_from_enr

from ..driver.fakenet import FakeNetwork, seeded_rng
from ._helpers import (
    Kind,
    Member,
    ScriptedPeer,
    assert_valid_onion_enodes,
    broken_onion,
    crawl_from,
    fake_network,
    key_for,
    keys_at_distance,
    onion_enodes,
    onion_for,
    signed_record,
)

Clock = trio.testing.MockClock


def mixed(i: int) -> Kind:
    """Every third node advertises onion3 + tcp, every fifth (other) one tcp only."""
    if i % 3 == 0:
        return "onion"
    return "ip" if i % 5 == 0 else "plain"


def expected_onion(members: Iterable[Member]) -> set[str]:
    return {m.expected_onion_enode for m in members if m.expected_onion_enode is not None}


def all_enodes(frontier: Frontier) -> set[str]:
    return {c.enode for e in frontier.entries() if (c := classify(e)).enode is not None}


# --- a 50-node network ----------------------------------------------------------------------


async def test_crawl_finds_every_node_and_exactly_the_onion_enodes(
    autojump_clock: Clock,
) -> None:
    net = FakeNetwork(seed=1)
    async with fake_network(net, 50, kind_of=mixed) as members:
        done: list[bytes] = []

        def on_done(entry: CrawlEntry) -> None:
            done.append(entry.node_id)

        async with open_node(key_for(1), sock=net.socket(), seq=1, rng=seeded_rng(7),
                             maintain=False) as node:
            crawler = Crawler(node, parallel=8, on_entry_done=on_done)
            outcome = await crawler.run([members[0].record], time_limit=600)
        frontier = crawler.frontier

    assert outcome.completed
    ids = {m.record.node_id for m in members}
    live = {e.node_id for e in frontier.entries() if e.live}
    assert live == ids, f"missed {len(ids - live)} nodes"
    assert {e.node_id for e in frontier.entries()} == ids
    assert all(e.state is EntryState.DONE for e in frontier.entries())
    s = frontier.stats
    assert (s.seen, s.live, s.failed, s.timeouts, s.retries) == (50, 50, 0, 0, 0)
    assert not frontier.failures
    assert sorted(done) == sorted(ids)  # on_entry_done: once per node

    onions = onion_enodes(frontier)
    assert onions == expected_onion(members)
    assert len(onions) == sum(m.kind == "onion" for m in members) == 17
    assert_valid_onion_enodes(onions, frontier)
    # Nodes with tcp only give IP enodes (emitted without --onion-only); plain ones nothing.
    ip_enodes = {str(enode_from_enr(m.record)) for m in members if m.kind == "ip"}
    assert all_enodes(frontier) == onions | ip_enodes
    for entry in frontier.entries():
        c = classify(entry)
        member = next(m for m in members if m.record.node_id == entry.node_id)
        assert c.onion_capable == (member.kind == "onion")
        if member.kind == "plain":
            assert c.enode is None
            assert c.rejected is not None
            assert "tcp" in c.rejected
    # Enumeration is cheap: a handful of requests per node, far below max_requests.
    assert s.requests <= 6 * len(ids)


async def test_concurrency_is_bounded_by_parallel(autojump_clock: Clock) -> None:
    net = FakeNetwork(seed=2)
    async with fake_network(net, 24, first_seed=3000) as members, open_node(
        key_for(2), sock=net.socket(), seq=1, rng=seeded_rng(8), maintain=False
    ) as node:
        in_flight = peak = 0
        real_find_node = node.find_node

        async def counting_find_node(enr: ENR, distances: Iterable[int],
                                     **kw: Any) -> list[ENR]:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                await trio.sleep(0.05)  # keep requests overlapping in virtual time
                return await real_find_node(enr, distances, **kw)
            finally:
                in_flight -= 1

        node.find_node = counting_find_node  # type: ignore[method-assign]
        crawler = Crawler(node, parallel=3)
        outcome = await crawler.run([members[0].record], time_limit=600)
    assert outcome.completed
    assert peak == 3
    assert {e.node_id for e in crawler.frontier.entries() if e.live} == {
        m.record.node_id for m in members
    }


async def test_parallel_must_be_positive(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    async with open_node(key_for(1), sock=net.socket(), seq=1, maintain=False) as node:
        with pytest.raises(ValueError, match="parallel"):
            Crawler(node, parallel=0)


class TablePeer(ScriptedPeer):
    """Answers FINDNODE from a fixed table, honestly: the records at the distances asked."""

    def __init__(self, *args: Any, table: Iterable[ENR] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.table = list(table)

    def answer_findnode(self, request: FindNode) -> list[Nodes]:
        records = [self.record] if 0 in request.distances else []
        records += [r for r in self.table
                    if log_distance(self.node_id, r.node_id) in request.distances][:16]
        groups = [tuple(records[i:i + 4]) for i in range(0, len(records), 4)] or [()]
        return [Nodes(request.request_id, len(groups), g) for g in groups]


async def test_a_node_known_only_from_a_closer_bucket_is_found(autojump_clock: Clock) -> None:
    """BUG (discv5/crawl/_frontier.py, Frontier.next_distances: ``entry.stale >=
    self.stop_after_stale``): a node's walk ends after three answers that brought nothing new.
    Far buckets are the ones every crawler already knows, so the walk stops before the closer
    buckets, which hold the nodes nobody else lists. Y's buckets 256, 255 and 254 hold 8 nodes
    each, all already known; bucket 253 holds X, known to no one else: X is never found.

    The same thing happens on a real network: crawling a 1000-node testnet of ours
    (benchmarks/bench_crawl.py) found 999/1000 nodes; the missing node was live in 29 tables at
    distances 248-251, and none of those nodes was asked below distance 252."""
    net = FakeNetwork(seed=9)
    y_key = key_for(11_000)
    y_id = y_key.public_key.node_id
    far = [k for d in (256, 255, 254) for k in keys_at_distance(y_id, [d], 8, 11_100 + d * 1000)]
    [x_key] = keys_at_distance(y_id, [253], 1, 11_050)
    known = [TablePeer(k, net.socket(), rng_seed=i) for i, k in enumerate(far)]
    x = TablePeer(x_key, net.socket(), fields={"tcp": 30303, "onion3": onion_for(11_050)},
                  rng_seed=99)
    y = TablePeer(y_key, net.socket(), table=[p.record for p in known] + [x.record],
                  rng_seed=98)
    async with trio.open_nursery() as nursery:
        for peer in (*known, x, y):
            await nursery.start(peer.serve)
        # Y first; the nodes of its far buckets are known from the start.
        crawler, outcome, _ = await crawl_from(
            net, [y.record, *(p.record for p in known)], parallel=1
        )
        nursery.cancel_scope.cancel()
    f = crawler.frontier
    assert outcome.completed
    live = {e.node_id for e in f.entries() if e.live}
    assert live >= {p.node_id for p in (*known, y)}
    assert x.node_id in f, f"Y was asked {y.findnode_requests}"
    assert onion_enodes(f) == {str(enode_from_enr(x.record))}


# --- records, liveness, retries ---------------------------------------------------------------


async def test_the_newest_record_of_each_node_is_kept(autojump_clock: Clock) -> None:
    """A node that changed its record after the others learned it: the crawl ends up with
    its new record (the node answers FINDNODE [0] with it), and the enode follows."""
    net = FakeNetwork(seed=3)
    async with fake_network(net, 12, first_seed=4000, kind_of=lambda i: "onion") as members:
        changed = members[5]
        new_record = changed.node.update_enr(tcp=40404)
        assert new_record.seq == 2
        crawler, _outcome, _ = await crawl_from(net, [members[0].record])
        others = [m.node.table.get(new_record.node_id) for m in members if m is not changed]
        assert any(r is not None and r.seq == 1 for r in others)  # tables hold the old one
    entry = crawler.frontier.get(new_record.node_id)
    assert entry is not None
    assert entry.live
    assert entry.seq == 2
    assert entry.enr() == new_record
    assert classify(entry).enode == str(enode_from_enr(new_record))
    assert ":40404?discport=" in str(classify(entry).enode)
    assert onion_enodes(crawler.frontier) == expected_onion(members)


class FlakyPeer(ScriptedPeer):
    """Drops the first ``drop`` datagrams it receives, then behaves."""

    def __init__(self, *args: Any, drop: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drop = drop

    def on_datagram(self, data: bytes, src: tuple[str, int], now: float) -> None:
        if self.drop > 0:
            self.drop -= 1
            return
        super().on_datagram(data, src, now)


async def test_a_first_contact_timeout_is_retried_once(autojump_clock: Clock) -> None:
    net = FakeNetwork(seed=4)
    fields = {"tcp": 30303, "onion3": onion_for(7)}
    once = FlakyPeer(key_for(5001), net.socket(), fields=fields, drop=1, rng_seed=1)
    twice = FlakyPeer(key_for(5002), net.socket(), fields=fields, drop=2, rng_seed=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(once.serve)
        await nursery.start(twice.serve)
        crawler, outcome, _ = await crawl_from(net, [once.record, twice.record])
        nursery.cancel_scope.cancel()
    f = crawler.frontier
    assert outcome.completed
    first, second = f.get(once.node_id), f.get(twice.node_id)
    assert first is not None
    assert second is not None
    assert first.live
    assert first.state is EntryState.DONE
    assert classify(first).enode == str(enode_from_enr(once.record))
    assert not second.live
    assert second.state is EntryState.FAILED
    assert classify(second).enode is None
    assert f.stats.retries == 2
    assert f.stats.timeouts == 3
    assert f.failures == {"no answer": 1}
    # A node that never answered costs exactly two requests (first contact and the retry).
    assert twice.findnode_requests == []


async def test_live_means_the_node_itself_answered(autojump_clock: Clock) -> None:
    """A peer that relays records of nodes that are gone: they are found but never live, and
    no enode is emitted for them even though their records are perfectly valid."""
    net = FakeNetwork(seed=5)
    gone = [signed_record(key_for(6000 + i), 1, ip="127.0.0.1", udp=50000 + i, tcp=30303,
                          onion3=onion_for(6000 + i)) for i in range(40)]

    class Relayer(ScriptedPeer):
        def answer_findnode(self, request: FindNode) -> list[Nodes]:
            records = [self.record] if 0 in request.distances else []
            records += [r for r in gone
                        if log_distance(self.node_id, r.node_id) in request.distances][:4]
            return [Nodes(request.request_id, 1, tuple(records))]

    relayer = Relayer(key_for(6999), net.socket(), rng_seed=3)
    async with trio.open_nursery() as nursery:
        await nursery.start(relayer.serve)
        crawler, _outcome, _ = await crawl_from(net, [relayer.record], parallel=4)
        nursery.cancel_scope.cancel()
    f = crawler.frontier
    relayed = [f.get(r.node_id) for r in gone]
    found = [e for e in relayed if e is not None]
    assert found, "the relayer's records were not learned"
    for entry in found:
        assert not entry.live
        assert entry.state is EntryState.FAILED
        assert entry.failure == "no answer"
        c = classify(entry)
        assert c.onion_capable
        assert c.enode is None
        assert c.rejected == "not live (never answered us)"
    assert onion_enodes(f) == set()
    assert f.failures == {"no answer": len(found)}
    assert f.stats.timeouts == 2 * len(found)


async def test_records_that_cannot_be_contacted_or_give_no_enode(autojump_clock: Clock) -> None:
    """Live nodes whose records give no valid enode (bad onion3, no tcp) are rejected with a
    reason; a record without an IP endpoint is counted as unusable, not contacted."""
    net = FakeNetwork(seed=6)
    sock_bad, sock_notcp = net.socket(), net.socket()
    bad_onion_record = signed_record(
        key_for(7001), 1, ip="127.0.0.1", udp=sock_bad.address[1], tcp=30303,
        onion3=broken_onion(onion_for(7001)),
    )
    bad = ScriptedPeer(key_for(7001), sock_bad, record=bad_onion_record, rng_seed=4)
    notcp = ScriptedPeer(key_for(7002), sock_notcp, fields={"onion3": onion_for(7002)},
                         rng_seed=5)
    tor_only = signed_record(key_for(7003), 1, tcp=30303, onion3=onion_for(7003))
    async with trio.open_nursery() as nursery:
        await nursery.start(bad.serve)
        await nursery.start(notcp.serve)
        crawler, outcome, stats = await crawl_from(
            net, [bad.record, notcp.record, tor_only], parallel=2
        )
        nursery.cancel_scope.cancel()
    f = crawler.frontier
    assert outcome.completed
    entries = {r.node_id: f.get(r.node_id) for r in (bad.record, notcp.record, tor_only)}
    e_bad, e_notcp, e_tor = (entries[r.node_id] for r in (bad.record, notcp.record, tor_only))
    assert e_bad is not None
    assert e_notcp is not None
    assert e_tor is not None
    assert e_bad.live
    assert e_notcp.live
    c = classify(e_bad)
    assert c.onion_capable
    assert c.enode is None
    assert c.onion3_status == "invalid: onion address checksum mismatch"
    assert c.rejected is not None
    assert "onion3" in c.rejected
    c = classify(e_notcp)
    assert c.onion_capable
    assert c.enode is None
    assert c.onion3_status == "valid"
    assert c.rejected is not None
    assert "tcp" in c.rejected
    assert not e_tor.live
    assert e_tor.state is EntryState.FAILED
    assert f.failures == {"record has no IP address and UDP port": 1}
    assert classify(e_tor).enode is None
    assert all_enodes(f) == set()
    assert stats.requests_sent == f.stats.requests  # the Tor-only record cost no request


async def test_time_limit_stops_the_crawl(autojump_clock: Clock) -> None:
    net = FakeNetwork(seed=7)
    silent = [ENR.build(key_for(8000 + i), 1, ip="127.0.0.1", udp=55000 + i)
              for i in range(20)]
    start = trio.current_time()
    crawler, outcome, _ = await crawl_from(net, silent, parallel=2, time_limit=1.0)
    assert not outcome.completed
    assert outcome.duration == pytest.approx(1.0, abs=0.01)
    assert trio.current_time() - start == pytest.approx(1.0, abs=0.01)
    assert crawler.frontier.stats.live == 0
    assert crawler.frontier.active == 0  # interrupted nodes were finished


# --- resuming with a frontier ------------------------------------------------------------


async def test_a_second_run_over_the_same_frontier_revalidates_the_bootnodes(
    autojump_clock: Clock,
) -> None:
    net = FakeNetwork(seed=8)
    async with fake_network(net, 10, first_seed=9000) as members:
        crawler, first, _ = await crawl_from(net, [members[0].record])
        frontier = crawler.frontier
        assert first.completed
        assert frontier.stats.live == 10
        requests = frontier.stats.requests
        again, second, _ = await crawl_from(net, [members[0].record], frontier=frontier, seed=2)
    assert again.frontier is frontier
    assert second.completed
    assert frontier.stats.requests > requests  # the bootnode was asked again
    assert frontier.stats.seen == 10
    assert frontier.stats.live == 10
    assert onion_enodes(frontier) == expected_onion(members)


# --- a real loopback network ------------------------------------------------------------------


async def test_crawl_a_loopback_testnet() -> None:
    """30 nodes of ours on 127.0.0.1 (real UDP), half with onion3: all found, and the onion
    enodes are exactly the testnet's expected set."""
    with trio.fail_after(60):
        async with open_testnet(30, seed=11, onion_fraction=0.5) as net, open_node(
            listen=("127.0.0.1", 0), maintain=False, rng=seeded_rng(12)
        ) as node:
            crawler = Crawler(node, parallel=16)
            outcome = await crawler.run([net.bootnode], time_limit=30)
            expected = net.expected_enodes
            ids = {n.enr.node_id for n in net.nodes}
    f = crawler.frontier
    assert outcome.completed
    assert {e.node_id for e in f.entries() if e.live} == ids
    assert len(expected) == 15
    assert onion_enodes(f) == expected
    assert_valid_onion_enodes(onion_enodes(f), f)
    assert all_enodes(f) == expected  # testnet nodes without onion3 have no tcp
    assert f.stats.failed == 0
