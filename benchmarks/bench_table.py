"""How long until N of our nodes, in one process on 127.0.0.1, know each other; peak memory.

A routing table holds at most k = 16 nodes per distance, so with 100 nodes no table can hold
every other node (about half of them share distance 256). We therefore measure two things:

* **findable**: every node is in at least one other node's table (a crawl or lookup can reach it);
* **complete**: every node's table holds every node it *can* hold: for each distance d, at least
  min(k, number of nodes at distance d) entries. That is "every table holds every other node"
  within Kademlia's limits.

Each node bootstraps from the first node (one self lookup and three random lookups), at most
``--joining`` at a time: all N nodes share one process and two cores, and N simultaneous
bootstraps would measure CPU starvation (every answer late, every request timed out) rather than
the protocol. Afterwards tables grow from inbound contacts and periodic refresh lookups, which
run every ``--refresh`` seconds here (go-ethereum: 30 minutes).

    python benchmarks/bench_table.py --nodes 100 500 [--refresh 30] [--joining 16]
"""

from __future__ import annotations

import argparse
import resource
import time

import trio

from discv5 import Config, Node, log_distance, open_node


def _capacity(node: Node, ids: list[bytes], k: int) -> dict[int, int]:
    counts: dict[int, int] = {}
    for other in ids:
        if other != node.node_id:
            d = log_distance(node.node_id, other)
            counts[d] = counts.get(d, 0) + 1
    return {d: min(k, c) for d, c in counts.items()}


def _complete(node: Node, capacity: dict[int, int]) -> bool:
    return all(len(node.table.bucket(d).entries) >= want for d, want in capacity.items())


async def run(count: int, refresh: float, limit: float, joining: int) -> None:
    config = Config(refresh_interval=refresh)
    started = time.monotonic()
    async def serve(task_status: trio.TaskStatus[Node] = trio.TASK_STATUS_IGNORED) -> None:
        async with open_node(config=config, seq=1) as node:
            task_status.started(node)
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nodes: list[Node] = [await nursery.start(serve) for _ in range(count)]
        first = nodes[0]
        limiter = trio.CapacityLimiter(joining)

        async def join(node: Node) -> None:
            async with limiter:
                await node.bootstrap([first.local_enr])

        for node in nodes[1:]:
            nursery.start_soon(join, node)
        ids = [n.node_id for n in nodes]
        capacity = {n.node_id: _capacity(n, ids, config.bucket_size) for n in nodes}
        findable_at = complete_at = None
        fill = 0.0
        while time.monotonic() - started < limit:
            await trio.sleep(0.5)
            known = {e.node_id for n in nodes for e in n.table.entries()}
            if findable_at is None and all(i in known for i in ids[1:]):
                findable_at = time.monotonic() - started
            done = sum(_complete(n, capacity[n.node_id]) for n in nodes)
            held = sum(len(n.table) for n in nodes)
            want = sum(sum(c.values()) for c in capacity.values())
            fill = held / want
            if done == count:
                complete_at = time.monotonic() - started
                break
        nursery.cancel_scope.cancel()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"N={count}: findable after {_fmt(findable_at)}, every table complete after"
            f" {_fmt(complete_at)} (table fill {fill:.1%} of what Kademlia allows),"
            f" peak RSS {peak:.0f} MB"
        )


def _fmt(t: float | None) -> str:
    return "not reached" if t is None else f"{t:.1f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--refresh", type=float, default=30.0,
                        help="seconds between table refreshes (default 30)")
    parser.add_argument("--joining", type=int, default=16,
                        help="nodes bootstrapping at once (default 16)")
    parser.add_argument("--limit", type=float, default=300.0,
                        help="give up after this many seconds (default 300)")
    args = parser.parse_args()
    for count in args.nodes:
        trio.run(run, count, args.refresh, args.limit, args.joining)


if __name__ == "__main__":
    main()
