"""Behaviour shared by every command: parser structure, help, version, exit codes, no tracebacks."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import discv5._cli
import discv5._cli._enr
from discv5._cli import GROUPS, build_parser, main

from ._helpers import EIP778_RECORD, Runner


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser in the tree with its command path, the root included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


ALL_COMMANDS = [path for path, _ in commands(build_parser())]


def test_command_tree() -> None:
    assert set(ALL_COMMANDS) >= {
        (),
        ("enr",),
        ("enr", "decode"),
        ("enr", "create"),
        ("key",),
        ("key", "generate"),
        ("key", "show"),
        ("key", "to-enode"),
        ("static-nodes",),
        ("static-nodes", "check"),
    }


def test_groups_register_themselves() -> None:
    # Adding a group is one name in GROUPS: a module of discv5._cli with register(subparsers).
    for name in GROUPS:
        module = __import__(f"discv5._cli.{name}", fromlist=["register"])
        assert callable(module.register)


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "discv5")
def test_every_command_has_help_with_examples(cli: Runner, path: tuple[str, ...]) -> None:
    result = cli(*path, "--help")
    result.assert_ok()
    assert result.out.startswith(f"usage: {' '.join(('discv5', *path))}")
    examples = result.out.partition("examples:\n")[2]
    assert examples, "the epilog has no 'examples:' section"
    assert "discv5" in examples, "the examples should show how to run the command"


def test_version(cli: Runner) -> None:
    result = cli("--version")
    result.assert_ok()
    assert result.out.startswith("discv5 ")
    assert result.out.split()[1][0].isdigit()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "missing command; choose one of: enr, key, static-nodes"),
        (["enr"], "missing subcommand; choose one of: decode, create"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["enr", "decod", EIP778_RECORD], "invalid choice"),  # no prefix matching
        (["--bogus"], "unrecognized arguments"),
        (["enr", "decode", EIP778_RECORD, "extra"], "unrecognized arguments: extra"),
    ],
)
def test_usage_errors_are_one_line_exit_2(cli: Runner, argv: list[str], fragment: str) -> None:
    result = cli(*argv)
    result.assert_error(2, fragment, "--help')")
    assert result.out == ""


def test_keyboard_interrupt_exits_130(cli: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(source: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(discv5._cli._enr, "_inputs", interrupted)
    cli("enr", "decode", EIP778_RECORD).assert_error(130, "interrupted")


def test_broken_pipe_is_quiet(cli: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise BrokenPipeError

    monkeypatch.setattr(discv5._cli._enr, "_print_record", broken)
    result = cli("enr", "decode", EIP778_RECORD)
    assert result.code == 1
    assert result.err == ""


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (ValueError("bad\nvalue"), "discv5: error: bad value"),  # always one line
        (PermissionError(13, "Permission denied", "/x"), "discv5: error: /x: Permission denied"),
        (OSError("plain"), "discv5: error: plain"),
    ],
)
def test_library_errors_become_one_line(
    cli: Runner, monkeypatch: pytest.MonkeyPatch, exc: Exception, message: str
) -> None:
    def fail(source: str) -> None:
        raise exc

    monkeypatch.setattr(discv5._cli._enr, "_inputs", fail)
    result = cli("enr", "decode", EIP778_RECORD)
    result.assert_error(1)
    assert result.err == message + "\n"


def run_quietly(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_clean_failure(code: int, err: str, allowed: set[int]) -> None:
    assert code in allowed
    assert "Traceback" not in err
    if code:
        assert len(err.splitlines()) == 1
        assert err.startswith("discv5: error: ")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200).filter(lambda s: not s.startswith("/dev")))
def test_decode_never_tracebacks_on_text(text: str) -> None:
    code, _, err = run_quietly(["enr", "decode", "--", "enr:" + text])
    assert_clean_failure(code, err, {0, 1})
    code, _, err = run_quietly(["enr", "decode", "--no-verify", "--", text])
    assert_clean_failure(code, err, {0, 1})


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=320))
def test_decode_never_tracebacks_on_rlp_bytes(data: bytes) -> None:
    code, _, err = run_quietly(["enr", "decode", "--json", "--no-verify", "0x" + data.hex()])
    assert_clean_failure(code, err, {0, 1})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=100, deadline=None)
@given(JSON)
def test_static_nodes_never_tracebacks(value: object) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(json.dumps(value).encode())))
        code, out, err = run_quietly(["static-nodes", "check", "--json", "-"])
    assert_clean_failure(code, err, {0, 1})
    assert json.loads(out)["valid"] is (code == 0)
