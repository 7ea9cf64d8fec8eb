"""``discv5 static-nodes check``: find the entries of a static-nodes.json that geth cannot use.

geth reads the file as a JSON array of strings (one enode URL or ``enr:`` record each). A file that
is not JSON, not an array, or has a non-string element is rejected *as a whole*: the node then has
no static peers at all. A single bad string is logged and skipped; the classic case is a made-up
node id (random hex is almost never a secp256k1 public key), which geth reports as
"invalid public key". This command finds all of these before geth does.

The checks are pure functions (:func:`load_static_nodes`, :func:`check_entries`) so other tools
can reuse them; the command only formats their result.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from enr import ENR, Enode, EnodeError, ENRError, enode_from_enr, parse_enode

from ._common import (
    EXIT_OK,
    CommandError,
    Subparsers,
    add_command,
    add_group,
    is_numeric_name,
    print_json,
    read_text_source,
)

__all__ = ["EntryReport", "check_entries", "load_static_nodes", "register"]

Status = Literal["ok", "warning", "bad"]

_HEX_RE: Final = re.compile(r"[0-9a-fA-F]*")

_CHECK_EPILOG: Final = """\
checks, per entry: JSON type (a non-string element makes geth reject the whole file), enode
syntax, public key length and that it is a point on secp256k1 (random bytes are not a node id),
host (IP, DNS name or onion3 address with valid checksum), ports (not 0), complete form (a host
is needed to dial), enr: records (signature, dialable), and duplicates (same URL or same node id).
Warnings (loopback host, empty or null entries that geth skips) do not fail the check unless
--strict is given.

examples:
  discv5 static-nodes check /data/geth/static-nodes.json
  discv5 static-nodes check --json static-nodes.json | jq '.results[] | select(.status=="bad")'
  kubectl exec relay-0 -- cat /data/static-nodes.json | discv5 static-nodes check -

