"""The crawler: a pool of trio workers over one :class:`discv5.Node`, fed by the frontier.

Each worker takes the next queued node, asks it FINDNODE for its buckets (the frontier decides
which distances and when to stop), reports every answer back, and moves on. Concurrency is the
number of workers; every request has the protocol's own timeout, so a peer that never answers
costs at most two timeouts (first contact and one retry), and a peer that floods or lies is
bounded by the protocol core (at most 5 NODES messages, each under 1280 bytes, every record
signature-checked and filtered to the distances asked).

Only public names of ``discv5`` are used here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from discv5 import Node, RequestRejected, RequestTimeout
from enr import ENR, ENRError

from ._frontier import CrawlEntry, Frontier

__all__ = ["CrawlOutcome", "Crawler"]


@dataclass(frozen=True, slots=True)
class CrawlOutcome:
    """How a crawl ended."""

    completed: bool
    """True when every known node was asked; False when the timeout cut it short."""
    duration: float
    """Seconds the crawl ran."""


class Crawler:
    """Enumerate the DHT reachable from some bootnodes.

    Args:
        node: a running node to send requests from (its own table is not used).
        frontier: the crawl state (a fresh one for ``node`` if None); pass one loaded from a
            previous crawl to resume.
        parallel: nodes asked at once.
        on_entry_done: called once per node when its crawl ends (answered or failed).
    """

    def __init__(
        self,
        node: Node,
        *,
        frontier: Frontier | None = None,
        parallel: int = 16,
        on_entry_done: Callable[[CrawlEntry], None] | None = None,
    ) -> None:
        if parallel < 1:
            raise ValueError("parallel must be at least 1")
        self.node = node
        self.frontier = frontier if frontier is not None else Frontier(node.node_id)
        self.parallel = parallel
        self._on_done = on_entry_done
        self._changed = trio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def run(
        self, bootnodes: Sequence[ENR] = (), *, time_limit: float | None = None
    ) -> CrawlOutcome:
        """Crawl from ``bootnodes`` (plus whatever the frontier already holds).

        Returns when every known node has been asked, or when ``time_limit`` seconds have
        passed.
        """
        started = trio.current_time()
        now = started
        for record in bootnodes:
            if not self.frontier.add(record, now, authoritative=True) and (
                record.node_id in self.frontier
            ):
                self.frontier.requeue(record.node_id)  # known from a previous crawl: ask again
        completed = False
        with trio.move_on_after(math.inf if time_limit is None else time_limit):
            async with trio.open_nursery() as nursery:
                for _ in range(self.parallel):
                    nursery.start_soon(self._worker)
            completed = True
        return CrawlOutcome(completed, trio.current_time() - started)

    async def _worker(self) -> None:
        frontier = self.frontier
        while True:
            entry = frontier.next_entry()
            if entry is None:
                if frontier.finished:
                    self._notify()
                    return
                await self._changed.wait()
                continue
            try:
                await self._crawl(entry)
            except trio.Cancelled:
                frontier.release(entry)  # stopped by the time limit: not a failure of the node
                raise
            frontier.finish(entry)
            if self._on_done is not None:
                self._on_done(entry)
            self._notify()

    async def _crawl(self, entry: CrawlEntry) -> None:
        frontier = self.frontier
        try:
            record = entry.enr()
        except ENRError as exc:
            frontier.on_unusable(entry, f"bad record: {exc}")
            return
        ip, udp, _ = record.endpoint()
        if ip is None or not udp:
            frontier.on_unusable(entry, "record has no IP address and UDP port")
            return
        while (distances := frontier.next_distances(entry)) is not None:
            try:
                records = await self.node.find_node(record, distances)
            except RequestTimeout:
                if entry.seq > record.seq:
                    record = entry.enr()  # a newer record arrived meanwhile: try its endpoint
                    continue
                if frontier.on_timeout(entry, trio.current_time()):
                    continue
                return
            except RequestRejected as exc:
                frontier.on_unusable(entry, str(exc))
                return
            if frontier.on_answer(entry, distances, records, trio.current_time()):
                self._notify()
            if entry.seq > record.seq:
                record = entry.enr()  # the node told us a newer record of itself
