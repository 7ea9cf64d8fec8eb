"""Commands that run a node: ``listen``, ``ping``, ``resolve``, ``conformance``."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import AbstractAsyncContextManager

import trio

from discv5 import Config, Node, RequestRejected, RequestTimeout, open_node
from discv5._conformance import ConformanceResult, run_conformance
from enr import ENR, read_hidden_service_dir

from ._common import EXIT_FAILURE, EXIT_OK, CommandError, Subparsers, add_command, port_arg
from ._netargs import (
    add_node_options,
    duration_arg,
    load_nodekey,
    parse_node,
    parse_node_list,
    run_async,
)

__all__ = ["register"]


def _listen_for(target: ENR, requested: tuple[str, int]) -> tuple[str, int]:
    """Bind loopback when talking to a loopback node and nothing else was asked for."""
    ip = target.endpoint().ip
    if requested == ("0.0.0.0", 0) and ip is not None and ip.is_loopback:
        return ("127.0.0.1", 0)
    return requested


def _open(
    args: argparse.Namespace,
    listen: tuple[str, int],
    *,
    config: Config | None = None,
    maintain: bool = False,
    fields: dict[str, object] | None = None,
    bootnodes: list[ENR] | None = None,
) -> AbstractAsyncContextManager[Node]:
    return open_node(
        load_nodekey(args.nodekey), listen=listen, external=args.extaddr, config=config,
        maintain=maintain, enr_fields=fields, bootnodes=bootnodes or (),
    )


# --- listen ---------------------------------------------------------------------------------


def _listen(args: argparse.Namespace) -> int:
    bootnodes = parse_node_list(args.bootnodes, prog=args.command_prog) if args.bootnodes else []
    fields: dict[str, object] = {}
    if args.tcp:
        fields["tcp"] = args.tcp
    if args.onion_dir:
        fields["onion3"] = read_hidden_service_dir(args.onion_dir).address

    async def run() -> None:
        async with _open(args, args.addr, maintain=True, fields=fields, bootnodes=bootnodes
                         ) as node:
            print(node.local_enr.to_text(), flush=True)
            print(f"listening on {node.address[0]}:{node.address[1]}, node id"
                  f" {node.node_id.hex()}", file=sys.stderr, flush=True)
            while True:
                await trio.sleep(args.stats_interval)
                s = node.statistics()
                print(f"table {s.table_size}, sessions {s.sessions}, packets in/out"
                      f" {s.packets_in}/{s.packets_out}, drops {sum(s.drops.values())}",
                      file=sys.stderr, flush=True)

    run_async(run)
    return EXIT_OK


# --- ping -----------------------------------------------------------------------------------


def _ping(args: argparse.Namespace) -> int:
    target = parse_node(args.node)

    async def run() -> str:
        config = Config(request_timeout=min(0.7, args.timeout))
        async with _open(args, _listen_for(target, args.addr), config=config) as node:
            deadline = trio.current_time() + args.timeout
            started = time.monotonic()
            last = "no answer"
            while trio.current_time() < deadline:
                try:
                    pong = await node.ping(target)
                except RequestTimeout as exc:
                    last = str(exc)
                    continue
                except RequestRejected as exc:
                    raise CommandError(f"cannot ping: {exc}") from None
                ms = (time.monotonic() - started) * 1000
                return (f"PONG from {target.node_id.hex()[:16]}… seq={pong.enr_seq}: it sees us"
                        f" at {pong.recipient_ip}:{pong.recipient_port} ({ms:.0f} ms)")
            raise CommandError(f"no answer within {args.timeout:g}s ({last})")

    print(run_async(run))
    return EXIT_OK


# --- resolve --------------------------------------------------------------------------------


def _resolve(args: argparse.Namespace) -> int:
    target = parse_node(args.node)
    bootnodes = parse_node_list(args.bootnodes, prog=args.command_prog) if args.bootnodes else []

    async def run() -> ENR:
        async with _open(args, _listen_for(target, args.addr)) as node:
            best = target
            with trio.move_on_after(args.timeout):
                try:
                    found = await node.request_enr(target)
                    if found.seq >= best.seq:
                        best = found
                except (RequestTimeout, RequestRejected) as exc:
                    print(f"the node itself did not answer ({exc}); looking it up",
                          file=sys.stderr)
                    if bootnodes:
                        await node.bootstrap(bootnodes)
                        for record in await node.lookup(target.node_id):
                            if record.node_id == target.node_id and record.seq > best.seq:
                                best = record
            return best

    record = run_async(run)
    if not record.verified:
        raise CommandError("could not fetch a signed record of the node")
    print(record.to_text())
    return EXIT_OK


# --- conformance ----------------------------------------------------------------------------


def _conformance(args: argparse.Namespace) -> int:
    target = parse_node(args.node)
    if target.endpoint().ip is None or not target.endpoint().udp:
        raise CommandError("the node's record has no IP address and UDP port to test")

    def report(result: ConformanceResult) -> None:
        if result.passed:
            print(f"-- OK {result.name} ({result.duration:.2f}s)", flush=True)
        else:
            print(f"-- FAIL {result.name} ({result.duration:.2f}s): {result.reason}", flush=True)

    results = run_async(lambda: run_conformance(
        target, listen1=args.listen1, listen2=args.listen2, run=args.run, report=report
    ))
    passed = sum(r.passed for r in results)
    print(f"{passed}/{len(results)} tests passed.")
    return EXIT_OK if passed == len(results) else EXIT_FAILURE


def register(subparsers: Subparsers) -> None:
    """Add ``listen``, ``ping``, ``resolve`` and ``conformance``."""
    p = add_command(
        subparsers, "listen", _listen,
        help="run a discv5 node and print its record",
        description="Run a discv5 node: print its record (enr:...) on standard output, then"
        " serve until interrupted, with a line of statistics on standard error now and then.",
        epilog="examples:\n  discv5 listen --addr 127.0.0.1:30303\n"
        "  discv5 listen --nodekey nodekey --extaddr 203.0.113.7:30303 --tcp 30303"
        " --onion-dir hs/ --bootnodes @bootnodes.txt",
    )
    add_node_options(p)
    p.add_argument("--tcp", type=port_arg, help="TCP port to announce (the relay's RLPx port)")
    p.add_argument("--onion-dir", metavar="DIR",
                   help="announce the onion3 address of this Tor HiddenServiceDir")
    p.add_argument("--stats-interval", type=duration_arg, default=60.0, metavar="DURATION",
                   help="how often to print statistics (default 60s)")

    p = add_command(
        subparsers, "ping", _ping,
        help="send PING to a node",
        description="Send PING to a node (enr: record or enode:// URL) until it answers or the"
        " timeout passes. Exit status 1 when it does not answer.",
        epilog="examples:\n  discv5 ping enr:-IS4Q...\n"
        "  discv5 ping --timeout 3s enode://<128 hex>@127.0.0.1:30303",
    )
    add_node_options(p)
    p.add_argument("node", help="the node: enr:... or enode://...")
    p.add_argument("--timeout", type=duration_arg, default=5.0, metavar="DURATION",
                   help="give up after this long (default 5s)")

    p = add_command(
        subparsers, "resolve", _resolve,
        help="print the newest record of a node",
        description="Ask the node for its current record (FINDNODE distance 0); if it does not"
        " answer and --bootnodes are given, look its id up in the DHT. Prints the newest"
        " record found.",
        epilog="examples:\n  discv5 resolve enr:-IS4Q...\n"
        "  discv5 resolve --bootnodes @boot.txt enode://<128 hex>@198.51.100.4:30303",
    )
    add_node_options(p)
    p.add_argument("node", help="the node: enr:... or enode://...")
    p.add_argument("--timeout", type=duration_arg, default=10.0, metavar="DURATION",
                   help="give up after this long (default 10s)")

    p = add_command(
        subparsers, "conformance", _conformance,
        help="run go-ethereum's discv5 test scenarios against a node",
        description="The seven scenarios of 'devp2p discv5 test' (Ping, PingLargeRequestID,"
        " PingMultiIP, HandshakeResend, TalkRequest, FindnodeZeroDistance, FindnodeResults),"
        " from the tester's side. Prints '-- OK name' or '-- FAIL name: reason' per scenario"
        " and a summary; exit status 1 if any failed. Both listen addresses must exist on"
        " this machine (on Linux all of 127.0.0.0/8 does).",
        epilog="examples:\n  discv5 conformance enr:-IS4Q...\n"
        "  discv5 conformance --run 'Ping.*' enr:-IS4Q...",
    )
    p.add_argument("node", help="the node under test: enr:... (its record must have ip and udp)")
    p.add_argument("--run", metavar="REGEX", help="only run scenarios whose name matches")
    p.add_argument("--listen1", default="127.0.0.1", help="first tester address (127.0.0.1)")
    p.add_argument("--listen2", default="127.0.0.2", help="second tester address (127.0.0.2)")

