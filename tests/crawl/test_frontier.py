"""Unit tests of :class:`discv5.crawl.Frontier`: the crawl's pure bookkeeping.

No I/O and no clock: records are built from seeded keys and time is passed in by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from discv5.crawl import CrawlEntry, EntryState, Frontier, classify
from enr import ENR

from ._helpers import key_for

LOCAL = key_for(0)


def rec(seed: int, seq: int = 1, **fields: Any) -> ENR:
    """A signed record of node ``seed`` at 127.0.0.1."""
    return ENR.build(key_for(seed), seq, ip="127.0.0.1", udp=40000 + seed, **fields)


def frontier(**options: int) -> Frontier:
    return Frontier(LOCAL.public_key.node_id, **options)


def take(f: Frontier) -> CrawlEntry:
    entry = f.next_entry()
    assert entry is not None
    return entry


def answer(f: Frontier, entry: CrawlEntry, records: Sequence[ENR], now: float = 1.0) -> list[ENR]:
    """The node answers the distances the frontier wants asked next."""
    distances = f.next_distances(entry)
    assert distances is not None
    return f.on_answer(entry, distances, records, now)


# --- learning -------------------------------------------------------------------------------


def test_add_learns_each_node_once() -> None:
    f = frontier()
    a, b = rec(1), rec(2)
    assert f.add(a, 0.0) is True
    assert f.add(b, 0.0) is True
    assert f.add(a, 1.0) is False
    assert len(f) == 2
    assert a.node_id in f
    assert b.node_id in f
    assert f.stats.seen == 2
    assert f.queued == 2
    entry = f.get(a.node_id)
    assert entry is not None
    assert entry.state is EntryState.QUEUED
    assert entry.first_seen == 0.0
    assert not entry.live
    assert [e.node_id for e in f.entries()] == [a.node_id, b.node_id]


def test_own_record_is_never_added() -> None:
    f = frontier()
    own = ENR.build(LOCAL, 1, ip="127.0.0.1", udp=30303)
    assert f.add(own, 0.0) is False
    assert len(f) == 0
    assert f.stats.seen == 0
    assert f.next_entry() is None
    assert f.finished


def test_entries_keep_the_record_as_bytes_and_decode_it_on_demand() -> None:
    f = frontier()
    record = rec(1, onion3=None, tcp=30303)
    f.add(record, 0.0)
    entry = f.get(record.node_id)
    assert entry is not None
    assert isinstance(entry.record, bytes)
    assert entry.record == record.to_rlp()
    assert entry.enr() == record
    assert entry.seq == 1


def test_newest_seq_wins() -> None:
    f = frontier()
    f.add(rec(1, seq=3), 0.0)
    assert f.add(rec(1, seq=2, tcp=1111), 1.0) is False  # older: ignored
    entry = f.get(rec(1).node_id)
    assert entry is not None
    assert entry.seq == 3
    assert entry.enr() == rec(1, seq=3)
    assert f.stats.updated_records == 0
    assert f.add(rec(1, seq=7, tcp=2222), 2.0) is False  # newer: replaces, still one node
    assert entry.seq == 7
    assert entry.enr() == rec(1, seq=7, tcp=2222)
    assert f.stats.updated_records == 1
    assert f.add(rec(1, seq=7, tcp=2222), 3.0) is False  # same again: nothing changes
    assert f.stats.updated_records == 1
    assert len(f) == 1
    assert f.stats.seen == 1
    assert f.queued == 1


def test_newest_seq_wins_whoever_reports_it() -> None:
    f = frontier()
    f.add(rec(1), 0.0)
    f.add(rec(2), 0.0)
    first = take(f)
    assert first.node_id == rec(1).node_id
    # Node 1 reports a newer record of node 2 (records are signed, so anyone may relay it)
    # and an older one of itself is ignored in favour of what we hold.
    answer(f, first, [rec(1, seq=1), rec(2, seq=4)])
    second = f.get(rec(2).node_id)
    assert second is not None
    assert second.seq == 4
    # Node 2 answers with its own record at distance 0, newer still.
    entry = take(f)
    assert entry is second
    answer(f, entry, [rec(2, seq=5, tcp=30303)])
    assert second.seq == 5
    assert second.enr().tcp == 30303
    assert f.stats.updated_records == 2


# --- scheduling -----------------------------------------------------------------------------


def test_next_entry_is_fifo_and_tracks_active() -> None:
    f = frontier()
    for seed in (1, 2, 3):
        f.add(rec(seed), 0.0)
    assert not f.finished
    a, b = take(f), take(f)
    assert (a.node_id, b.node_id) == (rec(1).node_id, rec(2).node_id)
    assert a.state is b.state is EntryState.ACTIVE
    assert (f.active, f.queued) == (2, 1)
    c = take(f)
    assert c.node_id == rec(3).node_id
    assert f.next_entry() is None
    assert not f.finished  # three still being asked
    for entry in (a, b, c):
        answer(f, entry, [])
        f.finish(entry)
    assert (f.active, f.queued) == (0, 0)
    assert f.finished
    assert all(e.state is EntryState.DONE for e in f.entries())


def test_finish_twice_counts_once() -> None:
    f = frontier()
    f.add(rec(1), 0.0)
    entry = take(f)
    assert f.on_timeout(entry, 1.0) is True
    assert f.on_timeout(entry, 2.0) is False
    f.finish(entry)
    f.finish(entry)
    assert f.active == 0
    assert f.stats.failed == 1
    assert f.failures == {"no answer": 1}


# --- what to ask and when to stop -----------------------------------------------------------


def test_first_request_asks_own_record_and_the_farthest_bucket() -> None:
    f = frontier()
    f.add(rec(1), 0.0)
    entry = take(f)
    assert f.next_distances(entry) == (0, 256)


def fresh(count: int, first_seed: int) -> list[ENR]:
    return [rec(seed) for seed in range(first_seed, first_seed + count)]


def test_full_buckets_are_asked_one_distance_at_a_time() -> None:
    f = frontier(max_requests=16)
    f.add(rec(1), 0.0)
    entry = take(f)
    asked = []
    for i in range(4):
        distances = f.next_distances(entry)
        assert distances is not None
        asked.append(distances)
        batch = fresh(16, 1000 + 16 * i)  # a full answer, all new
        assert f.on_answer(entry, distances, batch, 1.0) == batch
    assert asked == [(0, 256), (255,), (254,), (253,)]
    assert f.stats.seen == 1 + 64


def test_sparse_buckets_are_asked_several_distances_at_a_time() -> None:
    f = frontier()
    f.add(rec(1), 0.0)
    entry = take(f)
    answer(f, entry, fresh(16, 1000))
    answer(f, entry, fresh(2, 2000))  # bucket 255 is sparse
    distances = f.next_distances(entry)
    assert distances is not None
    assert len(distances) > 1
    assert distances == tuple(range(254, 254 - len(distances), -1))


def test_asked_distances_cover_every_bucket_from_256_down() -> None:
    """Whatever the answers look like, no bucket between 256 and the last one asked is
    skipped (also when a full answer to several distances may have cut the closer ones)."""
    f = frontier(max_requests=1000, stop_after_stale=1000)
    f.add(rec(1), 0.0)
    entry = take(f)
    sizes = [16, 3, 16, 16, 1, 0, 5, 16, 2, 9, 16, 1, 1, 4]
    asked: list[tuple[int, ...]] = []
    seed = 1000
    for size in sizes:
        distances = f.next_distances(entry)
        if distances is None:
            break
        asked.append(distances)
        f.on_answer(entry, distances, fresh(size, seed), 1.0)
        seed += size
    covered = {d for ds in asked for d in ds if d}
    assert asked[0] == (0, 256)
    assert covered == set(range(min(covered), 257))
    assert all(1 <= d <= 256 for ds in asked[1:] for d in ds)


def test_a_node_with_nothing_new_to_give_is_done() -> None:
    f = frontier(stop_after_stale=2)
    for seed in (1, 2, 3):
        f.add(rec(seed), 0.0)
    entry = take(f)
    assert answer(f, entry, [rec(1), rec(2)]) == []  # nothing new (own record + a known one)
    assert f.next_distances(entry) is not None
    assert answer(f, entry, [rec(3)]) == []
    assert f.next_distances(entry) is None


def test_new_nodes_reset_the_stale_count() -> None:
    f = frontier(stop_after_stale=2)
    f.add(rec(1), 0.0)
    f.add(rec(2), 0.0)
    entry = take(f)
    answer(f, entry, [rec(2)])
    answer(f, entry, [rec(2), rec(9)])
    answer(f, entry, [rec(2)])
    assert f.next_distances(entry) is not None
    answer(f, entry, [rec(9)])
    assert f.next_distances(entry) is None


def test_empty_buckets_end_the_node() -> None:
    f = frontier(stop_after_stale=100)
    f.add(rec(1), 0.0)
    entry = take(f)
    answer(f, entry, [rec(1), *fresh(16, 1000)])
    answer(f, entry, [])
    answer(f, entry, [])  # closer buckets are emptier still
    assert f.next_distances(entry) is None


def test_own_record_does_not_count_as_a_bucket_member() -> None:
    f = frontier(stop_after_stale=100)
    f.add(rec(1), 0.0)
    entry = take(f)
    answer(f, entry, [rec(1), *fresh(16, 1000)])
    answer(f, entry, [rec(1, seq=2)])  # only itself
    answer(f, entry, [rec(1, seq=3)])
    assert f.next_distances(entry) is None
    assert entry.seq == 3


def test_max_requests_bounds_what_one_node_costs() -> None:
    f = frontier(max_requests=4, stop_after_stale=100)
    f.add(rec(1), 0.0)
    entry = take(f)
    seed = 1000
    while (distances := f.next_distances(entry)) is not None:
        f.on_answer(entry, distances, fresh(16, seed), 1.0)  # always full and new
        seed += 16
    assert entry.requests == 4
    assert f.stats.requests == 4


def test_distance_never_goes_below_one() -> None:
    f = frontier(max_requests=1000, stop_after_stale=1000)
    f.add(rec(1), 0.0)
    entry = take(f)
    asked: list[tuple[int, ...]] = []
    seed = 1000
    while (distances := f.next_distances(entry)) is not None:
        asked.append(distances)
        f.on_answer(entry, distances, [rec(seed)], 1.0)  # sparse, always new
        seed += 1
    assert asked[0] == (0, 256)
    assert 1 in asked[-1]
    assert {d for ds in asked[1:] for d in ds} == set(range(1, 256))
    assert all(d >= 1 for ds in asked[1:] for d in ds)


# --- liveness, timeouts, retries ------------------------------------------------------------


def test_live_only_once_the_node_itself_answered() -> None:
    f = frontier()
    f.add(rec(1), 0.0)
    entry = take(f)
    answer(f, entry, [rec(1), rec(2), rec(3)], now=5.0)
    assert entry.live
    assert f.stats.live == 1
    assert (entry.first_response, entry.last_response, entry.last_check) == (5.0, 5.0, 5.0)
    for seed in (2, 3):  # known from node 1's answer only
        other = f.get(rec(seed).node_id)
        assert other is not None
        assert not other.live
        assert other.first_response is None
        assert classify(other).rejected == "not live (never answered us)"
    answer(f, entry, [rec(4)], now=7.0)
    assert (entry.first_response, entry.last_response) == (5.0, 7.0)
    assert f.stats.live == 1  # counted once per node


def test_first_contact_timeout_is_retried_once() -> None:
    f = frontier()
    f.add(rec(1), 0.0)
    entry = take(f)
    assert f.on_timeout(entry, 1.0) is True  # first contact: try again
    assert f.next_distances(entry) == (0, 256)  # the same request again
    assert f.on_timeout(entry, 2.0) is False  # the retry timed out too: give up
    assert entry.failure == "no answer"
    assert entry.last_check == 2.0
    assert not entry.live
    f.finish(entry)
    assert entry.state is EntryState.FAILED
    assert f.stats.timeouts == 2
    assert f.stats.retries == 1
    assert f.stats.requests == 2
    assert f.stats.failed == 1
    assert f.failures == {"no answer": 1}
    assert f.finished


def test_a_retry_that_is_answered_makes_the_node_live() -> None:
    f = frontier()
    f.add(rec(1), 0.0)
    entry = take(f)
    assert f.on_timeout(entry, 1.0) is True
    answer(f, entry, [rec(1)], now=2.0)
    assert entry.live
    assert entry.attempts == 0
    assert entry.failure is None
    f.finish(entry)
    assert entry.state is EntryState.DONE
    assert f.stats.failed == 0
    assert not f.failures
    assert (f.stats.timeouts, f.stats.retries, f.stats.requests) == (1, 1, 2)


def test_a_live_node_that_times_out_later_is_not_retried() -> None:
    f = frontier()
    f.add(rec(1), 0.0)
    entry = take(f)
    answer(f, entry, [rec(1), rec(2)])
    assert f.on_timeout(entry, 3.0) is False
    assert entry.failure is None
    f.finish(entry)
    assert entry.state is EntryState.DONE
    assert entry.live
    assert f.stats.retries == 0
    assert f.stats.failed == 0


def test_without_retries_one_timeout_fails_the_node() -> None:
    f = frontier(retries=0)
    f.add(rec(1), 0.0)
    entry = take(f)
    assert f.on_timeout(entry, 1.0) is False
    f.finish(entry)
    assert f.failures == {"no answer": 1}
    assert f.stats.retries == 0


def test_failures_are_counted_by_reason() -> None:
    f = frontier()
    for seed in (1, 2, 3):
        f.add(rec(seed), 0.0)
    a, b, c = take(f), take(f), take(f)
    f.on_unusable(a, "record has no IP address and UDP port")
    f.on_unusable(b, "record has no IP address and UDP port")
    f.on_timeout(c, 1.0)
    f.on_timeout(c, 2.0)
    for entry in (a, b, c):
        f.finish(entry)
    assert f.failures == {"record has no IP address and UDP port": 2, "no answer": 1}
    assert f.stats.failed == 3
    assert a.failure == "record has no IP address and UDP port"


def test_stats_count_requests_and_records() -> None:
    f = frontier()
    f.add(rec(1), 0.0)
    entry = take(f)
    answer(f, entry, [rec(1), rec(2), rec(3)])
    answer(f, entry, [rec(2), rec(4)])
    s = f.stats
    assert (s.requests, s.records_received, s.seen, s.live) == (2, 5, 4, 1)


# --- requeue (resuming, revalidating) -------------------------------------------------------


def test_requeue_asks_a_finished_node_again_from_the_top() -> None:
    f = frontier()
    f.add(rec(1), 0.0)
    entry = take(f)
    answer(f, entry, [rec(1)])
    answer(f, entry, [])
    f.finish(entry)
    assert f.finished
    f.requeue(entry.node_id)
    assert entry.state is EntryState.QUEUED
    assert f.queued == 1
    assert not f.finished
    again = take(f)
    assert again is entry
    assert f.next_distances(again) == (0, 256)
    assert (again.requests, again.stale, again.attempts) == (0, 0, 0)


def test_requeue_leaves_queued_and_active_nodes_alone() -> None:
    f = frontier()
    f.add(rec(1), 0.0)
    f.add(rec(2), 0.0)
    active = take(f)
    f.requeue(active.node_id)  # being asked: not queued a second time
    f.requeue(rec(2).node_id)  # already queued: not queued twice
    assert f.queued == 1
    assert active.state is EntryState.ACTIVE
    second = take(f)
    assert f.next_entry() is None
    assert second.node_id == rec(2).node_id


def test_add_does_not_requeue_a_known_node() -> None:
    f = frontier()
    f.add(rec(1), 0.0)
    entry = take(f)
    answer(f, entry, [])
    f.finish(entry)
    f.add(rec(1, seq=2), 1.0)
    assert f.queued == 0
    assert entry.state is EntryState.DONE
    assert entry.seq == 2


def test_a_requeued_failed_node_that_answers_is_no_longer_failed() -> None:
    """BUG (discv5/crawl/_frontier.py, Frontier.requeue): requeue resets the request
    counters but not ``failure``, and ``stats.failed``/``failures`` keep counting the node, so
    a node that failed once and answers on the second crawl is still reported as failed."""
    f = frontier()
    f.add(rec(1), 0.0)
    entry = take(f)
    f.on_timeout(entry, 1.0)
    f.on_timeout(entry, 2.0)
    f.finish(entry)
    assert f.stats.failed == 1
    f.requeue(entry.node_id)
    entry = take(f)
    answer(f, entry, [rec(1)], now=3.0)
    f.finish(entry)
    assert entry.live
    assert entry.state is EntryState.DONE
    assert entry.failure is None
    assert f.stats.failed == 0
    assert not f.failures
    assert f.stats.live == 1


def test_a_requeued_node_that_fails_again_is_counted_once() -> None:
    """BUG (same place): every failed attempt of the same node adds to stats.failed."""
    f = frontier()
    f.add(rec(1), 0.0)
    for _ in range(2):
        entry = take(f)
        f.on_timeout(entry, 1.0)
        f.on_timeout(entry, 2.0)
        f.finish(entry)
        f.requeue(entry.node_id)
    entry = take(f)
    f.on_timeout(entry, 3.0)
    f.on_timeout(entry, 4.0)
    f.finish(entry)
    assert f.stats.failed == 1
    assert f.failures == {"no answer": 1}
    assert f.stats.failed + f.stats.live <= f.stats.seen


def test_requeue_revalidates_liveness() -> None:
    """BUG (discv5/crawl/_frontier.py, Frontier.requeue): a requeued node keeps ``live`` from
    the earlier crawl, so when it no longer answers it is neither retried nor marked failed
    and still yields an enode, although "live" means "answered us"."""
    f = frontier()
    record = rec(1, onion3=None, tcp=30303)
    f.add(record, 0.0)
    entry = take(f)
    answer(f, entry, [record])
    f.finish(entry)
    assert entry.live
    assert classify(entry).enode is not None
    f.requeue(entry.node_id)
    entry = take(f)
    assert f.on_timeout(entry, 5.0) is True  # first contact of this round: one retry
    assert f.on_timeout(entry, 6.0) is False
    f.finish(entry)
    assert not entry.live
    assert entry.state is EntryState.FAILED
    assert classify(entry).enode is None


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_unanswered_first_contact_costs_retries_plus_one_requests(retries: int) -> None:
    f = frontier(retries=retries)
    f.add(rec(1), 0.0)
    entry = take(f)
    attempts = 1
    while f.on_timeout(entry, float(attempts)):
        attempts += 1
    assert attempts == retries + 1
    assert f.stats.retries == retries
