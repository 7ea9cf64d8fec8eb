"""``discv5 key``: node keys (geth ``nodekey``) and Tor v3 onion-service keys, and enode URLs.

A node id is keccak256 of a secp256k1 public key, so the only way to get a valid enode URL is from
a real key: ``key generate`` makes one (and/or the hidden-service keys tor needs for an onion
address), ``key to-enode`` turns a key plus a host, or a signed record, into the URL that goes in
static-nodes.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Final

from enr import (
    ENR,
    Enode,
    OnionServiceKey,
    PrivateKey,
    enode_from_enr,
    parse_enode,
    read_hidden_service_dir,
    read_nodekey,
    write_hidden_service_dir,
    write_nodekey,
)

from ._common import (
    EXIT_OK,
    CommandError,
    Subparsers,
    UsageError,
    add_command,
    add_group,
    host_arg,
    port_arg,
    print_json,
)

__all__ = ["register"]

_DEFAULT_PORT: Final = 30303

_GENERATE_EPILOG: Final = """\
examples:
  discv5 key generate --nodekey /data/geth/nodekey
  discv5 key generate --nodekey nodekey --onion-dir /var/lib/tor/relay --tcp 30303
  discv5 key generate --onion-dir hs/ --json

The node key is written as geth does (64 hex characters, mode 0600); the onion directory gets
hs_ed25519_secret_key, hs_ed25519_public_key and hostname (mode 0700), ready for tor's
HiddenServiceDir. Existing keys are never overwritten unless --force is given.
"""

_SHOW_EPILOG: Final = """\
examples:
  discv5 key show --nodekey /data/geth/nodekey
  discv5 key show --nodekey nodekey --onion-dir /var/lib/tor/relay --tcp 30303 --json
"""

_TO_ENODE_EPILOG: Final = """\
examples:
  discv5 key to-enode --nodekey nodekey --host 203.0.113.7
  discv5 key to-enode --nodekey nodekey --host 2001:db8::7 --tcp 30303 --udp 30301
  discv5 key to-enode --nodekey nodekey --onion-dir /var/lib/tor/relay --tcp 30303
  discv5 key to-enode "$(discv5 enr create --nodekey nodekey --ip 203.0.113.7 --tcp 30303)"

With RECORD the host is the record's onion3 address when it has one (else its IP; --no-onion
forces the IP), the port its tcp entry and discport its udp entry.

