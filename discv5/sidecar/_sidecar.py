"""The sidecar: keep a relay's peer set correct from what the discv5 DHT shows.

Each round crawls the DHT (the crawler's enumeration), keeps the live nodes whose records give
a valid onion enode, and then

* merges them into ``static-nodes.json`` (atomic writes; TTL; pins; the relay itself never);
* sends each new enode to the relay's ``admin_addPeer`` (or ``admin_addTrustedPeer``): when
  the RPC is down the enodes wait and go out once it is back, with backoff between attempts;
* resolves wanted onion addresses (from a ConfigMap, say) to their enodes.

In ``once`` mode (an init container) it crawls until every wanted address is resolved (or,
with no wanted list, until one crawl completes), writes the file and returns; a timeout ends it
with the list of what is missing. Only public names of ``discv5`` are used.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import trio

from discv5 import Node
from discv5.crawl import Crawler, Frontier, classify
from enr import ENR, onion3_problem

from ._rpc import AdminRPC, RPCError, RPCUnavailable
from ._static_nodes import StaticNodes

__all__ = ["Log", "RoundReport", "Sidecar", "SidecarSettings", "normalize_onion"]


def normalize_onion(text: str) -> str:
    """``<56 base32>.onion`` in lower case; the suffix may be omitted.

    Raises:
        ValueError: not a valid onion3 address (the message says why).
    """
    address = text.strip().lower()
    if not address.endswith(".onion"):
        address += ".onion"
    problem = onion3_problem(address)
    if problem is not None:
        raise ValueError(f"invalid onion address {text.strip()!r}: {problem}")
    return address


class Log:
    """Operator log lines on standard error: ``plain`` (time level event key=value) or ``json``."""

    def __init__(self, fmt: str = "plain", stream: TextIO | None = None) -> None:
        self.fmt = fmt
        self.stream = stream or sys.stderr

    def __call__(self, level: str, event: str, **fields: Any) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.fmt == "json":
            line = json.dumps({"time": stamp, "level": level, "event": event, **fields})
        else:
            parts = [f"{k}={_plain(v)}" for k, v in fields.items()]
            line = " ".join([stamp, level.upper(), event, *parts])
        self.stream.write(line + "\n")
        self.stream.flush()


def _plain(value: Any) -> str:
    if isinstance(value, (list, tuple, set)):
        return ",".join(str(v) for v in value) or "-"
    text = str(value)
    return json.dumps(text) if " " in text else text


@dataclass
class SidecarSettings:
    """What the sidecar does (built from the command line)."""

    static_nodes: Path | None = None
    rpc: str | None = None
    trusted: bool = False
    wanted: set[str] = field(default_factory=set)
    """Onion addresses to resolve (normalized); empty: every onion-capable live node."""
    ttl: float = 86400.0
    pins: list[str] = field(default_factory=list)
    exclude: set[bytes] = field(default_factory=set)
    replace_corrupt: bool = False
    parallel: int = 16
    interval: float = 300.0
    retry_interval: float = 5.0
    """In once mode: pause between crawls while wanted addresses are missing."""


@dataclass
class RoundReport:
    """What one round found and did."""

    seen: int
    live: int
    onion_enodes: dict[bytes, str]
    resolved: dict[str, str]
    missing: set[str]
    added: list[str]
    dropped: list[str]
    written: bool
    duration: float


class Sidecar:
    """Run rounds against the DHT through ``node``, from ``bootnodes``."""

    def __init__(
        self, node: Node, bootnodes: Iterable[ENR], settings: SidecarSettings, log: Log
    ) -> None:
        self.node = node
        self.bootnodes = list(bootnodes)
        self.settings = settings
        self.log = log
        self.resolved: dict[str, str] = {}
        self.static: StaticNodes | None = None
        self._rpc = AdminRPC(settings.rpc) if settings.rpc else None
        self._rpc_pending: list[str] = []
        self._rpc_sent: set[str] = set()
        self._rpc_wakeup = trio.Event()
        self._rpc_idle = trio.Event()
        self._rpc_idle.set()
        self.rpc_added: list[str] = []
        self.write_error: str | None = None
        """Why the last attempt to write static-nodes.json failed (None: it did not)."""
        self.rpc_failed: dict[str, str] = {}

    # --- static-nodes.json -------------------------------------------------------------------

    def load_static_nodes(self) -> None:
        """Read the existing file (raises StaticNodesError for a corrupt one unless told)."""
        s = self.settings
        if s.static_nodes is None:
            return
        self.static = StaticNodes.load(
            s.static_nodes, ttl=s.ttl, now=time.time(), pinned=s.pins, exclude=s.exclude,
            replace_corrupt=s.replace_corrupt,
        )
        for text, reason in self.static.invalid_on_load:
            self.log("warning", "invalid-entry-dropped", entry=text[:60], reason=reason)
        self.log("info", "static-nodes-loaded", path=str(s.static_nodes),
                 entries=len(self.static.entries), pinned=len(self.static.pinned))

    # --- one round ---------------------------------------------------------------------------

    async def run_round(self) -> RoundReport:
        """Crawl once and apply the result."""
        started = trio.current_time()
        frontier = Frontier(self.node.node_id)
        crawler = Crawler(self.node, frontier=frontier, parallel=self.settings.parallel)
        await crawler.run(self.bootnodes)
        onion: dict[bytes, str] = {}
        claims: dict[str, list[str]] = {}
        by_address: dict[str, str] = {}
        for entry in frontier.entries():
            c = classify(entry)
            if c.enode is None or c.onion3_status != "valid":
                continue
            if entry.node_id in self.settings.exclude:
                continue
            onion[entry.node_id] = c.enode
            address = entry.enr().onion3
            if address is not None:
                claims.setdefault(address, []).append(c.enode)
        # An onion address is not bound to the node key that advertises it: if two live
        # records claim one address, we cannot tell which is the relay. Resolve nothing for
        # it and say so (pin the right enode to settle it).
        for address, enodes in claims.items():
            if len(set(enodes)) == 1:
                by_address[address] = enodes[0]
            elif address in self.settings.wanted:
                self.log("warning", "onion-conflict", onion=address, enodes=sorted(set(enodes)))
        wanted = self.settings.wanted
        for address in wanted & by_address.keys():
            if self.resolved.get(address) != by_address[address]:
                self.log("info", "onion-resolved", onion=address, enode=by_address[address])
            self.resolved[address] = by_address[address]
        if wanted:
            wanted_enodes = {by_address[a] for a in wanted if a in by_address}
            selected = {n: e for n, e in onion.items() if e in wanted_enodes}
        else:
            selected = onion
        added: list[str] = []
        dropped: list[str] = []
        written = False
        if self.static is not None:
            added, dropped = self.static.update(selected, time.time())
            try:
                written = self.static.save()
                self.write_error = None
            except OSError as exc:
                self.write_error = f"cannot write {self.static.path}: {exc.strerror or exc}"
                self.log("error", "static-nodes-write-failed", path=str(self.static.path),
                         reason=exc.strerror or str(exc))
            if self.write_error is None:
                for enode in added:
                    self.log("info", "peer-added-to-file", enode=enode)
                for enode in dropped:
                    self.log("info", "peer-dropped-ttl", enode=enode)
        self._queue_rpc(selected.values())
        stats = frontier.stats
        report = RoundReport(
            seen=stats.seen, live=stats.live, onion_enodes=onion, resolved=dict(self.resolved),
            missing=wanted - self.resolved.keys(), added=added, dropped=dropped,
            written=written, duration=trio.current_time() - started,
        )
        self.log(
            "info", "round", seen=report.seen, live=report.live, onion=len(onion),
            added=len(added), dropped=len(dropped), file_written=written,
            missing=sorted(report.missing) if wanted else [],
            rpc_pending=len(self._rpc_pending), seconds=round(report.duration, 2),
        )
        if stats.live == 0:
            self.log("warning", "no-node-answered", bootnodes=len(self.bootnodes))
        return report

    # --- the relay's RPC ---------------------------------------------------------------------

    def _queue_rpc(self, enodes: Iterable[str]) -> None:
        if self._rpc is None:
            return
        # Every round offers every selected enode again: admin_addPeer of a connected peer is
        # harmless, and a relay that restarted gets its peers back without waiting for its
        # next start to read static-nodes.json. Only the first acceptance is logged.
        for enode in enodes:
            if enode not in self._rpc_pending and enode not in self.rpc_failed:
                self._rpc_pending.append(enode)
        if self._rpc_pending:
            if self._rpc_idle.is_set():
                self._rpc_idle = trio.Event()
            self._rpc_wakeup.set()

    async def rpc_loop(self) -> None:
        """Send queued enodes; while the RPC is down, retry with backoff (1 s doubling to 60 s)."""
        if self._rpc is None:
            return
        backoff = 1.0
        down = False
        while True:
            await self._rpc_wakeup.wait()
            self._rpc_wakeup = trio.Event()
            while self._rpc_pending:
                enode = self._rpc_pending[0]
                try:
                    ok = await self._rpc.add_peer(enode, trusted=self.settings.trusted)
                except RPCUnavailable as exc:
                    if not down:
                        self.log("warning", "rpc-unavailable", endpoint=self._rpc.endpoint,
                                 reason=str(exc), pending=len(self._rpc_pending))
                    down = True
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, 60.0)
                    continue
                except RPCError as exc:
                    self.log("error", "rpc-add-peer-failed", enode=enode, reason=exc.message)
                    self.rpc_failed[enode] = exc.message
                    self._rpc_pending.pop(0)
                    self._rpc_sent.add(enode)
                    continue
                if down:
                    self.log("info", "rpc-back", endpoint=self._rpc.endpoint)
                    down = False
                backoff = 1.0
                self._rpc_pending.pop(0)
                if enode not in self._rpc_sent:
                    self._rpc_sent.add(enode)
                    self.rpc_added.append(enode)
                    self.log("info", "rpc-peer-added", enode=enode, result=ok,
                             method="admin_addTrustedPeer" if self.settings.trusted
                             else "admin_addPeer")
            self._rpc_idle.set()

    async def wait_rpc_idle(self) -> None:
        """Return once every queued enode has been sent (or refused) through the RPC."""
        await self._rpc_idle.wait()

    @property
    def rpc_pending(self) -> list[str]:
        """Enodes not yet accepted by the RPC."""
        return list(self._rpc_pending)

    # --- modes -------------------------------------------------------------------------------

    async def run_once(self, time_limit: float | None) -> set[str]:
        """Init-container mode: rounds until every wanted address resolved (or, without a wanted
        list, one complete crawl). Returns the wanted addresses still missing (empty: done)."""
        with trio.move_on_after(float("inf") if time_limit is None else time_limit):
            while True:
                report = await self.run_round()
                if not report.missing and (self.settings.wanted or report.live):
                    return set()
                await trio.sleep(self.settings.retry_interval)
        missing = self.settings.wanted - self.resolved.keys()
        return missing if self.settings.wanted else {"(no node answered)"}

    async def run_forever(self) -> None:
        """Sidecar mode: a round every ``interval``."""
        while True:
            await self.run_round()
            await trio.sleep(self.settings.interval)
