"""Memory of the crawl state: a Frontier holding 100,000 signed records (goal: well < 300 MB).

Run:  python benchmarks/bench_crawl_memory.py [--records 100000] [--workers 2] [--no-verify]
                                              [--no-tracemalloc]

1. Make ``--records`` distinct keys and records signed with them (in worker processes):
   ip, udp, tcp, an ``eth``-like entry, and for half of them ``onion3`` -- about the size of
   mainnet records. They are kept as RLP bytes only, outside the measurement.
2. Measure, with tracemalloc and the RSS, what a crawl keeps: every record decoded (and,
   unless ``--no-verify``, signature-checked as records off the wire are) and added to a
   :class:`discv5.crawl.Frontier`; then every node taken through the crawl (two thirds
   answer, one third time out twice), so each entry carries its times and counters.
3. Measure the end-of-crawl outputs on top: the nodes.json text (``nodes_json``) and one
   JSON Lines object per node (``entry_json``, streamed: not kept).

Reported: total and per-record bytes of the state, tracemalloc peak, RSS growth, and the time
each phase took. tracemalloc's own bookkeeping inflates the RSS (and slows everything about
threefold): run once more with ``--no-tracemalloc`` for the plain RSS figures and timings.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import multiprocessing
import resource
import time
import tracemalloc
from pathlib import Path
from typing import Any

from discv5.crawl import Frontier, entry_json, nodes_json
from enr import ENR, PrivateKey, onion3_from_public_key


def rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_rss_mb()
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_records(bounds: tuple[int, int]) -> list[bytes]:
    """Signed records of nodes ``start..stop-1`` (keys derived from the index)."""
    start, stop = bounds
    out = []
    for i in range(start, stop):
        key = PrivateKey(hashlib.sha256(b"bench-crawl-memory:%d" % i).digest())
        fields: dict[str, Any] = {
            "ip": f"{1 + i % 223}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            "udp": 30303 + i % 1000,
            "tcp": 30303 + i % 1000,
            "eth": [[hashlib.sha256(b"fork").digest()[:4], 0]],
        }
        if i % 2 == 0:
            fields["onion3"] = onion3_from_public_key(hashlib.sha256(b"onion:%d" % i).digest())
        out.append(ENR.build(key, 1 + i % 5, **fields).to_rlp())
    return out


def generate(count: int, workers: int) -> list[bytes]:
    step = 2000
    chunks = [(s, min(s + step, count)) for s in range(0, count, step)]
    if workers <= 1:
        return [raw for chunk in chunks for raw in make_records(chunk)]
    with multiprocessing.Pool(workers) as pool:
        return [raw for part in pool.imap(make_records, chunks) for raw in part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=multiprocessing.cpu_count())
    parser.add_argument("--no-verify", action="store_true",
                        help="decode records without checking signatures (faster)")
    parser.add_argument("--no-tracemalloc", action="store_true",
                        help="measure RSS only (tracemalloc's own memory inflates the RSS)")
    args = parser.parse_args()
    n = args.records

    t0 = time.perf_counter()
    raws = generate(n, args.workers)
    made = time.perf_counter() - t0
    sizes = [len(r) for r in raws]
    print(f"records: {n} distinct keys, {made:.1f} s to make ({n / made:,.0f}/s with"
          f" {args.workers} workers); RLP size avg {sum(sizes) / n:.0f} B,"
          f" max {max(sizes)} B, {sum(sizes) / 2**20:.1f} MB in all")

    local_id = hashlib.sha256(b"local").digest()
    trace = not args.no_tracemalloc

    def traced() -> tuple[int, int]:
        return tracemalloc.get_traced_memory() if trace else (0, 0)

    def peak_text(peak: int, rss0: float) -> str:
        if trace:
            return f"tracemalloc peak {peak / 2**20:.1f} MB (state included)"
        return (f"process peak RSS so far {peak_rss_mb():.1f} MB"
                f" ({peak_rss_mb() - rss0:+.1f} MB over the start)")

    gc.collect()
    rss0 = rss_mb()
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    frontier = Frontier(local_id)
    for raw in raws:
        # A fresh bytes object, as a record off the wire would be.
        frontier.add(ENR.from_rlp(bytes(bytearray(raw)), verify=not args.no_verify), 0.0)
    added = time.perf_counter() - t0
    t0 = time.perf_counter()
    now = 1.0
    while (entry := frontier.next_entry()) is not None:
        now += 0.001
        distances = frontier.next_distances(entry)
        assert distances is not None
        if entry.seq % 3:
            frontier.on_answer(entry, distances, (), now)
        else:
            frontier.on_timeout(entry, now)
            frontier.on_timeout(entry, now)
        frontier.finish(entry)
    walked = time.perf_counter() - t0
    gc.collect()
    state, state_peak = traced()
    rss_state = rss_mb() - rss0
    s = frontier.stats
    print(f"frontier: {len(frontier)} nodes ({s.live} live, {s.failed} failed);"
          f" add {added:.1f} s ({n / added:,.0f}/s, verify={not args.no_verify}),"
          f" crawl bookkeeping {walked:.1f} s")
    if trace:
        print(f"  state (tracemalloc)   {state / 2**20:8.1f} MB  = {state / n:.0f} B per record"
              f"  (peak while building {state_peak / 2**20:.1f} MB)")
    print(f"  RSS growth            {rss_state:8.1f} MB  = {rss_state * 2**20 / n:.0f} B per"
          f" record{' (inflated by tracemalloc)' if trace else ''}")

    if trace:
        tracemalloc.reset_peak()
    t0 = time.perf_counter()
    text = nodes_json(frontier, {}, 1.7e9)
    rendered = time.perf_counter() - t0
    _, peak = traced()
    print(f"nodes.json: {len(text) / 2**20:.1f} MB of text for {s.live} live nodes in"
          f" {rendered:.1f} s; {peak_text(peak, rss0)}")
    del text
    gc.collect()
    if trace:
        tracemalloc.reset_peak()
    t0 = time.perf_counter()
    total = 0
    for entry in frontier.entries():
        total += len(json.dumps(entry_json(entry, 1.7e9)))
    streamed = time.perf_counter() - t0
    _, peak = traced()
    print(f"jsonl: {total / 2**20:.1f} MB for {len(frontier)} nodes in {streamed:.1f} s;"
          f" {peak_text(peak, rss0)}")
    if trace:
        tracemalloc.stop()
    peak_rss = peak_rss_mb()
    print(f"peak RSS of the process: {peak_rss:.1f} MB (includes the"
          f" {sum(sizes) / 2**20:.1f} MB of input records)")
    goal = 300
    measured = max(state, state_peak) / 2**20 if trace else rss_state
    verdict = "OK" if measured < goal / 3 else "CHECK"
    print(f"goal: state well under {goal} MB -> {verdict}")


if __name__ == "__main__":
    main()
