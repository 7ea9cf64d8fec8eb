"""Lookup state machine: query selection, distances, answer handling, termination.

Most tests use a light record stand-in (node id + seq) and the all-zero target, so a node's
XOR distance to the target is simply its id read as an integer.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discv5._config import Config
from discv5._lookup import (
    Lookup,
    LookupState,
    LookupStats,
    PeerState,
    Query,
    lookup_distances,
)
from discv5._types import log_distance
from enr import ENR, PrivateKey

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "discv5_wire_vectors.json"
CFG = Config()
TARGET = bytes(32)
LOCAL = b"\xff" * 32  # far from everything used below


@dataclass(frozen=True)
class Rec:
    """A record stand-in: all a lookup needs."""

    node_id: bytes
    seq: int = 1


def nid(value: int) -> bytes:
    return value.to_bytes(32, "big")


def rec(value: int, seq: int = 1) -> Rec:
    return Rec(nid(value), seq)


def at_distance(base: bytes, d: int, salt: int = 0) -> bytes:
    """An id at log distance ``d`` (1..256) from ``base``."""
    low = salt % (1 << (d - 1)) if d > 1 else 0
    return (int.from_bytes(base, "big") ^ ((1 << (d - 1)) | low)).to_bytes(32, "big")


def new_lookup(
    seeds: list[Rec], cfg: Config = CFG, *, target: bytes = TARGET, verify: bool = True
) -> Lookup[Rec]:
    return Lookup(LOCAL, target, seeds, cfg, verify_distance=verify)


def ids(queries: list[Query[Rec]]) -> list[bytes]:
    return [q.enr.node_id for q in queries]


# -- distances ----------------------------------------------------------------------------------


def test_lookup_distances_match_geth_vectors() -> None:
    cases = json.loads(VECTORS.read_text())["geth_lookup_distances"]["cases"]
    assert len(cases) >= 5
    rng = random.Random(5)
    for case in cases:
        d = case["logdist_target_dest"]
        for target in (TARGET, rng.randbytes(32)):
            dest = at_distance(target, d, salt=rng.getrandbits(256))
            assert log_distance(target, dest) == d
            assert list(lookup_distances(target, dest)) == case["distances"]


def test_lookup_distances_edges() -> None:
    assert lookup_distances(TARGET, TARGET) == (0, 1, 2)
    assert lookup_distances(TARGET, nid(1), 1) == (1,)
    assert lookup_distances(TARGET, nid(1 << 100), 5) == (101, 102, 100, 103, 99)
    assert lookup_distances(TARGET, nid(1 << 255), 4) == (256, 255, 254, 253)
    assert lookup_distances(TARGET, nid(1), 4) == (1, 2, 3, 4)
    assert sorted(lookup_distances(TARGET, nid(5), 1000)) == list(range(1, 257))


def test_queries_carry_configured_distances() -> None:
    lookup = new_lookup([rec(1 << 200)], replace(CFG, lookup_request_distances=5))
    (q,) = lookup.next_queries(0.0)
    assert q.distances == (201, 202, 200, 203, 199)


# -- seeds and query selection ------------------------------------------------------------------


def test_seeds_dedup_newest_seq_and_self_skipped() -> None:
    lookup = new_lookup([rec(5, 1), rec(5, 3), rec(5, 2), Rec(LOCAL), rec(9)])
    assert lookup.stats().seen == 2
    assert lookup.peer_state(LOCAL) is None
    queries = lookup.next_queries(0.0)
    assert [q.enr for q in queries] == [rec(5, 3), rec(9)]


def test_alpha_queries_closest_first() -> None:
    seeds = [rec(v) for v in (50, 10, 40, 20, 30)]
    lookup = new_lookup(seeds)
    first = lookup.next_queries(1.0)
    assert ids(first) == [nid(10), nid(20), nid(30)]
    assert lookup.in_flight == 3
    assert lookup.next_queries(1.5) == []  # alpha reached
    assert lookup.peer_state(nid(10)) is PeerState.WAITING
    assert lookup.peer_state(nid(40)) is PeerState.NOT_CONTACTED
    assert lookup.on_response(nid(20), [])
    assert ids(lookup.next_queries(2.0)) == [nid(40)]
    assert lookup.started_at == 1.0


def test_parallelism_is_configurable() -> None:
    lookup = new_lookup([rec(v) for v in range(1, 10)], replace(CFG, lookup_parallelism=1))
    assert len(lookup.next_queries(0.0)) == 1
    assert lookup.next_queries(0.0) == []


def test_only_window_peers_are_queried() -> None:
    cfg = replace(CFG, bucket_size=2)
    lookup = new_lookup([rec(v) for v in (1, 2, 3, 4)], cfg)
    assert ids(lookup.next_queries(0.0)) == [nid(1), nid(2)]
    lookup.on_response(nid(1), [])
    lookup.on_response(nid(2), [])
    assert lookup.finished
    assert lookup.next_queries(0.0) == []
    assert lookup.result() == [rec(1), rec(2)]
    assert lookup.peer_state(nid(3)) is PeerState.NOT_CONTACTED


# -- answers ------------------------------------------------------------------------------------


def test_response_records_are_queried_next() -> None:
    start = rec(1 << 200)
    lookup = new_lookup([start])
    (q,) = lookup.next_queries(0.0)
    found = [Rec(at_distance(start.node_id, d, salt=7)) for d in q.distances]
    assert lookup.on_response(start.node_id, found)
    nxt = lookup.next_queries(0.0)
    expect = sorted(found, key=lambda r: int.from_bytes(r.node_id, "big"))
    assert [q.enr for q in nxt] == expect
    for q in nxt:
        assert q.distances == lookup_distances(TARGET, q.enr.node_id)


def test_records_at_unrequested_distances_are_dropped() -> None:
    start = rec(1 << 200)
    lookup = new_lookup([start])
    (q,) = lookup.next_queries(0.0)
    good = Rec(at_distance(start.node_id, q.distances[0], salt=3))
    bad = Rec(at_distance(start.node_id, 17))
    own = start  # distance 0 was not asked for
    assert lookup.on_response(start.node_id, [good, bad, own])
    assert lookup.peer_state(good.node_id) is PeerState.NOT_CONTACTED
    assert lookup.peer_state(bad.node_id) is None
    assert lookup.stats().dropped_records == 2


def test_distance_check_can_be_disabled() -> None:
    start = rec(1 << 200)
    lookup = new_lookup([start], verify=False)
    lookup.next_queries(0.0)
    bad = Rec(at_distance(start.node_id, 17))
    lookup.on_response(start.node_id, [bad])
    assert lookup.peer_state(bad.node_id) is PeerState.NOT_CONTACTED


def test_local_node_in_answer_is_dropped() -> None:
    lookup = new_lookup([rec(3)], verify=False)
    lookup.next_queries(0.0)
    lookup.on_response(nid(3), [Rec(LOCAL)])
    assert lookup.peer_state(LOCAL) is None
    assert lookup.stats().dropped_records == 1
    assert lookup.finished


def test_target_record_is_kept_and_first_in_result() -> None:
    target = at_distance(TARGET, 200, salt=99)
    peer = Rec(at_distance(target, 3))
    lookup = new_lookup([peer], target=target)
    (q,) = lookup.next_queries(0.0)
    assert q.distances == (3, 4, 2)
    target_rec = Rec(target, seq=4)
    lookup.on_response(peer.node_id, [target_rec])
    (q2,) = lookup.next_queries(0.0)
    assert q2.enr == target_rec
    assert q2.distances == (0, 1, 2)  # go-ethereum asks the target for itself and its neighbours
    lookup.on_response(target, [target_rec])  # distance 0: its own record
    assert lookup.finished
    assert lookup.result() == [target_rec, peer]


def test_newer_record_replaces_older() -> None:
    start = rec(1 << 200)
    lookup = new_lookup([start], verify=False)
    lookup.next_queries(0.0)
    other = nid(1)
    lookup.on_response(start.node_id, [Rec(other, 2), Rec(other, 5), Rec(other, 3)])
    (q,) = lookup.next_queries(0.0)
    assert q.enr == Rec(other, 5)
    # A newer record of a peer already asked updates the record, not the peer's progress.
    lookup.on_response(other, [Rec(other, 6), Rec(other, 4)])
    assert lookup.peer_state(other) is PeerState.SUCCEEDED
    assert lookup.finished
    assert lookup.result() == [Rec(other, 6), start]


def test_records_per_answer_are_capped() -> None:
    start = rec(1 << 200)
    lookup = new_lookup([start], replace(CFG, max_nodes_per_response=4))
    lookup.next_queries(0.0)
    many = [Rec(at_distance(start.node_id, 201, salt=s)) for s in range(1, 10)]
    lookup.on_response(start.node_id, many)
    assert lookup.stats().seen == 1 + 4
    assert lookup.stats().dropped_records == 5


def test_late_duplicate_and_unsolicited_reports_are_ignored() -> None:
    lookup = new_lookup([rec(1), rec(2), rec(3), rec(4)])
    lookup.next_queries(0.0)
    assert not lookup.on_response(nid(99), [rec(5)])  # never seen
    assert not lookup.on_failure(nid(99))
    assert not lookup.on_response(nid(4), [])  # known, but not asked
    assert lookup.peer_state(nid(4)) is PeerState.NOT_CONTACTED
    assert lookup.on_response(nid(1), [])
    assert not lookup.on_response(nid(1), [])  # duplicate
    assert not lookup.on_failure(nid(1))
    assert lookup.peer_state(nid(1)) is PeerState.SUCCEEDED
    assert lookup.on_failure(nid(2))
    assert not lookup.on_response(nid(2), [rec(7)])
    assert lookup.peer_state(nid(2)) is PeerState.FAILED


# -- termination and results ------------------------------------------------------------------


def test_no_seeds_is_finished_at_once() -> None:
    lookup = new_lookup([])
    assert lookup.finished
    assert lookup.state is LookupState.FINISHED
    assert lookup.next_queries(0.0) == []
    assert lookup.result() == []


def test_all_seeds_fail() -> None:
    lookup = new_lookup([rec(v) for v in range(1, 8)])
    steps = 0
    while not lookup.finished:
        queries = lookup.next_queries(float(steps))
        assert queries
        for q in queries:
            assert lookup.on_failure(q.enr.node_id)
        steps += 1
        assert steps < 10
    assert lookup.result() == []
    assert lookup.in_flight == 0
    assert lookup.stats() == LookupStats(
        seen=7, queried=7, succeeded=0, failed=7, in_flight=0, dropped_records=0
    )


def test_failed_peers_leave_the_window() -> None:
    cfg = replace(CFG, bucket_size=3)
    lookup = new_lookup([rec(v) for v in (1, 2, 3, 4, 5)], cfg)
    assert ids(lookup.next_queries(0.0)) == [nid(1), nid(2), nid(3)]
    lookup.on_failure(nid(2))
    assert lookup.state is LookupState.RUNNING
    assert ids(lookup.next_queries(0.0)) == [nid(4)]
    for v in (1, 3, 4):
        lookup.on_response(nid(v), [])
    assert lookup.finished
    assert lookup.result() == [rec(1), rec(3), rec(4)]
    assert lookup.peer_state(nid(5)) is PeerState.NOT_CONTACTED


def test_waiting_peer_pushed_out_of_window_does_not_block() -> None:
    cfg = replace(CFG, bucket_size=2)
    near, far = rec(1 << 10), rec(1 << 250)
    lookup = new_lookup([near, far], cfg)
    assert ids(lookup.next_queries(0.0)) == [near.node_id, far.node_id]
    # `near` returns a closer node: the window becomes {3, near} and `far` drops out of it.
    assert lookup.on_response(near.node_id, [rec(3)])
    assert ids(lookup.next_queries(0.0)) == [nid(3)]
    assert lookup.on_response(nid(3), [])
    assert lookup.finished
    assert lookup.peer_state(far.node_id) is PeerState.WAITING
    assert lookup.in_flight == 1
    # The late answer is ignored and the result is final.
    assert not lookup.on_response(far.node_id, [rec(1)])
    assert not lookup.on_failure(far.node_id)
    assert lookup.result() == [rec(3), near]
    assert lookup.next_queries(1.0) == []


def test_result_is_sorted_and_limited_to_k() -> None:
    cfg = replace(CFG, bucket_size=4)
    values = [17, 3, 250, 8, 99, 1024, 6]
    lookup = new_lookup([rec(v) for v in values], cfg, verify=False)
    while not lookup.finished:
        for q in lookup.next_queries(0.0):
            lookup.on_response(q.enr.node_id, [])
    assert lookup.result() == [rec(v) for v in sorted(values)[:4]]


def test_partial_result_while_running() -> None:
    lookup = new_lookup([rec(1), rec(2), rec(3)])
    lookup.next_queries(0.0)
    lookup.on_response(nid(2), [])
    assert lookup.result() == [rec(2)]
    assert not lookup.finished


def test_illegal_transition_is_an_assertion() -> None:
    with pytest.raises(AssertionError, match="illegal lookup transition"):
        Lookup._transition(PeerState.SUCCEEDED, "query")


def test_target_property() -> None:
    assert new_lookup([]).target == TARGET
    assert new_lookup([]).started_at is None


# -- real records -------------------------------------------------------------------------------


def test_lookup_over_real_enrs() -> None:
    keys = [PrivateKey(hashlib.sha256(b"lookup-%d" % i).digest()) for i in range(40)]
    enrs = [ENR.build(k, ip="8.8.8.8", udp=30303) for k in keys]
    local, target = enrs[0].node_id, enrs[1].node_id
    by_id = {e.node_id: e for e in enrs}
    lookup: Lookup[ENR] = Lookup(local, target, enrs[2:6], CFG)
    while not lookup.finished:
        for q in lookup.next_queries(0.0):
            peer = q.enr.node_id
            answer = [e for e in enrs if log_distance(peer, e.node_id) in q.distances]
            lookup.on_response(peer, answer)
        assert lookup.in_flight == 0 or lookup.next_queries(0.0) == []
    result = lookup.result()
    expect = sorted(
        (e for e in enrs if e.node_id != local),
        key=lambda e: int.from_bytes(e.node_id, "big") ^ int.from_bytes(target, "big"),
    )[: CFG.bucket_size]
    assert result[0] == by_id[target]
    assert result == expect  # everyone answers fully here, so the lookup is exact


# -- hypothesis: the lookup always terminates ---------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    n_seeds=st.integers(0, 20),
    fail_rate=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
    k=st.integers(1, 16),
    alpha=st.integers(1, 4),
)
def test_lookup_always_terminates(
    seed: int, n_seeds: int, fail_rate: float, k: int, alpha: int
) -> None:
    rng = random.Random(seed)
    universe = [Rec(rng.randbytes(32), rng.randint(1, 3)) for _ in range(80)]
    cfg = replace(CFG, bucket_size=k, lookup_parallelism=alpha)
    target = rng.randbytes(32)
    lookup = new_lookup(rng.sample(universe, n_seeds), cfg, target=target, verify=False)
    in_flight: list[Query[Rec]] = []
    asked: set[bytes] = set()
    for _ in range(10_000):
        new = lookup.next_queries(0.0)
        for q in new:
            assert q.enr.node_id not in asked, "peer queried twice"
            assert q.enr.node_id != LOCAL
            asked.add(q.enr.node_id)
        in_flight += new
        assert lookup.in_flight == len(in_flight) <= alpha
        if lookup.finished:
            break
        assert in_flight, "nothing in flight and nothing to ask, yet not finished"
        q = in_flight.pop(rng.randrange(len(in_flight)))
        if rng.random() < fail_rate:
            assert lookup.on_failure(q.enr.node_id)
        else:
            assert lookup.on_response(q.enr.node_id, rng.sample(universe, rng.randint(0, 8)))
    else:
        pytest.fail("lookup did not terminate")
    result = lookup.result()
    t = int.from_bytes(target, "big")
    dists = [int.from_bytes(r.node_id, "big") ^ t for r in result]
    assert dists == sorted(dists)
    assert len(result) <= k
    assert all(lookup.peer_state(r.node_id) is PeerState.SUCCEEDED for r in result)
    # The result is exactly the k closest peers that answered.
    succeeded = [r for r in {u.node_id: u for u in universe}.values()
                 if lookup.peer_state(r.node_id) is PeerState.SUCCEEDED]  # fmt: skip
    best = sorted(int.from_bytes(r.node_id, "big") ^ t for r in succeeded)[:k]
    assert dists == best
