"""Lookups over a synthetic network: pure simulation, no sockets, no clock.

The network is a few thousand random node ids drawn from a seeded ``random.Random``. Each
simulated node has a Kademlia table built from the whole network: for every log distance it
knows up to k = 16 of the nodes at that distance (a random sample where a distance holds more,
always including the node's own k closest neighbours). A FINDNODE is answered from that model
the way go-ethereum answers it (distances in the order given, duplicates and > 256 skipped,
0 = own record, each bucket shuffled, at most 16 records). Unresponsive nodes stay in other
nodes' tables, as dead nodes do in a real network, but every query to them fails.

The driver mirrors what ``discv5._node`` does: it runs the queries the lookup hands out and
reports outcomes in a random (seeded) order, so concurrency is exercised without threads.
"""

from __future__ import annotations

import bisect
import random
import statistics
from dataclasses import dataclass, replace

import pytest

from discv5._config import Config
from discv5._lookup import Lookup, PeerState, Query

K = 16
CFG = Config()


@dataclass(frozen=True)
class Rec:
    """A record stand-in (node id and seq), enough for the lookup."""

    node_id: bytes
    seq: int = 1


class Network:
    """A deterministic synthetic network with a pure model of every node's table."""

    def __init__(self, size: int, seed: int, *, unresponsive: float = 0.0) -> None:
        rng = random.Random(seed)
        self.seed = seed
        self.ids: list[int] = sorted({rng.getrandbits(256) for _ in range(size)})
        self.records = {i: Rec(i.to_bytes(32, "big")) for i in self.ids}
        self.dead = set(rng.sample(self.ids, int(unresponsive * len(self.ids))))
        self._tables: dict[int, dict[int, list[int]]] = {}
        self._answer_rng = random.Random(seed + 1)
        self.queries = 0

    def _range(self, prefix: int, shift: int) -> list[int]:
        """The ids whose bits above ``shift`` equal ``prefix``."""
        lo = bisect.bisect_left(self.ids, prefix << shift)
        hi = bisect.bisect_left(self.ids, (prefix + 1) << shift)
        return self.ids[lo:hi]

    def table(self, x: int) -> dict[int, list[int]]:
        """Node ``x``'s buckets: log distance -> up to K member ids (built on first use)."""
        cached = self._tables.get(x)
        if cached is not None:
            return cached
        full: dict[int, list[int]] = {}
        for d in range(256, 0, -1):
            shift = d - 1
            members = self._range((x >> shift) ^ 1, shift)  # differ from x first at bit d-1
            if members:
                full[d] = members
            if len(self._range(x >> shift, shift)) <= 1:
                break  # nobody else shares x's prefix down to here: smaller buckets are empty
        # x's own K closest neighbours are kept in any case.
        closest: set[int] = set()
        for d in sorted(full):
            closest.update(sorted(full[d], key=lambda y: y ^ x)[: K - len(closest)])
            if len(closest) >= K:
                break
        rng = random.Random(self.seed * 1_000_003 + x)
        table: dict[int, list[int]] = {}
        for d, members in full.items():
            if len(members) <= K:
                table[d] = list(members)
            else:
                keep = [y for y in members if y in closest]
                others = [y for y in members if y not in closest]
                table[d] = keep + rng.sample(others, K - len(keep))
        self._tables[x] = table
        return table

    def find_node(self, x: int, distances: tuple[int, ...]) -> list[Rec] | None:
        """Node ``x``'s NODES answer, or None when ``x`` does not answer."""
        self.queries += 1
        if x in self.dead:
            return None
        out: list[Rec] = []
        seen: set[int] = set()
        table = self.table(x)
        for d in distances:
            if d in seen or d > 256 or len(out) >= 16:
                continue
            seen.add(d)
            if d == 0:
                out.append(self.records[x])
                continue
            members = list(table.get(d, []))
            self._answer_rng.shuffle(members)  # go-ethereum shuffles each bucket it answers from
            out.extend(self.records[y] for y in members[: 16 - len(out)])
        return out

    def closest_known(self, x: int, target: int, n: int) -> list[Rec]:
        """What ``RoutingTable.closest`` would give node ``x``: its n entries nearest target."""
        entries = [y for members in self.table(x).values() for y in members]
        return [self.records[y] for y in sorted(entries, key=lambda y: y ^ target)[:n]]

    def true_closest(self, target: int, n: int, *, exclude: int) -> list[bytes]:
        """The n responsive nodes closest to the target (the ideal lookup result)."""
        live = (y for y in self.ids if y not in self.dead and y != exclude)
        return [self.records[y].node_id for y in sorted(live, key=lambda y: y ^ target)[:n]]


