"""``discv5 enr decode`` and ``discv5 enr create``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rlp

from enr import ENR, PrivateKey, keccak256, onion3_from_public_key

from ._helpers import (
    EIP778_NODE_ID,
    EIP778_PUBLIC_KEY,
    EIP778_RECORD,
    EIP778_SECRET,
    Runner,
    make_nodekey,
)

KEY = PrivateKey(bytes.fromhex(EIP778_SECRET))


def signed_record(pairs: dict[bytes, object], seq: int = 1, key: PrivateKey = KEY) -> str:
    """Sign arbitrary (even malformed) entries, bypassing ENR.build's validation."""
    pairs = {b"id": b"v4", b"secp256k1": key.public_key.compressed, **pairs}
    content: list[object] = [seq]
    for k in sorted(pairs):
        content += [k, pairs[k]]
    signature = key.sign(keccak256(rlp.encode(content)))
    return ENR.from_rlp(rlp.encode([signature, *content])).to_text()


def tampered(text: str) -> str:
    """The same record with one signature bit flipped (structure intact)."""
    raw = bytearray(ENR.from_text(text).to_rlp())
    raw[10] ^= 1
    return ENR.from_rlp(bytes(raw), verify=False).to_text()


# --- decode: the EIP-778 example ----------------------------------------------------------------


def test_decode_eip778_text(cli: Runner) -> None:
    result = cli("enr", "decode", EIP778_RECORD)
    result.assert_ok()
    lines = result.out.splitlines()
    assert lines[0] == f"Node ID:     {EIP778_NODE_ID}"
    assert "Sequence:    1" in lines
    assert "Scheme:      v4" in lines
    assert "Signature:   valid" in lines
    assert "Size:        134 bytes" in lines
    assert "Enode:       none: record has no tcp port: it cannot give a dialable enode" in lines
    assert "Entries (4):" in lines
    assert '  id         "v4"' in lines
    assert "  ip         127.0.0.1" in lines
    assert (
        "  secp256k1  0x03ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd3138" in lines
    )
    assert "  udp        30303" in lines
    assert "Problems" not in result.out


def test_decode_eip778_json(cli: Runner) -> None:
    result = cli("enr", "decode", "--json", EIP778_RECORD)
    result.assert_ok()
    assert len(result.out.splitlines()) == 1
    doc = json.loads(result.out)
    assert doc["node_id"] == EIP778_NODE_ID
    assert doc["seq"] == 1
    assert doc["identity_scheme"] == "v4"
    assert doc["signature"] == "valid"
    assert doc["verified"] is True
    assert doc["public_key"] == EIP778_PUBLIC_KEY
    assert doc["enode"] is None
    assert "no tcp port" in doc["enode_error"]
    assert doc["record"] == EIP778_RECORD
    assert doc["problems"] == {}
    entries = {e["key"]: e for e in doc["entries"]}
    assert list(entries) == ["id", "ip", "secp256k1", "udp"]
    assert entries["ip"] == {
        "key": "ip",
        "raw": "0x7f000001",
        "value": "127.0.0.1",
        "status": "valid",
        "problem": None,
    }
    assert entries["udp"]["value"] == 30303
    assert entries["id"]["value"] == "v4"


def test_decode_hex_rlp(cli: Runner) -> None:
    raw = ENR.from_text(EIP778_RECORD).to_rlp().hex()
    for arg in (raw, "0x" + raw):
        result = cli("enr", "decode", arg)
        result.assert_ok()
        assert EIP778_NODE_ID in result.out


def test_decode_binary_file(cli: Runner, tmp_path: Path) -> None:
    path = tmp_path / "record.rlp"
    path.write_bytes(ENR.from_text(EIP778_RECORD).to_rlp())
    result = cli("enr", "decode", path)
    result.assert_ok()
    assert EIP778_NODE_ID in result.out


def test_decode_stdin(cli: Runner) -> None:
    result = cli("enr", "decode", "-", stdin=EIP778_RECORD + "\n")
    result.assert_ok()
    assert result.out.startswith(f"Node ID:     {EIP778_NODE_ID}")