exit status: 0 every entry usable, 1 a bad entry or an unusable file, 2 usage error.
"""


def register(subparsers: Subparsers) -> None:
    """Add ``discv5 static-nodes check``."""
    group = add_group(
        subparsers,
        "static-nodes",
        help="check geth static-nodes.json files",
        description="Work with geth static-nodes.json files (JSON arrays of enode URLs).",
        epilog="examples:\n  discv5 static-nodes check /data/geth/static-nodes.json\n",
    )
    check = add_command(
        group,
        "check",
        _check,
        help="report every entry geth would reject, with its index and the reason",
        description=(
            "Read a static-nodes.json and report each entry geth could not use, with its index\n"
            "in the array and the reason, then a summary."
        ),
        epilog=_CHECK_EPILOG,
    )
    check.add_argument("file", metavar="FILE", help="static-nodes.json, or '-' for stdin")
    check.add_argument("--json", action="store_true", help="print the report as one JSON object")
    check.add_argument("--all", action="store_true", help="list good entries too")
    check.add_argument("--strict", action="store_true", help="count warnings as bad entries")


@dataclass(slots=True)
class EntryReport:
    """The verdict on one element of the array."""

    index: int
    """Position in the JSON array (0-based)."""
    entry: Any
    """The element as read from JSON."""
    problems: list[str] = field(default_factory=list)
    """Reasons geth cannot use the entry (non-empty means bad)."""
    warnings: list[str] = field(default_factory=list)
    """Usable, but probably not what was meant."""
    enode: Enode | None = None
    """The parsed enode when the entry is syntactically valid."""

    @property
    def status(self) -> Status:
        """ "bad" if any problem, else "warning" if any warning, else "ok"."""
        if self.problems:
            return "bad"
        return "warning" if self.warnings else "ok"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of this report."""
        return {
            "index": self.index,
            "entry": self.entry,
            "status": self.status,
            "problems": self.problems,
            "warnings": self.warnings,
            "node_id": None if self.enode is None else self.enode.node_id.hex(),
            "enode": None if self.enode is None else str(self.enode),
        }


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_static_nodes(data: bytes) -> list[Any]:
    """Parse the file's bytes as geth would: a JSON array (of strings, checked per entry later).

    Raises:
        CommandError: not UTF-8, not JSON (with line and column), or not an array.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CommandError(f"not UTF-8 text (byte {exc.start}); want a JSON array") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            " (geth would load no static nodes)"
        ) from None
    except ValueError as exc:
        raise CommandError(f"not valid JSON: {exc} (geth would load no static nodes)") from None
    if not isinstance(value, list):
        raise CommandError(
            f"not a JSON array of enode URLs: found {_json_type(value)}"
            " (geth would load no static nodes)"
        )
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _parse_entry(text: str) -> Enode:
    if text.startswith("enr:"):
        try:
            record = ENR.from_text(text)
        except ENRError as exc:
            raise EnodeError(f"invalid record: {exc}") from None
        try:
            return enode_from_enr(record)
        except EnodeError as exc:
            raise EnodeError(f"record gives no dialable enode: {exc}") from None
    if not text.startswith("enode://"):
        hint = ""
        key = text.partition("@")[0]
        if len(key) == 128 and _HEX_RE.fullmatch(key):
            hint = " (missing 'enode://' prefix)"
        raise EnodeError(f"not an enode URL or enr: record{hint}")
    key = text[len("enode://") :].partition("@")[0].partition("?")[0]
    if not _HEX_RE.fullmatch(key):
        raise EnodeError("invalid public key: not hexadecimal")
    if len(key) == 64:
        raise EnodeError(
            "invalid public key: 64 hex characters is a node id hash or a private key, not the"
            " 64-byte public key (128 hex characters) an enode needs; see 'discv5 key to-enode'"
        )
    if len(key) != 128:
        raise EnodeError(f"invalid public key: {len(key)} hex characters, want 128 (64 bytes)")
    enode = parse_enode(text)
    if enode.host_kind == "dns" and is_numeric_name(str(enode.host)):
        raise EnodeError(f"invalid host {enode.host!r}: not an IPv4 address")
    return enode


def _check_one(index: int, entry: Any) -> EntryReport:
    report = EntryReport(index, entry)
    if entry is None:
        report.warnings.append("null entry (geth skips it)")
        return report
    if not isinstance(entry, str):
        report.problems.append(
            f"entry is {_json_type(entry)}, not a string: geth rejects the whole file"
        )
        return report
    if not entry.strip():
        report.warnings.append("empty string (geth skips it)")
        return report
    if entry != entry.strip():
        report.problems.append("leading or trailing whitespace: geth does not strip it")
        return report
    try:
        enode = _parse_entry(entry)
    except EnodeError as exc:
        report.problems.append(str(exc))
        return report
    report.enode = enode
    report.problems.extend(enode.problems())
    ip = enode.ip
    if ip is not None:
        if ip.is_unspecified:
            report.problems.append(f"unspecified address {ip} cannot be dialled")
        elif ip.is_multicast:
            report.problems.append(f"multicast address {ip} cannot be dialled")
        elif ip.is_loopback:
            report.warnings.append(f"loopback address {ip}: reaches only this host or pod")
    return report


def check_entries(entries: list[Any]) -> list[EntryReport]:
    """Check every element of a static-nodes array, including duplicates across entries."""
    reports = []
    by_text: dict[str, int] = {}
    by_id: dict[bytes, int] = {}
    for index, entry in enumerate(entries):
        report = _check_one(index, entry)
        if isinstance(entry, str) and entry.strip():
            first = by_text.setdefault(entry, index)
            if first != index:
                report.problems.append(f"duplicate of entry [{first}]")
            elif report.enode is not None:
                first = by_id.setdefault(report.enode.node_id, index)
                if first != index:
                    report.problems.append(
                        f"same node id as entry [{first}]: geth keeps one static dial per node"
                    )
        reports.append(report)
    return reports


def _short(entry: Any) -> str:
    if not isinstance(entry, str):
        return json.dumps(entry)[:80]
    if entry.startswith("enode://"):
        key, at, rest = entry[len("enode://") :].partition("@")
        if len(key) > 16:
            key = f"{key[:8]}…{key[-4:]}"
        entry = f"enode://{key}{at}{rest}"
    return json.dumps(entry) if entry != entry.strip() or not entry else entry[:120]


def _check(args: argparse.Namespace) -> int:
    label, data = read_text_source(args.file)
    try:
        entries = load_static_nodes(data)
    except CommandError as exc:
        if args.json:
            print_json({"file": label, "valid": False, "error": str(exc)})
        raise CommandError(f"{label}: {exc}") from None
    reports = check_entries(entries)
    bad = sum(r.status == "bad" for r in reports)
    warned = sum(r.status == "warning" for r in reports)
    ok = len(reports) - bad - warned
    failed = bad > 0 or (args.strict and warned > 0)
    if args.json:
        print_json(
            {
                "file": label,
                "valid": not failed,
                "entries": len(reports),
                "ok": ok,
                "bad": bad,
                "warnings": warned,
                "results": [r.to_json() for r in reports],
            }
        )
    else:
        for report in reports:
            if report.status == "ok" and not args.all:
                continue
            print(f"[{report.index}] {report.status.upper():<8} {_short(report.entry)}")
            for problem in report.problems:
                print(f"    {problem}")
            for warning in report.warnings:
                print(f"    warning: {warning}")
        plural = "entry" if len(reports) == 1 else "entries"
        print(f"{label}: {len(reports)} {plural}: {ok} ok, {bad} bad, {warned} with warnings")
    if failed:
        what = f"{bad} bad" if bad else f"{warned} with warnings (--strict)"
        raise CommandError(f"{label}: {what} of {len(reports)} entries")
    return EXIT_OK
