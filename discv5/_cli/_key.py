"""``discv5 key``: node keys (geth ``nodekey``) and Tor v3 onion-service keys, and enode URLs.

A node id is keccak256 of a secp256k1 public key, so the only way to get a valid enode URL is from
a real key: ``key generate`` makes one (and/or the hidden-service keys tor needs for an onion
address), ``key to-enode`` turns a key plus a host, or a signed record, into the URL that goes in
static-nodes.json.

``key generate --count N --out DIR`` makes the identities of N relays ahead of time, so their
enodes are known before any of them starts: ``relay-<i>/nodekey`` and ``relay-<i>/hs/`` each,
a ``static-nodes.json`` listing every relay, a ``manifest.json`` and, with ``--k8s-secret``, a
Kubernetes Secret manifest holding all of it (written by hand: no YAML library needed).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
from dataclasses import dataclass
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
    write_file_atomic,
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
# Kubernetes refuses a Secret whose data (decoded) exceeds 1 MiB. Per relay the Secret holds
# 287 bytes of keys (nodekey 64, tor's secret key 96, public key 64, hostname 63) and one
# static-nodes.json line of at most ~400 bytes (a 253-character host): 1000 relays fit.
_MAX_COUNT: Final = 1000
# A Secret's name is a DNS subdomain (RFC 1123, lower case); its data keys are [-._a-zA-Z0-9]+.
_K8S_NAME_RE: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_HS_FILES: Final = ("hs_ed25519_secret_key", "hs_ed25519_public_key", "hostname")

_GENERATE_EPILOG: Final = """\
examples:
  discv5 key generate --nodekey /data/geth/nodekey
  discv5 key generate --nodekey nodekey --onion-dir /var/lib/tor/relay --tcp 30303
  discv5 key generate --onion-dir hs/ --json
  discv5 key generate --count 3 --onion --out keys --k8s-secret relay-keys
  discv5 key generate --count 3 --host-suffix .relay.default.svc.cluster.local --out keys

The node key is written as geth does (64 hex characters, mode 0600); the onion directory gets
hs_ed25519_secret_key, hs_ed25519_public_key and hostname (mode 0700), ready for tor's
HiddenServiceDir. Existing keys are never overwritten unless --force is given.

With --count N the identities of N relays go under --out DIR: relay-<i>/nodekey and (--onion)
relay-<i>/hs/, static-nodes.json with every relay's enode (host: its onion address, or
relay-<i>SUFFIX with --host-suffix; port: --tcp, default 30303), manifest.json and, with
--k8s-secret NAME, the Kubernetes Secret NAME.yaml holding every file (keys relay-<i>-nodekey,
relay-<i>-hs_ed25519_secret_key, relay-<i>-hs_ed25519_public_key, relay-<i>-hostname and
static-nodes.json). Key files and the Secret are mode 0600, directories 0700, static-nodes.json
and manifest.json 0644. Nothing is written if any of the files already exists (unless --force).
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
    batch = generate.add_argument_group("identities of several relays (with --count)")
    batch.add_argument(
        "--count", type=_count_arg, metavar="N", help=f"number of relays (1..{_MAX_COUNT})"
    )
    batch.add_argument("--out", metavar="DIR", help="directory to write them to (created 0700)")
    batch.add_argument(
        "--onion", action="store_true",
        help="give every relay Tor onion-service keys (relay-<i>/hs/); enodes use the onion host",
    )  # fmt: skip
    batch.add_argument(
        "--host-suffix", metavar="SUFFIX",
        help="enode host relay-<i>SUFFIX (e.g. .relay.default.svc.cluster.local) instead of the"
        " onion address",
    )  # fmt: skip
    batch.add_argument(
        "--k8s-secret", type=_k8s_name_arg, metavar="NAME",
        help="also write DIR/NAME.yaml: a Kubernetes Secret NAME holding every file",
    )  # fmt: skip

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


def _count_arg(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", text) or not 1 <= int(text) <= _MAX_COUNT:
        raise argparse.ArgumentTypeError(f"count must be a number in 1..{_MAX_COUNT}, got {text!r}")
    return int(text)


def _k8s_name_arg(text: str) -> str:
    if len(text) > 253 or not _K8S_NAME_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"invalid Secret name {text!r}: use lower-case letters, digits, '-' and '.',"
            " starting and ending with a letter or digit"
        )
    return text


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tcp",
        type=port_arg,
        metavar="PORT",
        help="also print the full onion enode for this TCP port (needs both keys); with --count:"
        f" the port in every enode (default {_DEFAULT_PORT})",
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
    batch_flags = [
        flag
        for flag, given in (
            ("--out", args.out is not None),
            ("--onion", args.onion),
            ("--host-suffix", args.host_suffix is not None),
            ("--k8s-secret", args.k8s_secret is not None),
        )
        if given
    ]
    if args.count is not None:
        return _generate_batch(args)
    if batch_flags:
        raise UsageError(
            f"{batch_flags[0]} needs --count N (for one key use --nodekey FILE and/or"
            " --onion-dir DIR)",
            args.command_prog,
        )
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


