"""``discv5 crawl`` (also ``python -m discv5.crawl``) and ``discv5 testnet``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import trio

from discv5 import Config, open_node
from discv5._testnet import Testnet, open_testnet
from discv5.crawl import (
    MAINNET_V5_BOOTNODES,
    CrawlEntry,
    Crawler,
    Frontier,
    NodesFileError,
    classify,
    entry_json,
    iter_nodes_json,
    load_nodes_json,
    write_atomic,
)
from enr import ENR

from ._common import EXIT_FAILURE, EXIT_OK, CommandError, Subparsers, UsageError, add_command
from ._netargs import add_node_options, duration_arg, load_nodekey, parse_node_list, run_async

__all__ = ["register"]


class _Progress:
    """A one-line live status on a terminal (standard error)."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self._shown = False

    def show(self, text: str) -> None:
        if self.enabled:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False


def _open_output(path: str | None) -> TextIO | None:
    if path is None:
        return None
    if path == "-":
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from None


def _check_writable(path: str | None) -> None:
    if path is None or path == "-":
        return
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise CommandError(f"cannot write {path}: directory {parent} does not exist")


def _load_previous(args: argparse.Namespace, say: Callable[[str], None]) -> dict[bytes, Any]:
    if not args.nodes or not Path(args.nodes).exists():
        return {}
    try:
        previous = load_nodes_json(args.nodes)
    except NodesFileError as exc:
        raise CommandError(str(exc)) from None
    say(f"loaded {len(previous)} nodes from {args.nodes}; revalidating them")
    return previous


async def _crawl(args: argparse.Namespace, bootnodes: list[ENR], testnet: Testnet | None,
                 say: Callable[[str], None], previous: dict[bytes, Any]) -> int:
    clock_offset = time.time() - trio.current_time()
    jsonl = _open_output(args.jsonl)
    progress = _Progress(args.progress if args.progress is not None else sys.stderr.isatty())
    emitted: list[str] = []
    rejected: dict[str, int] = {}
    rejected_nodes: list[tuple[str, str]] = []
    onion_capable = 0

    def done(entry: CrawlEntry) -> None:
        nonlocal onion_capable
        c = classify(entry)
        if c.onion_capable:
            onion_capable += 1
        if c.enode is not None and (c.onion_capable or not args.onion_only):
            if c.onion3_status == "valid" or not args.onion_only:
                emitted.append(c.enode)
                if args.print_enodes:
                    progress.clear()
                    print(c.enode, flush=True)
        elif c.onion_capable and c.rejected is not None:
            rejected[c.rejected] = rejected.get(c.rejected, 0) + 1
            rejected_nodes.append((entry.node_id.hex(), c.rejected))
        if jsonl is not None:
            progress.clear()
            jsonl.write(json.dumps(entry_json(entry, clock_offset)) + "\n")
            jsonl.flush()

    listen = args.addr
    if testnet is not None and listen == ("0.0.0.0", 0):
        listen = ("127.0.0.1", 0)
    config = Config(request_timeout=args.request_timeout)
    started = time.monotonic()
    try:
        async with open_node(load_nodekey(args.nodekey), listen=listen, config=config,
                             maintain=False) as node:
            frontier = Frontier(node.node_id)
            for old in previous.values():
                frontier.add(old.record, trio.current_time())
            crawler = Crawler(node, frontier=frontier, parallel=args.parallel,
                              on_entry_done=done)

            async def show_progress() -> None:
                while True:
                    s = frontier.stats
                    progress.show(
                        f"crawl: {s.seen} seen, {s.live} live, {frontier.active} asking,"
                        f" {frontier.queued} queued, {len(emitted)} enodes,"
                        f" {time.monotonic() - started:.1f}s"
                    )
                    await trio.sleep(0.25)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(show_progress)
                outcome = await crawler.run(bootnodes, time_limit=args.timeout)
                nursery.cancel_scope.cancel()
            progress.clear()
            stats = node.statistics()
    finally:
        if jsonl is not None and jsonl is not sys.stdout:
            jsonl.close()

    if args.nodes:
        write_atomic(args.nodes, iter_nodes_json(frontier, previous, clock_offset))
    if args.enodes:
        write_atomic(args.enodes, "".join(e + "\n" for e in emitted))
    if args.static_nodes:
        write_atomic(args.static_nodes, json.dumps(emitted, indent=2) + "\n")

    s = frontier.stats
    lines = [
        f"crawl {'complete' if outcome.completed else 'stopped by --timeout'} in"
        f" {outcome.duration:.1f}s: {s.seen} nodes seen, {s.live} live, {s.failed} failed",
        f"onion-capable: {onion_capable}, enodes emitted: {len(emitted)}"
        + (" (onion only)" if args.onion_only else ""),
        f"requests: {s.requests} ({s.timeouts} timeouts, {s.retries} retries);"
        f" packets in/out {stats.packets_in}/{stats.packets_out};"
        f" dropped {sum(stats.drops.values())}",
    ]
    if rejected:
        lines.append("onion-capable nodes without a valid enode:")
        lines += [f"  {count} x {reason}" for reason, count in sorted(rejected.items())]
        lines += [f"    {node_id[:16]}…: {reason}" for node_id, reason in rejected_nodes[:20]]
    if frontier.failures:
        lines.append("unreachable: " + ", ".join(
            f"{n} {reason}" for reason, n in frontier.failures.most_common()))
    if testnet is not None:
        found = {e.node_id for e in frontier.entries() if e.live}
        want = {n.enr.node_id for n in testnet.nodes}
        expected = testnet.expected_enodes
        got = {e for e in emitted if e in expected}
        lines.append(
            f"local network: found {len(found & want)}/{len(want)} nodes;"
            f" onion enodes {len(got)}/{len(expected)} expected"
            + ("" if set(emitted) <= expected or not args.onion_only else "; UNEXPECTED extra")
        )
    if not args.quiet:
        for line in lines:
            say(line)
    if s.live == 0:
        raise CommandError("no node answered: check --bootnodes and the network")
    if testnet is not None and (
        {n.enr.node_id for n in testnet.nodes} - {e.node_id for e in frontier.entries() if e.live}
        or not testnet.expected_enodes <= set(emitted)
    ):
        return EXIT_FAILURE
    return EXIT_OK


