"""RoutingTable: buckets, replacement cache, IP limits, liveness, revalidation, queries.

The local id is all zeros in most tests, so a node's bucket is simply the bit length of its
id: bucket 256 holds the ids whose top bit is set (half of all ids), bucket 255 a quarter...
Records are real, signed ENRs made from deterministic keys.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discv5._config import Config
from discv5._routing import (
    Bucket,
    InsertResult,
    RoutingTable,
    TableEntry,
    is_lan,
)
from discv5._types import log_distance
from enr import ENR, PrivateKey

LOCAL = bytes(32)
CFG = Config()
POOL_SIZE = 3000


@functools.cache
def key(i: int) -> PrivateKey:
    """Deterministic private key number ``i``."""
    return PrivateKey(hashlib.sha256(b"routing-test-key-%d" % i).digest())


@functools.cache
def node_id(i: int) -> bytes:
    return key(i).public_key.node_id


@functools.cache
def make_enr(
    i: int, ip: str | None = "1.2.3.4", udp: int | None = 30303, seq: int = 1, **extra: str
) -> ENR:
    """A signed record for key ``i`` (cached: equal arguments give the same record)."""
    fields: dict[str, Any] = {"udp": udp, **extra}
    if ip is not None:
        fields["ip6" if ":" in ip else "ip"] = ip
    return ENR.build(key(i), seq, **fields)


@functools.cache
def keys_in_bucket(d: int, local: bytes = LOCAL) -> tuple[int, ...]:
    """Indices of pool keys whose node id is at log distance ``d`` from ``local``."""
    return tuple(i for i in range(POOL_SIZE) if log_distance(local, node_id(i)) == d)


def distinct_ip(n: int) -> str:
    """The n-th address of a public range with one address per /24 (no IP limit clashes)."""
    return str(ipaddress.IPv4Address("20.0.0.1") + 256 * n)


def fill_bucket(table: RoutingTable, d: int, count: int, now: float = 0.0) -> list[ENR]:
    """Add ``count`` nodes of bucket ``d`` with distinct /24s; returns their records."""
    out: list[ENR] = []
    for n, i in enumerate(keys_in_bucket(d)[:count]):
        enr = make_enr(i, ip=distinct_ip(n + 1000 * d))
        assert table.add(enr, now) is InsertResult.ADDED
        out.append(enr)
    return out


def bucket_ids(table: RoutingTable, d: int) -> list[bytes]:
    return [e.node_id for e in table.bucket(d).entries]


# -- insertion ----------------------------------------------------------------------------------


def test_add_new_entry() -> None:
    table = RoutingTable(LOCAL, CFG)
    enr = make_enr(keys_in_bucket(256)[0])
    assert table.add(enr, 5.0) is InsertResult.ADDED
    assert len(table) == 1
    assert enr.node_id in table
    assert table.get(enr.node_id) == enr
    entry = table.entry(enr.node_id)
    assert entry is not None
    assert entry == TableEntry(enr=enr, ip=ipaddress.IPv4Address("1.2.3.4"), added_at=5.0)
    assert not entry.live
    assert entry.liveness_checks == 0
    assert table.revalidation_list(enr.node_id) == "fast"
    assert table.bucket_index(enr.node_id) == 256
    assert bucket_ids(table, 256) == [enr.node_id]
    table._assert_invariants()


def test_add_self_is_refused() -> None:
    local = node_id(7)
    table = RoutingTable(local, CFG)
    assert table.add(make_enr(7), 0.0) is InsertResult.SELF
    assert len(table) == 0
    assert table.bucket_index(local) == 0
    assert table.get(local) is None
    assert local not in table


def test_local_id_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        RoutingTable(b"\x00" * 31, CFG)


@pytest.mark.parametrize(
    ("ip", "udp"),
    [(None, 30303), ("1.2.3.4", None), ("1.2.3.4", 0), ("0.0.0.0", 30303), ("::", 30303)],
)
def test_add_unusable_records(ip: str | None, udp: int | None) -> None:
    table = RoutingTable(LOCAL, CFG)
    assert table.add(make_enr(1, ip=ip, udp=udp), 0.0) is InsertResult.UNUSABLE
    assert len(table) == 0


def test_ipv6_record_is_usable() -> None:
    table = RoutingTable(LOCAL, CFG)
    assert table.add(make_enr(1, ip="2a01:4f8::1"), 0.0) is InsertResult.ADDED


def test_full_bucket_goes_to_replacement_cache() -> None:
    table = RoutingTable(LOCAL, CFG)
    entries = fill_bucket(table, 256, CFG.bucket_size)
    extra = keys_in_bucket(256)[CFG.bucket_size : CFG.bucket_size + 12]
    results = [table.add(make_enr(i, ip=distinct_ip(500 + n)), 1.0) for n, i in enumerate(extra)]
    assert results == [InsertResult.REPLACEMENT] * 12
    assert len(table) == CFG.bucket_size
    assert bucket_ids(table, 256) == [e.node_id for e in entries]
    reps = table.bucket(256).replacements
    # At most 10 kept, most recent first; the two oldest fell out.
    assert [r.node_id for r in reps] == [node_id(i) for i in reversed(extra[2:])]
    assert table.get(node_id(extra[-1])) is not None  # get() also finds replacements
    assert table.get(node_id(extra[0])) is None
    assert table.entry(node_id(extra[-1])) is None
    assert node_id(extra[-1]) not in table
    table._assert_invariants()


def test_replacement_seen_again_moves_to_front_and_updates() -> None:
    table = RoutingTable(LOCAL, CFG)
    fill_bucket(table, 256, CFG.bucket_size)
    a, b = keys_in_bucket(256)[CFG.bucket_size : CFG.bucket_size + 2]
    table.add(make_enr(a, ip="30.0.0.1"), 1.0)
    table.add(make_enr(b, ip="30.0.1.1"), 1.0)
    assert [r.node_id for r in table.bucket(256).replacements] == [node_id(b), node_id(a)]
    newer = make_enr(a, ip="30.0.2.1", seq=2)
    assert table.add(newer, 2.0) is InsertResult.REPLACEMENT
    reps = table.bucket(256).replacements
    assert [r.node_id for r in reps] == [node_id(a), node_id(b)]
    assert reps[0].enr == newer
    assert reps[0].added_at == 1.0
    # An older record does not overwrite the cached one.
    assert table.add(make_enr(a, ip="30.0.3.1", seq=1), 3.0) is InsertResult.REPLACEMENT
    assert table.bucket(256).replacements[0].enr == newer
    table._assert_invariants()


def test_full_without_replacement_cache() -> None:
    cfg = replace(CFG, bucket_size=2, replacement_cache_size=0)
    table = RoutingTable(LOCAL, cfg)
    fill_bucket(table, 256, 2)
    third = make_enr(keys_in_bucket(256)[2], ip="30.0.0.1")
    assert table.add(third, 0.0) is InsertResult.FULL
    assert table.bucket(256).replacements == ()


# -- record updates ----------------------------------------------------------------------------


def test_higher_seq_replaces_record_lower_is_ignored() -> None:
    table = RoutingTable(LOCAL, CFG)
    i = keys_in_bucket(256)[0]
    v2 = make_enr(i, seq=2)
    table.add(v2, 0.0)
    assert table.add(make_enr(i, seq=1), 1.0) is InsertResult.UNCHANGED
    assert table.add(v2, 1.0) is InsertResult.UNCHANGED
    assert table.get(node_id(i)) == v2
    v3 = make_enr(i, seq=3, extra_key="x")
    assert table.add(v3, 2.0) is InsertResult.UPDATED
    assert table.get(node_id(i)) == v3
    entry = table.entry(node_id(i))
    assert entry is not None
    assert entry.added_at == 0.0
    table._assert_invariants()


def test_inbound_record_replaces_even_with_lower_seq() -> None:
    table = RoutingTable(LOCAL, CFG)
    table.mark_bootstrapped()
    i = keys_in_bucket(256)[0]
    table.add(make_enr(i, seq=5), 0.0)
    v1 = make_enr(i, seq=1)
    assert table.add(v1, 1.0, inbound=True) is InsertResult.UPDATED
    assert table.get(node_id(i)) == v1


def test_update_keeping_endpoint_keeps_liveness() -> None:
    table = RoutingTable(LOCAL, CFG)
    i = keys_in_bucket(256)[0]
    table.add(make_enr(i, seq=1), 0.0)
    table.mark_live(node_id(i), 1.0)
    assert table.add(make_enr(i, seq=2, extra_key="y"), 2.0) is InsertResult.UPDATED
    entry = table.entry(node_id(i))
    assert entry is not None
    assert entry.live
    assert table.revalidation_list(node_id(i)) == "slow"


@pytest.mark.parametrize(("ip", "udp"), [("5.6.7.8", 30303), ("1.2.3.4", 30304)])
def test_endpoint_change_clears_liveness(ip: str, udp: int) -> None:
    table = RoutingTable(LOCAL, CFG)
    i = keys_in_bucket(256)[0]
    table.add(make_enr(i, seq=1), 0.0)
    table.mark_live(node_id(i), 1.0)
    assert table.revalidation_list(node_id(i)) == "slow"
    assert table.add(make_enr(i, ip=ip, udp=udp, seq=2), 2.0) is InsertResult.UPDATED
    entry = table.entry(node_id(i))
    assert entry is not None
    assert not entry.live
    assert entry.liveness_checks == 1
    assert table.revalidation_list(node_id(i)) == "fast"
    assert table.nodes_at_distances([256]) == []
    table._assert_invariants()


def test_ip_change_that_breaks_the_limit_is_refused() -> None:
    table = RoutingTable(LOCAL, CFG)
    a, b, c = keys_in_bucket(256)[:3]
    table.add(make_enr(a, ip="40.0.0.1"), 0.0)
    table.add(make_enr(b, ip="40.0.0.2"), 0.0)
    old = make_enr(c, ip="41.0.0.1")
    table.add(old, 0.0)
    assert table.add(make_enr(c, ip="40.0.0.3", seq=2), 1.0) is InsertResult.IP_LIMIT
    assert table.get(node_id(c)) == old
    table._assert_invariants()


def test_update_to_unusable_record_is_refused() -> None:
    table = RoutingTable(LOCAL, CFG)
    i = keys_in_bucket(256)[0]
    old = make_enr(i)
    table.add(old, 0.0)
    assert table.add(make_enr(i, ip=None, seq=2), 1.0) is InsertResult.UNUSABLE
    assert table.get(node_id(i)) == old


# -- inbound / bootstrap ------------------------------------------------------------------------


def test_inbound_refused_until_bootstrapped() -> None:
    table = RoutingTable(LOCAL, CFG)
    enr = make_enr(keys_in_bucket(256)[0])
    assert not table.bootstrapped
    assert table.add(enr, 0.0, inbound=True) is InsertResult.NOT_BOOTSTRAPPED
    assert len(table) == 0
    assert table.add(enr, 0.0) is InsertResult.ADDED  # found nodes are fine
    table.mark_bootstrapped()
    assert table.bootstrapped
    other = make_enr(keys_in_bucket(256)[1], ip="9.9.9.9")
    assert table.add(other, 1.0, inbound=True) is InsertResult.ADDED


# -- IP limits -----------------------------------------------------------------------------------


def test_bucket_ip_limit() -> None:
    table = RoutingTable(LOCAL, CFG)
    a, b, c = keys_in_bucket(256)[:3]
    assert table.add(make_enr(a, ip="50.1.2.3"), 0.0) is InsertResult.ADDED
    assert table.add(make_enr(b, ip="50.1.2.4"), 0.0) is InsertResult.ADDED
    assert table.add(make_enr(c, ip="50.1.2.5"), 0.0) is InsertResult.IP_LIMIT
    assert table.add(make_enr(c, ip="50.1.3.5"), 0.0) is InsertResult.ADDED  # other /24
    # Another bucket has its own allowance.
    d = keys_in_bucket(255)[0]
    assert table.add(make_enr(d, ip="50.1.2.6"), 0.0) is InsertResult.ADDED
    table._assert_invariants()


def test_table_ip_limit() -> None:
    # go-ethereum TestTable_IPLimit: 11 nodes of one /24 in different buckets -> 10 admitted.
    table = RoutingTable(LOCAL, replace(CFG, bucket_ip_limit=16))
    results = []
    buckets = [d for d in range(256, 200, -1) if keys_in_bucket(d)][:11]
    assert len(buckets) == 11
    for n, d in enumerate(buckets):
        results.append(table.add(make_enr(keys_in_bucket(d)[0], ip=f"172.0.1.{n + 1}"), 0.0))
    assert results == [InsertResult.ADDED] * 10 + [InsertResult.IP_LIMIT]
    assert len(table) == 10
    table._assert_invariants()


def test_table_ip_limit_with_default_bucket_limit() -> None:
    table = RoutingTable(LOCAL, CFG)
    results = []
    for n in range(12):
        d = 256 - n // 2
        i = keys_in_bucket(d)[n % 2]
        results.append(table.add(make_enr(i, ip=f"172.0.1.{n + 1}"), 0.0))
    assert results.count(InsertResult.ADDED) == 10
    assert results[10:] == [InsertResult.IP_LIMIT] * 2


@pytest.mark.parametrize(
    "prefix",
    ["127.0.0.", "127.5.6.", "10.1.2.", "172.16.9.", "192.168.1.", "fc00::", "fe80::", "0.1.2."],
)
def test_loopback_and_lan_are_exempt(prefix: str) -> None:
    table = RoutingTable(LOCAL, CFG)
    for n, i in enumerate(keys_in_bucket(256)[:20]):
        result = table.add(make_enr(i, ip=f"{prefix}{n + 1}"), 0.0)
        expected = InsertResult.ADDED if n < CFG.bucket_size else InsertResult.REPLACEMENT
        assert result is expected
    assert len(table) == CFG.bucket_size
    for e in table.bucket(256).entries[:3]:
        assert table.remove(e.node_id)
    assert len(table) == CFG.bucket_size  # replacements stepped in
    table._assert_invariants()


def test_is_lan() -> None:
    lan = ["127.0.0.1", "127.255.0.9", "::1", "10.0.0.1", "172.31.255.255", "192.168.0.1",
           "0.0.0.1", "fe80::1", "fd00::5", "::ffff:10.0.0.1"]  # fmt: skip
    wan = ["1.1.1.1", "172.32.0.1", "169.254.1.1", "192.169.0.1", "2a01:4f8::1", "::ffff:8.8.8.8"]
    assert all(is_lan(ipaddress.ip_address(a)) for a in lan)
    assert not any(is_lan(ipaddress.ip_address(a)) for a in wan)


def test_ipv6_grouped_by_24_bit_prefix_like_geth() -> None:
    table = RoutingTable(LOCAL, CFG)
    a, b, c = keys_in_bucket(256)[:3]
    assert table.add(make_enr(a, ip="2a01:4f8::1"), 0.0) is InsertResult.ADDED
    assert table.add(make_enr(b, ip="2a01:4ff:1::1"), 0.0) is InsertResult.ADDED
    assert table.add(make_enr(c, ip="2a01:400::1"), 0.0) is InsertResult.IP_LIMIT
    assert table.add(make_enr(c, ip="2a02::1"), 0.0) is InsertResult.ADDED


def test_ipv6_prefix_is_configurable() -> None:
    table = RoutingTable(LOCAL, replace(CFG, ip_limit_prefix_v6=64))
    for i in keys_in_bucket(256)[:3]:
        assert table.add(make_enr(i, ip=f"2a01:4f8:0:{i:x}::1"), 0.0) is InsertResult.ADDED


def test_replacements_count_against_ip_limits() -> None:
    table = RoutingTable(LOCAL, CFG)
    fill_bucket(table, 256, CFG.bucket_size)
    a, b, c = keys_in_bucket(256)[CFG.bucket_size : CFG.bucket_size + 3]
    assert table.add(make_enr(a, ip="60.0.0.1"), 0.0) is InsertResult.REPLACEMENT
    assert table.add(make_enr(b, ip="60.0.0.2"), 0.0) is InsertResult.REPLACEMENT
    assert table.add(make_enr(c, ip="60.0.0.3"), 0.0) is InsertResult.IP_LIMIT
    table._assert_invariants()


def test_removal_frees_ip_quota() -> None:
    table = RoutingTable(LOCAL, CFG)
    a, b, c = keys_in_bucket(256)[:3]
    table.add(make_enr(a, ip="70.0.0.1"), 0.0)
    table.add(make_enr(b, ip="70.0.0.2"), 0.0)
    assert table.add(make_enr(c, ip="70.0.0.3"), 0.0) is InsertResult.IP_LIMIT
    assert table.remove(node_id(a))
    assert table.add(make_enr(c, ip="70.0.0.3"), 0.0) is InsertResult.ADDED
    table._assert_invariants()


def test_dropped_replacement_frees_ip_quota() -> None:
    cfg = replace(CFG, bucket_size=1, replacement_cache_size=1)
    table = RoutingTable(LOCAL, cfg)
    a, b, c, d = keys_in_bucket(256)[:4]
    table.add(make_enr(a, ip="80.0.0.1"), 0.0)
    assert table.add(make_enr(b, ip="80.0.0.2"), 0.0) is InsertResult.REPLACEMENT
    # c pushes b out of the one-slot cache, so b's address no longer counts.
    assert table.add(make_enr(c, ip="81.0.0.1"), 0.0) is InsertResult.REPLACEMENT
    assert table.add(make_enr(d, ip="80.0.0.3"), 0.0) is InsertResult.REPLACEMENT
    table._assert_invariants()


# -- liveness ------------------------------------------------------------------------------------


def test_mark_live_and_seq_signal() -> None:
    table = RoutingTable(LOCAL, CFG)
    i = keys_in_bucket(256)[0]
    table.add(make_enr(i, seq=3), 0.0)
    assert table.mark_live(node_id(i), 1.0, 3) is False
    assert table.mark_live(node_id(i), 2.0, 2) is False
    assert table.mark_live(node_id(i), 3.0) is False
    assert table.mark_live(node_id(i), 4.0, 4) is True
    entry = table.entry(node_id(i))
    assert entry is not None
    assert entry.live
    assert entry.liveness_checks == 4
    assert entry.last_seen == 4.0
    assert entry.last_checked == 4.0
    assert table.revalidation_list(node_id(i)) == "slow"
    assert table.mark_live(node_id(99999 % POOL_SIZE), 5.0, 10) is False  # unknown node
    assert table.mark_live(LOCAL, 5.0, 10) is False


def test_never_verified_entry_removed_on_first_failure() -> None:
    table = RoutingTable(LOCAL, CFG)
    i = keys_in_bucket(256)[0]
    table.add(make_enr(i), 0.0)
    assert table.mark_failed(node_id(i), 1.0) is True
    assert node_id(i) not in table
    assert table.revalidation_list(node_id(i)) is None
    assert table.mark_failed(node_id(i), 2.0) is False  # already gone
    assert table.mark_failed(LOCAL, 2.0) is False
    table._assert_invariants()


def test_liveness_counter_divides_by_three() -> None:
    table = RoutingTable(LOCAL, CFG)
    i = keys_in_bucket(256)[0]
    table.add(make_enr(i), 0.0)
    for t in range(7):
        table.mark_live(node_id(i), float(t))
    assert table.mark_failed(node_id(i), 10.0) is False  # 7 // 3 = 2
    entry = table.entry(node_id(i))
    assert entry is not None
    assert entry.liveness_checks == 2
    assert entry.live  # still relayed; occasional misses are tolerated
    assert entry.last_checked == 10.0
    assert entry.last_seen == 6.0
    assert table.revalidation_list(node_id(i)) == "fast"
    assert table.mark_failed(node_id(i), 11.0) is True  # 2 // 3 = 0 -> removed
    assert node_id(i) not in table


def test_failed_entry_promotes_most_recent_replacement() -> None:
    table = RoutingTable(LOCAL, CFG)
    entries = fill_bucket(table, 256, CFG.bucket_size)
    r1, r2 = keys_in_bucket(256)[CFG.bucket_size : CFG.bucket_size + 2]
    table.add(make_enr(r1, ip="90.0.0.1"), 3.0)
    table.add(make_enr(r2, ip="90.0.1.1"), 4.0)
    victim = entries[5].node_id
    assert table.mark_failed(victim, 5.0) is True
    ids = bucket_ids(table, 256)
    assert victim not in ids
    assert ids[-1] == node_id(r2)
    assert len(ids) == CFG.bucket_size
    promoted = table.entry(node_id(r2))
    assert promoted is not None
    assert not promoted.live
    assert promoted.added_at == 4.0
    assert table.revalidation_list(node_id(r2)) == "fast"
    assert [r.node_id for r in table.bucket(256).replacements] == [node_id(r1)]
    table._assert_invariants()


def test_remove_entry_and_replacement() -> None:
    table = RoutingTable(LOCAL, replace(CFG, bucket_size=1))
    a, b = keys_in_bucket(256)[:2]
    table.add(make_enr(a, ip="91.0.0.1"), 0.0)
    table.add(make_enr(b, ip="92.0.0.1"), 0.0)
    assert table.remove(node_id(b))  # the replacement
    assert table.bucket(256).replacements == ()
    assert not table.remove(node_id(b))
    assert table.remove(node_id(a))
    assert len(table) == 0
    assert not table.remove(LOCAL)
    assert table.buckets == ()
    table._assert_invariants()


def test_failed_replacement_is_dropped() -> None:
    table = RoutingTable(LOCAL, replace(CFG, bucket_size=1))
    a, b = keys_in_bucket(256)[:2]
    table.add(make_enr(a, ip="91.0.0.1"), 0.0)
    table.add(make_enr(b, ip="92.0.0.1"), 0.0)
    assert table.mark_failed(node_id(b), 1.0) is True
    assert table.get(node_id(b)) is None
    assert table.mark_live(node_id(b), 1.0, 5) is False


def test_cached_record_update_that_breaks_ip_limit_keeps_old_record() -> None:
    table = RoutingTable(LOCAL, CFG)
    fill_bucket(table, 256, CFG.bucket_size)
    a, b, c = keys_in_bucket(256)[CFG.bucket_size : CFG.bucket_size + 3]
    table.add(make_enr(a, ip="61.0.0.1"), 0.0)
    table.add(make_enr(b, ip="61.0.0.2"), 0.0)
    old = make_enr(c, ip="62.0.0.1")
    table.add(old, 0.0)
    assert table.add(make_enr(c, ip="61.0.0.3", seq=2), 1.0) is InsertResult.REPLACEMENT
    assert table.get(node_id(c)) == old
    assert table.bucket(256).replacements[0].enr == old
    table._assert_invariants()


def test_record_findnode_failures() -> None:
    table = RoutingTable(LOCAL, CFG)
    entries = fill_bucket(table, 256, 4)
    target = entries[0].node_id
    for _ in range(4):
        assert table.record_findnode(target, success=False) is False
    assert table.record_findnode(target, success=True) is False  # resets
    entry = table.entry(target)
    assert entry is not None
    assert entry.findnode_failures == 0
    for _ in range(4):
        table.record_findnode(target, success=False)
    assert table.record_findnode(target, success=False) is True
    assert target not in table
    assert table.record_findnode(target, success=False) is False


def test_record_findnode_keeps_nodes_of_small_buckets() -> None:
    table = RoutingTable(LOCAL, CFG)
    entries = fill_bucket(table, 256, 3)  # fewer than bucket_size // 4
    for _ in range(10):
        assert table.record_findnode(entries[0].node_id, success=False) is False
    assert entries[0].node_id in table


# -- queries ------------------------------------------------------------------------------------


def _live_table(count: int, *, local: bytes = LOCAL) -> tuple[RoutingTable, list[ENR]]:
    table = RoutingTable(local, replace(CFG, table_ip_limit=1000, bucket_ip_limit=1000))
    added = []
    for i in range(count):
        enr = make_enr(i, ip=distinct_ip(i))
        if table.add(enr, 0.0) is InsertResult.ADDED:
            table.mark_live(enr.node_id, 0.0)
            added.append(enr)
    return table, added


def test_closest_matches_brute_force() -> None:
    table, added = _live_table(400, local=node_id(2999))
    rng = random.Random(1)
    for target in [rng.randbytes(32) for _ in range(20)] + [node_id(2999), added[3].node_id]:
        t = int.from_bytes(target, "big")
        expect = sorted(added, key=lambda e: int.from_bytes(e.node_id, "big") ^ t)
        for n in (1, 5, 16, 50, 1000):
            assert table.closest(target, n) == expect[:n]
    assert table.closest(added[0].node_id, 0) == []


def test_closest_live_only() -> None:
    table, added = _live_table(30)
    extra = make_enr(next(i for i in keys_in_bucket(250) if i >= 30), ip="99.0.0.1")
    table.add(extra, 0.0)
    target = extra.node_id
    assert extra not in table.closest(target, 100)
    assert table.closest(target, 1, live_only=False) == [extra]
    assert len(table.closest(target, 100, live_only=False)) == len(added) + 1


def test_nodes_at_distances_only_live_in_given_order() -> None:
    table = RoutingTable(LOCAL, CFG)
    b256 = fill_bucket(table, 256, 5)
    b255 = fill_bucket(table, 255, 3)
    for e in b256[:4] + b255[:2]:
        table.mark_live(e.node_id, 0.0)
    assert table.nodes_at_distances([256]) == b256[:4]
    assert table.nodes_at_distances([255, 256]) == b255[:2] + b256[:4]
    assert table.nodes_at_distances([256, 255]) == b256[:4] + b255[:2]
    # Duplicates, 0, negatives and > 256 are ignored.
    assert table.nodes_at_distances([0, 256, 256, 257, -1, 4234098, 255]) == b256[:4] + b255[:2]
    assert table.nodes_at_distances([]) == []
    assert table.nodes_at_distances([1, 2, 3]) == []
    # The limit is applied across buckets, in the order given.
    assert table.nodes_at_distances([256, 255], limit=5) == b256[:4] + b255[:1]
    assert table.nodes_at_distances([256, 255], limit=0) == []


def test_nodes_at_distances_limit_and_shuffle() -> None:
    table = RoutingTable(LOCAL, CFG)
    full = fill_bucket(table, 256, 16)
    half = fill_bucket(table, 255, 16)
    for e in full + half:
        table.mark_live(e.node_id, 0.0)
    assert len(table.nodes_at_distances([256, 255])) == 16
    assert table.nodes_at_distances([255, 256], limit=20) == half + full[:4]
    shuffled = table.nodes_at_distances([256], rng=random.Random(3))
    assert sorted(e.node_id for e in shuffled) == sorted(e.node_id for e in full)
    assert shuffled != full


def test_introspection() -> None:
    table = RoutingTable(LOCAL, replace(CFG, bucket_size=2))
    a, b, c = keys_in_bucket(256)[:3]
    d = keys_in_bucket(254)[0]
    for n, i in enumerate((a, b, c, d)):
        table.add(make_enr(i, ip=distinct_ip(n)), float(n))
    snap = table.buckets
    assert [bk.distance for bk in snap] == [254, 256]
    assert isinstance(snap[1], Bucket)
    assert [e.node_id for e in snap[1].entries] == [node_id(a), node_id(b)]
    assert [e.node_id for e in snap[1].replacements] == [node_id(c)]
    assert [e.node_id for e in table.entries()] == [node_id(d), node_id(a), node_id(b)]
    assert table.bucket(100).entries == ()
    assert table.local_id == LOCAL
    with pytest.raises(ValueError, match="bucket distance"):
        table.bucket(0)
    with pytest.raises(ValueError, match="bucket distance"):
        table.bucket(257)
    assert 5 not in table
    assert b"short" not in table


# -- revalidation -------------------------------------------------------------------------------


class FixedRandom:
    """A RandomSource that always returns the same value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_revalidation_empty_table_polls() -> None:
    table = RoutingTable(LOCAL, CFG)
    r = table.next_revalidation(100.0, random.Random(0))
    assert r.nodes == ()
    assert r.next_at == 100.0 + CFG.revalidation_interval


