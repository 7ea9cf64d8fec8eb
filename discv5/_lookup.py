"""Iterative FINDNODE lookup as a pure state machine (discv5-theory "Lookup").

Theory of operation
-------------------
"The state machine decides, the driver executes." A :class:`Lookup` is seeded with the records
closest to the target that the caller knows (usually ``RoutingTable.closest(target, k)``).
The driver repeatedly asks :meth:`Lookup.next_queries` for FINDNODE requests to send, runs
them concurrently, and reports each outcome with :meth:`Lookup.on_response` or
:meth:`Lookup.on_failure`, until :attr:`Lookup.finished` is true. Then :meth:`Lookup.result`
holds the ``k`` closest nodes that answered.

Per peer the lookup keeps a :class:`PeerState`; all transitions live in ``_TRANSITIONS``:

    NOT_CONTACTED --query--> WAITING --response--> SUCCEEDED
                                     --failure---> FAILED

The *window* is the ``k`` closest known peers that have not failed. Only window peers are
queried, at most ``alpha`` requests are in flight, and the lookup is finished once every
window peer has answered (discv5-theory: "finish when the k closest have all been asked and
answered"). Peers that fail leave the window, so the next closest candidate moves up instead of
leaving a hole in the result. Because every in-flight request ends in a response or a failure
(the protocol core times requests out), and with nothing in flight a window peer that has not
answered is always queryable, the lookup cannot stall: nothing left to ask and nothing in
flight means finished. Requests still in flight when the lookup finishes (to peers that were
pushed out of the window) may be cancelled; reports arriving after that are ignored, so a
finished lookup stays finished.

Query distances follow go-ethereum ``lookupDistances``: with ``d = log_distance(target, peer)``
ask ``[d, d+1, d-1, d+2, d-2, ...]`` clipped to 1..256, ``lookup_request_distances`` (3) of
them. Records in a NODES answer are checked against the distances asked (discv5-wire NODES:
the requester should verify them), deduplicated by node id with the highest seq winning, and
the local node is never added. A record of the target itself is kept like any other.

The lookup works on any record type with ``node_id`` and ``seq`` (:class:`NodeRecord`), so
simulations can use light stand-ins for :class:`enr.ENR`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeVar

from ._types import log_distance

if TYPE_CHECKING:
    from ._config import Config

__all__ = [
    "Lookup",
    "LookupState",
    "LookupStats",
    "NodeRecord",
    "PeerState",
    "Query",
    "lookup_distances",
]

_MAX_DISTANCE: Final = 256


class NodeRecord(Protocol):
    """What a lookup needs from a record; :class:`enr.ENR` satisfies it."""

    @property
    def node_id(self) -> bytes:
        """32-byte node id."""
        ...

    @property
    def seq(self) -> int:
        """Record sequence number; the higher one wins when a node is seen twice."""
        ...


R = TypeVar("R", bound=NodeRecord)


class LookupState(Enum):
    """Progress of a whole lookup."""

    RUNNING = "running"
    """Some window peer has not answered yet."""
    FINISHED = "finished"
    """Every window peer has answered (or there is no peer left): :meth:`Lookup.result` is final."""


class PeerState(Enum):
    """Progress of one peer within a lookup."""

    NOT_CONTACTED = "not_contacted"
    """Known, not asked yet."""
    WAITING = "waiting"
    """FINDNODE sent, outcome not reported yet."""
    SUCCEEDED = "succeeded"
    """Answered (an empty answer counts: the peer is alive)."""
    FAILED = "failed"
    """The request failed (timeout, error, rejected); never asked again in this lookup."""


# The only legal peer transitions, keyed by (state, event).
_TRANSITIONS: Final[dict[tuple[PeerState, str], PeerState]] = {
    (PeerState.NOT_CONTACTED, "query"): PeerState.WAITING,
    (PeerState.WAITING, "response"): PeerState.SUCCEEDED,
    (PeerState.WAITING, "failure"): PeerState.FAILED,
}


@dataclass(frozen=True, slots=True)
class Query(Generic[R]):
    """A FINDNODE request the driver should send."""

    enr: R
    """The peer to ask (its newest known record)."""
    distances: tuple[int, ...]
    """Log distances to ask for, closest to the target's distance first."""


@dataclass(frozen=True, slots=True)
class LookupStats:
    """Counters of a lookup, for logs and statistics."""

    seen: int
    """Distinct peers known (seeds and records learned)."""
    queried: int
    """Peers a FINDNODE was issued to."""
    succeeded: int
    """Peers that answered."""
    failed: int
    """Peers whose request failed."""
    in_flight: int
    """Requests issued and not yet reported."""
    dropped_records: int
    """Records rejected from answers (wrong distance, the local node, over the limit)."""