def _run_crawl(args: argparse.Namespace) -> int:
    for path in (args.nodes, args.enodes, args.static_nodes, args.jsonl):
        _check_writable(path)
    if args.jsonl == "-":
        args.print_enodes = False
    else:
        args.print_enodes = not args.quiet and not (args.enodes or args.static_nodes)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    previous = _load_previous(args, say)
    if args.local_net is not None:
        if args.bootnodes:
            raise UsageError("--local-net and --bootnodes cannot be combined", args.command_prog)
        if args.local_net < 1:
            raise UsageError("--local-net needs at least 1 node", args.command_prog)

        async def local() -> int:
            async with open_testnet(
                args.local_net, onion_fraction=args.onion_fraction, seed=args.seed,
                progress=say if not args.quiet else None,
            ) as net:
                return await _crawl(args, [net.bootnode], net, say, previous)

        return run_async(local)
    if args.bootnodes is None:
        bootnodes = [ENR.from_text(text) for text in MAINNET_V5_BOOTNODES]
        if not args.quiet:
            say(f"no --bootnodes given: using go-ethereum's {len(bootnodes)} mainnet discv5"
                " bootnodes")
    else:
        bootnodes = parse_node_list(args.bootnodes, prog=args.command_prog)
    return run_async(lambda: _crawl(args, bootnodes, None, say, previous))


def _run_testnet(args: argparse.Namespace) -> int:
    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    async def run() -> None:
        async with open_testnet(
            args.nodes, onion_fraction=args.onion_fraction, base_port=args.base_port,
            seed=args.seed, progress=say,
        ) as net:
            if args.manifest:
                net.write_manifest(args.manifest)
                say(f"manifest written to {args.manifest}")
            print(net.bootnode.to_text(), flush=True)
            if args.duration is not None:
                await trio.sleep(args.duration)
            else:
                await trio.sleep_forever()

    run_async(run)
    return EXIT_OK


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"want a positive whole number, got {text!r}")
    return int(text)


