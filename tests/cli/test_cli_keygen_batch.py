"""``discv5 key generate --count N --out DIR``: identities of several relays, made ahead of time.

Every file is checked against what its consumer accepts:

* ``relay-<i>/nodekey``: geth's format (64 lower-case hex characters, no newline, a valid
  secp256k1 secret), read back with read_nodekey;
* ``relay-<i>/hs/``: the real tor daemon, started offline (as in tests/enr/test_tor.py), loads
  the keys and writes the same hostname; also from a directory rebuilt out of the Secret alone;
* ``static-nodes.json``: ``discv5 static-nodes check`` accepts it (exit status 0);
* ``<NAME>.yaml``: parsed here by a small parser of the YAML subset a Secret manifest needs
  (no YAML library is a dependency), each data value base64-decoded and compared to the file.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from discv5._cli import main
from enr import PrivateKey, parse_enode, read_hidden_service_dir, read_nodekey
from enr._keys import SECP256K1_N

from .._tor import TOR, run_tor_until_hostname
from ._helpers import Runner

HS_FILES = ("hs_ed25519_secret_key", "hs_ed25519_public_key", "hostname")
_NODEKEY_RE = re.compile(rb"[0-9a-f]{64}")
_SECRET_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")  # what Kubernetes allows as a data key


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def generate(cli: Runner, out: Path, *extra: str | int) -> dict[str, Any]:
    """Run the batch command with --json; return its report."""
    result = cli("key", "generate", "--out", out, *extra, "--json")
    result.assert_ok()
    report: dict[str, Any] = json.loads(result.out)
    return report


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root``, by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# --- a small parser for the YAML of a Secret manifest ---------------------------------------------

_SCALAR_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
_LINE_RE = re.compile(r'(?P<indent> *)(?P<key>[A-Za-z]+|"(?:[^"\\]|\\.)*"):(?: (?P<value>.*))?')


def parse_secret_yaml(text: str) -> dict[str, Any]:
    """Parse block mappings (two levels, two-space indent) of double-quoted scalars.

    Anything else (an unquoted value, a tab, a list, a flow mapping, odd indentation, a
    duplicate key) fails the test: the generated manifest is meant to stay that simple.
    """
    document: dict[str, Any] = {}
    block: dict[str, Any] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        assert "\t" not in line, f"line {number}: tab"
        match = _LINE_RE.fullmatch(line)
        assert match, f"line {number}: not 'key: \"value\"' or 'key:': {line!r}"
        key_text, value = match["key"], match["value"]
        key = json.loads(key_text) if key_text.startswith('"') else key_text
        if match["indent"] == "":
            assert key not in document, f"line {number}: duplicate key {key!r}"
            if value is None:
                block = document[key] = {}
                continue
            block = None
            target = document
        else:
            assert match["indent"] == "  ", f"line {number}: indentation"
            assert block is not None, f"line {number}: indented line outside a mapping"
            assert key not in block, f"line {number}: duplicate key {key!r}"
            target = block
        assert value is not None, f"line {number}: nested mapping too deep"
        assert _SCALAR_RE.fullmatch(value), f"line {number}: value is not quoted: {value!r}"
        target[key] = json.loads(value)
    return document


def test_parser_rejects_what_it_does_not_know() -> None:
    assert parse_secret_yaml('a: "1"\nb:\n  "c": "2"\n') == {"a": "1", "b": {"c": "2"}}
    for bad in ("a: 1\n", 'a:\n    b: "x"\n', 'a: "1"\na: "2"\n', "- a\n", 'a: {"b": 1}\n'):
        with pytest.raises(AssertionError):
            parse_secret_yaml(bad)


# --- generate --count --onion ---------------------------------------------------------------------


def test_onion_batch_writes_every_file(cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    result = cli(
        "key", "generate", "--count", 3, "--onion", "--out", out, "--k8s-secret", "relay-keys"
    )
    result.assert_ok()

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == 3
    assert manifest["tcp"] == 30303
    assert manifest["k8s_secret"] == "relay-keys"
    assert manifest["k8s_secret_file"] == "relay-keys.yaml"
    relays = manifest["relays"]
    assert [r["index"] for r in relays] == [0, 1, 2]
    static = json.loads((out / "static-nodes.json").read_text())
    assert static == [r["enode"] for r in relays]

    assert mode(out) == 0o700
    for relay in relays:
        relay_dir = out / f"relay-{relay['index']}"
        assert relay["name"] == relay_dir.name
        assert relay["nodekey"] == f"{relay_dir.name}/nodekey"
        assert relay["hs_dir"] == f"{relay_dir.name}/hs"
        # geth's nodekey: exactly 64 lower-case hex characters, no newline, a valid secret
        raw = (relay_dir / "nodekey").read_bytes()
        assert _NODEKEY_RE.fullmatch(raw), raw
        assert 0 < int(raw, 16) < SECP256K1_N
        key = read_nodekey(relay_dir / "nodekey")
        assert key == PrivateKey(bytes.fromhex(raw.decode()))
        onion = read_hidden_service_dir(relay_dir / "hs")  # checks the three files agree
        assert (relay_dir / "hs" / "hostname").read_text() == onion.address + "\n"
        assert relay["node_id"] == key.public_key.node_id.hex()
        assert relay["public_key"] == key.public_key.uncompressed.hex()
        assert relay["onion3"] == onion.address
        enode = parse_enode(relay["enode"])
        assert (enode.public_key, enode.host, enode.tcp, enode.udp) == (
            key.public_key, onion.address, 30303, 30303,
        )  # fmt: skip
        assert relay["enode"] == f"enode://{relay['public_key']}@{onion.address}:30303"
        assert relay["enode_onion"] == relay["enode"]
        # modes: directories 0700, key files 0600
        assert mode(relay_dir) == mode(relay_dir / "hs") == 0o700
        assert mode(relay_dir / "nodekey") == 0o600
        for name in HS_FILES:
            assert mode(relay_dir / "hs" / name) == 0o600
        assert relay["node_id"] in result.out
        assert onion.address in result.out
    assert mode(out / "static-nodes.json") == mode(out / "manifest.json") == 0o644
    assert mode(out / "relay-keys.yaml") == 0o600
    assert len({r["node_id"] for r in relays}) == len({r["onion3"] for r in relays}) == 3
    # nothing else: no temporary files left behind
    assert sorted(snapshot(out)) == sorted(
        ["manifest.json", "static-nodes.json", "relay-keys.yaml"]
        + [f"relay-{i}/nodekey" for i in range(3)]
        + [f"relay-{i}/hs/{name}" for i in range(3) for name in HS_FILES]
    )
    # the summary names every file it wrote
    for text in (
        "Wrote 3 relay identities",
        "static-nodes.json (3 enodes, tcp port 30303)",
        "manifest.json",
        "relay-keys.yaml",
        "Secret 'relay-keys', 13 keys",
    ):
        assert text in result.out, (text, result.out)


def test_static_nodes_check_accepts_the_file(cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    generate(cli, out, "--count", 4, "--onion", "--tcp", 30305)
    path = out / "static-nodes.json"
    assert main(["static-nodes", "check", str(path)]) == 0
    assert main(["static-nodes", "check", "--strict", str(path)]) == 0
    assert all(parse_enode(e).tcp == 30305 for e in json.loads(path.read_text()))


def test_secret_manifest(cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    report = generate(cli, out, "--count", 2, "--onion", "--k8s-secret", "relay-keys")
    path = out / "relay-keys.yaml"
    assert report["k8s_secret_file"] == str(path)
    text = path.read_text("ascii")
    document = parse_secret_yaml(text)

    assert set(document) == {"apiVersion", "kind", "metadata", "type", "data"}
    assert document["apiVersion"] == "v1"
    assert document["kind"] == "Secret"
    assert document["type"] == "Opaque"
    assert document["metadata"] == {"name": "relay-keys"}
    expected = {"static-nodes.json": out / "static-nodes.json"}
    for i in range(2):
        expected[f"relay-{i}-nodekey"] = out / f"relay-{i}" / "nodekey"
        for name in HS_FILES:
            expected[f"relay-{i}-{name}"] = out / f"relay-{i}" / "hs" / name
    data = document["data"]
    assert set(data) == set(expected)
    assert report["secret_keys"] == len(expected)
    for key, value in data.items():
        assert _SECRET_KEY_RE.fullmatch(key), key
        assert base64.b64decode(value, validate=True) == expected[key].read_bytes(), key
    # one line per file, each '  "key": "base64"', every scalar of the manifest quoted
    data_lines = [line for line in text.splitlines() if line.startswith('  "')]
    assert len(data_lines) == len(expected)
    for line in text.splitlines():
        if line and not line.startswith("#") and not line.endswith(":"):
            assert line.endswith('"'), line


def test_host_suffix_batch(cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    report = generate(
        cli, out, "--count", 3, "--host-suffix", "relay.default.svc.cluster.local", "--tcp", 30304,
        "--k8s-secret", "relay-keys",
    )  # fmt: skip
    static = json.loads((out / "static-nodes.json").read_text())
    for i, (relay, entry) in enumerate(zip(report["relays"], static, strict=True)):
        enode = parse_enode(entry)
        assert enode.host == f"relay-{i}.relay.default.svc.cluster.local"
        assert enode.tcp == enode.udp == 30304
        assert enode.public_key == read_nodekey(out / f"relay-{i}" / "nodekey").public_key
        assert relay["onion3"] is relay["hs_dir"] is relay["enode_onion"] is None
        assert not (out / f"relay-{i}" / "hs").exists()
    assert main(["static-nodes", "check", str(out / "static-nodes.json")]) == 0
    data = parse_secret_yaml((out / "relay-keys.yaml").read_text())["data"]
    assert set(data) == {
        "static-nodes.json",
        "relay-0-nodekey",
        "relay-1-nodekey",
        "relay-2-nodekey",
    }


def test_host_suffix_with_onion(cli: Runner, tmp_path: Path) -> None:
    """Both: the enodes use the DNS names, the onion keys are there too."""
    out = tmp_path / "keys"
    report = generate(cli, out, "--count", 2, "--onion", "--host-suffix", ".relays.example")
    for i, relay in enumerate(report["relays"]):
        onion = read_hidden_service_dir(out / f"relay-{i}" / "hs")
        assert parse_enode(relay["enode"]).host == f"relay-{i}.relays.example"
        enode_onion = parse_enode(relay["enode_onion"])
        assert enode_onion.host == relay["onion3"] == onion.address
        assert enode_onion.public_key == parse_enode(relay["enode"]).public_key


# --- refusing to overwrite ------------------------------------------------------------------------


def test_refuses_to_overwrite_and_writes_nothing(cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    generate(cli, out, "--count", 2, "--onion", "--k8s-secret", "relay-keys")
    before = snapshot(out)
    cli("key", "generate", "--count", 2, "--onion", "--out", out).assert_error(
        1, "already exists", "--force"
    )
    # a larger batch would add relay-2, but it must not write anything either
    cli("key", "generate", "--count", 3, "--onion", "--out", out).assert_error(1, "already exists")
    assert snapshot(out) == before
    assert not (out / "relay-2").exists()

    generate(cli, out, "--count", 2, "--onion", "--k8s-secret", "relay-keys", "--force")
    after = snapshot(out)
    assert set(after) == set(before)
    for name in ("relay-0/nodekey", "relay-1/hs/hs_ed25519_secret_key", "relay-keys.yaml"):
        assert after[name] != before[name], name
    assert main(["static-nodes", "check", str(out / "static-nodes.json")]) == 0


def test_one_existing_file_blocks_the_whole_batch(cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    (out / "relay-1" / "hs").mkdir(parents=True)
    (out / "relay-1" / "hs" / "hs_ed25519_secret_key").write_bytes(b"the service's identity")
    cli("key", "generate", "--count", 3, "--onion", "--out", out).assert_error(
        1, "hs_ed25519_secret_key already exists", "--force"
    )
    assert snapshot(out) == {"relay-1/hs/hs_ed25519_secret_key": b"the service's identity"}
    assert not (out / "relay-0").exists()


def test_existing_out_directory_is_used_and_its_mode_kept(cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    out.mkdir(mode=0o755)
    os.chmod(out, 0o755)
    (out / "README").write_text("not ours")
    generate(cli, out, "--count", 1, "--onion")
    assert mode(out) == 0o755  # the user's directory: left as it was
    assert mode(out / "relay-0") == 0o700
    assert (out / "README").read_text() == "not ours"


def test_file_in_the_way_of_a_directory(cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    out.mkdir()
    (out / "relay-0").write_text("x")
    cli("key", "generate", "--count", 1, "--onion", "--out", out, "--force").assert_error(
        1, "relay-0 exists and is not a directory"
    )
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cli("key", "generate", "--count", 1, "--onion", "--out", a_file).assert_error(
        1, "not a directory"
    )
    cli("key", "generate", "--count", 1, "--onion", "--out", tmp_path / "no" / "keys").assert_error(
        1, "does not exist"
    )


# --- usage errors ---------------------------------------------------------------------------------


def test_usage_errors(cli: Runner, tmp_path: Path) -> None:
    out = str(tmp_path / "keys")
    cases: list[tuple[list[str], str]] = [
        (["--count", "2", "--onion"], "--count needs --out DIR"),
        (["--count", "2", "--out", out], "give --onion and/or --host-suffix"),
        (["--onion", "--out", out], "--out needs --count N"),
        (["--k8s-secret", "relay-keys", "--nodekey", out], "--k8s-secret needs --count N"),
        (["--count", "2", "--onion", "--out", out, "--nodekey", "k"], "drop --nodekey"),
        (["--count", "2", "--onion", "--out", out, "--onion-dir", "hs"], "drop --onion-dir"),
        (["--count", "0", "--onion", "--out", out], "count must be a number in 1..1000"),
        (["--count", "1001", "--onion", "--out", out], "count must be a number in 1..1000"),
        (["--count", "x", "--onion", "--out", out], "count must be a number"),
        (["--count", "1", "--onion", "--out", out, "--k8s-secret", "Relay_Keys"],
         "invalid Secret name"),
        (["--count", "1", "--onion", "--out", out, "--k8s-secret", "keys-"],
         "invalid Secret name"),
        (["--count", "1", "--onion", "--out", out, "--tcp", "0"], "port"),
        (["--count", "1", "--out", out, "--host-suffix", "bad_name"], "not a valid DNS name"),
        (["--count", "1", "--out", out, "--host-suffix", ".onion"], "not a valid DNS name"),
        (["--count", "1", "--out", out, "--host-suffix", "x" * 250], "not a valid DNS name"),
    ]  # fmt: skip
    for argv, fragment in cases:
        cli("key", "generate", *argv).assert_error(2, fragment)
    assert not Path(out).exists()


def test_single_key_mode_unchanged(cli: Runner, tmp_path: Path) -> None:
    cli("key", "generate").assert_error(2, "--nodekey FILE and/or --onion-dir DIR")
    cli("key", "generate", "--nodekey", tmp_path / "k").assert_ok()
    assert _NODEKEY_RE.fullmatch((tmp_path / "k").read_bytes())


def test_help_lists_the_batch_options(cli: Runner) -> None:
    result = cli("key", "generate", "--help")
    assert result.code == 0
    for text in (
        "--count N",
        "--out DIR",
        "--onion",
        "--host-suffix",
        "--k8s-secret NAME",
        "discv5 key generate --count 3 --onion --out keys --k8s-secret relay-keys",
    ):
        assert text in result.out, text


# --- the real tor daemon --------------------------------------------------------------------------

def tor_hostname(tmp_path: Path, hs_dir: Path, name: str) -> str:
    """The hostname the real tor writes for ``hs_dir`` (see tests/_tor.py)."""
    return run_tor_until_hostname(tmp_path / name, hs_dir)


@pytest.mark.tor
@pytest.mark.skipif(
    TOR is None,
    reason="tor daemon not on PATH (apt-get install tor): the generated HiddenServiceDirs were"
    " not checked against tor",
)
def test_tor_accepts_the_generated_onion_keys(cli: Runner, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    report = generate(cli, out, "--count", 2, "--onion", "--k8s-secret", "relay-keys")
    relays = report["relays"]

    # (1) relay-0's directory as written. Our hostname and public key files are removed first,
    # so the ones tor leaves are its own, derived from our secret key file.
    hs_dir = out / "relay-0" / "hs"
    secret = (hs_dir / "hs_ed25519_secret_key").read_bytes()
    public = (hs_dir / "hs_ed25519_public_key").read_bytes()
    (hs_dir / "hostname").unlink()
    (hs_dir / "hs_ed25519_public_key").unlink()
    assert tor_hostname(tmp_path, hs_dir, "tor-0") == relays[0]["onion3"]
    assert (hs_dir / "hs_ed25519_secret_key").read_bytes() == secret  # tor kept our key
    assert (hs_dir / "hs_ed25519_public_key").read_bytes() == public

    # (2) relay-1 as a pod would get it: only the secret key file, taken out of the Secret
    # manifest into a fresh 0700 directory.
    data = parse_secret_yaml((out / "relay-keys.yaml").read_text())["data"]
    pod_hs = tmp_path / "pod" / "hs"
    pod_hs.mkdir(parents=True, mode=0o700)
    os.chmod(pod_hs, 0o700)
    (pod_hs / "hs_ed25519_secret_key").write_bytes(
        base64.b64decode(data["relay-1-hs_ed25519_secret_key"])
    )
    os.chmod(pod_hs / "hs_ed25519_secret_key", 0o600)
    hostname = tor_hostname(tmp_path, pod_hs, "tor-1")
    assert hostname == relays[1]["onion3"]
    assert base64.b64decode(data["relay-1-hostname"]).decode() == hostname + "\n"
    assert (pod_hs / "hs_ed25519_public_key").read_bytes() == base64.b64decode(
        data["relay-1-hs_ed25519_public_key"]
    )
    assert parse_enode(relays[1]["enode"]).host == hostname
