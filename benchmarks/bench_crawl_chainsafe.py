"""Crawl a network of ChainSafe discv5 nodes: our crawler against a BFS crawler on ChainSafe's
own library, each on a fresh network of the same shape.

Run (from the repository root; needs Node.js, installs the harness's npm packages itself):

    python benchmarks/bench_crawl_chainsafe.py [--nodes 200] [--onion-fraction 0.1]
        [--populate seed|bootstrap] [--parallel 16] [--repeat 1] [--bfs-concurrency 1 16]
        [--variants default exhaustive] [--skip-bfs] [--json]

For each repetition and each crawler, a fresh harness process (tests/interop/chainsafe.py)
starts ``--nodes`` ChainSafe nodes on 127.0.0.1 (``--onion-fraction`` of them with tcp and
onion3 entries) and fills their tables, either with ``seed_tables`` (ChainSafe ``addEnr`` of
every record, no traffic: each bucket keeps the first 16 records offered, so far buckets hold
the same low-index nodes everywhere and the others are only in close buckets) or with
``bootstrap`` (a self lookup on each node in turn, through node 0; slow: minutes for 200).
Then one crawler runs from node 0's record:

* ours: :class:`discv5.crawl.Crawler` (``--parallel`` workers) over one discv5-py node, in
  this process. Variant ``default`` uses the default :class:`~discv5.crawl.Frontier`;
  ``exhaustive`` turns off its "3 answers with nothing new" stop rule
  (``Frontier(stop_after_stale=10**9)``), so every node is asked down to its empty buckets;
* BFS: ``node tests/interop/js/bfs_crawl.mjs --bootnode <enr> --concurrency N`` (FINDNODE 256,
  255, ... down on every node, stopping after 3 empty answers in a row), in its own process.

Reported per run: nodes found (ours: nodes that answered, out of the network; BFS: nodes it
learned of), onion enodes emitted versus expected (computed from ChainSafe's records with
``enr.enode_from_enr``) and unexpected ones, FINDNODE requests and timeouts, and wall time of
the crawl alone (network start and table filling excluded). Our CPU time is this process's
(the ChainSafe nodes run in the harness process); the BFS crawler's is its own process's.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.interop.chainsafe

from discv5 import open_node  # noqa: E402
from discv5.crawl import Crawler, Frontier, classify  # noqa: E402
from enr import enode_from_enr  # noqa: E402
from tests.interop.chainsafe import (  # noqa: E402
    JS_DIR,
    ChainSafeHarness,
    ChainSafeNode,
    node_executable,
    open_chainsafe_harness,
)

BFS_SCRIPT = JS_DIR / "bfs_crawl.mjs"
VARIANTS = {"default": {}, "exhaustive": {"stop_after_stale": 10**9}}


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


async def start_network(
    cs: ChainSafeHarness, n: int, onion_fraction: float, populate: str
) -> tuple[list[ChainSafeNode], float]:
    """Start and populate a network; returns its nodes and the seconds it took."""
    t0 = time.perf_counter()
    nodes = await cs.start(count=n, with_onion3=onion_fraction)
    if populate == "seed":
        await cs.seed_tables()
    else:
        for node in nodes[1:]:
            await cs.add_enr(node, nodes[0].enr)
        await cs.bootstrap(time_limit=3600)
    return nodes, time.perf_counter() - t0


async def crawl_ours(
    n: int, onion_fraction: float, populate: str, parallel: int, variant: str
) -> dict[str, Any]:
    async with open_chainsafe_harness(request_timeout=120) as cs:
        nodes, setup = await start_network(cs, n, onion_fraction, populate)
        network = {c.node_id for c in nodes}
        expected = {str(enode_from_enr(c.record)) for c in nodes if c.onion3 is not None}
        async with open_node(listen=("127.0.0.1", 0), maintain=False) as node:
            frontier = Frontier(node.node_id, **VARIANTS[variant])
            crawler = Crawler(node, frontier=frontier, parallel=parallel)
            cpu0, t0 = cpu_self(), time.perf_counter()
            outcome = await crawler.run([nodes[0].record], time_limit=600)
            wall, cpu = time.perf_counter() - t0, cpu_self() - cpu0
            drops = dict(node.statistics().drops)
    live = {e.node_id for e in frontier.entries() if e.live}
    emitted = set()
    invalid = 0
    for entry in frontier.entries():
        c = classify(entry)
        if c.enode is not None:
            if c.onion3_status != "valid":
                invalid += 1
            emitted.add(c.enode)
    return {
        "crawler": f"discv5-py Crawler ({variant})",
        "nodes": n,
        "populate": populate,
        "setup_s": round(setup, 2),
        "crawl_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "completed": outcome.completed,
        "found": len(live & network),
        "seen": frontier.stats.seen,
        "onion_found": len(emitted & expected),
        "onion_expected": len(expected),
        "unexpected_enodes": len(emitted - expected),
        "invalid_enodes": invalid,
        "requests": frontier.stats.requests,
        "timeouts": frontier.stats.timeouts,
        "dropped_packets": drops,
        "command": (
            f"python benchmarks/bench_crawl_chainsafe.py --nodes {n} --populate {populate}"
            f" --parallel {parallel} --variants {variant} --skip-bfs"
        ),
    }


async def crawl_bfs(
    n: int, onion_fraction: float, populate: str, concurrency: int
) -> dict[str, Any]:
    node = node_executable()
    assert node is not None
    async with open_chainsafe_harness(request_timeout=120) as cs:
        nodes, setup = await start_network(cs, n, onion_fraction, populate)
        cmd = [node, str(BFS_SCRIPT), "--bootnode", nodes[0].enr, "--concurrency", str(concurrency)]
        cpu0, t0 = cpu_children(), time.perf_counter()
        done = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=True)
        wall, cpu = time.perf_counter() - t0, cpu_children() - cpu0
    out = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return {
        "crawler": f"bfs_crawl.mjs (ChainSafe library, concurrency {concurrency})",
        "nodes": n,
        "populate": populate,
        "setup_s": round(setup, 2),
        "crawl_s": round(float(out["crawl_s"]), 2),
        "process_wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "found": int(out["nodes_found"]),
        "queried": int(out["queried"]),
        "unreachable": int(out["unreachable"]),
        "requests": int(out["requests"]),
        "timeouts": int(out["failed_requests"]),
        "failure_reasons": out.get("failure_reasons", {}),
        "command": (
            f"node tests/interop/js/bfs_crawl.mjs --bootnode <node 0's enr> --concurrency"
            f" {concurrency}   (network: python benchmarks/bench_crawl_chainsafe.py --nodes {n}"
            f" --populate {populate} --bfs-concurrency {concurrency} --variants)"
        ),
    }


def report(r: dict[str, Any]) -> None:
    n = r["nodes"]
    print(f"== {r['crawler']}: {n} ChainSafe nodes ({r['populate']})")
    print(f"   network setup   {r['setup_s']:8.2f} s (not part of the crawl)")
    print(f"   crawl           {r['crawl_s']:8.2f} s wall, {r['cpu_s']:.2f} s CPU of the crawler")
    if "onion_found" in r:
        print(f"   nodes found     {r['found']:>5}/{n}  (seen {r['seen']})")
        print(
            f"   onion enodes    {r['onion_found']:>5}/{r['onion_expected']}"
            f"  (unexpected {r['unexpected_enodes']}, invalid {r['invalid_enodes']})"
        )
        print(f"   requests        {r['requests']:>8}  ({r['timeouts']} timeouts)")
        print(f"   dropped packets {r['dropped_packets']}")
    else:
        print(
            f"   nodes found     {r['found']:>5}/{n}  (queried {r['queried']},"
            f" unreachable {r['unreachable']})"
        )
        print(
            f"   requests        {r['requests']:>8}  ({r['timeouts']} failed:"
            f" {r['failure_reasons']})"
        )
    print(f"   command         {r['command']}")


def emit(r: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(r), flush=True)
    else:
        report(r)
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--onion-fraction", type=float, default=0.1)
    parser.add_argument("--populate", choices=("seed", "bootstrap"), default="seed")
    parser.add_argument("--parallel", type=int, default=16, help="our crawler's workers")
    parser.add_argument(
        "--variants",
        nargs="*",
        choices=sorted(VARIANTS),
        default=["default", "exhaustive"],
        help="our crawler's variants",
    )
    parser.add_argument("--bfs-concurrency", type=int, nargs="*", default=[1, 16])
    parser.add_argument("--skip-bfs", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one JSON object per run")
    args = parser.parse_args()
    if node_executable() is None:
        sys.exit("Node.js (`node`) is not on PATH: the ChainSafe harness needs it")
    results: list[dict[str, Any]] = []
    for _ in range(args.repeat):
        for variant in args.variants:
            r = trio.run(
                crawl_ours, args.nodes, args.onion_fraction, args.populate, args.parallel, variant
            )
            results.append(r)
            emit(r, args.json)
        if not args.skip_bfs:
            for c in args.bfs_concurrency:
                r = trio.run(crawl_bfs, args.nodes, args.onion_fraction, args.populate, c)
                results.append(r)
                emit(r, args.json)
    if args.repeat > 1 and not args.json:
        print("== summary (median crawl wall time, min-max; nodes found)")
        by: dict[str, list[dict[str, Any]]] = {}
        for r in results:
            by.setdefault(r["crawler"], []).append(r)
        for name, runs in by.items():
            times = [r["crawl_s"] for r in runs]
            print(
                f"   {name:55} {statistics.median(times):7.2f} s"
                f" ({min(times):.2f}-{max(times):.2f})"
                f"  found {sorted(r['found'] for r in runs)}"
            )


if __name__ == "__main__":
    main()
