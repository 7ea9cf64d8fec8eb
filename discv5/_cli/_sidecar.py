"""``discv5 sidecar``: keep a relay's static-nodes.json and peers correct from the DHT."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from discv5 import Config, open_node
from discv5.sidecar import (
    Log,
    Sidecar,
    SidecarSettings,
    StaticNodesError,
    check_enode,
    normalize_onion,
)
from enr import ENRError, read_nodekey

from ._common import EXIT_FAILURE, EXIT_OK, CommandError, Subparsers, UsageError, add_command
from ._netargs import add_node_options, duration_arg, load_nodekey, parse_node_list, run_async

__all__ = ["register"]


def _read_list(path: str, what: str) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {what} file {path}: {exc.strerror}") from None
    out: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.extend(part for part in line.replace(",", " ").split() if part)
    return out


def _settings(args: argparse.Namespace) -> SidecarSettings:
    prog = args.command_prog
    if not args.static_nodes and not args.rpc and not (args.want_onion or args.want_onion_file):
        raise UsageError("nothing to do: give --static-nodes, --rpc or --want-onion", prog)
    wanted: set[str] = set()
    for text in (args.want_onion or []) + (
        _read_list(args.want_onion_file, "wanted onion") if args.want_onion_file else []
    ):
        try:
            wanted.add(normalize_onion(text))
        except ValueError as exc:
            raise UsageError(str(exc), prog) from None
    pins = _read_list(args.pin, "pin") if args.pin else []
    for pin in pins:
        try:
            check_enode(pin)
        except ENRError as exc:
            raise CommandError(f"pinned entry {pin[:48]!r} is not a valid enode: {exc}") from None
    exclude: set[bytes] = set()
    if args.exclude_nodekey:
        exclude.add(read_nodekey(args.exclude_nodekey).public_key.node_id)
    for text in args.exclude_enode or []:
        exclude.add(check_enode(text).node_id)
    static = Path(args.static_nodes) if args.static_nodes else None
    if static is not None and not static.resolve().parent.is_dir():
        raise CommandError(f"directory of {static} does not exist")
    return SidecarSettings(
        static_nodes=static, rpc=args.rpc, trusted=args.trusted, wanted=wanted, ttl=args.ttl,
        pins=pins, exclude=exclude, replace_corrupt=args.replace_corrupt,
        parallel=args.parallel, interval=args.interval,
    )


def _run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not args.bootnodes:
        raise UsageError("--bootnodes is required (the relays' bootnodes)", args.command_prog)
    bootnodes = parse_node_list(args.bootnodes, prog=args.command_prog)
    log = Log(args.log_format)
    if settings.rpc:
        try:
            from discv5.sidecar import AdminRPC

            AdminRPC(settings.rpc)
        except ValueError as exc:
            raise UsageError(str(exc), args.command_prog) from None

    async def main() -> int:
        config = Config(request_timeout=args.request_timeout)
        async with open_node(
            load_nodekey(args.nodekey), listen=args.addr, external=args.extaddr,
            config=config, maintain=not args.once,
        ) as node:
            sidecar = Sidecar(node, bootnodes, settings, log)
            try:
                sidecar.load_static_nodes()
            except StaticNodesError as exc:
                raise CommandError(
                    f"{exc}; refusing to replace it (use --replace-corrupt to overwrite)"
                ) from None
            log("info", "started", node_id=node.node_id.hex(), enr=node.local_enr.to_text(),
                mode="once" if args.once else "sidecar", wanted=len(settings.wanted))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sidecar.rpc_loop)
                if not args.once:
                    await sidecar.run_forever()
                missing = await sidecar.run_once(args.timeout)
                if settings.rpc:
                    with trio.move_on_after(10):  # give the relay's RPC a moment to catch up
                        await sidecar.wait_rpc_idle()
                    if sidecar.rpc_pending:
                        log("warning", "rpc-not-delivered", enodes=sidecar.rpc_pending)
                nursery.cancel_scope.cancel()
            if missing:
                log("error", "timeout", missing=sorted(missing))
                if args.log_format == "plain":
                    print("missing: " + ", ".join(sorted(missing)), file=sys.stderr)
                return EXIT_FAILURE
            if sidecar.write_error is not None:
                raise CommandError(sidecar.write_error)
            log("info", "done", resolved=len(sidecar.resolved))
            for address, enode in sorted(sidecar.resolved.items()):
                print(f"{address} {enode}")
            return EXIT_OK

    return run_async(main)


_EPILOG = """\
examples:
  # init container: resolve the peers listed in a ConfigMap, write static-nodes.json, exit
  discv5 sidecar --once --timeout 5m --bootnodes @/config/bootnodes.txt \\
      --want-onion-file /config/peer-onions.txt --static-nodes /data/geth/static-nodes.json \\
      --exclude-nodekey /data/geth/nodekey

  # sidecar: keep the file current and add new peers through geth's IPC socket
  discv5 sidecar --bootnodes @/config/bootnodes.txt --static-nodes /data/geth/static-nodes.json \\
      --rpc /data/geth.ipc --interval 5m --ttl 24h --pin /config/pinned.txt --log-format json