def lookup_distances(target: bytes, node_id: bytes, count: int = 3) -> tuple[int, ...]:
    """The log distances to ask a peer for, as go-ethereum's ``lookupDistances`` picks them.

    With ``d = log_distance(target, node_id)`` the result starts with ``d`` and then
    alternates ``d+1`` (if <= 256) and ``d-1`` (if > 0), widening until ``count`` distances are
    collected (vectors: ``geth_lookup_distances``). For a peer that is the target itself
    (``d = 0``) this gives ``(0, 1, 2)``: its own record plus its nearest buckets.

    Args:
        target: the lookup target.
        node_id: the peer to be asked.
        count: how many distances (at least 1).

    Returns:
        ``count`` distinct distances (fewer only if 0..256 holds fewer).
    """
    d = log_distance(target, node_id)
    out = [d]
    i = 1
    while len(out) < count and i <= _MAX_DISTANCE:
        if d + i <= _MAX_DISTANCE:
            out.append(d + i)
        if len(out) < count and d - i > 0:
            out.append(d - i)
        i += 1
    return tuple(out)


@dataclass(slots=True)
class _Peer(Generic[R]):
    record: R
    distance: int  # XOR distance to the target
    state: PeerState = PeerState.NOT_CONTACTED
    asked: tuple[int, ...] = ()
    sent_at: float | None = None


