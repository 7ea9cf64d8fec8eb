"""Arguments shared by the commands that run a node: node lists, addresses, keys, durations."""

from __future__ import annotations

import argparse
import ipaddress
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import trio

from enr import ENR, ENRError, PrivateKey, parse_enode, read_nodekey, unsigned_record

from ._common import UsageError

__all__ = [
    "add_node_options",
    "address_arg",
    "duration_arg",
    "load_nodekey",
    "parse_node",
    "parse_node_list",
    "run_async",
]


def parse_node(text: str) -> ENR:
    """A node given as ``enr:...`` text or an ``enode://`` URL (an IP host is needed then).

    Raises:
        ENRError: the text is neither a valid record nor a usable enode URL.
    """
    text = text.strip()
    if text.startswith("enode://"):
        return unsigned_record(parse_enode(text))
    return ENR.from_text(text)


def _short(text: str) -> str:
    return text if len(text) <= 48 else text[:45] + "..."


def parse_node_list(value: str, what: str = "bootnode", *, prog: str = "discv5") -> list[ENR]:
    """Comma-separated ``enr:``/``enode://`` entries, or ``@FILE`` with one or more per line
    (``#`` starts a comment).

    Raises:
        UsageError: an entry is not a node; the message names the entry.
    """
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {what} file {path}: {exc.strerror}", prog) from None
        entries = [
            part
            for line in text.splitlines()
            for part in re.split(r"[,\s]+", line.split("#", 1)[0])
            if part
        ]
    else:
        entries = [part.strip() for part in value.split(",") if part.strip()]
    if not entries:
        source = f"file {value[1:]}" if value.startswith("@") else "list"
        raise UsageError(f"the {what} {source} names no node", prog)
    nodes: list[ENR] = []
    for entry in entries:
        try:
            nodes.append(parse_node(entry))
        except ENRError as exc:
            raise UsageError(f"bad {what} {_short(entry)!r}: {exc}", prog) from None
    return nodes


def address_arg(text: str) -> tuple[str, int]:
    """``IP:PORT`` or ``[IPv6]:PORT`` (port 0 lets the system choose)."""
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:([0-9]{1,5})|([0-9.]+):([0-9]{1,5})", text)
    if not match:
        raise argparse.ArgumentTypeError(f"want IP:PORT or [IPv6]:PORT, got {text!r}")
    ip = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{ip!r} is not an IP address") from None
    if port > 0xFFFF:
        raise argparse.ArgumentTypeError(f"port {port} is larger than 65535")
    return ip, port


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_arg(text: str) -> float:
    """A duration: ``90`` or ``90s``, ``500ms``, ``30m``, ``2h`` (go-ethereum style, e.g. 1h30m)."""
    parts = re.findall(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?", text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 30m, 1h)")
    seconds = sum(float(n) * _UNITS[u or "s"] for n, u in parts)
    if seconds <= 0:
        raise argparse.ArgumentTypeError("duration must be positive")
    return seconds


def load_nodekey(path: str | None) -> PrivateKey | None:
    """The key in a geth ``nodekey`` file, or None for a fresh random key."""
    return None if path is None else read_nodekey(path)


def add_node_options(parser: argparse.ArgumentParser, *, default_addr: str = "0.0.0.0:0") -> None:
    """``--addr``, ``--nodekey``, ``--extaddr`` and ``--bootnodes`` as in ``devp2p``."""
    parser.add_argument(
        "--addr", type=address_arg, default=address_arg(default_addr), metavar="IP:PORT",
        help=f"UDP address to listen on (default {default_addr})",
    )
    parser.add_argument(
        "--nodekey", metavar="FILE",
        help="geth nodekey file (64 hex characters); default: a new random key",
    )
    parser.add_argument(
        "--extaddr", type=address_arg, metavar="IP:PORT",
        help="public endpoint to announce in the record; pinned: never replaced by what"
        " peers report (use this behind NAT or a Kubernetes service)",
    )
    parser.add_argument(
        "--bootnodes", metavar="LIST",
        help="comma-separated enr:/enode:// nodes, or @FILE with one per line",
    )



T = TypeVar("T")


def _leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The only exception inside nested groups, or None when there are several."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """``trio.run(fn)``, with a lone error unwrapped from trio's exception groups so that the
    command line reports it as one line (a group of several is re-raised as it is)."""
    try:
        return trio.run(fn)
    except BaseExceptionGroup as group:
        leaf = _leaf(group)
        if leaf is None:
            raise
        raise leaf from None
