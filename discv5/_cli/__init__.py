"""The ``discv5`` command-line tool: one console script with command groups.

Modelled on go-ethereum's ``devp2p`` tool. Every group lives in its own module under this package
and exposes ``register(subparsers)``; adding a group is one more name in :data:`GROUPS`.

Exit status: 0 success, 1 the input is bad or a command failed, 2 usage error, 130 interrupted.
Every error is one line on standard error, ``discv5: error: <what went wrong>``; bad input never
produces a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Final

from enr import ENRError

from ._common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    Parser,
    UsageError,
)

__all__ = ["GROUPS", "build_parser", "main"]

#: Command groups, in ``--help`` order: modules of this package, each with ``register()``.
GROUPS: Final = ("_enr", "_key", "_static", "_noderun", "_crawl", "_sidecar")

_PROG: Final = "discv5"
_EPILOG: Final = """\
examples:
  discv5 enr decode enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOon...
  discv5 key generate --nodekey nodekey --onion-dir hs/
  discv5 key to-enode --nodekey nodekey --host 203.0.113.7 --tcp 30303
  discv5 static-nodes check static-nodes.json

Run 'discv5 COMMAND --help' for a command's options and examples.
exit status: 0 ok, 1 bad input or failure, 2 usage error, 130 interrupted.
"""


def _version() -> str:
    try:
        return metadata.version("discv5-py")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_parser() -> Parser:
    """The full ``discv5`` parser with every group in :data:`GROUPS` registered."""
    parser = Parser(
        prog=_PROG,
        description="Ethereum Node Discovery v5 and node records (EIP-778), with Tor onion3.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(metavar="COMMAND", title="commands", dest="command")

    def missing_command(args: argparse.Namespace) -> int:
        raise UsageError(f"missing command; choose one of: {', '.join(subparsers.choices)}")

    parser.set_defaults(handler=missing_command)
    for name in GROUPS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _error(message: str) -> None:
    print(f"{_PROG}: error: {_one_line(message)}", file=sys.stderr)


def _os_error(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _silence_stdout() -> None:
    # After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``discv5`` tool.

    Args:
        argv: the arguments after the program name; default ``sys.argv[1:]``.

    Returns:
        The exit status (it never calls ``sys.exit``, so tests can call it in-process).
    """
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help and --version print and "exit"
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        return int(args.handler(args))
    except UsageError as exc:
        _error(f"{exc} (see '{exc.prog} --help')")
        return EXIT_USAGE
    except CommandError as exc:
        _error(str(exc))
        return exc.status
    except BrokenPipeError:  # e.g. `discv5 ... | head -1`
        _silence_stdout()
        return EXIT_FAILURE
    except OSError as exc:
        _error(_os_error(exc))
        return EXIT_FAILURE
    except (ENRError, json.JSONDecodeError, ValueError) as exc:
        _error(str(exc) or type(exc).__name__)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line for the user, the traceback only on request
        if os.environ.get("DISCV5_DEBUG"):
            raise
        _error(
            f"internal error: {type(exc).__name__}: {_one_line(str(exc))} (this is a bug;"
            " run with DISCV5_DEBUG=1 for the traceback and please report it)"
        )
        return EXIT_FAILURE
