"""The Kademlia node table (discv5-theory "Node Table", "Table Maintenance In Practice").

Theory of operation
-------------------
Nodes are filed by their log distance to the local node id: bucket ``d`` (1..256) holds nodes
``n`` with ``log_distance(local_id, n) == d``. Each bucket keeps at most ``k`` entries
(``Config.bucket_size``) and a small cache of replacement candidates
(``Config.replacement_cache_size``) that step in when an entry is dropped. Unlike go-ethereum,
which folds every distance <= 239 into one bucket, all 256 distances get their own bucket (the
spec's layout); nearly all of them stay empty in practice.

The table never does I/O. The driver feeds it facts ("this record was learned", "this node
answered a PING", "this node failed to answer") together with the current time ``now``, and asks
it questions ("which nodes are closest to X", "whom should I ping now"). Randomness, needed only
for revalidation scheduling and answer shuffling, comes from a caller-supplied
:class:`RandomSource` such as ``random.Random(seed)``.

Liveness (go-ethereum ``table_reval.go``): an entry is *live* once a PONG has been received from
it. Only live entries are handed out in NODES answers (discv5-theory: never relay nodes whose
liveness has not been verified) and by :meth:`RoutingTable.closest` unless asked otherwise. Each
entry has a liveness counter: a PONG adds one, a missed PONG divides it by three (integer
division) and the entry is dropped when it reaches zero, so an entry that was never verified is
dropped on its first failure, while a long-lived one survives a few misses.

Revalidation scheduling follows go-ethereum's two lists. New entries, promoted replacements,
entries whose endpoint changed and entries that just failed a check sit on the *fast* list;
entries that passed their last check sit on the *slow* list. Each list has its own due time,
drawn uniformly from ``[now, now + interval)`` whenever it fires; when a list is due, one random
member that is not already being checked is returned by :meth:`RoutingTable.next_revalidation`
(a list that has just become non-empty is scheduled on that method's next call).

Sybil and eclipse resistance (discv5-theory "Sybil and Eclipse Attacks", go-ethereum
``Table.addIP``): at most ``bucket_ip_limit`` addresses of one /24 per bucket and
``table_ip_limit`` in the whole table. Loopback and LAN addresses (go-ethereum ``IsLAN``:
127/8, ::1, 0/8, 10/8, 172.16/12, 192.168/16, fe80::/10, fc00::/7) are exempt. Like
go-ethereum, replacement-cache members are counted too, and the same 24-bit prefix groups IPv6
addresses (go-ethereum's ``DistinctNetSet`` truncates either family to the same number of bits;
both prefixes are configurable). Nodes that contact us (``inbound=True``) are only admitted once
our own lookups have bootstrapped the table, so a flood of PINGs cannot fill an empty table.

Invariants (checked by ``_assert_invariants`` in the tests):

1. An entry or replacement in bucket ``d`` has ``log_distance(local_id, node_id) == d``; the
   local id is never stored.
2. A bucket holds at most ``bucket_size`` entries and ``replacement_cache_size`` replacements,
   and a node id occurs at most once in the whole table (entries and replacements together).
3. For every non-exempt subnet: per bucket, entries + replacements in it number at most
   ``bucket_ip_limit``; over the whole table at most ``table_ip_limit``.
4. Every entry (not replacement) is on exactly one revalidation list; replacements on none.
5. A live entry has ``liveness_checks >= 1``.
6. Every stored record has a usable endpoint (an IP that is not unspecified, and a UDP port),
   and ``TableEntry.ip`` is that endpoint's address.
7. A bucket with replacement candidates is full: candidates are only cached while the bucket
   is full, and removing an entry promotes a candidate.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from enum import Enum
from operator import itemgetter
from typing import TYPE_CHECKING, Final, Protocol

from ._types import NodeId, log_distance

if TYPE_CHECKING:
    from enr import ENR

    from ._config import Config

__all__ = [
    "Bucket",
    "InsertResult",
    "RandomSource",
    "Revalidation",
    "RoutingTable",
    "TableEntry",
    "is_lan",
]

#: Number of buckets: one per log distance 1..256 (discv5-theory "Node Table").
NUM_BUCKETS: Final = 256

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_SubnetKey = tuple[int, int]


# go-ethereum p2p/netutil `lan4` / `lan6` plus loopback: addresses exempt from the IP limits.
# Note that go-ethereum lists only IPv6 link-local (fe80::/10), not IPv4 169.254/16.
# Kept as (shift, network >> shift) pairs: integer tests are much faster than `ip in net`.
def _nets(*cidrs: str) -> tuple[tuple[int, int], ...]:
    out = []
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr)
        shift = net.max_prefixlen - net.prefixlen
        out.append((shift, int(net.network_address) >> shift))
    return tuple(out)


_LAN_V4: Final = _nets("127.0.0.0/8", "0.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
_LAN_V6: Final = _nets("::1/128", "fe80::/10", "fc00::/7")


class RandomSource(Protocol):
    """The randomness the table needs; ``random.Random(seed)`` satisfies it."""

    def random(self) -> float:
        """A float uniformly drawn from [0.0, 1.0)."""
        ...


class InsertResult(Enum):
    """Outcome of :meth:`RoutingTable.add`."""

    ADDED = "added"
    """A new entry was placed in its bucket (not yet live; it is on the fast revalidation list)."""
    UPDATED = "updated"
    """The node was already an entry and its record was replaced by the given one."""
    UNCHANGED = "unchanged"
    """The node was already an entry and the given record is not newer (not inbound)."""
    REPLACEMENT = "replacement"
    """The bucket is full: the record went to (or was refreshed in) the replacement cache."""
    FULL = "full"
    """The bucket is full and the replacement cache is disabled (size 0)."""
    IP_LIMIT = "ip_limit"
    """Admitting the record's address would exceed a per-bucket or per-table subnet limit."""
    SELF = "self"
    """The record is the local node's own."""
    UNUSABLE = "unusable"
    """The record has no usable endpoint (no IP, an unspecified IP, or no UDP port)."""
    NOT_BOOTSTRAPPED = "not_bootstrapped"
    """An inbound contact before :meth:`RoutingTable.mark_bootstrapped` was called."""