--tcp defaults to 30303 and --udp to the TCP port (discport is printed only when they differ).
"""


def register(subparsers: Subparsers) -> None:
    """Add ``discv5 key generate``, ``key show`` and ``key to-enode``."""
    group = add_group(
        subparsers,
        "key",
        help="generate node keys and Tor onion keys; print enode URLs",
        description="Node keys (geth nodekey), Tor v3 onion-service keys and enode URLs.",
        epilog=(
            "examples:\n"
            "  discv5 key generate --nodekey nodekey --onion-dir hs/\n"
            "  discv5 key show --nodekey nodekey\n"
            "  discv5 key to-enode --nodekey nodekey --host 203.0.113.7 --tcp 30303\n"
        ),
    )

    generate = add_command(
        group,
        "generate",
        _generate,
        help="write a new node key and/or Tor v3 onion-service keys",
        description=(
            "Write a new random secp256k1 node key (geth nodekey format) and/or a new Tor v3\n"
            "onion-service key directory, then print the node id, public key, enode form and\n"
            "onion address."
        ),
        epilog=_GENERATE_EPILOG,
    )
    generate.add_argument("--nodekey", metavar="FILE", help="node key file to create")
    generate.add_argument("--onion-dir", metavar="DIR", help="tor HiddenServiceDir to fill")
    generate.add_argument("--force", action="store_true", help="overwrite existing keys")
    _add_report_options(generate)

    show = add_command(
        group,
        "show",
        _show,
        help="print the node id, public key, enode and onion address of existing keys",
        description="Read existing keys and print what 'key generate' prints for new ones.",
        epilog=_SHOW_EPILOG,
    )
    show.add_argument("--nodekey", metavar="FILE", help="geth nodekey file")
    show.add_argument("--onion-dir", metavar="DIR", help="tor HiddenServiceDir")
    _add_report_options(show)

    to_enode = add_command(
        group,
        "to-enode",
        _to_enode,
        help="print the enode URL of a node key (+ host) or of a signed record",
        description=(
            "Print a complete enode URL (enode://<128 hex>@host:tcp[?discport=udp]) for a node\n"
            "key and a host (IP, DNS name or onion3), for a key and a tor HiddenServiceDir, or\n"
            "for a signed node record."
        ),
        epilog=_TO_ENODE_EPILOG,
    )
    to_enode.add_argument(
        "record", nargs="?", metavar="RECORD", help="a signed record (enr:...) instead of a key"
    )
    to_enode.add_argument("--nodekey", metavar="FILE", help="geth nodekey file")
    hosts = to_enode.add_mutually_exclusive_group()
    hosts.add_argument(
        "--host", type=host_arg, metavar="HOST", help="IPv4, IPv6, DNS name or onion3 address"
    )
    hosts.add_argument(
        "--onion-dir", metavar="DIR", help="tor HiddenServiceDir: its onion address is the host"
    )
    to_enode.add_argument(
        "--tcp", type=port_arg, metavar="PORT", help=f"TCP port (default {_DEFAULT_PORT})"
    )
    to_enode.add_argument(
        "--udp", type=port_arg, metavar="PORT", help="UDP discovery port (default: the TCP port)"
    )
    to_enode.add_argument(
        "--no-onion",
        action="store_true",
        help="with RECORD: use the record's IP even when it has an onion3 address",
    )


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tcp",
        type=port_arg,
        metavar="PORT",
        help="also print the full onion enode for this TCP port (needs both keys)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _report(
    nodekey: str | None,
    key: PrivateKey | None,
    onion_dir: str | None,
    onion: OnionServiceKey | None,
    tcp: int | None,
    written: bool,
    as_json: bool,
) -> None:
    info: dict[str, Any] = {}
    if key is not None:
        public = key.public_key
        info |= {
            "nodekey": nodekey,
            "node_id": public.node_id.hex(),
            "public_key": public.uncompressed.hex(),
            "public_key_compressed": public.compressed.hex(),
            "enode": str(Enode(public, None, None, None)),
        }
    if onion is not None:
        info |= {"onion_dir": onion_dir, "onion3": onion.address}
    if key is not None and onion is not None and tcp is not None:
        info["enode_onion"] = str(Enode(key.public_key, onion.address, tcp, tcp))
    if as_json:
        print_json(info)
        return
    mark = " (written)" if written else ""
    labels = {
        "nodekey": ("Node key:", mark),
        "node_id": ("Node ID:", ""),
        "public_key": ("Public key:", ""),
        "public_key_compressed": ("Compressed:", ""),
        "enode": ("Enode:", "  (add @HOST:PORT, see 'discv5 key to-enode')"),
        "onion_dir": ("Onion dir:", mark),
        "onion3": ("Onion address:", ""),
        "enode_onion": ("Enode (Tor):", ""),
    }
    for name, value in info.items():
        label, suffix = labels[name]
        print(f"{label:<15} {value}{suffix}")


def _require_some_key(args: argparse.Namespace) -> None:
    if args.nodekey is None and args.onion_dir is None:
        raise UsageError("give --nodekey FILE and/or --onion-dir DIR", args.command_prog)


def _generate(args: argparse.Namespace) -> int:
    _require_some_key(args)
    nodekey: str | None = args.nodekey
    onion_dir: str | None = args.onion_dir
    if nodekey is not None:
        path = Path(nodekey)
        if path.is_dir():
            raise CommandError(f"{nodekey} is a directory; give the key file's path")
        if path.exists() and not args.force:
            raise CommandError(f"{nodekey} already exists; refusing to overwrite it (use --force)")
        if not path.parent.is_dir():
            raise CommandError(f"directory {str(path.parent)!r} does not exist")
    if onion_dir is not None:
        secret = Path(onion_dir) / "hs_ed25519_secret_key"
        if secret.exists() and not args.force:
            raise CommandError(f"{secret} already exists; refusing to overwrite it (use --force)")
        if Path(onion_dir).exists() and not Path(onion_dir).is_dir():
            raise CommandError(f"{onion_dir} exists and is not a directory")
    key = PrivateKey.generate() if nodekey is not None else None
    onion = OnionServiceKey.generate() if onion_dir is not None else None
    if nodekey is not None and key is not None:
        write_nodekey(nodekey, key)
    if onion_dir is not None and onion is not None:
        write_hidden_service_dir(onion_dir, onion)
    _report(nodekey, key, onion_dir, onion, args.tcp, True, args.json)
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    _require_some_key(args)
    key = read_nodekey(args.nodekey) if args.nodekey is not None else None
    onion = read_hidden_service_dir(args.onion_dir) if args.onion_dir is not None else None
    _report(args.nodekey, key, args.onion_dir, onion, args.tcp, False, args.json)
    return EXIT_OK


def _to_enode(args: argparse.Namespace) -> int:
    prog: str = args.command_prog
    if args.record is not None:
        given = [
            flag
            for flag, value in (
                ("--nodekey", args.nodekey),
                ("--host", args.host),
                ("--onion-dir", args.onion_dir),
                ("--tcp", args.tcp),
                ("--udp", args.udp),
            )
            if value is not None
        ]
        if given:
            raise UsageError(f"a RECORD carries its own key and address; drop {given[0]}", prog)
        text: str = args.record.strip()
        if text.startswith("enode://"):
            # Already an enode: check and normalize it (handy in scripts).
            print(parse_enode(text))
            return EXIT_OK
        record = ENR.from_text(text)
        print(enode_from_enr(record, prefer_onion=not args.no_onion))
        return EXIT_OK
    if args.no_onion:
        raise UsageError("--no-onion only applies to a RECORD", prog)
    if args.nodekey is None:
        raise UsageError("give --nodekey FILE (with --host or --onion-dir), or a RECORD", prog)
    if args.host is None and args.onion_dir is None:
        raise UsageError(
            "give --host HOST or --onion-dir DIR: an enode without a host cannot be dialled", prog
        )
    key = read_nodekey(args.nodekey)
    if args.host is not None:
        host: str = args.host
    else:
        host = read_hidden_service_dir(args.onion_dir).address
    tcp: int = args.tcp if args.tcp is not None else _DEFAULT_PORT
    udp: int = args.udp if args.udp is not None else tcp
    enode = Enode(key.public_key, host, tcp, udp)
    # Round-trip through the parser: what we print is exactly what a relay will accept.
    print(parse_enode(str(enode)))
    return EXIT_OK