# --- key generate --count: the identities of several relays -------------------------------------


@dataclass(frozen=True, slots=True)
class _Relay:
    """One generated relay identity and where its files go."""

    index: int
    key: PrivateKey
    onion: OnionServiceKey | None
    enode: Enode

    @property
    def name(self) -> str:
        return f"relay-{self.index}"

    def manifest_entry(self) -> dict[str, Any]:
        public = self.key.public_key
        entry: dict[str, Any] = {
            "index": self.index,
            "name": self.name,
            "node_id": public.node_id.hex(),
            "public_key": public.uncompressed.hex(),
            "enode": str(self.enode),
            "onion3": None if self.onion is None else self.onion.address,
            "enode_onion": None
            if self.onion is None
            else str(Enode(public, self.onion.address, self.enode.tcp, self.enode.udp)),
            "nodekey": f"{self.name}/nodekey",
            "hs_dir": None if self.onion is None else f"{self.name}/hs",
        }
        return entry


def _host_suffix(text: str, count: int, prog: str) -> str:
    """``--host-suffix``: a leading dot is added if missing; every relay-<i>SUFFIX must be a
    DNS name an enode accepts."""
    suffix = text.strip()
    if not suffix.startswith("."):
        suffix = "." + suffix
    for index in (0, count - 1):
        host = f"relay-{index}{suffix}"
        try:
            valid = host_arg(host) == host and not host.endswith(".onion")
        except argparse.ArgumentTypeError:
            valid = False
        if not valid:
            raise UsageError(
                f"--host-suffix {text!r}: {host!r} is not a valid DNS name for an enode", prog
            )
    return suffix


def _check_targets(directories: list[Path], paths: list[Path], force: bool) -> None:
    """Refuse (before anything is written) if a file exists, unless ``force``."""
    for directory in directories:
        if (directory.exists() or directory.is_symlink()) and not directory.is_dir():
            raise CommandError(f"{directory} exists and is not a directory")
    existing = [p for p in paths if p.exists() or p.is_symlink()]
    for path in existing:
        if path.is_dir():
            raise CommandError(f"{path} is a directory; refusing to replace it")
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise CommandError(
            f"{existing[0]} already exists{more}; refusing to overwrite it (use --force)"
        )


def _make_dir(path: Path, *, ours: bool) -> None:
    """Create ``path`` with mode 0700. An existing directory is set to 0700 only if ``ours``
    (a relay-<i> directory), never the --out directory the user gave (it may be ``.``)."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if not ours:
            return
    os.chmod(path, 0o700)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically with mode ``mode``."""
    write_file_atomic(path, data, mode=mode)


def _yaml_string(text: str) -> str:
    """A double-quoted YAML scalar (JSON string syntax is valid YAML for printable text)."""
    return json.dumps(text, ensure_ascii=True)


def _secret_yaml(name: str, data: dict[str, bytes], count: int) -> str:
    """A Kubernetes Secret manifest, every scalar quoted; values are base64 of the files."""
    lines = [
        f"# Kubernetes Secret written by 'discv5 key generate': {count} relay identities.",
        "# It holds private keys (node keys and Tor onion-service keys): keep it out of version",
        "# control and apply it with 'kubectl apply -f'.",
        "apiVersion: " + _yaml_string("v1"),
        "kind: " + _yaml_string("Secret"),
        "metadata:",
        "  name: " + _yaml_string(name),
        "type: " + _yaml_string("Opaque"),
        "data:",
    ]
    for key, value in data.items():
        encoded = base64.b64encode(value).decode("ascii")
        lines.append(f"  {_yaml_string(key)}: {_yaml_string(encoded)}")
    return "\n".join(lines) + "\n"


