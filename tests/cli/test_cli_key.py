"""``discv5 key generate``, ``key show`` and ``key to-enode``."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from enr import (
    ENR,
    OnionServiceKey,
    PrivateKey,
    parse_enode,
    read_hidden_service_dir,
    read_nodekey,
)

from ._helpers import EIP778_PUBLIC_KEY, EIP778_RECORD, Runner, make_nodekey


def fields(out: str) -> dict[str, str]:
    """'Label:  value' lines of the text report as a dict."""
    result = {}
    for line in out.splitlines():
        label, _, value = line.partition(":")
        result[label] = value.strip()
    return result


# --- generate -------------------------------------------------------------------------------------


def test_generate_nodekey(cli: Runner, tmp_path: Path) -> None:
    path = tmp_path / "nodekey"
    result = cli("key", "generate", "--nodekey", path)
    result.assert_ok()
    text = path.read_text()
    assert len(text) == 64  # geth format: 64 hex characters, no newline
    assert int(text, 16) > 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = read_nodekey(path)
    info = fields(result.out)
    assert info["Node key"] == f"{path} (written)"
    assert info["Node ID"] == key.public_key.node_id.hex()
    assert info["Public key"] == key.public_key.uncompressed.hex()
    assert info["Compressed"] == key.public_key.compressed.hex()
    assert info["Enode"].startswith(f"enode://{key.public_key.uncompressed.hex()}  ")
    assert "Onion" not in result.out


def test_generate_refuses_to_overwrite(cli: Runner, tmp_path: Path) -> None:
    path, key = make_nodekey(tmp_path, "nodekey", 42)
    before = path.read_bytes()
    cli("key", "generate", "--nodekey", path).assert_error(1, "already exists", "--force")
    assert path.read_bytes() == before
    cli("key", "generate", "--nodekey", path, "--force").assert_ok()
    assert read_nodekey(path) != key


def test_generate_onion_dir(cli: Runner, tmp_path: Path) -> None:
    hs = tmp_path / "hs"
    result = cli("key", "generate", "--onion-dir", hs)
    result.assert_ok()
    assert stat.S_IMODE(hs.stat().st_mode) == 0o700
    onion = read_hidden_service_dir(hs)
    info = fields(result.out)
    assert info["Onion dir"] == f"{hs} (written)"
    assert info["Onion address"] == onion.address == (hs / "hostname").read_text().strip()
    assert "Node ID" not in info
    # and it refuses to replace the service's identity
    cli("key", "generate", "--onion-dir", hs).assert_error(1, "already exists")
    cli("key", "generate", "--onion-dir", hs, "--force").assert_ok()
    assert read_hidden_service_dir(hs).address != onion.address


def test_generate_both_with_tcp_prints_onion_enode(cli: Runner, tmp_path: Path) -> None:
    result = cli(
        "key", "generate", "--nodekey", tmp_path / "k", "--onion-dir", tmp_path / "hs",
        "--tcp", 30303, "--json",
    )  # fmt: skip
    result.assert_ok()
    doc = json.loads(result.out)
    key = read_nodekey(tmp_path / "k")
    onion = read_hidden_service_dir(tmp_path / "hs")
    assert doc["node_id"] == key.public_key.node_id.hex()
    assert doc["public_key"] == key.public_key.uncompressed.hex()
    assert doc["enode"] == f"enode://{key.public_key.uncompressed.hex()}"
    assert doc["onion3"] == onion.address
    enode = parse_enode(doc["enode_onion"])
    assert (enode.public_key, enode.host, enode.tcp) == (key.public_key, onion.address, 30303)


def test_generate_errors(cli: Runner, tmp_path: Path) -> None:
    cli("key", "generate").assert_error(2, "--nodekey FILE and/or --onion-dir DIR")
    cli("key", "generate", "--nodekey", tmp_path / "no" / "k").assert_error(1, "does not exist")
    cli("key", "generate", "--nodekey", tmp_path).assert_error(1, "is a directory")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cli("key", "generate", "--onion-dir", a_file).assert_error(1, "not a directory")
    cli("key", "generate", "--nodekey", tmp_path / "k", "--tcp", "0").assert_error(2, "port")


# --- show -----------------------------------------------------------------------------------------


def test_show(
    cli: Runner, eip778_nodekey: Path, onion_dir: Path, onion_key: OnionServiceKey
) -> None:
    result = cli("key", "show", "--nodekey", eip778_nodekey, "--onion-dir", onion_dir, "--tcp", 9)
    result.assert_ok()
    info = fields(result.out)
    assert info["Public key"] == EIP778_PUBLIC_KEY
    assert info["Node key"] == str(eip778_nodekey)
    assert info["Onion address"] == onion_key.address
    assert info["Enode (Tor)"] == f"enode://{EIP778_PUBLIC_KEY}@{onion_key.address}:9"
    cli("key", "show").assert_error(2, "--nodekey")
    cli("key", "show", "--nodekey", onion_dir).assert_error(1)


# --- to-enode -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "suffix"),
    [
        (["--host", "203.0.113.7"], "@203.0.113.7:30303"),
        (["--host", "203.0.113.7", "--tcp", "1234"], "@203.0.113.7:1234"),
        (["--host", "203.0.113.7", "--udp", "30301"], "@203.0.113.7:30303?discport=30301"),
        (["--host", "2001:db8::7"], "@[2001:db8::7]:30303"),
        (["--host", "[2001:db8::7]", "--tcp", "1"], "@[2001:db8::7]:1"),
        (["--host", "relay-0.relay.default.svc.cluster.local"], "@relay-0.relay.default.svc"),
    ],
)
def test_to_enode_from_key_and_host(
    cli: Runner, eip778_nodekey: Path, args: list[str], suffix: str
) -> None:
    result = cli("key", "to-enode", "--nodekey", eip778_nodekey, *args)
    result.assert_ok()
    url = result.out.strip()
    assert url.startswith(f"enode://{EIP778_PUBLIC_KEY}@")
    assert suffix in url
    assert str(parse_enode(url)) == url


def test_to_enode_onion(
    cli: Runner, eip778_nodekey: Path, onion_dir: Path, onion_key: OnionServiceKey
) -> None:
    expected = f"enode://{EIP778_PUBLIC_KEY}@{onion_key.address}:30303"
    result = cli("key", "to-enode", "--nodekey", eip778_nodekey, "--onion-dir", onion_dir)
    result.assert_ok()
    assert result.out == expected + "\n"
    by_host = cli("key", "to-enode", "--nodekey", eip778_nodekey, "--host", onion_key.address)
    assert by_host.out == expected + "\n"


def test_to_enode_from_record(cli: Runner, tmp_path: Path, onion_key: OnionServiceKey) -> None:
    key = PrivateKey(bytes(31) + b"\x07")
    record = ENR.build(key, ip="10.1.2.3", tcp=30303, udp=30301, onion3=onion_key.address)
    pub = key.public_key.uncompressed.hex()
    result = cli("key", "to-enode", record.to_text())
    result.assert_ok()
    assert result.out == f"enode://{pub}@{onion_key.address}:30303?discport=30301\n"
    result = cli("key", "to-enode", "--no-onion", record.to_text())
    assert result.out == f"enode://{pub}@10.1.2.3:30303?discport=30301\n"


def test_to_enode_normalizes_an_enode(cli: Runner) -> None:
    url = f"enode://{EIP778_PUBLIC_KEY.upper()}@10.0.0.1:30303?discport=30303"
    result = cli("key", "to-enode", url)
    result.assert_ok()
    assert result.out == f"enode://{EIP778_PUBLIC_KEY}@10.0.0.1:30303\n"


def test_to_enode_record_errors(cli: Runner, eip778_nodekey: Path) -> None:
    # The EIP-778 example has no tcp entry: a relay could not dial it.
    cli("key", "to-enode", EIP778_RECORD).assert_error(1, "no tcp port")
    cli("key", "to-enode", "enr:AAAA").assert_error(1, "rlp")
    cli("key", "to-enode", "not-a-record").assert_error(1, "missing 'enr:' prefix")
    cli("key", "to-enode", EIP778_RECORD, "--nodekey", eip778_nodekey).assert_error(
        2, "drop --nodekey"
    )
    cli("key", "to-enode", EIP778_RECORD, "--tcp", "1").assert_error(2, "drop --tcp")


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        ([], 2, "give --nodekey FILE"),
        (["--host", "1.2.3.4"], 2, "give --nodekey FILE"),
        (["--nodekey", "{key}"], 2, "an enode without a host cannot be dialled"),
        (["--nodekey", "{key}", "--no-onion", "--host", "1.2.3.4"], 2, "--no-onion"),
        (["--nodekey", "{key}", "--host", "1.2.3.4:30303"], 2, "port with --tcp"),
        (["--nodekey", "{key}", "--host", "bad_host!"], 2, "invalid host"),
        (["--nodekey", "{key}", "--host", "10.0.1"], 2, "invalid IP address"),
        (["--nodekey", "{key}", "--host", "a" * 56 + ".onion"], 2, "invalid onion3 host"),
        (["--nodekey", "{key}", "--host", "1.2.3.4", "--tcp", "0"], 2, "port must be"),
        (["--nodekey", "{key}", "--host", "1.2.3.4", "--onion-dir", "x"], 2, "not allowed"),
        (["--nodekey", "{key}", "--onion-dir", "{missing}"], 1, "hs_ed25519_secret_key"),
        (["--nodekey", "{missing}", "--host", "1.2.3.4"], 1, "cannot read node key"),
    ],
)
def test_to_enode_errors(
    cli: Runner, eip778_nodekey: Path, tmp_path: Path, args: list[str], code: int, fragment: str
) -> None:
    argv = [a.format(key=eip778_nodekey, missing=tmp_path / "missing") for a in args]
    cli("key", "to-enode", *argv).assert_error(code, fragment)


def test_key_group_without_subcommand(cli: Runner) -> None:
    cli("key").assert_error(2, "missing subcommand", "generate, show, to-enode")
