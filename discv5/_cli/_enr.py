"""``discv5 enr``: decode node records (like ``devp2p enrdump``) and create signed ones.

``decode`` takes one record (``enr:...`` or hex RLP), a file with one record per line, or ``-``
for standard input, and shows everything in each record: node id, seq, identity scheme, whether
the signature verifies, every key/value pair (well-known keys decoded, including the ``onion3``
Tor address with its checksum status), the enode URL a relay would dial or the reason there is
none, and the entries whose values are unusable.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any, Final

from enr import (
    ENR,
    EnodeError,
    ENRError,
    ENRSignatureError,
    Item,
    enode_from_enr,
    read_hidden_service_dir,
    read_nodekey,
)

from ._common import (
    EXIT_OK,
    CommandError,
    Subparsers,
    UsageError,
    add_command,
    add_group,
    hex_item,
    ipv4_arg,
    ipv6_arg,
    onion3_arg,
    port_arg,
    print_json,
    read_text_source,
    seq_arg,
)

__all__ = ["register"]

EIP778_EXAMPLE: Final = (
    "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R33Ls8RRcy5"
    "wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8yWM0xOIN1ZHCCdl8"
)

_HEX_RE: Final = re.compile(r"(0x)?([0-9a-fA-F]{2})+")
_PORT_KEYS: Final = frozenset({b"tcp", b"udp", b"tcp6", b"udp6", b"quic", b"quic6"})
_KNOWN_KEYS: Final = frozenset({b"id", b"secp256k1", b"ip", b"ip6", b"onion3"}) | _PORT_KEYS
# Keys `enr create` sets from its own options (or from the signing key): not allowed in --set.
_OPTION_KEYS: Final = {
    b"id": "the identity scheme is set by the signing key",
    b"secp256k1": "the public key is set by --nodekey",
    b"ip": "use --ip",
    b"ip6": "use --ip6",
    b"tcp": "use --tcp",
    b"udp": "use --udp",
    b"tcp6": "use --tcp6",
    b"udp6": "use --udp6",
    b"onion3": "use --onion3 or --onion-dir",
}

_DECODE_EPILOG: Final = f"""\
RECORD may be:
  enr:<base64url>     a record in text form
  <hex>               the record's RLP bytes in hex (optional 0x prefix)
  FILE                a file with one record per line (blank lines and '#' comments skipped)
  -                   the same, read from standard input

examples:
  discv5 enr decode {EIP778_EXAMPLE}
  discv5 enr decode --json records.txt
  crawler-output | discv5 enr decode -
  discv5 enr decode --no-verify enr:...      show a record whose signature does not verify

exit status: 0 every record decoded (and verified), 1 any record bad, 2 usage error.
"""

_CREATE_EPILOG: Final = """\
examples:
  discv5 enr create --nodekey nodekey --ip 203.0.113.7 --tcp 30303 --udp 30303
  discv5 enr create --nodekey nodekey --onion-dir /var/lib/tor/relay --tcp 30303 --seq 2
  discv5 enr create --nodekey nodekey --ip 10.0.0.5 --udp 9000 --set eth2=0102030405