@dataclass(frozen=True)
class Outcome:
    recall: float
    """Share of the true k closest responsive nodes that the result holds."""
    head_exact: bool
    """The closest k/2 of the result are exactly the true closest k/2, in order."""
    queries: int
    rounds: int
    finished: bool


def run_lookup(
    net: Network, me: int, target: int, rng: random.Random, cfg: Config = CFG
) -> tuple[Lookup[Rec], Outcome]:
    """Run one lookup from node ``me`` to completion; report recall against the ideal."""
    seeds = net.closest_known(me, target, cfg.bucket_size)
    lookup: Lookup[Rec] = Lookup(me.to_bytes(32, "big"), target.to_bytes(32, "big"), seeds, cfg)
    in_flight: list[Query[Rec]] = []
    now, steps, sent = 0.0, 0, 0
    while True:
        new = lookup.next_queries(now)
        sent += len(new)
        in_flight += new
        assert len(in_flight) <= cfg.lookup_parallelism
        if lookup.finished or not in_flight:
            break
        q = in_flight.pop(rng.randrange(len(in_flight)))
        answer = net.find_node(int.from_bytes(q.enr.node_id, "big"), q.distances)
        if answer is None:
            lookup.on_failure(q.enr.node_id)
        else:
            lookup.on_response(q.enr.node_id, answer)
        now += 0.1
        steps += 1
        assert steps < 10_000, "lookup does not terminate"
    truth = net.true_closest(target, cfg.bucket_size, exclude=me)
    got = [r.node_id for r in lookup.result()]
    recall = len(set(got) & set(truth)) / len(truth) if truth else float(not got)
    half = cfg.bucket_size // 2
    return lookup, Outcome(recall, got[:half] == truth[:half], sent, steps, lookup.finished)


def run_trials(net: Network, trials: int, seed: int) -> list[Outcome]:
    rng = random.Random(seed)
    live = [x for x in net.ids if x not in net.dead]
    out = []
    for _ in range(trials):
        me = rng.choice(live)
        target = rng.getrandbits(256)
        lookup, outcome = run_lookup(net, me, target, rng)
        assert outcome.finished
        result = lookup.result()
        dists = [int.from_bytes(r.node_id, "big") ^ target for r in result]
        assert dists == sorted(dists)
        assert all(int.from_bytes(r.node_id, "big") not in net.dead for r in result)
        out.append(outcome)
    return out


def summary(outcomes: list[Outcome]) -> str:
    full = sum(o.recall == 1.0 for o in outcomes)
    head = sum(o.head_exact for o in outcomes)
    return (
        f"{full}/{len(outcomes)} lookups with full recall, {head} with the closest half exact,"
        f" mean recall {statistics.mean(o.recall for o in outcomes):.3f}, mean queries"
        f" {statistics.mean(o.queries for o in outcomes):.1f}"
    )


def check_convergence(outcomes: list[Outcome], *, full_share: float, mean_recall: float) -> None:
    """Recall thresholds; the closest half of the result must (nearly) always be exact."""
    n = len(outcomes)
    text = summary(outcomes)
    assert sum(o.recall == 1.0 for o in outcomes) >= full_share * n, text
    assert statistics.mean(o.recall for o in outcomes) >= mean_recall, text
    assert sum(o.head_exact for o in outcomes) >= 0.98 * n, text
    assert min(o.recall for o in outcomes) >= 0.75, text