@dataclass(frozen=True, slots=True)
class TableEntry:
    """One node held by the table, either as a bucket entry or as a replacement candidate."""

    enr: ENR
    """The newest record known for the node."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    """The address the entry is filed under for the IP limits (``enr.endpoint().ip``, with
    IPv4-mapped IPv6 addresses unmapped)."""
    added_at: float
    """When the node was first stored (as entry or replacement)."""
    last_seen: float | None = None
    """When the last PONG arrived, None if never."""
    last_checked: float | None = None
    """When the last liveness check finished (PONG or failure), None if never."""
    live: bool = False
    """Liveness verified by a PONG (and the endpoint unchanged since)."""
    liveness_checks: int = 0
    """go-ethereum's liveness counter: +1 per PONG, divided by 3 per missed PONG."""
    findnode_failures: int = 0
    """Consecutive failed FINDNODE calls (see :meth:`RoutingTable.record_findnode`)."""

    @property
    def node_id(self) -> NodeId:
        """The node id of :attr:`enr`."""
        return NodeId(self.enr.node_id)


@dataclass(frozen=True, slots=True)
class Bucket:
    """A read-only snapshot of one bucket, for introspection (``discv5 table`` dumps)."""

    distance: int
    """The log distance from the local node that all members share (1..256)."""
    entries: tuple[TableEntry, ...]
    """Entries in insertion order (oldest first)."""
    replacements: tuple[TableEntry, ...]
    """Replacement candidates, most recently added first."""


@dataclass(frozen=True, slots=True)
class Revalidation:
    """Answer of :meth:`RoutingTable.next_revalidation`."""

    nodes: tuple[ENR, ...]
    """Records to PING now (at most one per revalidation list). Report each outcome with
    :meth:`RoutingTable.mark_live` or :meth:`RoutingTable.mark_failed`."""
    next_at: float
    """Absolute time at which to call :meth:`RoutingTable.next_revalidation` again."""