def test_revalidation_fast_then_slow() -> None:
    table = RoutingTable(LOCAL, CFG)
    entries = fill_bucket(table, 256, 2)
    rng = FixedRandom(0.5)
    # First call schedules the fast list at now + 0.5 * 3 s.
    r = table.next_revalidation(0.0, rng)
    assert r.nodes == ()
    assert r.next_at == 1.5
    r = table.next_revalidation(1.5, rng)
    assert len(r.nodes) == 1
    first = r.nodes[0]
    assert first == entries[1]  # index int(0.5 * 2) of the insertion-ordered members
    assert r.next_at == 3.0
    # The node being checked is not handed out again; the other one is.
    r = table.next_revalidation(3.0, rng)
    assert r.nodes == (entries[0],)
    # Both pending: nothing to ping, the list is rescheduled instead of spinning.
    r = table.next_revalidation(4.5, rng)
    assert r.nodes == ()
    assert r.next_at == 6.0
    table.mark_live(first.node_id, 5.0)
    assert table.revalidation_list(first.node_id) == "slow"
    r = table.next_revalidation(6.0, rng)
    # Fast list: only entries[0], still pending. Slow list: newly scheduled at 6 + 4.5.
    assert r.nodes == ()
    assert r.next_at == 7.5
    r = table.next_revalidation(10.5, rng)
    assert r.nodes == (first,)
    table._assert_invariants()


