"""Table maintenance through the driver: bootstrap, lookups in a small network, revalidation.

All on the fake network and the autojump clock: minutes of protocol time take well under a
second of wall time, and every run is the same.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from typing import cast

import trio
import trio.testing

from discv5 import Config, Node, distance, log_distance, open_node
from enr import ENR, PrivateKey

from .fakenet import FakeNetwork, make_key, seeded_rng

Clock = trio.testing.MockClock


@asynccontextmanager
async def node_on(
    net: FakeNetwork,
    seed: int,
    *,
    key: PrivateKey | None = None,
    config: Config | None = None,
    maintain: bool = False,
    bootnodes: tuple[ENR, ...] = (),
) -> AsyncIterator[Node]:
    async with open_node(
        key if key is not None else make_key(seed),
        sock=net.socket(),
        config=config,
        seq=1,
        rng=seeded_rng(seed + 10_000),
        maintain=maintain,
        bootnodes=bootnodes,
    ) as node:
        yield node


def _keys_where(
    local: bytes, accept: Callable[[int], bool], count: int, first_seed: int
) -> list[PrivateKey]:
    """The first ``count`` seeded keys whose log distance to ``local`` passes ``accept``."""
    out: list[PrivateKey] = []
    seed = first_seed
    while len(out) < count:
        key = make_key(seed)
        seed += 1
        if accept(log_distance(local, ENR.build(key, 1).node_id)):
            out.append(key)
    return out


def _keys_at_distance(local: bytes, d: int, count: int, first_seed: int) -> list[PrivateKey]:
    return _keys_where(local, lambda x: x == d, count, first_seed)


def _keys_within(local: bytes, d: int, count: int, first_seed: int) -> list[PrivateKey]:
    return _keys_where(local, lambda x: x <= d, count, first_seed)


def true_closest(ids: Sequence[bytes], target: bytes, k: int, exclude: bytes) -> list[bytes]:
    return sorted((i for i in ids if i != exclude), key=lambda i: distance(i, target))[:k]


# --- a small network ------------------------------------------------------------------------


@asynccontextmanager
async def staggered_network(
    net: FakeNetwork, size: int, first_seed: int, config: Config | None = None
) -> AsyncIterator[list[Node]]:
    """``size`` maintained nodes; the first is everyone's only bootnode. They join one second
    apart, as nodes of a real network do, and then run for 30 s of virtual time (well below
    the first table refresh)."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(
            node_on(net, first_seed, config=config, maintain=True)
        )
        nodes = [first]
        for i in range(1, size):
            await trio.sleep(1.0)
            nodes.append(
                await stack.enter_async_context(
                    node_on(net, first_seed + i, config=config, maintain=True,
                            bootnodes=(first.local_enr,))
                )
            )
        await trio.sleep(30)
        yield nodes


async def test_thirty_nodes_from_one_bootnode_reach_each_other(autojump_clock: Clock) -> None:
    """Every node reaches every other one: it holds it in its table, or a lookup for that
    node's id finds it first."""
    net = FakeNetwork()
    # Findings are collected while the nodes run and asserted once they are closed, so that a
    # failure reads as one assertion instead of 30 nested nursery exception groups.
    unreachable: list[tuple[int, int]] = []
    async with staggered_network(net, 30, 1) as nodes:
        ids = [n.node_id for n in nodes]
        first = nodes[0]
        known_to_first = {
            e.node_id for b in first.table.buckets for e in (*b.entries, *b.replacements)
        }
        bootstrapped = [n.table.bootstrapped for n in nodes]
        for n in nodes:
            n.table._assert_invariants()
        for i, n in enumerate(nodes):
            for j, other in enumerate(nodes):
                if other is n or n.table.get(other.node_id) is not None:
                    continue
                found = await n.lookup(other.node_id)
                if not found or found[0] != other.local_enr:
                    unreachable.append((i, j))
        for n in nodes:
            n.table._assert_invariants()
    assert len(set(ids)) == 30
    assert all(bootstrapped)
    # Everyone contacted the bootnode, which holds each of them (as entry or replacement).
    assert known_to_first == set(ids[1:])
    assert unreachable == []


