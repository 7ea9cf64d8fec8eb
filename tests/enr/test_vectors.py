"""Every vector of tests/vectors/enr_vectors.json (a copy of the project's shared vector file).

Each parametrized case is named after the vector's ``name`` and every assertion message quotes
the vector's ``source`` (EIP-778, go-ethereum test files, devp2p), so a failure says where the
expectation comes from.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
import rlp

from enr import (
    ENR,
    EnodeError,
    ENRDecodeError,
    ENRError,
    ENRSchemeError,
    ENRSignatureError,
    PrivateKey,
    enode_from_enr,
    keccak256,
    parse_enode,
)

from ._helpers import content_of, load_vectors, vector_section

VALID = vector_section("valid_records")
INVALID = vector_section("invalid_records")
STRUCTURE = vector_section("record_structure_decode_vectors")
ENODE_URLS = vector_section("enode_url_vectors")
ENDPOINTS = vector_section("geth_endpoint_selection")

_WELL_KNOWN_PORTS = ("tcp", "udp", "tcp6", "udp6")


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [str(c["name"]) for c in cases]


def _src(vector: dict[str, Any]) -> str:
    return f"enr_vectors.json {vector.get('name', '')!r} from {vector['source']}"


def test_vector_file_has_every_section() -> None:
    """The copied vector file still holds the sections these tests read (not silently empty)."""
    data = load_vectors()
    assert len(VALID) >= 22
    assert len(INVALID) >= 4
    assert len(STRUCTURE["cases"]) >= 6
    assert len(ENODE_URLS["cases"]) >= 15
    assert len(ENDPOINTS["cases"]) >= 19
    for vector in VALID + INVALID:
        assert vector["source"], vector["name"]
    assert data["provenance"]


# --- valid_records ------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VALID, ids=_ids(VALID))
def test_valid_record_decodes(vector: dict[str, Any]) -> None:
    src = _src(vector)
    record = ENR.from_text(vector["text"])
    assert record.verified, src
    if "expected_node_id" in vector:
        assert record.node_id.hex() == vector["expected_node_id"], src
    if "expected_seq" in vector:
        assert record.seq == vector["expected_seq"], src
    if "expected_identity_scheme" in vector:
        assert record.identity_scheme == vector["expected_identity_scheme"], src
    for name, want in vector.get("expected_fields", {}).items():
        assert _field(record, name) == want, f"{src}: field {name}"
    assert record.entry_problems() == {}, src


@pytest.mark.parametrize("vector", VALID, ids=_ids(VALID))
def test_valid_record_derived_values(vector: dict[str, Any]) -> None:
    """The independently derived values under ``derived`` (see the file's conventions)."""
    src = _src(vector)
    derived = vector["derived"]
    record = ENR.from_text(vector["text"])
    raw = record.to_rlp()
    assert raw.hex() == derived["rlp_hex"], src
    assert len(record) == derived["encoded_size"], src
    assert record.signature.hex() == derived["signature"], src
    assert record.seq == derived["seq"], src
    keys = [k.decode() for k in record.keys()]  # noqa: SIM118 (ENR is not a dict)
    assert keys == derived["keys_in_order"], src
    assert [k for k, _ in record.items()] == record.keys(), src
    for name, want in derived["fields"].items():
        assert _field(record, name) == want, f"{src}: field {name}"
    assert set(derived["fields"]) == set(keys), src

    content = content_of(_seq(raw), list(record.items()))
    assert content.hex() == derived["content_rlp_hex"], src
    digest = keccak256(content)
    assert digest.hex() == derived["content_keccak256"], src
    assert record.node_id.hex() == derived["node_id"], src
    public_key = record.public_key
    assert public_key is not None, src
    assert "04" + public_key.uncompressed.hex() == derived["public_key_uncompressed"], src
    assert keccak256(public_key.uncompressed) == record.node_id, src
    assert public_key.verify(record.signature, digest), src


def _seq(raw: bytes) -> bytes:
    seq = rlp.decode(raw)[1]
    assert isinstance(seq, bytes)
    return seq


@pytest.mark.parametrize("vector", VALID, ids=_ids(VALID))
def test_valid_record_roundtrips_exactly(vector: dict[str, Any]) -> None:
    """Decode-then-encode gives back the input, text and bytes, unknown keys included."""
    src = _src(vector)
    record = ENR.from_text(vector["text"])
    assert record.to_text() == vector["text"], src
    assert str(record) == vector["text"], src
    raw = bytes.fromhex(vector["derived"]["rlp_hex"])
    again = ENR.from_rlp(raw)
    assert again.to_rlp() == raw, src
    assert again == record, src
    assert hash(again) == hash(record), src
    assert ENR.from_rlp(raw, verify=False).to_rlp() == raw, src
    assert ENR.from_any(f"  {vector['text']}\n") == record, src
    assert ENR.from_any(raw) == record, src


_KEYED = [v for v in VALID if "private_key" in v]


@pytest.mark.parametrize("vector", _KEYED, ids=_ids(_KEYED))
def test_valid_record_private_key_matches(vector: dict[str, Any]) -> None:
    src = _src(vector)
    key = PrivateKey(bytes.fromhex(vector["private_key"]))
    record = ENR.from_text(vector["text"])
    assert key.public_key == record.public_key, src
    assert key.public_key.node_id == record.node_id, src
    if vector["derived"].get("signature_reproducible_with_rfc6979"):
        # Rebuilding the record from its entries with the same key gives the same bytes.
        fields = {
            k.decode(): _field(record, k.decode())
            for k, _ in record.items()
            if k not in (b"id", b"secp256k1")
        }
        rebuilt = ENR.build(key, record.seq, **fields)
        assert rebuilt.to_text() == vector["text"], src


def test_eip778_example_source_structure() -> None:
    """EIP-778 lists the record's RLP structure element by element; check each element."""
    vector = next(v for v in VALID if v["name"] == "eip778-example")
    src = _src(vector)
    record = ENR.from_text(vector["text"])
    items = rlp.decode(record.to_rlp())
    want = [
        x[1:-1].encode() if x.startswith('"') else bytes.fromhex(x)
        for x in vector["rlp_structure_from_source"]
    ]
    assert items == want, src
    assert record.to_rlp().hex() == vector["rlp_hex_from_geth_node_test"], src


@pytest.mark.parametrize("vector", VALID, ids=_ids(VALID))
def test_valid_record_enode(vector: dict[str, Any]) -> None:
    """geth_urlv4 where the record has a real tcp port; otherwise enode_from_enr refuses.

    go-ethereum prints port 0 (or a bare key when there is no IP); our enode_from_enr
    deliberately never prints an undialable enode.
    """
    src = _src(vector)
    record = ENR.from_text(vector["text"])
    want = vector["derived"]["geth_urlv4"]
    if record.tcp:
        enode = enode_from_enr(record)
        assert str(enode) == want, src
        assert enode.node_id == record.node_id, src
        assert parse_enode(want).node_id == record.node_id, src
    else:
        assert ":0" in want or "@" not in want, src
        with pytest.raises(EnodeError, match=r"no tcp port|neither an IP address"):
            enode_from_enr(record)


def _field(record: ENR, name: str) -> Any:
    """A field in the vector file's notation (see conventions.fields)."""
    if name == "id":
        return record.identity_scheme
    if name in ("ip", "ip6"):
        value = getattr(record, name)
        return None if value is None else str(value)
    if name in _WELL_KNOWN_PORTS:
        return getattr(record, name)
    if name == "secp256k1":
        assert record.public_key is not None
        return record.public_key.compressed.hex()
    return _notation(record.get(name))


def _notation(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return {"rlp_list": [_notation(v) for v in value]}
    return value


# --- invalid_records ----------------------------------------------------------------------------

# What each official invalid record must be rejected with: (exception type, reason in message).
_INVALID_REASONS: dict[str, tuple[type[ENRError], str]] = {
    "empty-payload": (ENRDecodeError, r"empty"),
    "bad-base64": (ENRDecodeError, r"base64"),
    "invalid-signature-foobar": (ENRSignatureError, r"signature"),
    "base64-with-padding": (ENRDecodeError, r"padding"),
}


@pytest.mark.parametrize("vector", INVALID, ids=_ids(INVALID))
def test_invalid_record_rejected(vector: dict[str, Any]) -> None:
    src = _src(vector)
    assert vector["name"] in _INVALID_REASONS, f"new invalid vector without a reason: {src}"
    error, reason = _INVALID_REASONS[vector["name"]]
    with pytest.raises(error, match=reason):
        ENR.from_text(vector["text"])
    with pytest.raises(error, match=reason):
        ENR.from_any(vector["text"])


def test_invalid_foobar_signature_structure() -> None:
    """The 'foobar' record is well-formed: only its signature is wrong (derived fields)."""
    vector = next(v for v in INVALID if v["name"] == "invalid-signature-foobar")
    src = _src(vector)
    raw = bytes.fromhex(vector["derived"]["rlp_hex"])
    with pytest.raises(ENRSignatureError, match="signature"):
        ENR.from_rlp(raw)
    record = ENR.from_rlp(raw, verify=False)
    assert not record.verified, src
    assert record.signature == vector["derived"]["signature_ascii"].encode(), src
    assert record.seq == vector["derived"]["seq"], src
    for name, want in vector["derived"]["fields"].items():
        assert _field(record, name) == want, f"{src}: field {name}"
    assert record.to_rlp() == raw, src
    assert ENR.from_text(vector["text"], verify=False) == record, src


def test_invalid_padded_base64_also_has_a_trailing_byte() -> None:
    """The vector's note: with '=' stripped, the payload is the record plus one trailing byte."""
    vector = next(v for v in INVALID if v["name"] == "base64-with-padding")
    with pytest.raises(ENRDecodeError, match=r"superfluous|trailing"):
        ENR.from_text(vector["text"].rstrip("="), verify=False)


# --- record_structure_decode_vectors ------------------------------------------------------------


@pytest.mark.parametrize("case", STRUCTURE["cases"], ids=[c["rlp_hex"] for c in STRUCTURE["cases"]])
def test_record_structure(case: dict[str, Any]) -> None:
    src = f"enr_vectors.json record_structure_decode_vectors from {STRUCTURE['source']}"
    raw = bytes.fromhex(case["rlp_hex"])
    if case["expected"] == "reject":
        with pytest.raises(ENRDecodeError, match=case["geth_error"]):
            ENR.from_rlp(raw, verify=False)
        with pytest.raises(ENRDecodeError, match=case["geth_error"]):
            ENR.from_rlp(raw)
    else:
        record = ENR.from_rlp(raw, verify=False)
        assert record.to_rlp() == raw, src
        assert not record.verified, src
        # No 'id' entry: the signature cannot be checked.
        with pytest.raises(ENRSchemeError, match="no 'id' entry"):
            ENR.from_rlp(raw)


# --- enode_url_vectors --------------------------------------------------------------------------

_OK_URLS = [c for c in ENODE_URLS["cases"] if c["expected"] == "ok"]
_BAD_URLS = [c for c in ENODE_URLS["cases"] if c["expected"] == "error"]


def test_enode_common_public_key_node_id() -> None:
    key = bytes.fromhex(ENODE_URLS["common_public_key"])
    assert keccak256(key).hex() == ENODE_URLS["common_public_key_derived_node_id"]


@pytest.mark.parametrize("case", _OK_URLS, ids=[c["input"][-40:] for c in _OK_URLS])
def test_enode_url_ok(case: dict[str, Any]) -> None:
    src = f"enr_vectors.json enode_url_vectors from {ENODE_URLS['source']}"
    enode = parse_enode(case["input"])
    assert enode.public_key.uncompressed.hex() == case["pubkey"], src
    assert enode.node_id.hex() == case["derived_node_id"], src
    if case["string_roundtrip"]:
        assert str(enode) == case["input"], src
    assert parse_enode(str(enode)) == enode, src
    want_ip = case["ip"]
    assert enode.ip == (None if want_ip is None else ipaddress.ip_address(want_ip)), src
    if "hostname" in case:
        assert enode.host == case["hostname"], src
        assert enode.host_kind == "dns", src
    if enode.host is None:
        # go-ethereum reports 0 for the ports of an incomplete node; we report None.
        assert (case["tcp"], case["udp"]) == (0, 0), src
        assert (enode.tcp, enode.udp) == (None, None), src
    else:
        assert (enode.tcp, enode.udp) == (case["tcp"], case["udp"]), src


@pytest.mark.parametrize("case", _BAD_URLS, ids=[repr(c["input"][-40:]) for c in _BAD_URLS])
def test_enode_url_error(case: dict[str, Any]) -> None:
    want = case["geth_error_contains"]
    if "enr:" in want:
        # go-ethereum's enode.Parse also takes 'enr:' records and says so when the scheme is
        # missing; parse_enode takes enode URLs only, so it names the scheme it wants.
        want = "enode://"
    with pytest.raises(EnodeError) as info:
        parse_enode(case["input"])
    # Same reason, not necessarily the same wording: the text before any parenthesis, and each
    # comma-separated detail inside it, must appear in our message.
    head, _, detail = want.partition(" (")
    for part in [head, *filter(None, detail.rstrip(")").split(", "))]:
        assert part in str(info.value), f"{ENODE_URLS['source']}: {info.value}"


# --- geth_endpoint_selection --------------------------------------------------------------------

_ENDPOINT_CASES = ENDPOINTS["cases"]


@pytest.mark.parametrize("case", _ENDPOINT_CASES, ids=_ids(_ENDPOINT_CASES))
def test_endpoint_selection(case: dict[str, Any]) -> None:
    """go-ethereum's endpoint choice. The source uses a test identity scheme, so only the
    entries matter: the record is built with ENR.build (v4) and the entries given.

    ``want_quic`` is not checked: Endpoint carries ip, udp and tcp only.
    """
    src = f"enr_vectors.json geth_endpoint_selection {case['name']!r} from {ENDPOINTS['source']}"
    record = ENR.build(PrivateKey(bytes.fromhex("33" * 32)), **case["entries"])
    endpoint = record.endpoint()
    want_ip = case["want_ip"]
    assert endpoint.ip == (None if want_ip is None else ipaddress.ip_address(want_ip)), src
    # go-ethereum reports a missing port as 0; Endpoint says None.
    assert endpoint.udp == (case.get("want_udp", 0) or None), src
    assert endpoint.tcp == (case.get("want_tcp", 0) or None), src