def test_revalidation_reports_clear_pending() -> None:
    table = RoutingTable(LOCAL, CFG)
    (enr,) = fill_bucket(table, 256, 1)
    rng = FixedRandom(0.0)
    assert table.next_revalidation(0.0, rng).nodes == (enr,)
    assert table.next_revalidation(0.0, rng).nodes == ()
    table.mark_live(enr.node_id, 0.0)  # now on the slow list, not pending
    assert table.next_revalidation(0.0, rng).nodes == (enr,)
    # One PONG so far: 1 // 3 == 0, so the first miss removes it.
    assert table.mark_failed(enr.node_id, 0.0) is True
    table._assert_invariants()


def test_unreported_check_is_abandoned_after_slow_interval() -> None:
    table = RoutingTable(LOCAL, CFG)
    (enr,) = fill_bucket(table, 256, 1)
    rng = FixedRandom(0.0)
    assert table.next_revalidation(0.0, rng).nodes == (enr,)
    assert table.next_revalidation(CFG.slow_revalidation_interval - 0.1, rng).nodes == ()
    assert table.next_revalidation(CFG.slow_revalidation_interval, rng).nodes == (enr,)


def test_revalidation_schedule_is_deterministic_and_bounded() -> None:
    def run(seed: int) -> list[tuple[tuple[bytes, ...], float]]:
        table = RoutingTable(LOCAL, CFG)
        fill_bucket(table, 256, 10)
        rng = random.Random(seed)
        now, out = 0.0, []
        for _ in range(50):
            r = table.next_revalidation(now, rng)
            assert now <= r.next_at <= now + CFG.revalidation_interval
            for enr in r.nodes:
                if enr.node_id[0] % 2:
                    table.mark_live(enr.node_id, now)
                else:
                    table.mark_failed(enr.node_id, now)
            out.append((tuple(e.node_id for e in r.nodes), r.next_at))
            now = r.next_at
            table._assert_invariants()
        return out

    assert run(1) == run(1)
    assert run(1) != run(2)