def test_network_model_is_sound() -> None:
    net = Network(500, seed=3)
    x = net.ids[17]
    table = net.table(x)
    for d, members in table.items():
        assert 0 < len(members) <= K
        assert all((x ^ y).bit_length() == d for y in members)
    # x knows its own K closest neighbours.
    others = sorted((y for y in net.ids if y != x), key=lambda y: y ^ x)[:K]
    known = {y for members in table.values() for y in members}
    assert set(others) <= known
    # Answers follow go-ethereum's FINDNODE rules.
    answer = net.find_node(x, (0, 256, 256, 257, 255))
    assert answer is not None
    assert answer[0] == net.records[x]
    assert len(answer) <= 16


# Measured with these seeds:
#   2000 nodes, all responsive, 100 lookups: 94 full recall, closest half exact in all,
#     mean recall 0.996, 18 queries per lookup;
#   2000 nodes, 10 % unresponsive, 100 lookups: 87 full recall, mean recall 0.991;
#   5000 nodes, 10 % unresponsive, 300 lookups: 284 full recall, mean recall 0.996.
# Misses are always near rank k (9..16), never seen at all: go-ethereum's three distances
# [d, d+1, d-1] and 16-record answers leave parts of the outermost shell unreported. The
# closest half of the result is exact in (nearly) every lookup.


def test_lookup_converges_on_2000_nodes() -> None:
    net = Network(2000, seed=1)
    outcomes = run_trials(net, trials=100, seed=11)
    check_convergence(outcomes, full_share=0.9, mean_recall=0.99)
    # Logarithmic cost: about 20 queries for 2000 nodes, far from a crawl.
    assert statistics.mean(o.queries for o in outcomes) < 40, summary(outcomes)


def test_lookup_converges_with_10_percent_unresponsive() -> None:
    net = Network(2000, seed=2, unresponsive=0.10)
    outcomes = run_trials(net, trials=100, seed=12)
    check_convergence(outcomes, full_share=0.85, mean_recall=0.98)
    assert statistics.mean(o.queries for o in outcomes) < 40, summary(outcomes)


@pytest.mark.slow
def test_lookup_converges_on_5000_nodes_many_trials() -> None:
    net = Network(5000, seed=4, unresponsive=0.10)
    outcomes = run_trials(net, trials=300, seed=13)
    check_convergence(outcomes, full_share=0.9, mean_recall=0.99)


def test_lookup_for_an_existing_node_finds_it_first() -> None:
    net = Network(2000, seed=5)
    rng = random.Random(6)
    for _ in range(10):
        me, target = rng.sample(net.ids, 2)
        lookup, outcome = run_lookup(net, me, target, rng)
        assert outcome.finished
        assert lookup.result()[0] == net.records[target]


def test_lookup_terminates_when_all_seeds_fail() -> None:
    net = Network(2000, seed=7)
    me = net.ids[0]
    target = random.Random(8).getrandbits(256)
    seeds = net.closest_known(me, target, K)
    net.dead.update(int.from_bytes(s.node_id, "big") for s in seeds)
    lookup, outcome = run_lookup(net, me, target, random.Random(9))
    assert outcome.finished
    assert lookup.result() == []
    assert outcome.queries == len(seeds)
    assert all(lookup.peer_state(s.node_id) is PeerState.FAILED for s in seeds)


def test_lookup_terminates_when_whole_network_is_dead() -> None:
    net = Network(300, seed=10, unresponsive=1.0)
    me = net.ids[0]
    net.dead.discard(me)
    outcomes = run_trials(net, trials=5, seed=14)
    assert all(o.finished for o in outcomes)
    assert all(o.queries <= K for o in outcomes)


def test_lookup_with_alpha_one_and_small_k() -> None:
    net = Network(1000, seed=15)
    rng = random.Random(16)
    cfg = replace(CFG, lookup_parallelism=1, bucket_size=4)
    for _ in range(10):
        me = rng.choice(net.ids)
        target = rng.getrandbits(256)
        lookup, outcome = run_lookup(net, me, target, rng, cfg)
        assert outcome.finished
        assert len(lookup.result()) == 4