Signatures are deterministic: the same key and entries give the same record. Publish a new record
with a higher --seq than any record you published before (peers keep the highest seq).
"""


def register(subparsers: Subparsers) -> None:
    """Add ``discv5 enr decode`` and ``discv5 enr create``."""
    group = add_group(
        subparsers,
        "enr",
        help="decode and create Ethereum Node Records (EIP-778)",
        description="Decode and create Ethereum Node Records (EIP-778), including onion3.",
        epilog=(
            "examples:\n"
            f"  discv5 enr decode {EIP778_EXAMPLE[:60]}...\n"
            "  discv5 enr create --nodekey nodekey --ip 203.0.113.7 --tcp 30303 --udp 30303\n"
        ),
    )

    decode = add_command(
        group,
        "decode",
        _decode,
        help="show everything in node records (like devp2p enrdump)",
        description=(
            "Decode node records and show the node id, seq, identity scheme, signature status,\n"
            "every key/value pair (ip, ports, secp256k1 and onion3 decoded; other keys as hex),\n"
            "the enode URL a relay would dial (or why there is none) and unusable entries."
        ),
        epilog=_DECODE_EPILOG,
    )
    decode.add_argument("source", metavar="RECORD|FILE|-", help="record, file or '-' (stdin)")
    decode.add_argument(
        "--json", action="store_true", help="print one JSON object per record (JSON Lines)"
    )
    decode.add_argument(
        "--no-verify",
        action="store_true",
        help="show records whose signature does not verify (marked UNVERIFIED) instead of failing",
    )

    create = add_command(
        group,
        "create",
        _create,
        help="build and sign a record from a node key",
        description=(
            "Build a v4 record signed with a geth node key and print its text form (enr:...).\n"
            "Ports must be 1..65535; --onion3/--onion-dir add the Tor v3 address (onion3)."
        ),
        epilog=_CREATE_EPILOG,
    )
    create.add_argument(
        "--nodekey", required=True, metavar="FILE", help="geth nodekey file (64 hex characters)"
    )
    create.add_argument(
        "--seq", type=seq_arg, default=1, metavar="N", help="sequence number (default: 1)"
    )
    create.add_argument("--ip", type=ipv4_arg, metavar="IPV4", help="IPv4 address (ip)")
    create.add_argument("--ip6", type=ipv6_arg, metavar="IPV6", help="IPv6 address (ip6)")
    create.add_argument("--udp", type=port_arg, metavar="PORT", help="discovery UDP port (udp)")
    create.add_argument("--tcp", type=port_arg, metavar="PORT", help="RLPx TCP port (tcp)")
    create.add_argument("--udp6", type=port_arg, metavar="PORT", help="IPv6 UDP port (udp6)")
    create.add_argument("--tcp6", type=port_arg, metavar="PORT", help="IPv6 TCP port (tcp6)")
    onion = create.add_mutually_exclusive_group()
    onion.add_argument(
        "--onion3", type=onion3_arg, metavar="ADDR", help="Tor v3 address <56 base32>.onion"
    )
    onion.add_argument(
        "--onion-dir",
        metavar="DIR",
        help="tor HiddenServiceDir: use the onion address of its hs_ed25519_secret_key",
    )
    create.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=HEX",
        type=_set_arg,
        help="add any other entry as raw bytes (hex, may be empty); repeatable",
    )


# --- decode -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Input:
    label: str
    """Where the record came from, for messages: 'argument', 'FILE:3', '<stdin>:1'."""
    value: str | bytes | None
    """Record text or RLP bytes; None when the line could not be understood."""
    error: str | None = None


def _parse_line(label: str, text: str) -> _Input:
    if text.startswith("enr:"):
        return _Input(label, text)
    if text.startswith("enode://"):
        return _Input(
            label,
            None,
            "this is an enode URL, not a node record (records start with 'enr:');"
            " check enode URLs with 'discv5 static-nodes check'",
        )
    if _HEX_RE.fullmatch(text):
        return _Input(label, bytes.fromhex(text.removeprefix("0x")))
    return _Input(label, None, "not a node record (want 'enr:...' or hex RLP)")


def _inputs(source: str) -> list[_Input]:
    if source == "-" or (not source.startswith(("enr:", "enode://")) and os.path.exists(source)):
        label, data = read_text_source(source)
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            # Not text: treat the whole file as one binary RLP record (as devp2p enrdump does).
            return [_Input(label, data)]
        inputs = []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if line and not line.startswith("#"):
                inputs.append(_parse_line(f"{label}:{number}", line))
        if not inputs:
            raise CommandError(f"{label}: no records found")
        return inputs
    parsed = _parse_line("argument", source.strip())
    if parsed.value is None and not source.startswith("enode://"):
        raise CommandError(
            f"{source!r} is not a node record ('enr:...' or hex RLP), nor a file that exists"
        )
    return [parsed]


def _load(value: str | bytes, verify: bool) -> tuple[ENR, str | None]:
    """Decode (and verify); with ``verify=False`` a bad signature is returned as the 2nd item."""
    try:
        try:
            return ENR.from_any(value), None
        except ENRSignatureError as exc:
            if verify:
                raise CommandError(
                    f"invalid record: {exc} (use --no-verify to show the record anyway)"
                ) from None
            return ENR.from_any(value, verify=False), str(exc)
    except ENRError as exc:
        raise CommandError(f"invalid record: {exc}") from None


def _printable_key(key: bytes) -> str:
    if key and all(0x21 <= b < 0x7F for b in key):
        return key.decode("ascii")
    return "0x" + key.hex()


def _known_value(key: bytes, raw: Item, problem: str | None) -> Any:
    """The decoded value of a well-known key for display, or None when it is unusable."""
    if not isinstance(raw, bytes):
        return None
    if key == b"onion3" or key == b"id":
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            return None
    if problem is not None:
        return None
    if key == b"ip" or key == b"ip6":
        return str(ipaddress.ip_address(raw))
    if key in _PORT_KEYS:
        return int.from_bytes(raw, "big")
    return "0x" + raw.hex()  # secp256k1: the compressed key


def _text_value(item: Item) -> str:
    if isinstance(item, bytes):
        return "0x" + item.hex()
    return "[" + ", ".join(_text_value(x) for x in item) + "]"


@dataclass(frozen=True, slots=True)
class _Entry:
    key: bytes
    raw: Item
    known: bool
    value: Any
    problem: str | None


def _entries(record: ENR) -> list[_Entry]:
    problems = record.entry_problems()
    out = []
    for key, raw in record.items():
        known = key in _KNOWN_KEYS
        problem = problems.get(key.decode("ascii", "replace")) if known else None
        value = _known_value(key, raw, problem) if known else hex_item(raw)
        out.append(_Entry(key, raw, known, value, problem))
    return out


@dataclass(frozen=True, slots=True)
class _Summary:
    node_id: str | None
    node_id_error: str | None
    enode: str | None
    enode_error: str | None
    enode_ip: str | None
    """The IP-based enode, when the record also has a valid onion3 (the preferred host)."""


def _summarize(record: ENR) -> _Summary:
    try:
        node_id, node_id_error = record.node_id.hex(), None
    except ENRError as exc:
        node_id, node_id_error = None, str(exc)
    try:
        enode, enode_error = str(enode_from_enr(record)), None
    except EnodeError as exc:
        enode, enode_error = None, str(exc)
    enode_ip = None
    if record.onion3 is not None and enode is not None:
        try:
            enode_ip = str(enode_from_enr(record, prefer_onion=False))
        except EnodeError:
            pass
    return _Summary(node_id, node_id_error, enode, enode_error, enode_ip)


def _record_json(label: str, record: ENR, signature_error: str | None) -> dict[str, Any]:
    summary = _summarize(record)
    entries = []
    for entry in _entries(record):
        item: dict[str, Any] = {
            "key": _printable_key(entry.key),
            "raw": hex_item(entry.raw),
            "value": entry.value,
        }
        if entry.known:
            item["status"] = "invalid" if entry.problem else "valid"
            item["problem"] = entry.problem
        entries.append(item)
    public_key = record.public_key
    return {
        "source": label,
        "record": record.to_text(),
        "node_id": summary.node_id,
        "node_id_error": summary.node_id_error,
        "seq": record.seq,
        "identity_scheme": record.identity_scheme,
        "signature": "valid" if signature_error is None else "invalid",
        "signature_error": signature_error,
        "verified": signature_error is None,
        "size": len(record),
        "public_key": None if public_key is None else public_key.uncompressed.hex(),
        "enode": summary.enode,
        "enode_error": summary.enode_error,
        "enode_ip": summary.enode_ip,
        "entries": entries,
        "problems": record.entry_problems(),
    }


def _text_entry(entry: _Entry) -> str:
    if not entry.known:
        return _text_value(entry.raw)
    if entry.key == b"onion3":
        shown = entry.value if entry.value is not None else _text_value(entry.raw)
        if entry.problem is None:
            return f"{shown}  (valid onion3 address)"
        return f"{shown!r}  (!) invalid onion3: {entry.problem}"
    if entry.problem is not None or entry.value is None:
        reason = entry.problem or "unusable value"
        return f"{_text_value(entry.raw)}  (!) {reason}"
    if entry.key == b"id":
        return f'"{entry.value}"'
    return str(entry.value)


def _print_record(label: str | None, record: ENR, signature_error: str | None) -> None:
    summary = _summarize(record)
    lines = []
    if label is not None:
        lines.append(f"# {label}")
    if signature_error is not None:
        lines.append(f"UNVERIFIED RECORD: {signature_error}")
    node_id = summary.node_id or f"unknown ({summary.node_id_error})"
    lines.append(f"Node ID:     {node_id}")
    lines.append(f"Sequence:    {record.seq}")
    lines.append(f"Scheme:      {record.identity_scheme or 'none'}")
    if signature_error is None:
        lines.append("Signature:   valid")
    else:
        lines.append(f"Signature:   INVALID ({signature_error})")
    lines.append(f"Size:        {len(record)} bytes")
    if summary.enode is not None:
        lines.append(f"Enode:       {summary.enode}")
        if summary.enode_ip is not None:
            lines.append(f"Enode (IP):  {summary.enode_ip}")
    else:
        lines.append(f"Enode:       none: {summary.enode_error}")
    entries = _entries(record)
    lines.append(f"Entries ({len(entries)}):")
    width = max((len(_printable_key(e.key)) for e in entries), default=0)
    for entry in entries:
        lines.append(f"  {_printable_key(entry.key):<{width}}  {_text_entry(entry)}")
    problems = record.entry_problems()
    if problems:
        lines.append(f"Problems ({len(problems)}):")
        lines.extend(f"  {key}: {reason}" for key, reason in problems.items())
    print("\n".join(lines))


def _decode(args: argparse.Namespace) -> int:
    inputs = _inputs(args.source)
    as_json: bool = args.json
    verify = not args.no_verify
    several = len(inputs) > 1
    failed: list[str] = []
    for index, item in enumerate(inputs):
        try:
            if item.value is None:
                raise CommandError(str(item.error))
            record, signature_error = _load(item.value, verify)
        except CommandError as exc:
            message = f"{item.label}: {exc}" if several or item.label != "argument" else str(exc)
            if not several:
                raise CommandError(message) from None
            failed.append(message)
            if as_json:
                print_json({"source": item.label, "error": str(exc)})
            else:
                # Keep the per-record failure in the stdout report too, then a one-line error.
                print(("\n" if index else "") + f"# {item.label}\nINVALID: {exc}")
            continue
        if as_json:
            print_json(_record_json(item.label, record, signature_error))
        else:
            if index:
                print()
            _print_record(item.label if several else None, record, signature_error)
    if failed:
        count = f"{len(failed)} of {len(inputs)} records"
        raise CommandError(f"{count} are invalid; first: {failed[0]}")
    return EXIT_OK


# --- create -------------------------------------------------------------------------------------


def _set_arg(text: str) -> tuple[bytes, bytes]:
    key_text, eq, value_text = text.partition("=")
    if not eq or not key_text:
        raise argparse.ArgumentTypeError(f"want KEY=HEX, got {text!r}")
    try:
        key = key_text.encode("ascii")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"key must be ASCII, got {key_text!r}") from None
    value_hex = value_text.removeprefix("0x")
    if len(value_hex) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", value_hex):
        raise argparse.ArgumentTypeError(f"value of {key_text!r} is not hex bytes: {value_text!r}")
    return key, bytes.fromhex(value_hex)


def _create(args: argparse.Namespace) -> int:
    extra: dict[bytes, Any] = {}
    for key, value in args.set:
        if key in _OPTION_KEYS:
            raise UsageError(
                f"--set cannot set {key.decode()!r}: {_OPTION_KEYS[key]}", args.command_prog
            )
        if key in extra:
            raise UsageError(f"--set gives {key.decode()!r} twice", args.command_prog)
        if key in _PORT_KEYS:  # quic / quic6: stored as a canonical integer
            if not value or value[:1] == b"\x00" or len(value) > 2:
                raise UsageError(
                    f"--set {key.decode()}: a port is 1 or 2 bytes without leading zero",
                    args.command_prog,
                )
            extra[key] = int.from_bytes(value, "big")
        else:
            extra[key] = value
    for name in ("ip", "ip6", "udp", "tcp", "udp6", "tcp6", "onion3"):
        value = getattr(args, name)
        if value is not None:
            extra[name.encode()] = value
    if args.onion_dir is not None:
        extra[b"onion3"] = read_hidden_service_dir(args.onion_dir).address
    key = read_nodekey(args.nodekey)
    record = ENR.build(key, args.seq, extra=extra)
    print(record.to_text())
    return EXIT_OK
