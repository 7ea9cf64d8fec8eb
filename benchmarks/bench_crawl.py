"""Crawl a loopback testnet of our own nodes: setup time, crawl time, coverage, memory, traffic.

Run:  python benchmarks/bench_crawl.py [--nodes 200 1000] [--parallel 16] [--seed 1]

For each size N, a fresh process starts N nodes with :func:`discv5._testnet.open_testnet` on
127.0.0.1 (half of them with onion3 + tcp), crawls them from the bootnode with
:class:`discv5.crawl.Crawler` and reports:

* setup: time to start the nodes and join them into one DHT (not part of the crawl);
* crawl: wall time of ``Crawler.run``;
* found: nodes that answered the crawler, out of N (every one should);
* onion enodes: valid onion enodes emitted, out of the testnet's expected set, and how many
  emitted enodes were *not* expected (must be 0);
* requests: FINDNODE requests (with timeouts and retries), the crawler node's packets and
  bytes in/out;
* memory: peak RSS of the process (the N nodes and the crawler share it) and the RSS growth
  during the crawl.

Everything runs in one trio loop on one core: the N nodes answer the crawler from the same
process, so the crawl time is an upper bound of what the crawler itself needs.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

from discv5 import open_node
from discv5._testnet import open_testnet
from discv5.crawl import Crawler, classify


def rss_mb() -> float:
    """Current resident set size (Linux /proc; falls back to the peak elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_rss_mb()
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def crawl_testnet(n: int, parallel: int, seed: int, onion_fraction: float) -> dict[str, Any]:
    started = time.perf_counter()
    async with open_testnet(n, seed=seed, onion_fraction=onion_fraction) as net:
        setup = time.perf_counter() - started
        expected = net.expected_enodes
        ids = {m.enr.node_id for m in net.nodes}
        async with open_node(listen=("127.0.0.1", 0), maintain=False) as node:
            crawler = Crawler(node, parallel=parallel)
            rss_before = rss_mb()
            t0 = time.perf_counter()
            outcome = await crawler.run([net.bootnode], time_limit=600)
            crawl = time.perf_counter() - t0
            rss_after = rss_mb()
            stats = node.statistics()
    f = crawler.frontier
    live = {e.node_id for e in f.entries() if e.live}
    emitted = {c.enode for e in f.entries()
               if (c := classify(e)).enode is not None and c.onion3_status == "valid"}
    return {
        "nodes": n,
        "parallel": parallel,
        "setup_s": round(setup, 2),
        "crawl_s": round(crawl, 3),
        "completed": outcome.completed,
        "found": len(live & ids),
        "seen": f.stats.seen,
        "onion_found": len(emitted & expected),
        "onion_expected": len(expected),
        "unexpected_enodes": len(emitted - expected),
        "requests": f.stats.requests,
        "timeouts": f.stats.timeouts,
        "retries": f.stats.retries,
        "records_received": f.stats.records_received,
        "records_rejected": stats.records_rejected,
        "failures": dict(f.failures),
        "packets_in": stats.packets_in,
        "packets_out": stats.packets_out,
        "bytes_in": stats.bytes_in,
        "bytes_out": stats.bytes_out,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "crawl_rss_growth_mb": round(rss_after - rss_before, 1),
    }


def report(r: dict[str, Any]) -> None:
    n = r["nodes"]
    print(f"== {n} nodes (parallel {r['parallel']})")
    print(f"  setup (start + join)   {r['setup_s']:8.2f} s")
    print(f"  crawl                  {r['crawl_s']:8.3f} s"
          f"  ({'complete' if r['completed'] else 'CUT SHORT'})")
    print(f"  nodes found            {r['found']:>5}/{n}  (seen {r['seen']})")
    print(f"  onion enodes           {r['onion_found']:>5}/{r['onion_expected']}"
          f"  (unexpected: {r['unexpected_enodes']})")
    print(f"  requests               {r['requests']:>8}  ({r['requests'] / n:.2f} per node;"
          f" {r['timeouts']} timeouts, {r['retries']} retries)")
    print(f"  records received       {r['records_received']:>8}"
          f"  (rejected by the core: {r['records_rejected']})")
    if r["failures"]:
        print(f"  failed nodes           {r['failures']}")
    print(f"  packets in/out         {r['packets_in']:>8} / {r['packets_out']}"
          f"  (bytes {r['bytes_in']} / {r['bytes_out']})")
    print(f"  peak RSS (process)     {r['peak_rss_mb']:8.1f} MB  (testnet and crawler)")
    print(f"  RSS growth in crawl    {r['crawl_rss_growth_mb']:8.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--parallel", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--onion-fraction", type=float, default=0.5)
    parser.add_argument("--json", action="store_true", help="print one JSON object per size")
    parser.add_argument("--in-process", action="store_true",
                        help="run the (single) size here instead of in a fresh process")
    args = parser.parse_args()
    if args.in_process:
        [n] = args.nodes
        result = trio.run(crawl_testnet, n, args.parallel, args.seed, args.onion_fraction)
        print(json.dumps(result))
        return
    results = []
    for n in args.nodes:
        # A fresh process per size, so that peak RSS belongs to that size alone.
        proc = subprocess.run(
            [sys.executable, __file__, "--in-process", "--nodes", str(n),
             "--parallel", str(args.parallel), "--seed", str(args.seed),
             "--onion-fraction", str(args.onion_fraction)],
            capture_output=True, text=True, check=True,
        )
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    for r in results:
        if args.json:
            print(json.dumps(r))
        else:
            report(r)


if __name__ == "__main__":
    main()