def _generate_batch(args: argparse.Namespace) -> int:
    prog: str = args.command_prog
    for flag, value in (("--nodekey", args.nodekey), ("--onion-dir", args.onion_dir)):
        if value is not None:
            raise UsageError(
                f"--count writes relay-<i>/nodekey and relay-<i>/hs under --out; drop {flag}", prog
            )
    if args.out is None:
        raise UsageError("--count needs --out DIR", prog)
    if not args.onion and args.host_suffix is None:
        raise UsageError(
            "give --onion and/or --host-suffix SUFFIX: every enode in static-nodes.json needs"
            " a host",
            prog,
        )
    count: int = args.count
    tcp: int = args.tcp if args.tcp is not None else _DEFAULT_PORT
    suffix = None if args.host_suffix is None else _host_suffix(args.host_suffix, count, prog)
    secret_name: str | None = args.k8s_secret
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"{out} exists and is not a directory")
    if not out.resolve().parent.is_dir():
        raise CommandError(f"directory {str(out.resolve().parent)!r} does not exist")

    static_path = out / "static-nodes.json"
    manifest_path = out / "manifest.json"
    secret_path = None if secret_name is None else out / f"{secret_name}.yaml"
    targets = [static_path, manifest_path] + ([secret_path] if secret_path else [])
    directories = [out]
    for index in range(count):
        relay_dir = out / f"relay-{index}"
        directories.append(relay_dir)
        targets.append(relay_dir / "nodekey")
        if args.onion:
            directories.append(relay_dir / "hs")
            targets += [relay_dir / "hs" / name for name in _HS_FILES]
    _check_targets(directories, targets, args.force)

    relays: list[_Relay] = []
    for index in range(count):
        key = PrivateKey.generate()
        onion = OnionServiceKey.generate() if args.onion else None
        if suffix is not None:
            host = f"relay-{index}{suffix}"
        else:
            assert onion is not None
            host = onion.address
        # Round-trip through the parser, as 'key to-enode' does: what goes in the file is
        # exactly what a relay (and 'static-nodes check') accepts.
        enode = parse_enode(str(Enode(key.public_key, host, tcp, tcp)))
        if enode.problems():
            raise CommandError(f"relay-{index}: {'; '.join(enode.problems())}")
        relays.append(_Relay(index, key, onion, enode))

    static_text = json.dumps([str(r.enode) for r in relays], indent=2) + "\n"
    manifest = {
        "count": count,
        "tcp": tcp,
        "static_nodes": "static-nodes.json",
        "k8s_secret": secret_name,
        "k8s_secret_file": None if secret_path is None else secret_path.name,
        "relays": [r.manifest_entry() for r in relays],
    }

    _make_dir(out, ours=False)
    secret_data: dict[str, bytes] = {}
    for relay in relays:
        relay_dir = out / relay.name
        _make_dir(relay_dir, ours=True)
        write_nodekey(relay_dir / "nodekey", relay.key)
        if read_nodekey(relay_dir / "nodekey") != relay.key:
            raise CommandError(f"{relay_dir / 'nodekey'} does not read back as written")
        secret_data[f"{relay.name}-nodekey"] = (relay_dir / "nodekey").read_bytes()
        if relay.onion is not None:
            hs_dir = relay_dir / "hs"
            write_hidden_service_dir(hs_dir, relay.onion)
            if read_hidden_service_dir(hs_dir).address != relay.onion.address:
                raise CommandError(f"{hs_dir} does not read back as written")
            for name in _HS_FILES:
                secret_data[f"{relay.name}-{name}"] = (hs_dir / name).read_bytes()
    _write_file(static_path, static_text.encode("utf-8"), 0o644)
    secret_data["static-nodes.json"] = static_text.encode("utf-8")
    _write_file(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"), 0o644)
    if secret_path is not None and secret_name is not None:
        text = _secret_yaml(secret_name, secret_data, count)
        _write_file(secret_path, text.encode("ascii"), 0o600)

    if args.json:
        print_json(
            {
                "out": str(out),
                "count": count,
                "tcp": tcp,
                "static_nodes": str(static_path),
                "manifest": str(manifest_path),
                "k8s_secret": secret_name,
                "k8s_secret_file": None if secret_path is None else str(secret_path),
                "secret_keys": None if secret_path is None else len(secret_data),
                "relays": manifest["relays"],
            }
        )
        return EXIT_OK
    width = len(relays[-1].name)
    for relay in relays:
        onion_text = "" if relay.onion is None else f"  {relay.onion.address}"
        host_text = f"  {relay.enode.host}" if suffix is not None else ""
        node_id = relay.key.public_key.node_id.hex()
        print(f"{relay.name:<{width}}  {node_id}{onion_text}{host_text}")
    parts = "relay-<i>/nodekey" + (" and relay-<i>/hs/" if args.onion else "")
    print(f"Wrote {count} relay identities to {out}/ ({parts}; keys mode 0600)")
    print(f"Static nodes:  {static_path} ({count} enodes, tcp port {tcp})")
    print(f"Manifest:      {manifest_path}")
    if secret_path is not None:
        print(
            f"Secret:        {secret_path} (Secret {secret_name!r}, {len(secret_data)} keys;"
            " holds private keys: do not commit it)"
        )
    return EXIT_OK