def test_decode_file_with_several_records(cli: Runner, tmp_path: Path) -> None:
    other = signed_record({b"tcp": 30303, b"ip": bytes([10, 0, 0, 1])})
    path = tmp_path / "records.txt"
    path.write_text(f"# crawl output\n{EIP778_RECORD}\n\n  {other}  \n")
    result = cli("enr", "decode", path)
    result.assert_ok()
    assert f"# {path}:2" in result.out
    assert f"# {path}:4" in result.out
    assert result.out.count("Signature:   valid") == 2
    assert "@10.0.0.1:30303" in result.out

    as_json = cli("enr", "decode", "--json", path)
    as_json.assert_ok()
    docs = [json.loads(line) for line in as_json.out.splitlines()]
    assert [d["source"] for d in docs] == [f"{path}:2", f"{path}:4"]


def test_decode_file_with_a_bad_line_reports_it_and_fails(cli: Runner, tmp_path: Path) -> None:
    path = tmp_path / "records.txt"
    path.write_text(f"{EIP778_RECORD}\nenr:AAAA\n")
    result = cli("enr", "decode", path)
    result.assert_error(1, "1 of 2 records are invalid", f"{path}:2")
    assert f"Node ID:     {EIP778_NODE_ID}" in result.out  # the good one is still shown
    assert "INVALID: invalid record" in result.out

    as_json = cli("enr", "decode", "--json", path)
    as_json.assert_error(1)
    docs = [json.loads(line) for line in as_json.out.splitlines()]
    assert docs[0]["node_id"] == EIP778_NODE_ID
    assert docs[1]["source"] == f"{path}:2"
    assert docs[1]["error"].startswith("invalid record")


# --- decode: onion3, unknown keys, problems -------------------------------------------------------


def test_decode_valid_onion3(cli: Runner) -> None:
    onion = onion3_from_public_key(bytes(32))
    text = signed_record({b"onion3": onion.encode(), b"tcp": 30303, b"ip": bytes([10, 0, 0, 7])})
    result = cli("enr", "decode", text)
    result.assert_ok()
    assert f"  onion3     {onion}  (valid onion3 address)" in result.out
    assert f"Enode:       enode://{EIP778_PUBLIC_KEY}@{onion}:30303" in result.out
    assert f"Enode (IP):  enode://{EIP778_PUBLIC_KEY}@10.0.0.7:30303" in result.out

    doc = json.loads(cli("enr", "decode", "--json", text).out)
    entry = next(e for e in doc["entries"] if e["key"] == "onion3")
    assert entry["status"] == "valid"
    assert entry["value"] == onion
    assert doc["enode"].endswith(f"@{onion}:30303")
    assert doc["enode_ip"].endswith("@10.0.0.7:30303")


@pytest.mark.parametrize(
    ("onion", "reason"),
    [
        ("a" * 56 + ".onion", "version"),
        ("b" + onion3_from_public_key(bytes(32))[1:], "checksum"),
        (onion3_from_public_key(bytes(32)).upper().replace(".ONION", ".onion"), "lower case"),
        ("abc.onion", "56 base32 characters"),
    ],
)
def test_decode_invalid_onion3_shows_reason(cli: Runner, onion: str, reason: str) -> None:
    text = signed_record({b"onion3": onion.encode(), b"tcp": 30303})
    result = cli("enr", "decode", text)
    result.assert_ok()  # the record itself is valid: only its onion3 entry is unusable
    line = next(x for x in result.out.splitlines() if x.startswith("  onion3"))
    assert "(!) invalid onion3:" in line
    assert reason in line
    assert "Problems (1):" in result.out
    assert "Enode:       none: onion3 entry is unusable" in result.out

    doc = json.loads(cli("enr", "decode", "--json", text).out)
    entry = next(e for e in doc["entries"] if e["key"] == "onion3")
    assert entry["status"] == "invalid"
    assert reason in entry["problem"]
    assert reason in doc["problems"]["onion3"]
    assert doc["enode"] is None


def test_decode_unknown_keys_and_nested_lists(cli: Runner) -> None:
    text = signed_record(
        {b"eth": [[bytes.fromhex("cafebabe"), b""]], b"zz": b"\x01\x02", b"\xff": b""}
    )
    result = cli("enr", "decode", text)
    result.assert_ok()
    assert "  eth        [[0xcafebabe, 0x]]" in result.out
    assert "  zz         0x0102" in result.out
    assert "  0xff       0x" in result.out
    doc = json.loads(cli("enr", "decode", "--json", text).out)
    entries = {e["key"]: e for e in doc["entries"]}
    assert entries["eth"]["raw"] == [["0xcafebabe", "0x"]]
    assert "status" not in entries["eth"]
    assert entries["0xff"]["raw"] == "0x"


