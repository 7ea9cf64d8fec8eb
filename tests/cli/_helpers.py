"""Shared data and helpers for the CLI tests (fixtures are in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from enr import PrivateKey, write_nodekey

#: EIP-778's example record and the key it was signed with (the spec's "example" section).
EIP778_RECORD = (
    "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R33Ls8RRcy5"
    "wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8yWM0xOIN1ZHCCdl8"
)
EIP778_NODE_ID = "a448f24c6d18e575453db13171562b71999873db5b286df957af199ec94617f7"
EIP778_SECRET = "b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291"
EIP778_PUBLIC_KEY = (
    "ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd3138"
    "7574077f301b421bc84df7266c44e9e6d569fc56be00812904767bf5ccd1fc7f"
)
ONION_SEED = bytes(range(32))


@dataclass(frozen=True)
class Result:
    """What one CLI run produced."""

    code: int
    out: str
    err: str

    def assert_error(self, code: int, *fragments: str) -> None:
        """Exit ``code``, and stderr is one ``discv5: error:`` line containing ``fragments``."""
        assert self.code == code, (self.code, self.out, self.err)
        assert "Traceback" not in self.err + self.out
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("discv5: error: "), self.err
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines[0])

    def assert_ok(self) -> None:
        """Exit 0 and nothing on stderr."""
        assert self.code == 0, (self.code, self.out, self.err)
        assert self.err == ""


Runner = Callable[..., Result]


def make_nodekey(directory: Path, name: str, seed: int) -> tuple[Path, PrivateKey]:
    """A nodekey file with a deterministic key derived from ``seed``."""
    key = PrivateKey(seed.to_bytes(32, "big"))
    path = directory / name
    write_nodekey(path, key)
    return path, key