class Lookup(Generic[R]):
    """One iterative lookup for the nodes closest to ``target``.

    Args:
        local_id: our node id; never queried, never part of the result.
        target: the 32-byte id to look for (need not belong to a node).
        seeds: records to start from, typically the table's closest to the target. Duplicates
            and the local node are skipped.
        config: uses ``bucket_size`` (k: result size and window), ``lookup_parallelism``
            (alpha), ``lookup_request_distances`` and ``max_nodes_per_response`` (records used
            per answer, go-ethereum's 16).
        verify_distance: drop answer records whose log distance to the responder is not one
            of the distances asked (discv5-wire NODES). Turn off only for peers known to
            answer loosely.
    """

    def __init__(
        self,
        local_id: bytes,
        target: bytes,
        seeds: Iterable[R],
        config: Config,
        *,
        verify_distance: bool = True,
    ) -> None:
        self._local_id = bytes(local_id)
        self._target = bytes(target)
        self._target_int = int.from_bytes(target, "big")
        self._k = max(config.bucket_size, 1)
        self._alpha = max(config.lookup_parallelism, 1)
        self._n_distances = max(config.lookup_request_distances, 1)
        self._max_records = max(config.max_nodes_per_response, 0)
        self._verify_distance = verify_distance
        self._peers: dict[bytes, _Peer[R]] = {}
        self._order: list[tuple[int, bytes]] = []  # (distance to target, node id), ascending
        self._in_flight = 0
        self._dropped = 0
        self._started_at: float | None = None
        self._finished = False
        for record in seeds:
            self._learn(record)

    # -- introspection ----------------------------------------------------------------------------

    @property
    def target(self) -> bytes:
        """The id being looked up."""
        return self._target

    @property
    def state(self) -> LookupState:
        """RUNNING or FINISHED (see :attr:`finished`)."""
        return LookupState.FINISHED if self.finished else LookupState.RUNNING

    @property
    def finished(self) -> bool:
        """True once every peer of the window (the k closest that have not failed) has
        answered. Also true when no peer is left at all, e.g. when every seed failed.

        Once true it stays true: later reports are ignored, so :meth:`result` is final.
        """
        if not self._finished:
            self._finished = all(p.state is PeerState.SUCCEEDED for p in self._window())
        return self._finished

    @property
    def started_at(self) -> float | None:
        """``now`` of the first :meth:`next_queries` call, None before it."""
        return self._started_at

    @property
    def in_flight(self) -> int:
        """Requests issued and not yet reported."""
        return self._in_flight

    def peer_state(self, node_id: bytes) -> PeerState | None:
        """The state of a peer in this lookup, None if the lookup has not seen it."""
        peer = self._peers.get(node_id)
        return None if peer is None else peer.state

    def stats(self) -> LookupStats:
        """Counters so far."""
        counts = dict.fromkeys(PeerState, 0)
        for peer in self._peers.values():
            counts[peer.state] += 1
        return LookupStats(
            seen=len(self._peers),
            queried=len(self._peers) - counts[PeerState.NOT_CONTACTED],
            succeeded=counts[PeerState.SUCCEEDED],
            failed=counts[PeerState.FAILED],
            in_flight=self._in_flight,
            dropped_records=self._dropped,
        )

    def result(self) -> list[R]:
        """The ``k`` closest peers that answered, closest to the target first.

        Final once :attr:`finished`; before that it is the best answer so far.
        """
        out: list[R] = []
        for _, node_id in self._order:
            peer = self._peers[node_id]
            if peer.state is PeerState.SUCCEEDED:
                out.append(peer.record)
                if len(out) >= self._k:
                    break
        return out

    # -- driving ----------------------------------------------------------------------------------

    def next_queries(self, now: float) -> list[Query[R]]:
        """FINDNODE requests to send now.

        Picks not-yet-asked window peers, closest first, while fewer than ``alpha`` requests
        are in flight, and marks them WAITING. Call it again after every reported outcome.

        Args:
            now: current time (recorded as the send time).

        Returns:
            The new queries; empty when ``alpha`` requests are in flight, when nothing is
            left to ask, or when the lookup is finished.
        """
        if self._started_at is None:
            self._started_at = now
        out: list[Query[R]] = []
        if self._in_flight >= self._alpha or self.finished:
            return out
        for peer in self._window():
            if self._in_flight >= self._alpha:
                break
            if peer.state is not PeerState.NOT_CONTACTED:
                continue
            peer.state = self._transition(peer.state, "query")
            peer.asked = lookup_distances(self._target, peer.record.node_id, self._n_distances)
            peer.sent_at = now
            self._in_flight += 1
            out.append(Query(peer.record, peer.asked))
        return out

    def on_response(self, node_id: bytes, records: Iterable[R]) -> bool:
        """Report a peer's NODES answer (all messages of it, assembled).

        The peer counts as answered even if no record is usable. Records are used up to
        ``max_nodes_per_response``; with ``verify_distance`` a record must lie at one of the
        distances asked of this peer (distance 0 is the peer's own record).

        Args:
            node_id: the peer that answered.
            records: the records it returned (signatures already verified by the caller).

        Returns:
            False (and nothing changes) if no request to this peer was pending (a late,
            duplicate or unsolicited report) or the lookup has finished.
        """
        peer = self._peers.get(bytes(node_id))
        if peer is None or peer.state is not PeerState.WAITING or self.finished:
            return False
        peer.state = self._transition(peer.state, "response")
        self._in_flight -= 1
        used = 0
        for record in records:
            if used >= self._max_records:
                self._dropped += 1
                continue
            used += 1
            rid = record.node_id
            if rid == self._local_id or (
                self._verify_distance and log_distance(peer.record.node_id, rid) not in peer.asked
            ):
                self._dropped += 1
                continue
            self._learn(record)
        return True

    def on_failure(self, node_id: bytes) -> bool:
        """Report that the request to a peer failed (timeout, error, cancelled).

        Args:
            node_id: the peer.

        Returns:
            False (and nothing changes) if no request to this peer was pending or the lookup
            has finished.
        """
        peer = self._peers.get(bytes(node_id))
        if peer is None or peer.state is not PeerState.WAITING or self.finished:
            return False
        peer.state = self._transition(peer.state, "failure")
        self._in_flight -= 1
        return True

    # -- internals --------------------------------------------------------------------------------

    @staticmethod
    def _transition(state: PeerState, event: str) -> PeerState:
        new = _TRANSITIONS.get((state, event))
        assert new is not None, f"illegal lookup transition: {state.name} on {event!r}"
        return new

    def _learn(self, record: R) -> None:
        node_id = bytes(record.node_id)
        if node_id == self._local_id:
            return
        peer = self._peers.get(node_id)
        if peer is not None:
            # Newest record wins; the peer's progress is kept.
            if record.seq > peer.record.seq:
                peer.record = record
            return
        dist = int.from_bytes(node_id, "big") ^ self._target_int
        self._peers[node_id] = _Peer(record, dist)
        bisect.insort(self._order, (dist, node_id))

    def _window(self) -> list[_Peer[R]]:
        """The k closest peers that have not failed, closest first."""
        out: list[_Peer[R]] = []
        for _, node_id in self._order:
            peer = self._peers[node_id]
            if peer.state is PeerState.FAILED:
                continue
            out.append(peer)
            if len(out) >= self._k:
                break
        return out