def add_crawl_arguments(p: argparse.ArgumentParser) -> None:
    """The crawler's options (shared by ``discv5 crawl`` and ``python -m discv5.crawl``)."""
    add_node_options(p)
    p.add_argument("--local-net", type=_count, metavar="N",
                   help="start N nodes of our own on 127.0.0.1 (some with onion3) and crawl"
                   " them: a demo that needs no network")
    p.add_argument("--onion-fraction", type=_fraction, default=0.5, metavar="F",
                   help="with --local-net: share of nodes advertising onion3 (default 0.5)")
    p.add_argument("--seed", type=int, help="with --local-net: reproducible keys")
    p.add_argument("--timeout", type=duration_arg, default=1800.0, metavar="DURATION",
                   help="stop after this long (default 30m)")
    p.add_argument("--request-timeout", type=duration_arg, default=0.7, metavar="DURATION",
                   help="time to wait for each answer (default 700ms, as go-ethereum)")
    p.add_argument("--parallel", type=_count, default=16, metavar="N",
                   help="nodes asked at once (default 16)")
    p.add_argument("--nodes", metavar="FILE",
                   help="go-ethereum nodes.json: loaded if present (resume), rewritten at the"
                   " end")
    p.add_argument("--jsonl", metavar="PATH|-", help="one JSON object per node as it is done")
    p.add_argument("--enodes", metavar="FILE", help="write the emitted enodes, one per line")
    p.add_argument("--static-nodes", metavar="FILE",
                   help="write the emitted enodes as a static-nodes.json array")
    p.add_argument("--onion-only", action="store_true",
                   help="emit only enodes of nodes with a valid onion3 address")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="live progress line on standard error (default: when it is a"
                   " terminal)")
    p.add_argument("--quiet", action="store_true", help="no summary, no enodes on stdout")


_CRAWL_EPILOG = """\
examples:
  python -m discv5.crawl --local-net 20 --onion-only
  discv5 crawl --bootnodes enr:-IS4Q... --nodes nodes.json --static-nodes static-nodes.json
  discv5 crawl --bootnodes @bootnodes.txt --onion-only --jsonl - --timeout 10m

Enodes go to standard output (unless --enodes, --static-nodes or --jsonl - take their place);
the summary goes to standard error. Every emitted enode comes from a signature-verified record
of a node that answered us, with a real TCP port and, for onion hosts, a checksum-valid onion3
address. exit status: 0 done, 1 no node answered (or, with --local-net, not every node or onion
enode was found), 2 bad usage.
"""


def register(subparsers: Subparsers) -> None:
    """Add ``crawl`` and ``testnet``."""
    p = add_command(
        subparsers, "crawl", _run_crawl,
        help="enumerate the DHT and emit valid enodes (onion-capable ones with --onion-only)",
        description="Crawl the discv5 DHT from bootnodes: ask every node found for its"
        " buckets, keep the newest record of each node, and emit enode URLs a relay client"
        " accepts. Without --bootnodes, go-ethereum's mainnet discv5 bootnodes are used.",
        epilog=_CRAWL_EPILOG,
    )
    add_crawl_arguments(p)
    p = add_command(
        subparsers, "testnet", _run_testnet,
        help="run a local discv5 network of N nodes on 127.0.0.1",
        description="Start N nodes of ours in one process on 127.0.0.1, join them into one DHT"
        " with real lookups (a fraction advertising onion3 and tcp), print the bootnode's"
        " record and keep serving. --manifest writes every node and its expected enode.",
        epilog="examples:\n  discv5 testnet --nodes 50 --manifest net.json\n"
        "  discv5 testnet --nodes 10 --onion-fraction 1 --base-port 31000 --duration 10m",
    )
    p.add_argument("--nodes", type=_count, default=20, metavar="N",
                   help="number of nodes (default 20)")
    p.add_argument("--onion-fraction", type=_fraction, default=0.5, metavar="F",
                   help="share of nodes advertising onion3 (default 0.5)")
    p.add_argument("--base-port", type=int, default=0, metavar="P",
                   help="node i listens on UDP port P+i (default: ports chosen by the system)")
    p.add_argument("--manifest", metavar="FILE", help="write every node and its expected enode")
    p.add_argument("--seed", type=int, help="reproducible keys")
    p.add_argument("--duration", type=duration_arg, metavar="DURATION",
                   help="stop after this long (default: run until interrupted)")
