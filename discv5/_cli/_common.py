"""Pieces every command group shares: the parser class, error types, argument types, output.

Error discipline: a command signals bad input by raising :class:`UsageError` (wrong or missing
arguments: exit status 2) or :class:`CommandError` (the input itself is bad or a file cannot be
used: exit status 1). ``enr.ENRError``, ``OSError`` and ``ValueError`` raised by library calls are
turned into the same one-line message by :func:`discv5._cli.main`, so a command never has to wrap
them itself.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeAlias

from enr import Item, onion3_problem, parse_enode

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "Handler",
    "Parser",
    "Subparsers",
    "UsageError",
    "add_command",
    "add_group",
    "hex_item",
    "host_arg",
    "ipv4_arg",
    "ipv6_arg",
    "is_numeric_name",
    "onion3_arg",
    "port_arg",
    "print_json",
    "read_text_source",
    "seq_arg",
]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, what shells report for Ctrl-C

Handler = Callable[[argparse.Namespace], int]
"""What a command runs: gets the parsed arguments, returns the exit status."""

if TYPE_CHECKING:
    Subparsers: TypeAlias = "argparse._SubParsersAction[Parser]"
else:
    Subparsers = argparse._SubParsersAction


class UsageError(Exception):
    """The command line is wrong (exit status 2). ``prog`` names the command for the hint."""

    def __init__(self, message: str, prog: str = "discv5") -> None:
        super().__init__(message)
        self.prog = prog


class CommandError(Exception):
    """The command cannot do its job with this input (exit status 1 unless told otherwise)."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` instead of printing usage and exiting.

    ``main`` prints the error as one line; the full usage stays one ``--help`` away.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.prog)


def _missing_subcommand(parser: Parser, subparsers: Subparsers) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        names = ", ".join(subparsers.choices)
        raise UsageError(f"missing subcommand; choose one of: {names}", parser.prog)

    return handler


def add_group(
    subparsers: Subparsers, name: str, *, help: str, description: str, epilog: str = ""
) -> Subparsers:
    """Add a command group (``discv5 <name> <subcommand>``) and return its subcommand table.

    Running the group without a subcommand is a usage error that lists the subcommands.
    """
    parser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    group = parser.add_subparsers(metavar="SUBCOMMAND", title="subcommands", dest=f"{name}_cmd")
    parser.set_defaults(handler=_missing_subcommand(parser, group))
    return group


def add_command(
    subparsers: Subparsers,
    name: str,
    handler: Handler,
    *,
    help: str,
    description: str,
    epilog: str,
) -> Parser:
    """Add one command; ``epilog`` holds the examples shown at the end of ``--help``."""
    parser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.set_defaults(handler=handler, command_prog=parser.prog)
    return parser


# --- argument types (raise ArgumentTypeError: argparse turns it into a usage error) -----------


def port_arg(text: str) -> int:
    """A TCP/UDP port, 1..65535 (0 would tell peers the node is not listening)."""
    if not re.fullmatch(r"[0-9]{1,5}", text) or not 1 <= int(text) <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"port must be a number in 1..65535, got {text!r}")
    return int(text)


def seq_arg(text: str) -> int:
    """A record sequence number, 0..2**64-1."""
    if not re.fullmatch(r"[0-9]+", text) or int(text) >= 2**64:
        raise argparse.ArgumentTypeError(f"seq must be an integer in 0..2**64-1, got {text!r}")
    return int(text)


def ipv4_arg(text: str) -> str:
    """An IPv4 address in dotted form."""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IPv4 address: {text!r}") from None


def ipv6_arg(text: str) -> str:
    """An IPv6 address (brackets allowed)."""
    try:
        return str(ipaddress.IPv6Address(text.removeprefix("[").removesuffix("]")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IPv6 address: {text!r}") from None


def onion3_arg(text: str) -> str:
    """A Tor v3 onion address (``<56 base32>.onion``), checksum checked."""
    problem = onion3_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"invalid onion3 address {text!r}: {problem}")
    return text


# The secp256k1 generator point: a valid public key, used only to ask parse_enode whether a
# host would be accepted in an enode URL (so hosts follow exactly the library's rules).
_PROBE_KEY: Final = (
    "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
)


def host_arg(text: str) -> str:
    """An enode host: IPv4, IPv6 (brackets optional), DNS name or onion3 address; no port."""
    host = text.removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        if ":" in host:
            raise argparse.ArgumentTypeError(
                f"invalid host {text!r}: give the host alone and the port with --tcp"
            ) from None
    try:
        parse_enode(f"enode://{_PROBE_KEY}@{host}:1")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid host {text!r}: {exc}") from None
    if is_numeric_name(host):
        raise argparse.ArgumentTypeError(f"invalid host {text!r}: not an IPv4 address")
    return host


def is_numeric_name(host: str) -> bool:
    """True for a "DNS name" made only of digits and dots (``1.2.3``, ``999.1.1.1``).

    Such a host passes the DNS-name syntax check but is almost surely a mistyped IPv4 address;
    geth would try to resolve it and fail.
    """
    labels = host.removesuffix(".").split(".")
    return all(label.isdigit() for label in labels)


# --- input and output ---------------------------------------------------------------------------


def read_text_source(path: str) -> tuple[str, bytes]:
    """Read a file, or standard input for ``-``. Returns (label for messages, bytes).

    Raises:
        OSError: the file cannot be read (main() prints it as one line).
    """
    if path == "-":
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is not None:
            return "<stdin>", bytes(buffer.read())
        return "<stdin>", sys.stdin.read().encode("utf-8", "surrogateescape")
    with open(path, "rb") as f:
        return path, f.read()


def hex_item(item: Item) -> Any:
    """A raw RLP value for JSON: ``"0x.."`` for byte strings, nested lists for lists."""
    if isinstance(item, bytes):
        return "0x" + item.hex()
    return [hex_item(x) for x in item]


def print_json(value: Any) -> None:
    """One JSON document on one line (JSON Lines friendly), keys in insertion order."""
    print(json.dumps(value, ensure_ascii=False))