# -- hypothesis: invariants under random operations ---------------------------------------------

IPS = ["20.0.0.1", "20.0.0.2", "20.0.0.3", "20.0.1.1", "21.0.0.1", "127.0.0.1", "10.0.0.1",
       "2a01:4f8::1", "2a01:4f8::2", "2a01:4f9::1", "fc00::1", None]  # fmt: skip
HYP_NODES = 48

op_strategy = st.one_of(
    st.tuples(
        st.just("add"),
        st.integers(0, HYP_NODES - 1),
        st.sampled_from(IPS),
        st.integers(1, 3),
        st.booleans(),
    ),
    st.tuples(st.just("live"), st.integers(0, HYP_NODES - 1), st.integers(0, 4)),
    st.tuples(st.just("fail"), st.integers(0, HYP_NODES - 1)),
    st.tuples(st.just("remove"), st.integers(0, HYP_NODES - 1)),
    st.tuples(st.just("findnode"), st.integers(0, HYP_NODES - 1), st.booleans()),
    st.tuples(st.just("reval"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("bootstrap")),
)

config_strategy = st.builds(
    lambda k, r, b, t: replace(
        CFG, bucket_size=k, replacement_cache_size=r, bucket_ip_limit=b, table_ip_limit=t
    ),
    st.integers(1, 6),
    st.integers(0, 3),
    st.integers(1, 3),
    st.integers(1, 5),
)


def check_public_invariants(table: RoutingTable, cfg: Config) -> None:
    """The invariants, recomputed from the public snapshot only."""
    subnets_table: dict[tuple[int, int], int] = {}
    seen: set[bytes] = set()
    for bk in table.buckets:
        assert len(bk.entries) <= cfg.bucket_size
        assert len(bk.replacements) <= cfg.replacement_cache_size
        subnets_bucket: dict[tuple[int, int], int] = {}
        for e in bk.entries + bk.replacements:
            assert table.bucket_index(e.node_id) == bk.distance
            assert e.node_id not in seen
            seen.add(e.node_id)
            ip = e.enr.endpoint().ip
            assert ip is not None
            if not is_lan(ip):
                key = (ip.version, int(ip) >> (ip.max_prefixlen - 24))
                subnets_bucket[key] = subnets_bucket.get(key, 0) + 1
                subnets_table[key] = subnets_table.get(key, 0) + 1
        assert all(v <= cfg.bucket_ip_limit for v in subnets_bucket.values())
    assert all(v <= cfg.table_ip_limit for v in subnets_table.values())
    assert len(table) == sum(len(bk.entries) for bk in table.buckets)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cfg=config_strategy,
    ops=st.lists(op_strategy, max_size=60),
    target=st.binary(min_size=32, max_size=32),
)
def test_random_operations_keep_invariants(
    cfg: Config, ops: list[tuple[object, ...]], target: bytes
) -> None:
    local = node_id(POOL_SIZE - 1)
    table = RoutingTable(local, cfg)
    now = 0.0
    for op in ops:
        now += 1.0
        match op:
            case ("add", int(i), ip, int(seq), bool(inbound)):
                assert ip is None or isinstance(ip, str)
                result = table.add(make_enr(i, ip=ip, seq=seq), now, inbound=inbound)
                if result in (InsertResult.ADDED, InsertResult.UPDATED):
                    assert node_id(i) in table
            case ("live", int(i), int(seq)):
                table.mark_live(node_id(i), now, seq)
            case ("fail", int(i)):
                table.mark_failed(node_id(i), now)
            case ("remove", int(i)):
                table.remove(node_id(i))
                assert node_id(i) not in table
            case ("findnode", int(i), bool(ok)):
                table.record_findnode(node_id(i), success=ok)
            case ("reval", float(x)):
                r = table.next_revalidation(now, FixedRandom(x))
                assert now <= r.next_at <= now + cfg.revalidation_interval
                assert all(e.node_id in table for e in r.nodes)
            case ("bootstrap",):
                table.mark_bootstrapped()
        table._assert_invariants()
        check_public_invariants(table, cfg)
    # closest() is sorted by distance and agrees with a brute-force sort.
    t = int.from_bytes(target, "big")
    for live_only in (True, False):
        pool = [e.enr for e in table.entries() if e.live or not live_only]
        expect = sorted(pool, key=lambda e: int.from_bytes(e.node_id, "big") ^ t)
        got = table.closest(target, 8, live_only=live_only)
        assert got == expect[:8]
    # nodes_at_distances() returns live entries at the asked distances only.
    for enr in table.nodes_at_distances(range(1, 257), limit=1000):
        entry = table.entry(enr.node_id)
        assert entry is not None
        assert entry.live