async def test_thirty_node_lookups_return_the_closest_nodes(autojump_clock: Clock) -> None:
    """A lookup from each node for a random target, compared with the true order of all 30 ids.

    The closest k/2 must be exact. The far half of a k=16 result in a 30-node network lies at
    log distance 255-256 from the target, where go-ethereum-style answers are cut at 16
    records and full buckets hold the rest as replacements: neither the spec nor go-ethereum
    promises those, so only their count and order are checked. (With bootstrap doing only a
    self lookup, nodes that joined next to the bootnode stay unknown to most of the network
    until the first refresh, and the near half misses them too: see the newcomer test.)
    """
    net = FakeNetwork()
    config = Config()
    k = config.bucket_size
    wrong: list[tuple[int, list[int], list[int]]] = []
    results_ok: list[bool] = []
    async with staggered_network(net, 30, 1, config) as nodes:
        ids = [n.node_id for n in nodes]
        index: dict[bytes, int] = {node_id: i for i, node_id in enumerate(ids)}
        records: dict[bytes, ENR] = {n.node_id: n.local_enr for n in nodes}
        targets = seeded_rng(77)
        for i, n in enumerate(nodes):
            target = targets(32)
            found = await n.lookup(target)
            got = [r.node_id for r in found]
            want = true_closest(ids, target, k, n.node_id)
            results_ok.append(
                len(got) == k
                and got == sorted(got, key=lambda x: distance(x, target))
                and all(records[r.node_id] == r for r in found)
            )
            if got[: k // 2] != want[: k // 2]:
                wrong.append((i, [index[x] for x in got], [index[x] for x in want]))
    assert all(results_ok)
    assert wrong == []


async def test_a_newcomer_next_to_its_bootnode_learns_more_than_the_bootnode(
    autojump_clock: Clock,
) -> None:
    """A node that joins through a bootnode close to it in XOR space must still fill its table
    long before the first periodic refresh (go-ethereum's initial refresh runs a self lookup
    *and* random lookups). A self lookup alone asks the bootnode only for the buckets next to
    the newcomer, which are empty, and ends with the bootnode as the only entry."""
    net = FakeNetwork()
    async with staggered_network(net, 16, 300) as nodes:
        boot = nodes[0]
        (key,) = _keys_within(boot.node_id, 248, 1, first_seed=7000)
        # The scenario: the bootnode has nobody in the buckets next to the newcomer.
        boot_buckets = [b.distance for b in boot.table.buckets]
        async with node_on(net, 7000, key=key, maintain=True,
                           bootnodes=(boot.local_enr,)) as newcomer:
            await trio.sleep(60)
            size = len(newcomer.table)
            distance_to_boot = log_distance(newcomer.node_id, boot.node_id)
    assert distance_to_boot <= 248
    assert min(boot_buckets) > distance_to_boot + 1
    assert size >= 8


async def test_bootnodes_without_maintenance_still_bootstrap(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    async with AsyncExitStack() as stack:
        boot = await stack.enter_async_context(node_on(net, 1, maintain=True))
        b = await stack.enter_async_context(
            node_on(net, 2, maintain=True, bootnodes=(boot.local_enr,))
        )
        await trio.sleep(5)
        c = await stack.enter_async_context(node_on(net, 3, bootnodes=(boot.local_enr,)))
        await trio.sleep(5)
        assert c.table.bootstrapped
        assert c.table.get(boot.node_id) is not None
        assert boot.table.get(c.node_id) is not None
        # The bootnode relays C once it has verified it: B can find C.
        found = await b.lookup(c.node_id)
        assert found[0] == c.local_enr


async def test_bootstrap_without_peers_marks_the_table_bootstrapped(
    autojump_clock: Clock,
) -> None:
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        assert not a.table.bootstrapped
        # Not bootstrapped: an inbound contact is not admitted.
        await b.ping(a.local_enr)
        await trio.sleep(5)
        assert a.table.get(b.node_id) is None
        assert await a.bootstrap() == 0
        assert a.table.bootstrapped
        # From now on a new contact is admitted, and checked right away.
        async with node_on(net, 3) as c:
            await c.ping(a.local_enr)
            await trio.sleep(5)
            entry = a.table.entry(c.node_id)
            assert entry is not None
            assert entry.live


async def test_random_walk_yields_each_node_once(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    async with AsyncExitStack() as stack:
        boot = await stack.enter_async_context(node_on(net, 1, maintain=True))
        others = [
            await stack.enter_async_context(
                node_on(net, 10 + i, maintain=True, bootnodes=(boot.local_enr,))
            )
            for i in range(6)
        ]
        await trio.sleep(10)
        walker = await stack.enter_async_context(node_on(net, 99, bootnodes=(boot.local_enr,)))
        await trio.sleep(5)
        expected = {boot.node_id} | {n.node_id for n in others}
        seen: list[bytes] = []
        with trio.move_on_after(600):
            # random_walk() is an async generator: close it explicitly (it is annotated as a
            # plain AsyncIterator, hence the cast).
            walk_gen = cast("AsyncGenerator[ENR, None]", walker.random_walk())
            async with aclosing(walk_gen) as walk:
                async for record in walk:
                    seen.append(record.node_id)
                    if set(seen) >= expected:
                        break
        assert set(seen) == expected
        assert len(seen) == len(set(seen))


# --- revalidation ---------------------------------------------------------------------------


async def test_a_node_that_goes_away_is_removed_by_revalidation(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    async with node_on(net, 1, maintain=True) as a, node_on(net, 2) as c:
        async with node_on(net, 3) as b:
            await a.ping(b.local_enr)
            await a.ping(c.local_enr)
            await trio.sleep(1)
            assert a.table.get(b.node_id) is not None
            assert a.table.get(c.node_id) is not None
            gone = b.node_id
        # B's socket is closed: its datagrams go nowhere from now on.
        timeouts_before = a.statistics().timeouts
        await trio.sleep(4 * a.config.slow_revalidation_interval)
        assert a.table.get(gone) is None
        assert a.statistics().timeouts > timeouts_before
        entry = a.table.entry(c.node_id)
        assert entry is not None
        assert entry.live  # the peer that stayed passes its checks
        a.table._assert_invariants()


async def test_a_long_lived_entry_survives_one_missed_check(autojump_clock: Clock) -> None:
    """go-ethereum's liveness counter: divided by three on a miss, dropped only at zero."""
    net = FakeNetwork()
    async with node_on(net, 1) as a, node_on(net, 2) as b:
        for _ in range(9):
            await a.ping(b.local_enr)
        await trio.sleep(2)
        entry = a.table.entry(b.node_id)
        assert entry is not None
        assert entry.liveness_checks >= 9
        checks = entry.liveness_checks
        net.refuse.add(b.address)  # B is unreachable for a while
        await a._revalidate(b.local_enr)  # one revalidation round for B, as the loop runs it
        entry = a.table.entry(b.node_id)
        assert entry is not None  # survived one miss
        assert entry.liveness_checks == checks // 3
        assert a.table.revalidation_list(b.node_id) == "fast"
        net.refuse.clear()
        await a._revalidate(b.local_enr)
        entry = a.table.entry(b.node_id)
        assert entry is not None
        assert entry.liveness_checks == checks // 3 + 1
        assert a.table.revalidation_list(b.node_id) == "slow"



async def test_a_replacement_is_promoted_when_an_entry_goes_away(autojump_clock: Clock) -> None:
    net = FakeNetwork()
    config = Config(bucket_size=1)
    a_key = make_key(1)
    a_id = ENR.build(a_key, 1).node_id
    key_b, key_c = _keys_at_distance(a_id, 256, 2, first_seed=500)
    async with node_on(net, 1, key=a_key, config=config, maintain=True) as a, \
            node_on(net, 2, key=key_c) as c:
        async with node_on(net, 3, key=key_b) as b:
            await a.ping(b.local_enr)
            await trio.sleep(1)
            await a.ping(c.local_enr)  # the bucket is full: C waits as a replacement
            bucket = a.table.bucket(256)
            assert [e.node_id for e in bucket.entries] == [b.node_id]
            assert [e.node_id for e in bucket.replacements] == [c.node_id]
        await trio.sleep(4 * config.slow_revalidation_interval)
        bucket = a.table.bucket(256)
        assert [e.node_id for e in bucket.entries] == [c.node_id]
        assert bucket.replacements == ()
        entry = a.table.entry(c.node_id)
        assert entry is not None
        assert entry.live  # the promoted node was checked and answered
        a.table._assert_invariants()
