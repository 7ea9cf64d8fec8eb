"""Routing-table throughput: closest(), add() and nodes_at_distances() per second.

Run:  python benchmarks/bench_routing.py [--nodes 20000] [--seconds 1.0]

Two tables are measured:

* realistic: filled from ``--nodes`` signed records with random keys (every record on its own
  /24, all marked live). Node ids are hashes of public keys, so only the ~14 buckets nearest
  the top distance can fill up: this is what a long-running node's table looks like.
* synthetic worst case: all 256 buckets full (4096 live entries), made with record stand-ins
  whose ids are chosen freely (real ids cannot be steered into the small-distance buckets).
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from discv5._config import Config
from discv5._routing import InsertResult, RoutingTable
from enr import ENR, Endpoint, PrivateKey


def rate(fn: Callable[[], object], seconds: float, batch: int = 100) -> float:
    """Calls of ``fn`` per second, measured over about ``seconds``."""
    fn()  # warm up
    calls, start = 0, time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        calls += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls / elapsed


def ip_for(n: int) -> str:
    return str(ipaddress.IPv4Address("20.0.0.1") + 256 * n)


@dataclass(frozen=True)
class StandIn:
    """Duck-typed record for the synthetic table: what RoutingTable reads from an ENR."""

    node_id: bytes
    ip: ipaddress.IPv4Address
    seq: int = 1

    def endpoint(self) -> Endpoint:
        return Endpoint(self.ip, 30303, 30303)


def realistic_table(nodes: int, cfg: Config) -> tuple[RoutingTable, list[ENR], float]:
    local = hashlib.sha256(b"bench-local").digest()
    t0 = time.perf_counter()
    records = [
        ENR.build(PrivateKey(hashlib.sha256(b"bench-%d" % i).digest()), ip=ip_for(i), udp=30303)
        for i in range(nodes)
    ]
    build_s = time.perf_counter() - t0
    table = RoutingTable(local, cfg)
    for enr in records:
        if table.add(enr, 0.0) is InsertResult.ADDED:
            table.mark_live(enr.node_id, 0.0)
    return table, records, build_s


def synthetic_table(cfg: Config, rng: random.Random) -> RoutingTable:
    local = rng.randbytes(32)
    base = int.from_bytes(local, "big")
    table = RoutingTable(local, cfg)
    n = 0
    for d in range(1, 257):
        span = 1 << (d - 1)
        for _ in range(min(cfg.bucket_size, span)):
            node = (base ^ span ^ rng.randrange(span)).to_bytes(32, "big")
            rec = cast(ENR, StandIn(node, ipaddress.IPv4Address(ip_for(n))))
            n += 1
            if table.add(rec, 0.0) is InsertResult.ADDED:
                table.mark_live(node, 0.0)
    return table


def report(label: str, fn: Callable[[], object], seconds: float, batch: int = 100) -> None:
    print(f"  {label:<40} {rate(fn, seconds, batch):>12,.0f} /s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20000, help="records for the real table")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    s = args.seconds
    cfg = Config(table_ip_limit=10**6)
    rng = random.Random(1)
    targets = [rng.randbytes(32) for _ in range(1024)]
    counter = iter(range(10**12))

    def target() -> bytes:
        return targets[next(counter) % len(targets)]

    table, records, build_s = realistic_table(args.nodes, cfg)
    full = sum(len(b.entries) == cfg.bucket_size for b in table.buckets)
    print(
        f"realistic table: {len(table)} live entries in {len(table.buckets)} buckets"
        f" ({full} full), from {args.nodes} records (built in {build_s:.1f} s)"
    )
    report("closest(target, 16)", lambda: table.closest(target(), 16), s)
    report("closest(target, 16, live_only=False)", lambda: table.closest(target(), 16, live_only=False), s)  # fmt: skip  # noqa: E501
    report("nodes_at_distances([256, 255, 254])", lambda: table.nodes_at_distances([256, 255, 254]), s)  # fmt: skip  # noqa: E501
    known = [e.enr for e in table.entries()]
    report("add() of an entry's record (UNCHANGED)", lambda: table.add(known[next(counter) % len(known)], 1.0), s)  # fmt: skip  # noqa: E501
    others = [r for r in records[:4000] if r.node_id not in table]
    report("add() to a full bucket (cache churn)", lambda: table.add(others[next(counter) % len(others)], 1.0), s)  # fmt: skip  # noqa: E501

    def fill_fresh() -> None:
        fresh = RoutingTable(table.local_id, cfg)
        for enr in records[:5000]:
            fresh.add(enr, 0.0)

    fills = rate(fill_fresh, s, batch=1)
    print(f"  {'add() into a fresh table (5000 records)':<40} {fills * 5000:>12,.0f} /s")

    synth = synthetic_table(cfg, rng)
    print(f"synthetic worst case: {len(synth)} live entries, all 256 buckets at capacity")
    report("closest(target, 16)", lambda: synth.closest(target(), 16), s)
    report("closest(local id, 16)", lambda: synth.closest(synth.local_id, 16), s)
    report("closest(target, 4096)", lambda: synth.closest(target(), 4096), s, batch=5)


if __name__ == "__main__":
    main()