Only valid enodes are written (key on the curve, checksum-valid onion3, real TCP port), each
write atomic. exit status: 0 done (--once: every wanted address resolved), 1 failure or
--timeout with addresses missing (listed), 2 bad usage.
"""


def register(subparsers: Subparsers) -> None:
    """Add ``sidecar``."""
    p = add_command(
        subparsers, "sidecar", _run,
        help="keep a relay's static-nodes.json and peers correct from the DHT",
        description="Run beside a relay (or once, as its init container): crawl the DHT,"
        " resolve onion addresses to real enodes through the onion3 entries of the records"
        " found, keep static-nodes.json correct and add new peers through the relay's admin"
        " JSON-RPC (HTTP or IPC). No kubectl or RBAC needed.",
        epilog=_EPILOG,
    )
    add_node_options(p)
    p.add_argument("--static-nodes", metavar="PATH", help="the relay's static-nodes.json")
    p.add_argument("--rpc", metavar="URL|IPC",
                   help="the relay's admin JSON-RPC: http://host:port or an IPC socket path")
    p.add_argument("--trusted", action="store_true",
                   help="use admin_addTrustedPeer instead of admin_addPeer")
    p.add_argument("--want-onion", action="append", metavar="ADDR",
                   help="an onion address to resolve to its enode (repeatable)")
    p.add_argument("--want-onion-file", metavar="FILE",
                   help="onion addresses to resolve, one per line (e.g. a mounted ConfigMap)")
    p.add_argument("--once", action="store_true",
                   help="init-container mode: resolve, write, exit")
    p.add_argument("--timeout", type=duration_arg, metavar="DURATION",
                   help="with --once: give up after this long and list what is missing")
    p.add_argument("--interval", type=duration_arg, default=300.0, metavar="DURATION",
                   help="time between crawls in sidecar mode (default 5m)")
    p.add_argument("--ttl", type=duration_arg, default=86400.0, metavar="DURATION",
                   help="drop entries the DHT has not shown live for this long (default 24h)")
    p.add_argument("--pin", metavar="FILE", help="enodes always kept in the file, one per line")
    p.add_argument("--exclude-nodekey", metavar="FILE",
                   help="the relay's own nodekey: its node is never added")
    p.add_argument("--exclude-enode", action="append", metavar="URL",
                   help="an enode never added (repeatable)")
    p.add_argument("--replace-corrupt", action="store_true",
                   help="overwrite an existing static-nodes.json that is not a JSON array")
    p.add_argument("--parallel", type=int, default=16, metavar="N",
                   help="nodes asked at once while crawling (default 16)")
    p.add_argument("--request-timeout", type=duration_arg, default=0.7, metavar="DURATION",
                   help="time to wait for each answer (default 700ms)")
    p.add_argument("--log-format", choices=("plain", "json"), default="plain",
                   help="log line format on standard error (default plain)")