def test_decode_malformed_well_known_entries_are_problems(cli: Runner) -> None:
    text = signed_record({b"tcp": b"\x00\x50", b"ip": b"\x01\x02\x03", b"udp": [b"x"]})
    result = cli("enr", "decode", text)
    result.assert_ok()
    assert "Problems (3):" in result.out
    assert "  tcp: port has leading zero bytes" in result.out
    assert "  ip: address must be 4 bytes, got 3" in result.out
    assert "(!)" in next(x for x in result.out.splitlines() if x.startswith("  udp "))
    doc = json.loads(cli("enr", "decode", "--json", text).out)
    assert set(doc["problems"]) == {"tcp", "ip", "udp"}
    assert {e["key"]: e["value"] for e in doc["entries"]}["tcp"] is None


def test_decode_tcp_gives_enode(cli: Runner) -> None:
    text = signed_record({b"ip": bytes([203, 0, 113, 7]), b"tcp": 30303, b"udp": 30301})
    result = cli("enr", "decode", text)
    result.assert_ok()
    assert (
        f"Enode:       enode://{EIP778_PUBLIC_KEY}@203.0.113.7:30303?discport=30301" in result.out
    )


# --- decode: signatures ---------------------------------------------------------------------------


def test_decode_bad_signature_fails_without_no_verify(cli: Runner) -> None:
    result = cli("enr", "decode", tampered(EIP778_RECORD))
    result.assert_error(1, "invalid signature", "--no-verify")
    assert result.out == ""


def test_decode_no_verify_shows_unverified_record(cli: Runner) -> None:
    result = cli("enr", "decode", "--no-verify", tampered(EIP778_RECORD))
    result.assert_ok()
    assert result.out.startswith("UNVERIFIED RECORD: invalid signature on node record")
    assert "Signature:   INVALID (invalid signature on node record)" in result.out
    assert f"Node ID:     {EIP778_NODE_ID}" in result.out

    doc = json.loads(cli("enr", "decode", "--json", "--no-verify", tampered(EIP778_RECORD)).out)
    assert doc["verified"] is False
    assert doc["signature"] == "invalid"
    assert doc["signature_error"] == "invalid signature on node record"


def test_decode_no_verify_keeps_valid_records_valid(cli: Runner) -> None:
    result = cli("enr", "decode", "--no-verify", EIP778_RECORD)
    result.assert_ok()
    assert "Signature:   valid" in result.out
    assert "UNVERIFIED" not in result.out


def test_decode_no_verify_record_without_key(cli: Runner) -> None:
    # An unsigned-looking record: no secp256k1 entry, so no node id can be computed.
    raw = rlp.encode([b"\x00" * 64, 1, b"id", b"v4", b"ip", bytes([1, 2, 3, 4])])
    text = ENR.from_rlp(raw, verify=False).to_text()
    cli("enr", "decode", text).assert_error(1, "no secp256k1 public key")
    result = cli("enr", "decode", "--no-verify", text)
    result.assert_ok()
    assert "Node ID:     unknown (v4 record has no secp256k1 public key)" in result.out
    assert "Enode:       none: record has no usable secp256k1 public key" in result.out


# --- decode: errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "fragment"),
    [
        ("enr:", "invalid record"),
        ("enr:AAAA", "invalid record: rlp"),
        (EIP778_RECORD.replace("_", "/"), "standard alphabet"),
        (EIP778_RECORD + "=", "padding"),
        ("enr:" + "A" * 500, "300-byte limit"),
        ("enode://abcd@1.2.3.4:30303", "enode URL, not a node record"),
        ("no-such-file.txt", "not a node record"),
        ("abc", "not a node record"),
        ("0xc0", "less than two list elements"),
    ],
)
def test_decode_bad_input_is_one_line_error(cli: Runner, arg: str, fragment: str) -> None:
    cli("enr", "decode", arg).assert_error(1, fragment)


def test_decode_directory_and_empty_file(cli: Runner, tmp_path: Path) -> None:
    cli("enr", "decode", tmp_path).assert_error(1, "Is a directory")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n\n")
    cli("enr", "decode", empty).assert_error(1, "no records found")


def test_decode_usage_errors(cli: Runner) -> None:
    cli("enr", "decode").assert_error(2, "required", "discv5 enr decode --help")
    cli("enr", "decode", "--bogus", EIP778_RECORD).assert_error(2, "unrecognized arguments")


# --- create ---------------------------------------------------------------------------------------


