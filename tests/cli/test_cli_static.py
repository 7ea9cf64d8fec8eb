"""``discv5 static-nodes check``, including the incident that started the project."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from discv5._cli._static import check_entries
from enr import ENR, OnionServiceKey, PrivateKey, PublicKey, enode_from_enr

from ._helpers import EIP778_PUBLIC_KEY, Runner

RNG = random.Random(778)


def valid_enode(seed: int, host: str = "10.0.0.1", port: int = 30303) -> str:
    key = PrivateKey(seed.to_bytes(32, "big"))
    return f"enode://{key.public_key.uncompressed.hex()}@{host}:{port}"


def random_hex_enode(host: str = "10.0.0.1") -> str:
    """What the broken init container wrote: 64 random bytes as the 'node id'."""
    while True:
        candidate = RNG.randbytes(64)
        try:
            PublicKey.from_bytes(candidate)
        except ValueError:  # InvalidPublicKey: as almost every random 64 bytes are
            return f"enode://{candidate.hex()}@{host}:30303"


def write(tmp_path: Path, value: Any, name: str = "static-nodes.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(value, indent=2))
    return path


# --- the incident ---------------------------------------------------------------------------------


def test_flags_random_hex_node_ids(cli: Runner, tmp_path: Path) -> None:
    entries = [random_hex_enode(f"10.0.0.{i}") for i in range(5)]
    path = write(tmp_path, entries)
    result = cli("static-nodes", "check", path)
    result.assert_error(1, "5 bad of 5 entries")
    for index in range(5):
        assert f"[{index}] BAD" in result.out
    assert result.out.count("not a point on the secp256k1 curve") == 5
    assert result.out.count("random bytes are not a node id") == 5
    assert result.out.splitlines()[-1] == f"{path}: 5 entries: 0 ok, 5 bad, 0 with warnings"


def test_accepts_valid_enodes(cli: Runner, tmp_path: Path) -> None:
    onion = OnionServiceKey.from_seed(bytes(32)).address
    entries = [
        valid_enode(1),
        valid_enode(2, "2001:db8::1").replace("@2001:db8::1", "@[2001:db8::1]"),
        valid_enode(3, onion),
        valid_enode(4, "relay-3.relay.svc.cluster.local") + "?discport=30301",
    ]
    path = write(tmp_path, entries)
    result = cli("static-nodes", "check", path)
    result.assert_ok()
    assert result.out == f"{path}: 4 entries: 4 ok, 0 bad, 0 with warnings\n"
    listed = cli("static-nodes", "check", "--all", path)
    listed.assert_ok()
    for index in range(4):
        assert f"[{index}] OK" in listed.out


def test_accepts_output_of_key_to_enode(cli: Runner, tmp_path: Path) -> None:
    """The workflow that replaces the broken init container, end to end."""
    urls = []
    for i in range(3):
        key = tmp_path / f"nodekey-{i}"
        cli("key", "generate", "--nodekey", key).assert_ok()
        result = cli("key", "to-enode", "--nodekey", key, "--host", f"10.0.0.{i + 1}")
        result.assert_ok()
        urls.append(result.out.strip())
    cli("static-nodes", "check", write(tmp_path, urls)).assert_ok()


# --- every kind of bad entry ----------------------------------------------------------------------

GOOD = valid_enode(1)
GOOD_KEY = GOOD[len("enode://") :].partition("@")[0]
# A second valid key for malformed entries, so they are not also "same node id as entry [0]".
KEY = valid_enode(7)[len("enode://") :].partition("@")[0]


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (random_hex_enode(), "random bytes are not a node id"),
        (f"enode://{'ab' * 32}@10.0.0.1:30303", "64 hex characters is a node id hash"),
        (f"enode://{'ab' * 63}@10.0.0.1:30303", "126 hex characters, want 128"),
        (f"enode://{'zz' * 64}@10.0.0.1:30303", "not hexadecimal"),
        (f"enode://{KEY}@10.0.0.1:0", "tcp port is 0"),
        (f"enode://{KEY}@10.0.0.1:30303?discport=0", "discport is 0"),
        (f"enode://{KEY}@10.0.0.1:70000", "invalid port"),
        (f"enode://{KEY}@10.0.0.1", "missing ':<port>'"),
        (f"enode://{KEY}@bad_host!:30303", "invalid host"),
        (f"enode://{KEY}@1.2.3:30303", "invalid IP address"),
        (f"enode://{KEY}@0.0.0.0:30303", "unspecified address"),
        (f"enode://{KEY}@224.0.0.1:30303", "multicast address"),
        (f"enode://{KEY}@{'a' * 56}.onion:30303", "invalid onion3 host"),
        (f"enode://{KEY}@{'a' * 16}.onion:30303", "v2 onion addresses"),
        (f"enode://{KEY}", "incomplete enode cannot be dialled"),
        (GOOD_KEY + "@10.0.0.1:30303", "missing 'enode://' prefix"),
        ("http://example.com", "not an enode URL"),
        (" " + GOOD, "whitespace"),
        (GOOD + "\n", "whitespace"),
        ("enr:AAAA", "invalid record"),
        (42, "entry is a number, not a string: geth rejects the whole file"),
        (True, "entry is a boolean"),
        ([GOOD], "entry is an array"),
        ({"url": GOOD}, "entry is an object"),
    ],
)
def test_bad_entry(cli: Runner, tmp_path: Path, entry: Any, reason: str) -> None:
    path = write(tmp_path, [GOOD, entry])
    result = cli("static-nodes", "check", path)
    result.assert_error(1, "1 bad of 2 entries")
    assert "[1] BAD" in result.out
    assert reason in result.out
    assert "[0]" not in result.out

    doc = json.loads(cli("static-nodes", "check", "--json", path).out)
    assert doc["valid"] is False
    assert (doc["entries"], doc["ok"], doc["bad"]) == (2, 1, 1)
    bad = doc["results"][1]
    assert bad["index"] == 1
    assert bad["status"] == "bad"
    assert bad["entry"] == entry
    assert any(reason in p for p in bad["problems"])


def test_duplicates(cli: Runner, tmp_path: Path) -> None:
    same_node_other_host = valid_enode(1, "10.9.9.9")
    path = write(tmp_path, [GOOD, valid_enode(2), GOOD, same_node_other_host])
    result = cli("static-nodes", "check", path)
    result.assert_error(1, "2 bad of 4 entries")
    assert "[2] BAD" in result.out
    assert "duplicate of entry [0]" in result.out
    assert "[3] BAD" in result.out
    assert "same node id as entry [0]" in result.out


def test_enr_entries(cli: Runner, tmp_path: Path) -> None:
    key = PrivateKey(bytes(31) + b"\x09")
    dialable = ENR.build(key, ip="10.0.0.9", tcp=30303)
    no_tcp = ENR.build(PrivateKey(bytes(31) + b"\x0a"), ip="10.0.0.10", udp=30303)
    path = write(tmp_path, [dialable.to_text(), no_tcp.to_text()])
    result = cli("static-nodes", "check", "--json", path)
    result.assert_error(1)
    doc = json.loads(result.out)
    assert doc["results"][0]["status"] == "ok"
    assert doc["results"][0]["enode"] == str(enode_from_enr(dialable))
    assert doc["results"][0]["node_id"] == dialable.node_id.hex()
    (problem,) = doc["results"][1]["problems"]
    assert problem.startswith("record gives no dialable enode: record has no tcp port")


def test_warnings_pass_unless_strict(cli: Runner, tmp_path: Path) -> None:
    path = write(tmp_path, [GOOD, "", None, valid_enode(2, "127.0.0.1")])
    result = cli("static-nodes", "check", path)
    result.assert_ok()
    assert "[1] WARNING" in result.out
    assert "empty string (geth skips it)" in result.out
    assert "null entry" in result.out
    assert "loopback address 127.0.0.1" in result.out
    assert result.out.splitlines()[-1].endswith("4 entries: 1 ok, 0 bad, 3 with warnings")
    strict = cli("static-nodes", "check", "--strict", path)
    strict.assert_error(1, "3 with warnings (--strict) of 4 entries")


def test_empty_array_is_fine(cli: Runner, tmp_path: Path) -> None:
    result = cli("static-nodes", "check", write(tmp_path, []))
    result.assert_ok()
    assert "0 entries: 0 ok" in result.out


def test_stdin(cli: Runner) -> None:
    result = cli("static-nodes", "check", "-", stdin=json.dumps([GOOD]))
    result.assert_ok()
    assert result.out == "<stdin>: 1 entry: 1 ok, 0 bad, 0 with warnings\n"


# --- file-level problems ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "not valid JSON"),
        (b'["enode://x",]', "not valid JSON: Expecting value at line 1 column 14"),
        (b"[NaN]", "NaN is not valid JSON"),
        (b'{"nodes": []}', "not a JSON array of enode URLs: found an object"),
        (b'"enode://..."', "found a string"),
        (b"null", "found null"),
        (b'["\xff"]', "not UTF-8 text"),
        (b'\xef\xbb\xbf["x"]', "not valid JSON"),
    ],
)
def test_unusable_file(cli: Runner, tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "static-nodes.json"
    path.write_bytes(content)
    result = cli("static-nodes", "check", path)
    result.assert_error(1, str(path), fragment)
    assert result.out == ""
    as_json = cli("static-nodes", "check", "--json", path)
    as_json.assert_error(1, fragment)
    doc = json.loads(as_json.out)
    assert doc["valid"] is False
    assert fragment in doc["error"]


def test_missing_file_and_usage(cli: Runner, tmp_path: Path) -> None:
    cli("static-nodes", "check", tmp_path / "nope.json").assert_error(
        1, "nope.json: No such file or directory"
    )
    cli("static-nodes", "check", tmp_path).assert_error(1, "Is a directory")
    cli("static-nodes", "check").assert_error(2, "required", "static-nodes check --help")
    cli("static-nodes").assert_error(2, "missing subcommand", "check")


def test_check_entries_api() -> None:
    reports = check_entries([GOOD, random_hex_enode(), GOOD])
    assert [r.status for r in reports] == ["ok", "bad", "bad"]
    assert reports[0].enode is not None
    assert reports[0].to_json()["node_id"] == reports[0].enode.node_id.hex()
    assert reports[2].problems == ["duplicate of entry [0]"]
    assert EIP778_PUBLIC_KEY not in GOOD
