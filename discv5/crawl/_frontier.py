"""Pure crawl state: who is known, who is queued, what to ask each node next, and the stats.

Theory of operation. A crawl *enumerates* the DHT instead of random-walking it: every node we
learn of is asked, with FINDNODE, for the contents of its buckets from the farthest distance
(256, half of all ids) down. The first request also asks distance 0, so the node's own current
record comes straight from it. Far buckets are full, so they are asked one at a time; once a
bucket comes back sparse, the closer (sparser still) ones are asked three at a time. A node is
done when ``stop_after_stale`` requests in a row gave nothing new to the crawl (its closer
buckets hold ever fewer nodes, which other nodes' far buckets cover), when two requests in a
row came back empty, or after ``max_requests`` requests. A node that does not answer a first
contact gets one retry. A record counts as *live* only once its node itself answered us.

The state stores records as their RLP bytes (about 200 bytes each) and a few numbers per
node, so 100,000 nodes fit in tens of megabytes; decoded records are made only for the nodes
being queried.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

from enr import ENR

__all__ = ["CrawlEntry", "CrawlStats", "EntryState", "Frontier"]

_DENSE = 8
"""A bucket answer with at least this many records: ask the next distance alone."""
_SPARSE_WIDTH = 3
"""Distances per request once buckets are sparse."""
_FULL_ANSWER = 16
"""Records in a full FINDNODE answer (go-ethereum's limit)."""


class EntryState(Enum):
    """Where a node stands in the crawl."""

    QUEUED = "queued"
    """Known, not yet asked."""
    ACTIVE = "active"
    """A worker is asking it."""
    DONE = "done"
    """It answered; we asked all we wanted."""
    FAILED = "failed"
    """It never answered (after the retry), or its record cannot be contacted."""


class CrawlEntry:
    """Everything the crawl keeps about one node."""

    __slots__ = (
        "attempts",
        "distance",
        "empty",
        "failure",
        "first_response",
        "first_seen",
        "last_check",
        "last_count",
        "last_response",
        "live",
        "node_id",
        "record",
        "requests",
        "seq",
        "stale",
        "state",
        "verified",
    )

    def __init__(self, record: ENR, now: float) -> None:
        self.node_id: bytes = record.node_id
        self.record: bytes = record.to_rlp()
        """RLP of the newest record seen."""
        self.seq: int = record.seq
        self.verified = record.verified
        """False for a stand-in record made from an enode URL."""
        self.state = EntryState.QUEUED
        self.live = False
        """True once the node itself answered a request of ours."""
        self.first_seen = now
        self.first_response: float | None = None
        self.last_response: float | None = None
        self.last_check: float | None = None
        self.distance = 256
        """Next bucket distance to ask."""
        self.requests = 0
        self.attempts = 0
        """Consecutive unanswered attempts (reset by an answer)."""
        self.stale = 0
        """Consecutive answers that brought nothing new."""
        self.empty = 0
        """Consecutive answers with no record at the distances asked."""
        self.last_count = 0
        """Records at the asked distances in the last answer."""
        self.failure: str | None = None

    def enr(self) -> ENR:
        """The newest record, decoded (it was verified when first seen)."""
        return ENR.from_rlp(self.record, verify=False)


@dataclass(slots=True)
class CrawlStats:
    """Counters of a crawl."""

    seen: int = 0
    """Distinct nodes learned of."""
    live: int = 0
    """Nodes that answered us."""
    failed: int = 0
    """Nodes that never answered (after the retry) or could not be contacted."""
    requests: int = 0
    """FINDNODE requests sent."""
    timeouts: int = 0
    """Requests that timed out."""
    records_received: int = 0
    """Records received in answers (before de-duplication)."""
    updated_records: int = 0
    """Times a newer record (higher seq) replaced the one we had."""
    retries: int = 0
    """Second attempts after a first-contact timeout."""


class Frontier:
    """The crawl's bookkeeping. Pure: no I/O, time passed in.

    Args:
        local_id: our own node id (never queued).
        stop_after_stale: answers in a row with nothing new after which a node is done.
        max_requests: requests at most per node.
        retries: extra attempts for a node that did not answer its first contact.
    """

    def __init__(
        self,
        local_id: bytes,
        *,
        stop_after_stale: int = 3,
        max_requests: int = 16,
        retries: int = 1,
    ) -> None:
        self.local_id = local_id
        self.stop_after_stale = stop_after_stale
        self.max_requests = max_requests
        self.retries = retries
        self._entries: dict[bytes, CrawlEntry] = {}
        self._queue: deque[bytes] = deque()
        self._active = 0
        self.stats = CrawlStats()
        self.failures: Counter[str] = Counter()
        """Nodes that failed, by reason."""

    # --- learning ---------------------------------------------------------------------------

    def add(self, record: ENR, now: float, *, authoritative: bool = False) -> bool:
        """Learn a (verified) record. Returns True when the node is new to the crawl.

        A record with a higher seq than the one held replaces it (newest seq wins). With
        ``authoritative`` (the node itself sent it, or the user gave it) an equal seq with
        other content replaces it too, and so does any signed record replacing a stand-in made
        from an enode URL.
        """
        node_id = record.node_id
        if node_id == self.local_id:
            return False
        entry = self._entries.get(node_id)
        if entry is None:
            self._entries[node_id] = CrawlEntry(record, now)
            self._queue.append(node_id)
            self.stats.seen += 1
            return True
        newer = record.seq > entry.seq or (
            record.seq == entry.seq and (authoritative or not entry.verified)
            and record.verified and record.to_rlp() != entry.record
        )
        if newer:
            entry.verified = record.verified
            entry.record = record.to_rlp()
            entry.seq = record.seq
            self.stats.updated_records += 1
            if entry.state is EntryState.FAILED:
                self.requeue(node_id)  # it may answer at the endpoint its new record names
        return False

    def requeue(self, node_id: bytes) -> None:
        """Ask a known node again: it must answer again to count as live (and an earlier
        failure no longer counts)."""
        entry = self._entries[node_id]
        if entry.state not in (EntryState.DONE, EntryState.FAILED):
            return
        if entry.state is EntryState.FAILED:
            self.stats.failed -= 1
            self.failures[entry.failure or "no answer"] -= 1
            if self.failures[entry.failure or "no answer"] <= 0:
                del self.failures[entry.failure or "no answer"]
        if entry.live:
            self.stats.live -= 1
        entry.live = False
        entry.failure = None
        entry.state = EntryState.QUEUED
        entry.distance, entry.requests, entry.attempts = 256, 0, 0
        entry.stale = entry.empty = entry.last_count = 0
        self._queue.append(node_id)

    def release(self, entry: CrawlEntry) -> None:
        """Put an ACTIVE entry back in the queue unfinished (the crawl was stopped)."""
        if entry.state is EntryState.ACTIVE:
            entry.state = EntryState.QUEUED
            self._active -= 1
            self._queue.appendleft(entry.node_id)

    # --- scheduling -------------------------------------------------------------------------

    def next_entry(self) -> CrawlEntry | None:
        """The next queued node, now ACTIVE; None when nothing is queued."""
        while self._queue:
            entry = self._entries[self._queue.popleft()]
            if entry.state is EntryState.QUEUED:
                entry.state = EntryState.ACTIVE
                self._active += 1
                return entry
        return None

    @property
    def finished(self) -> bool:
        """Nothing queued and nothing being asked."""
        return not self._queue and self._active == 0

    @property
    def active(self) -> int:
        """Nodes being asked now."""
        return self._active

    @property
    def queued(self) -> int:
        """Nodes waiting to be asked."""
        return len(self._queue)

    def next_distances(self, entry: CrawlEntry) -> tuple[int, ...] | None:
        """The distances to ask ``entry`` next, or None when it is done."""
        if entry.requests == 0:
            return (0, entry.distance)
        if entry.distance < 1 or entry.requests >= self.max_requests:
            return None
        dense = entry.last_count >= _DENSE
        # In the dense far buckets "nothing new" is expected once the crawl is under way, yet
        # the closer buckets below them hold the nodes only a few neighbours know: keep going
        # while answers are dense, and give up only in the sparse region.
        if entry.empty >= 2 or (not dense and entry.stale >= self.stop_after_stale):
            return None
        width = 1 if dense else _SPARSE_WIDTH
        return tuple(range(entry.distance, max(entry.distance - width, 0), -1))

    # --- outcomes ---------------------------------------------------------------------------

    def on_answer(
        self, entry: CrawlEntry, distances: Iterable[int], records: Iterable[ENR], now: float
    ) -> list[ENR]:
        """The node answered FINDNODE ``distances`` with ``records``.

        Returns the records whose nodes are new to the crawl.
        """
        self.stats.requests += 1
        entry.requests += 1
        entry.attempts = 0
        if not entry.live:
            entry.live = True
            self.stats.live += 1
            entry.first_response = now
        entry.last_response = entry.last_check = now
        new: list[ENR] = []
        in_bucket = 0
        for record in records:
            self.stats.records_received += 1
            if record.node_id == entry.node_id:
                self.add(record, now, authoritative=True)  # its own record (distance 0)
                continue
            in_bucket += 1
            if self.add(record, now):
                new.append(record)
        asked = [d for d in distances if d]
        if asked:
            # A full answer to several distances may have cut the closer ones: go on from the
            # next distance only.
            saturated = in_bucket >= _FULL_ANSWER and len(asked) > 1
            entry.distance = (max(asked) if saturated else min(asked)) - 1
        # Only sparse answers count towards "nothing new": dense far buckets hold what the crawl
        # already knows, while the closer buckets below them hold what only neighbours know.
        entry.stale = 0 if new or in_bucket >= _DENSE else entry.stale + 1
        entry.empty = 0 if in_bucket else entry.empty + 1
        entry.last_count = in_bucket
        return new

    def on_timeout(self, entry: CrawlEntry, now: float) -> bool:
        """The node did not answer. Returns True when it should be asked again now."""
        self.stats.requests += 1
        self.stats.timeouts += 1
        entry.last_check = now
        entry.attempts += 1
        if not entry.live and entry.attempts <= self.retries:
            self.stats.retries += 1
            return True
        if not entry.live:
            entry.failure = "no answer"
        return False

    def on_unusable(self, entry: CrawlEntry, reason: str) -> None:
        """The node cannot be contacted at all (e.g. its record has no UDP endpoint)."""
        entry.failure = reason

    def finish(self, entry: CrawlEntry) -> None:
        """The worker is done with ``entry``."""
        if entry.state is not EntryState.ACTIVE:
            return
        self._active -= 1
        if entry.live:
            entry.state = EntryState.DONE
        else:
            entry.state = EntryState.FAILED
            self.stats.failed += 1
            self.failures[entry.failure or "no answer"] += 1

    # --- reading ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._entries

    def get(self, node_id: bytes) -> CrawlEntry | None:
        """The entry of a node, if known."""
        return self._entries.get(node_id)

    def entries(self) -> Iterator[CrawlEntry]:
        """Every entry, in the order nodes were learned."""
        return iter(self._entries.values())