def _canonical_ip(ip: _IPAddress) -> _IPAddress:
    # IPv4-mapped IPv6 addresses count as the IPv4 address they carry (go-ethereum unmaps too).
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_lan(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address is loopback or LAN in go-ethereum's sense (``netutil.IsLAN``).

    Args:
        ip: an IPv4 or IPv6 address; IPv4-mapped IPv6 addresses are judged as IPv4.

    Returns:
        True for 127.0.0.0/8, ::1, 0.0.0.0/8, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16,
        fe80::/10 and fc00::/7.
    """
    ip = _canonical_ip(ip)
    value = int(ip)
    nets = _LAN_V4 if isinstance(ip, ipaddress.IPv4Address) else _LAN_V6
    return any(value >> shift == prefix for shift, prefix in nets)


def _usable_ip(enr: ENR) -> _IPAddress | None:
    """The address the table files a record under, or None when the record is unusable."""
    ip, udp, _ = enr.endpoint()
    if ip is None or udp is None or udp == 0:
        return None
    ip = _canonical_ip(ip)
    if ip.is_unspecified:
        return None
    return ip


class _Bucket:
    """Mutable bucket state; only RoutingTable touches it."""

    __slots__ = ("distance", "entries", "ips", "replacements")

    def __init__(self, distance: int) -> None:
        self.distance = distance
        self.entries: dict[bytes, TableEntry] = {}
        self.replacements: list[TableEntry] = []  # most recent first
        self.ips: Counter[_SubnetKey] = Counter()

    def replacement_index(self, node_id: bytes) -> int:
        for i, rep in enumerate(self.replacements):
            if rep.enr.node_id == node_id:
                return i
        return -1

    def snapshot(self) -> Bucket:
        return Bucket(self.distance, tuple(self.entries.values()), tuple(self.replacements))


class _RevalList:
    """One of the two revalidation lists: members plus the time the list is next due."""

    __slots__ = ("interval", "members", "next_at")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.members: dict[bytes, None] = {}  # an insertion-ordered set, for determinism
        self.next_at: float | None = None  # None: not scheduled (empty, or newly non-empty)


class RoutingTable:
    """Kademlia table of 256 buckets with replacement caches, IP limits and liveness.

    Pass only records whose signature has been verified. All methods are synchronous, do no
    I/O and never read the clock; anything not listed under Raises is a bug.

    Args:
        local_id: the local node id (32 bytes).
        config: limits (``bucket_size``, ``replacement_cache_size``, ``bucket_ip_limit``,
            ``table_ip_limit``, ``ip_limit_prefix_v4/v6``, revalidation intervals,
            ``max_findnode_failures``).

    Raises:
        ValueError: ``local_id`` is not 32 bytes.
    """

    def __init__(self, local_id: bytes, config: Config) -> None:
        if len(local_id) != 32:
            raise ValueError(f"local node id must be 32 bytes, got {len(local_id)}")
        self._local_id = NodeId(bytes(local_id))
        self._local_int = int.from_bytes(local_id, "big")
        self._config = config
        self._buckets = [_Bucket(d) for d in range(NUM_BUCKETS + 1)]  # index 0 unused
        self._table_ips: Counter[_SubnetKey] = Counter()
        self._fast = _RevalList(config.revalidation_interval)
        self._slow = _RevalList(config.slow_revalidation_interval)
        self._reval_of: dict[bytes, _RevalList] = {}
        self._reval_pending: dict[bytes, float] = {}  # node id -> when it was handed out
        self._size = 0
        self._bootstrapped = False

    # -- introspection ----------------------------------------------------------------------------

    @property
    def local_id(self) -> NodeId:
        """The local node id."""
        return self._local_id

    @property
    def bootstrapped(self) -> bool:
        """Whether :meth:`mark_bootstrapped` has been called (inbound contacts admitted)."""
        return self._bootstrapped

    def __len__(self) -> int:
        """Number of bucket entries (replacements not counted)."""
        return self._size

    def __contains__(self, node_id: object) -> bool:
        """Whether ``node_id`` is a bucket entry (replacements not included)."""
        if not isinstance(node_id, bytes) or len(node_id) != 32 or node_id == self._local_id:
            return False
        return node_id in self._buckets[self.bucket_index(node_id)].entries

    def bucket_index(self, node_id: bytes) -> int:
        """The bucket a node id belongs in.

        Args:
            node_id: a 32-byte node id.

        Returns:
            ``log_distance(local_id, node_id)``: 1..256, or 0 for the local id itself.
        """
        return log_distance(self._local_id, node_id)

    def bucket(self, distance: int) -> Bucket:
        """A snapshot of the bucket at a log distance.

        Args:
            distance: 1..256.

        Returns:
            The bucket's entries and replacements.

        Raises:
            ValueError: ``distance`` outside 1..256.
        """
        if not 1 <= distance <= NUM_BUCKETS:
            raise ValueError(f"bucket distance must be in 1..{NUM_BUCKETS}, got {distance}")
        return self._buckets[distance].snapshot()

    @property
    def buckets(self) -> tuple[Bucket, ...]:
        """Snapshots of every bucket that holds an entry or a replacement, by distance."""
        return tuple(b.snapshot() for b in self._buckets[1:] if b.entries or b.replacements)

    def entries(self) -> Iterator[TableEntry]:
        """Every bucket entry (not replacements), by bucket distance then insertion order."""
        for b in self._buckets[1:]:
            yield from b.entries.values()

    def entry(self, node_id: bytes) -> TableEntry | None:
        """The bucket entry for a node id, or None (replacements are not returned)."""
        b = self._bucket_for(node_id)
        return None if b is None else b.entries.get(node_id)

    def get(self, node_id: bytes) -> ENR | None:
        """The newest record the table holds for a node id.

        Args:
            node_id: a 32-byte node id.

        Returns:
            The record of the bucket entry or, failing that, of the replacement candidate with
            this id; None when the table does not know the node.
        """
        b = self._bucket_for(node_id)
        if b is None:
            return None
        e = b.entries.get(node_id)
        if e is not None:
            return e.enr
        i = b.replacement_index(node_id)
        return None if i < 0 else b.replacements[i].enr

    def _bucket_for(self, node_id: bytes) -> _Bucket | None:
        d = log_distance(self._local_id, node_id)
        return self._buckets[d] if 1 <= d <= NUM_BUCKETS else None

    # -- insertion --------------------------------------------------------------------------------

    def mark_bootstrapped(self) -> None:
        """Record that our own lookups have filled the table; inbound contacts are admitted
        from now on (go-ethereum waits for its initial refresh the same way)."""
        self._bootstrapped = True

    def add(self, enr: ENR, now: float, *, inbound: bool = False) -> InsertResult:
        """Offer a record to the table.

        Records learned from NODES answers (``inbound=False``) replace a stored record only if
        their seq is higher. A record from the node itself (``inbound=True``: a completed
        handshake) replaces the stored one whenever it differs, even with a lower seq, as in
        go-ethereum; inbound contacts are refused until :meth:`mark_bootstrapped`. When a
        replacement record changes the IP or UDP port, the entry loses its live flag and goes
        back on the fast revalidation list. Adding never pings anybody (discv5-theory: do
        liveness checks asynchronously, not on insert).

        Args:
            enr: a verified record.
            now: current time (seconds), stored as ``added_at``.
            inbound: the record comes from the node itself.

        Returns:
            What happened, see :class:`InsertResult`.
        """
        node_id = enr.node_id
        if node_id == self._local_id:
            return InsertResult.SELF
        if inbound and not self._bootstrapped:
            return InsertResult.NOT_BOOTSTRAPPED
        b = self._buckets[log_distance(self._local_id, node_id)]
        existing = b.entries.get(node_id)
        # go-ethereum bumpInBucket: found records must advance seq; inbound ones may do anything.
        # Checked first: re-learning a known record is by far the most common call.
        if existing is not None and (
            enr == existing.enr or (enr.seq <= existing.enr.seq and not inbound)
        ):
            return InsertResult.UNCHANGED
        ip = _usable_ip(enr)
        if ip is None:
            return InsertResult.UNUSABLE
        if existing is not None:
            return self._update_entry(b, existing, enr, ip)
        if len(b.entries) >= self._config.bucket_size:
            return self._add_replacement(b, enr, ip, now, inbound)
        # The bucket has room, so its replacement cache is empty (invariant 7): a plain insert.
        if not self._claim_ip(b, ip):
            return InsertResult.IP_LIMIT
        self._insert_entry(b, TableEntry(enr=enr, ip=ip, added_at=now))
        return InsertResult.ADDED

    def _insert_entry(self, b: _Bucket, entry: TableEntry) -> None:
        node_id = entry.enr.node_id
        b.entries[node_id] = entry
        self._size += 1
        self._move_to(self._fast, node_id)

    def _update_entry(
        self, b: _Bucket, existing: TableEntry, enr: ENR, ip: _IPAddress
    ) -> InsertResult:
        if ip != existing.ip:
            self._release_ip(b, existing.ip)
            if not self._claim_ip(b, ip):
                self._claim_ip(b, existing.ip)  # put the old address back
                return InsertResult.IP_LIMIT
        moved = ip != existing.ip or enr.endpoint().udp != existing.enr.endpoint().udp
        node_id = enr.node_id
        b.entries[node_id] = replace(existing, enr=enr, ip=ip, live=existing.live and not moved)
        if moved:
            # A node at a new endpoint must prove it is reachable there before we relay it.
            self._move_to(self._fast, node_id)
        return InsertResult.UPDATED

    def _add_replacement(
        self, b: _Bucket, enr: ENR, ip: _IPAddress, now: float, inbound: bool
    ) -> InsertResult:
        cache_size = self._config.replacement_cache_size
        if cache_size <= 0:
            return InsertResult.FULL
        node_id = enr.node_id
        i = b.replacement_index(node_id)
        if i >= 0:
            rep = b.replacements.pop(i)
            if enr != rep.enr and (enr.seq > rep.enr.seq or inbound):
                self._release_ip(b, rep.ip)
                if self._claim_ip(b, ip):
                    rep = replace(rep, enr=enr, ip=ip)
                else:
                    self._claim_ip(b, rep.ip)  # keep the cached record
            b.replacements.insert(0, rep)  # seen again: now the most recent candidate
            return InsertResult.REPLACEMENT
        # go-ethereum addReplacement: the cache is subject to the IP limits as well.
        if not self._claim_ip(b, ip):
            return InsertResult.IP_LIMIT
        b.replacements.insert(0, TableEntry(enr=enr, ip=ip, added_at=now))
        if len(b.replacements) > cache_size:
            dropped = b.replacements.pop()
            self._release_ip(b, dropped.ip)
        return InsertResult.REPLACEMENT

    # -- IP limits --------------------------------------------------------------------------------

    def _subnet(self, ip: _IPAddress) -> _SubnetKey | None:
        if is_lan(ip):
            return None
        if isinstance(ip, ipaddress.IPv4Address):
            bits = min(max(self._config.ip_limit_prefix_v4, 0), 32)
            return (4, int(ip) >> (32 - bits))
        bits = min(max(self._config.ip_limit_prefix_v6, 0), 128)
        return (6, int(ip) >> (128 - bits))

    def _claim_ip(self, b: _Bucket, ip: _IPAddress) -> bool:
        key = self._subnet(ip)
        if key is None:
            return True
        if self._table_ips[key] >= self._config.table_ip_limit:
            return False
        if b.ips[key] >= self._config.bucket_ip_limit:
            return False
        self._table_ips[key] += 1
        b.ips[key] += 1
        return True

    def _release_ip(self, b: _Bucket, ip: _IPAddress) -> None:
        key = self._subnet(ip)
        if key is None:
            return
        for counter in (self._table_ips, b.ips):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]

    # -- removal and liveness ---------------------------------------------------------------------

    def remove(self, node_id: bytes) -> bool:
        """Drop a node (entry or replacement). A dropped entry's place goes to the most recently
        added replacement candidate, which starts unverified on the fast revalidation list.

        go-ethereum promotes a random candidate; the most recent one is chosen here, as in the
        Kademlia paper, which keeps this call free of randomness.

        Args:
            node_id: the node to drop.

        Returns:
            True if the node was in the table (as entry or replacement).
        """
        b = self._bucket_for(node_id)
        if b is None:
            return False
        if node_id in b.entries:
            self._delete_entry(b, node_id)
            return True
        i = b.replacement_index(node_id)
        if i < 0:
            return False
        self._release_ip(b, b.replacements.pop(i).ip)
        return True

    def _delete_entry(self, b: _Bucket, node_id: bytes) -> None:
        entry = b.entries.pop(node_id)
        self._size -= 1
        self._release_ip(b, entry.ip)
        self._leave_reval(node_id)
        if b.replacements:
            # Keeps invariant 7: the bucket was full, so it is full again.
            promoted = b.replacements.pop(0)
            # Its IP was already counted while it sat in the cache.
            self._insert_entry(b, promoted)

    def mark_live(self, node_id: bytes, now: float, enr_seq: int | None = None) -> bool:
        """Record a PONG from a node (a passed liveness check).

        The entry becomes live, its liveness counter goes up by one and it moves to the slow
        revalidation list. Unknown nodes and replacement candidates are ignored.

        Args:
            node_id: the node that answered.
            now: current time.
            enr_seq: the ``enr-seq`` field of the PONG, if known.

        Returns:
            True when ``enr_seq`` is higher than the seq of the stored record: the caller should
            fetch the new record (FINDNODE with distance 0) and pass it to :meth:`add`.
        """
        self._reval_pending.pop(node_id, None)
        b = self._bucket_for(node_id)
        entry = None if b is None else b.entries.get(node_id)
        if b is None or entry is None:
            return False
        b.entries[node_id] = replace(
            entry,
            live=True,
            liveness_checks=entry.liveness_checks + 1,
            last_seen=now,
            last_checked=now,
        )
        self._move_to(self._slow, node_id)
        return enr_seq is not None and enr_seq > entry.enr.seq

    def mark_failed(self, node_id: bytes, now: float) -> bool:
        """Record a missed PONG (a failed liveness check).

        go-ethereum rule: the liveness counter is divided by three; at zero the entry is
        removed and a replacement promoted (so a never-verified entry goes on its first
        failure). A surviving entry keeps its live flag and moves to the fast list to be
        checked again soon. A replacement candidate that fails is simply dropped.

        Args:
            node_id: the node that did not answer.
            now: current time.

        Returns:
            True if the node was removed from the table.
        """
        self._reval_pending.pop(node_id, None)
        b = self._bucket_for(node_id)
        if b is None:
            return False
        entry = b.entries.get(node_id)
        if entry is None:
            return self.remove(node_id)
        checks = entry.liveness_checks // 3
        if checks <= 0:
            self._delete_entry(b, node_id)
            return True
        b.entries[node_id] = replace(entry, liveness_checks=checks, last_checked=now)
        self._move_to(self._fast, node_id)
        return False

    def record_findnode(self, node_id: bytes, *, success: bool) -> bool:
        """Count consecutive failed FINDNODE calls (go-ethereum ``handleTrackRequest``).

        After ``max_findnode_failures`` failures in a row the entry is removed, but only while
        its bucket holds at least ``bucket_size // 4`` entries (which keeps small test networks
        bootstrappable). What counts as a failure (a timeout, an empty answer) is the caller's
        choice; a success resets the count.

        Args:
            node_id: the node that was asked.
            success: whether the call succeeded.

        Returns:
            True if the node was removed.
        """
        b = self._bucket_for(node_id)
        entry = None if b is None else b.entries.get(node_id)
        if b is None or entry is None:
            return False
        fails = 0 if success else entry.findnode_failures + 1
        if (
            fails >= self._config.max_findnode_failures
            and len(b.entries) >= self._config.bucket_size // 4
        ):
            self._delete_entry(b, node_id)
            return True
        b.entries[node_id] = replace(entry, findnode_failures=fails)
        return False

    # -- revalidation -----------------------------------------------------------------------------

    def _move_to(self, dest: _RevalList, node_id: bytes) -> None:
        current = self._reval_of.get(node_id)
        if current is dest:
            return
        if current is not None:
            self._leave_reval(node_id)
        dest.members[node_id] = None
        self._reval_of[node_id] = dest

    def _leave_reval(self, node_id: bytes) -> None:
        lst = self._reval_of.pop(node_id)
        del lst.members[node_id]
        if not lst.members:
            lst.next_at = None
        self._reval_pending.pop(node_id, None)

    def next_revalidation(self, now: float, rng: RandomSource) -> Revalidation:
        """Which nodes to PING now, and when to ask again.

        Each revalidation list (fast: new or changed entries; slow: entries that passed) is
        due at a random time up to its interval after it last fired. When a list is due, one
        random member not already being checked is returned and the list is rescheduled. The
        returned nodes count as "being checked" until :meth:`mark_live`, :meth:`mark_failed`
        or :meth:`remove` is called for them, so the driver should report every outcome; a
        check left unreported for ``slow_revalidation_interval`` is treated as abandoned and
        the node becomes eligible again.

        Args:
            now: current time.
            rng: randomness for picking nodes and drawing due times.

        Returns:
            The nodes to ping now (possibly none) and the next time to call this method. That
            time is never later than ``now + revalidation_interval``, so entries added in the
            meantime are picked up without any other wake-up.
        """
        picked: list[ENR] = []
        next_at = now + self._fast.interval
        for lst in (self._fast, self._slow):
            if not lst.members:
                lst.next_at = None
                continue
            if lst.next_at is None:
                lst.next_at = now + rng.random() * lst.interval
            if now >= lst.next_at:
                # A check handed out longer than the slow interval ago counts as abandoned
                # (the driver lost it), so the node cannot be starved of checks forever.
                stale = now - self._slow.interval
                pending = self._reval_pending
                candidates = [n for n in lst.members if pending.get(n, stale) <= stale]
                if candidates:
                    node_id = candidates[_random_index(rng, len(candidates))]
                    pending[node_id] = now
                    entry = self.entry(node_id)
                    assert entry is not None
                    picked.append(entry.enr)
                lst.next_at = now + rng.random() * lst.interval
            next_at = min(next_at, lst.next_at)
        return Revalidation(tuple(picked), next_at)

    def revalidation_list(self, node_id: bytes) -> str | None:
        """Which revalidation list an entry is on: "fast", "slow", or None if not an entry."""
        lst = self._reval_of.get(node_id)
        if lst is None:
            return None
        return "fast" if lst is self._fast else "slow"

    # -- queries ----------------------------------------------------------------------------------

    def closest(self, target: bytes, n: int, *, live_only: bool = True) -> list[ENR]:
        """The ``n`` entries closest to ``target`` by XOR distance, closest first.

        Only buckets that can hold the answer are sorted: with ``b = log_distance(local,
        target)``, members of bucket ``b`` are closer to the target than members of any bucket
        below ``b``, which in turn are closer than those of buckets above ``b``, which are
        ordered by their distance.

        Args:
            target: a 32-byte id (need not be a node).
            n: maximum number of records.
            live_only: skip entries whose liveness has not been verified.

        Returns:
            Up to ``n`` records sorted by ``target XOR node_id`` ascending.
        """
        if n <= 0:
            return []
        t = int.from_bytes(target, "big")
        b0 = (t ^ self._local_int).bit_length()
        if b0 == 0:
            groups: Iterable[Iterable[int]] = ((d,) for d in range(1, NUM_BUCKETS + 1))
        else:
            groups = _chain_groups(b0)
        out: list[ENR] = []
        buckets = self._buckets
        for group in groups:
            found: list[tuple[int, ENR]] = []
            for d in group:
                for node_id, e in buckets[d].entries.items():
                    if e.live or not live_only:
                        found.append((int.from_bytes(node_id, "big") ^ t, e.enr))
            if found:
                found.sort(key=itemgetter(0))
                out.extend(enr for _, enr in found)
                if len(out) >= n:
                    return out[:n]
        return out

    def nodes_at_distances(
        self, distances: Iterable[int], limit: int = 16, *, rng: RandomSource | None = None
    ) -> list[ENR]:
        """Live entries at the given log distances, for answering FINDNODE.

        discv5-wire FINDNODE and go-ethereum ``handleFindnode``: duplicate distances and
        distances outside 1..256 are ignored (distance 0, the local record, is the caller's
        business); buckets are collected in the order given until ``limit`` records; only
        live entries are returned (discv5-theory: never relay unverified nodes).

        Args:
            distances: requested log distances.
            limit: maximum number of records.
            rng: if given, each bucket's members are shuffled (go-ethereum does) so repeated
                queries see different nodes; otherwise insertion order.

        Returns:
            Up to ``limit`` records.
        """
        out: list[ENR] = []
        seen: set[int] = set()
        for d in distances:
            if len(out) >= limit:
                break
            if d in seen or not 1 <= d <= NUM_BUCKETS:
                continue
            seen.add(d)
            members = [e.enr for e in self._buckets[d].entries.values() if e.live]
            if rng is not None:
                _shuffle(members, rng)
            out.extend(members[: limit - len(out)])
        return out

    # -- self-check ---------------------------------------------------------------------------

    def _assert_invariants(self) -> None:
        """Check the invariants listed in the module docstring (for tests)."""
        cfg = self._config
        seen: set[bytes] = set()
        table_ips: Counter[_SubnetKey] = Counter()
        size = 0
        for d, b in enumerate(self._buckets):
            if d == 0:
                assert not b.entries
                assert not b.replacements
                continue
            assert len(b.entries) <= cfg.bucket_size
            assert len(b.replacements) <= max(cfg.replacement_cache_size, 0)
            bucket_ips: Counter[_SubnetKey] = Counter()
            members = list(b.entries.values()) + b.replacements
            for e in members:
                node_id = e.enr.node_id
                assert node_id not in seen, "node stored twice"
                seen.add(node_id)
                assert log_distance(self._local_id, node_id) == d, "entry in the wrong bucket"
                ip = _usable_ip(e.enr)
                assert ip is not None, "unusable record stored"
                assert ip == e.ip, "filed address out of sync with the record"
                key = self._subnet(ip)
                if key is not None:
                    bucket_ips[key] += 1
                    table_ips[key] += 1
            assert all(count <= cfg.bucket_ip_limit for count in bucket_ips.values())
            assert bucket_ips == b.ips, "bucket IP counter out of sync"
            for node_id, e in b.entries.items():
                assert node_id == e.enr.node_id
                assert self._reval_of.get(node_id) in (self._fast, self._slow)
                assert node_id in self._reval_of[node_id].members
                assert not e.live or e.liveness_checks >= 1
            for e in b.replacements:
                assert e.enr.node_id not in self._reval_of
            assert not b.replacements or len(b.entries) == cfg.bucket_size
            size += len(b.entries)
        assert all(count <= cfg.table_ip_limit for count in table_ips.values())
        assert table_ips == self._table_ips, "table IP counter out of sync"
        assert size == self._size
        assert len(self._reval_of) == size
        assert len(self._fast.members) + len(self._slow.members) == size


def _chain_groups(b0: int) -> Iterator[Iterable[int]]:
    """Bucket groups in order of increasing distance to a target at log distance ``b0``."""
    yield (b0,)
    yield range(1, b0)
    for d in range(b0 + 1, NUM_BUCKETS + 1):
        yield (d,)


def _random_index(rng: RandomSource, n: int) -> int:
    """A uniform index in ``range(n)`` (n >= 1); clamped against float rounding up to n."""
    return min(int(rng.random() * n), n - 1)


def _shuffle(items: list[ENR], rng: RandomSource) -> None:
    """Fisher-Yates shuffle driven by ``rng.random()``."""
    for i in range(len(items) - 1, 0, -1):
        j = _random_index(rng, i + 1)
        items[i], items[j] = items[j], items[i]