def test_create_reproduces_the_eip778_example(cli: Runner, eip778_nodekey: Path) -> None:
    # Signatures are deterministic (RFC 6979), so the spec's example comes out byte for byte.
    result = cli("enr", "create", "--nodekey", eip778_nodekey, "--ip", "127.0.0.1", "--udp", 30303)
    result.assert_ok()
    assert result.out == EIP778_RECORD + "\n"


def test_create_with_every_option(cli: Runner, eip778_nodekey: Path) -> None:
    onion = onion3_from_public_key(bytes(32))
    result = cli(
        "enr", "create", "--nodekey", eip778_nodekey, "--seq", 7,
        "--ip", "203.0.113.7", "--ip6", "[2001:db8::7]", "--udp", 30301, "--tcp", 30303,
        "--udp6", 30311, "--tcp6", 30313, "--onion3", onion,
        "--set", "eth2=0xcafe", "--set", "empty=", "--set", "quic=2329",
    )  # fmt: skip
    result.assert_ok()
    record = ENR.from_text(result.out.strip())
    assert record.seq == 7
    assert str(record.ip) == "203.0.113.7"
    assert str(record.ip6) == "2001:db8::7"
    assert (record.udp, record.tcp, record.udp6, record.tcp6) == (30301, 30303, 30311, 30313)
    assert record.onion3 == onion
    assert record.get("eth2") == b"\xca\xfe"
    assert record.get("empty") == b""
    assert record.get("quic") == b"\x23\x29"
    assert record.node_id.hex() == EIP778_NODE_ID


def test_create_with_onion_dir(cli: Runner, eip778_nodekey: Path, onion_dir: Path) -> None:
    result = cli("enr", "create", "--nodekey", eip778_nodekey, "--onion-dir", onion_dir, "--tcp", 1)
    result.assert_ok()
    record = ENR.from_text(result.out.strip())
    assert record.onion3 == (onion_dir / "hostname").read_text().strip()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--tcp", "0"], "port must be a number in 1..65535"),
        (["--udp", "70000"], "port must be a number in 1..65535"),
        (["--udp", "abc"], "port must be"),
        (["--ip", "::1"], "not an IPv4 address"),
        (["--ip6", "1.2.3.4"], "not an IPv6 address"),
        (["--seq", "-1"], "seq must be"),
        (["--seq", str(2**64)], "seq must be"),
        (["--onion3", "abc.onion"], "invalid onion3 address"),
        (["--onion3", "b" + onion3_from_public_key(bytes(32))[1:]], "checksum"),
        (["--onion3", onion3_from_public_key(bytes(32)), "--onion-dir", "d"], "not allowed with"),
        (["--set", "novalue"], "want KEY=HEX"),
        (["--set", "k=xyz"], "not hex bytes"),
        (["--set", "k=abc"], "not hex bytes"),
        (["--set", "tcp=01"], "use --tcp"),
        (["--set", "secp256k1=01"], "set by --nodekey"),
        (["--set", "a=01", "--set", "a=02"], "twice"),
        (["--set", "quic=0001"], "port"),
    ],
)
def test_create_usage_errors(
    cli: Runner, eip778_nodekey: Path, args: list[str], fragment: str
) -> None:
    cli("enr", "create", "--nodekey", eip778_nodekey, *args).assert_error(2, fragment)


def test_create_requires_nodekey(cli: Runner) -> None:
    cli("enr", "create", "--ip", "1.2.3.4").assert_error(2, "--nodekey", "discv5 enr create --help")


def test_create_bad_key_files(cli: Runner, tmp_path: Path) -> None:
    cli("enr", "create", "--nodekey", tmp_path / "missing").assert_error(1, "cannot read node key")
    short = tmp_path / "short"
    short.write_text("abcd")
    cli("enr", "create", "--nodekey", short).assert_error(1, "64 hex characters")
    zero = tmp_path / "zero"
    zero.write_text("00" * 32)
    cli("enr", "create", "--nodekey", zero).assert_error(1, "not a valid secp256k1 key")
    key, _ = make_nodekey(tmp_path, "nodekey", 5)
    cli("enr", "create", "--nodekey", key, "--onion-dir", tmp_path / "no-hs").assert_error(
        1, "hs_ed25519_secret_key"
    )


def test_create_too_large(cli: Runner, eip778_nodekey: Path) -> None:
    big = "ab" * 260
    result = cli("enr", "create", "--nodekey", eip778_nodekey, "--set", f"big={big}")
    result.assert_error(1, "300-byte limit")
