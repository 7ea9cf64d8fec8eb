"""What a crawl writes: classify, JSON Lines objects, go-ethereum's nodes.json, atomic files.

Pure tests: entries are made through a :class:`Frontier` by hand, files live in tmp_path.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from discv5.crawl import (
    CrawlEntry,
    Frontier,
    NodesFileError,
    classify,
    entry_json,
    load_nodes_json,
    nodes_json,
    write_atomic,
)
from enr import ENR, enode_from_enr, parse_enode

from ._helpers import broken_onion, key_for, onion_for, signed_record

LOCAL_ID = key_for(0).public_key.node_id
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
ZERO_TIME = "0001-01-01T00:00:00Z"
OFFSET = 1_700_000_000.0
"""Unix time of the crawl's clock zero in these tests."""


def utc(unix: float) -> str:
    return dt.datetime.fromtimestamp(int(unix), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def onion_record(seed: int, seq: int = 1, **overrides: Any) -> ENR:
    fields: dict[str, Any] = {
        "ip": "127.0.0.1", "udp": 40000 + seed, "tcp": 30303, "onion3": onion_for(seed)
    }
    fields.update(overrides)
    return signed_record(key_for(seed), seq, **{k: v for k, v in fields.items() if v is not None})


def ip_record(seed: int, seq: int = 1, tcp: int | None = 30303) -> ENR:
    return ENR.build(key_for(seed), seq, ip="127.0.0.1", udp=40000 + seed, tcp=tcp)


def crawled(*records: ENR, live: bool = True, frontier: Frontier | None = None,
            now: float = 10.0) -> list[CrawlEntry]:
    """Entries for ``records``, each asked once; live ones answered with their own record."""
    f = frontier if frontier is not None else Frontier(LOCAL_ID)
    for record in records:
        f.add(record, now - 5.0)
    out = []
    while (entry := f.next_entry()) is not None:
        distances = f.next_distances(entry)
        assert distances is not None
        if live:
            f.on_answer(entry, distances, [entry.enr()], now)
        else:
            f.on_timeout(entry, now)
            f.on_timeout(entry, now + 1)
        f.finish(entry)
        out.append(entry)
    return out


# --- classify -------------------------------------------------------------------------------


def test_valid_onion_record_gives_its_onion_enode() -> None:
    record = onion_record(1)
    [entry] = crawled(record)
    c = classify(entry)
    assert c.onion_capable
    assert c.onion3_status == "valid"
    assert c.rejected is None
    assert c.enode == str(enode_from_enr(record))
    enode = parse_enode(c.enode)
    assert enode.host == onion_for(1)
    assert enode.host_kind == "onion3"
    assert (enode.tcp, enode.udp) == (30303, 40001)
    assert enode.node_id == record.node_id
    assert c.enode.startswith(f"enode://{record.public_key.uncompressed.hex()}@")  # type: ignore[union-attr]
    assert c.enode.endswith(f"{onion_for(1)}:30303?discport=40001")


def test_bad_onion3_is_rejected_with_the_reason() -> None:
    record = onion_record(1, onion3=broken_onion(onion_for(1)))
    assert record.onion3 is None
    assert record.onion3_problem is not None
    [entry] = crawled(record)
    c = classify(entry)
    assert c.onion_capable
    assert c.enode is None
    assert c.onion3_status == "invalid: onion address checksum mismatch"
    assert c.rejected is not None
    assert "onion3" in c.rejected
    assert "checksum" in c.rejected


@pytest.mark.parametrize("tcp", [None, 0], ids=["no-tcp", "tcp-0"])
def test_onion_record_without_a_tcp_port_is_rejected(tcp: int | None) -> None:
    [entry] = crawled(onion_record(1, tcp=tcp))
    c = classify(entry)
    assert c.onion_capable
    assert c.onion3_status == "valid"
    assert c.enode is None
    assert c.rejected is not None
    assert "tcp" in c.rejected


def test_a_node_that_never_answered_is_rejected_as_not_live() -> None:
    [entry] = crawled(onion_record(1), live=False)
    c = classify(entry)
    assert c.onion_capable
    assert c.onion3_status == "valid"
    assert c.enode is None
    assert c.rejected == "not live (never answered us)"


def test_known_but_never_asked_is_not_live() -> None:
    f = Frontier(LOCAL_ID)
    f.add(onion_record(1), 0.0)
    entry = f.get(onion_record(1).node_id)
    assert entry is not None
    assert classify(entry).rejected == "not live (never answered us)"


def test_ip_only_node_gives_an_ip_enode_and_is_not_onion_capable() -> None:
    record = ip_record(1)
    [entry] = crawled(record)
    c = classify(entry)
    assert not c.onion_capable
    assert c.onion3_status == "absent"
    assert c.enode == str(enode_from_enr(record))
    enode = parse_enode(c.enode)
    assert enode.host_kind == "ipv4"
    assert str(enode.ip) == "127.0.0.1"
    assert (enode.tcp, enode.udp) == (30303, 40001)


def test_ip_only_node_without_tcp_gives_nothing() -> None:
    [entry] = crawled(ip_record(1, tcp=None))
    c = classify(entry)
    assert not c.onion_capable
    assert c.enode is None
    assert c.rejected is not None
    assert "tcp" in c.rejected


def test_classify_uses_the_newest_record() -> None:
    f = Frontier(LOCAL_ID)
    [entry] = crawled(onion_record(1, tcp=None), frontier=f)
    assert classify(entry).enode is None
    f.add(onion_record(1, seq=2), 20.0)  # the node published tcp meanwhile
    assert classify(entry).enode == str(enode_from_enr(onion_record(1, seq=2)))


# --- entry_json -----------------------------------------------------------------------------

JSONL_FIELDS = {
    "node_id", "enr", "seq", "ip", "udp", "tcp", "onion3", "onion3_status", "enode",
    "rejected", "live", "first_seen", "last_seen", "failure",
}


def test_entry_json_of_a_live_onion_node() -> None:
    record = onion_record(1, seq=3)
    [entry] = crawled(record, now=10.0)
    obj = entry_json(entry, OFFSET)
    assert set(obj) == JSONL_FIELDS
    assert obj == {
        "node_id": record.node_id.hex(),
        "enr": record.to_text(),
        "seq": 3,
        "ip": "127.0.0.1",
        "udp": 40001,
        "tcp": 30303,
        "onion3": onion_for(1),
        "onion3_status": "valid",
        "enode": str(enode_from_enr(record)),
        "rejected": None,
        "live": True,
        "first_seen": utc(OFFSET + 5.0),
        "last_seen": utc(OFFSET + 10.0),
        "failure": None,
    }
    assert json.loads(json.dumps(obj)) == obj
    assert ENR.from_text(obj["enr"]) == record


def test_entry_json_of_a_rejected_node_says_why() -> None:
    record = onion_record(1, onion3=broken_onion(onion_for(1)))
    [entry] = crawled(record, live=False)
    obj = entry_json(entry, OFFSET)
    assert set(obj) == JSONL_FIELDS
    assert obj["live"] is False
    assert obj["enode"] is None
    assert obj["onion3"] is None  # not a usable address
    assert obj["onion3_status"].startswith("invalid: ")
    assert obj["rejected"] == "not live (never answered us)"
    assert obj["failure"] == "no answer"
    assert obj["last_seen"] is None
    assert RFC3339.fullmatch(obj["first_seen"])


# --- nodes.json -----------------------------------------------------------------------------

NODES_FIELDS = {"seq", "record", "score", "firstResponse", "lastResponse", "lastCheck"}


def check_geth_layout(text: str) -> dict[str, Any]:
    """go-ethereum's json.MarshalIndent layout: 4 spaces, keys sorted, newline at the end."""
    data: dict[str, Any] = json.loads(text)
    assert text == json.dumps(data, indent=4, sort_keys=True) + "\n"
    for node_id, item in data.items():
        assert re.fullmatch(r"[0-9a-f]{64}", node_id)
        assert set(item) <= NODES_FIELDS
        assert set(item) >= NODES_FIELDS - {"score"}
        assert item.get("score", 1) != 0, "a zero score is omitted"
        record = ENR.from_text(item["record"])
        assert record.node_id.hex() == node_id
        assert record.seq == item["seq"]
        for key in ("firstResponse", "lastResponse", "lastCheck"):
            assert RFC3339.fullmatch(item[key]), item[key]
    return data


def test_nodes_json_lists_live_nodes_in_geth_format() -> None:
    a, b, c = onion_record(1), ip_record(2, seq=5), onion_record(3)
    f = Frontier(LOCAL_ID)
    crawled(a, b, frontier=f, now=10.0)
    crawled(c, frontier=f, live=False, now=20.0)
    text = nodes_json(f, {}, OFFSET)
    data = check_geth_layout(text)
    assert set(data) == {a.node_id.hex(), b.node_id.hex()}  # the silent node is not listed
    assert text.startswith('{\n    "')
    assert '\n        "firstResponse": ' in text
    assert data[b.node_id.hex()] == {
        "seq": 5,
        "record": b.to_text(),
        "score": 1,
        "firstResponse": utc(OFFSET + 10.0),
        "lastResponse": utc(OFFSET + 10.0),
        "lastCheck": utc(OFFSET + 10.0),
    }


def test_nodes_json_of_an_empty_crawl() -> None:
    assert nodes_json(Frontier(LOCAL_ID), {}, OFFSET) == "{}\n"


def write_nodes_file(path: Path, entries: dict[str, Any]) -> Path:
    path.write_text(json.dumps(entries, indent=4, sort_keys=True) + "\n", encoding="utf-8")
    return path


def geth_entry(record: ENR, score: int, first: str, last: str, check: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "seq": record.seq, "record": record.to_text(), "firstResponse": first,
        "lastResponse": last, "lastCheck": check,
    }
    if score:
        item["score"] = score
    return item


T_OLD = "2023-01-02T03:04:05Z"


def test_nodes_json_merges_a_previous_file(tmp_path: Path) -> None:
    """Live nodes gain a point (and keep their first response), nodes that failed this time
    lose half their score and go at zero, nodes not checked this time are kept as they were."""
    answered, failed, dying, unchecked = (onion_record(i) for i in (1, 2, 3, 4))
    path = write_nodes_file(tmp_path / "nodes.json", {
        answered.node_id.hex(): geth_entry(answered, 3, T_OLD, T_OLD, T_OLD),
        failed.node_id.hex(): geth_entry(failed, 5, T_OLD, T_OLD, T_OLD),
        dying.node_id.hex(): geth_entry(dying, 1, T_OLD, T_OLD, T_OLD),
        unchecked.node_id.hex(): geth_entry(unchecked, 4, T_OLD, T_OLD, T_OLD),
    })
    previous = load_nodes_json(path)
    assert len(previous) == 4
    f = Frontier(LOCAL_ID)
    for record in (answered, failed, dying, unchecked):
        f.add(previous[record.node_id].record, 0.0)
    # The first three are asked; the crawl is cut short before the fourth.
    entries = {e.node_id: e for e in (f.next_entry(), f.next_entry(), f.next_entry())
               if e is not None}
    assert unchecked.node_id not in entries
    newer = onion_record(1, seq=2)
    f.on_answer(entries[answered.node_id], (0, 256), [newer], 10.0)
    for node_id in (failed.node_id, dying.node_id):
        f.on_timeout(entries[node_id], 11.0)
        f.on_timeout(entries[node_id], 12.0)
    for entry in entries.values():
        f.finish(entry)
    data = check_geth_layout(nodes_json(f, previous, OFFSET))
    assert data[answered.node_id.hex()] == {
        "seq": 2,
        "record": newer.to_text(),
        "score": 4,
        "firstResponse": T_OLD,
        "lastResponse": utc(OFFSET + 10.0),
        "lastCheck": utc(OFFSET + 10.0),
    }
    assert data[failed.node_id.hex()] == {
        "seq": 1,
        "record": failed.to_text(),
        "score": 2,
        "firstResponse": T_OLD,
        "lastResponse": T_OLD,
        "lastCheck": utc(OFFSET + 12.0),
    }
    assert dying.node_id.hex() not in data
    assert data[unchecked.node_id.hex()] == geth_entry(unchecked, 4, T_OLD, T_OLD, T_OLD)


def test_unchecked_previous_node_with_zero_score_is_kept_without_score(tmp_path: Path) -> None:
    """BUG (discv5/crawl/_output.py, nodes_json): conformance_scenarios.md §3.8 says input
    nodes are copied to the output first and a zero score is *omitted*; nodes_json drops every
    previous entry whose score is 0 even when this crawl never checked it, so an interrupted
    crawl loses them (and "score omitted when 0" can never appear in our output)."""
    kept = onion_record(1)
    path = write_nodes_file(tmp_path / "nodes.json", {
        kept.node_id.hex(): geth_entry(kept, 0, ZERO_TIME, ZERO_TIME, T_OLD),
    })
    previous = load_nodes_json(path)
    assert previous[kept.node_id].score == 0
    text = nodes_json(Frontier(LOCAL_ID), previous, OFFSET)
    data = check_geth_layout(text)
    assert data == {kept.node_id.hex(): geth_entry(kept, 0, ZERO_TIME, ZERO_TIME, T_OLD)}
    assert '"score"' not in text


def test_nodes_json_round_trips_through_load(tmp_path: Path) -> None:
    f = Frontier(LOCAL_ID)
    records = [onion_record(1), ip_record(2), onion_record(3, seq=9)]
    crawled(*records, frontier=f, now=10.0)
    path = tmp_path / "nodes.json"
    write_atomic(path, nodes_json(f, {}, OFFSET))
    loaded = load_nodes_json(path)
    assert {r.node_id for r in records} == set(loaded)
    for record in records:
        item = loaded[record.node_id]
        assert item.record == record
        assert item.score == 1
        assert item.first_response == item.last_response == item.last_check == utc(OFFSET + 10)


# --- load_nodes_json ------------------------------------------------------------------------


def test_load_skips_bad_entries(tmp_path: Path) -> None:
    good, other, forged = onion_record(1), ip_record(2), onion_record(3)
    raw = bytearray(forged.to_rlp())
    raw[5] ^= 0x01  # inside the signature
    bad_signature = ENR.from_rlp(bytes(raw), verify=False).to_text()
    path = write_nodes_file(tmp_path / "nodes.json", {
        good.node_id.hex(): geth_entry(good, 2, T_OLD, T_OLD, T_OLD),
        "00" * 32: geth_entry(other, 2, T_OLD, T_OLD, T_OLD),  # key is not the record's id
        forged.node_id.hex(): {**geth_entry(forged, 1, T_OLD, T_OLD, T_OLD),
                               "record": bad_signature},
        "11" * 32: {"seq": 1, "record": "enr:not-a-record"},
        "22" * 32: {"seq": 1},  # no record
        "33" * 32: {"seq": 1, "record": 12345},  # record is not text
        "44" * 32: "just a string",  # not an object
        "55" * 32: {"record": "enode://" + "ab" * 64 + "@127.0.0.1:30303"},  # no signed record
    })
    loaded = load_nodes_json(path)
    assert list(loaded) == [good.node_id]
    item = loaded[good.node_id]
    assert item.record == good
    assert item.score == 2
    assert (item.first_response, item.last_response, item.last_check) == (T_OLD, T_OLD, T_OLD)


def test_load_accepts_missing_optional_fields(tmp_path: Path) -> None:
    record = onion_record(1)
    path = write_nodes_file(tmp_path / "n.json", {
        record.node_id.hex(): {"record": record.to_text()},
        record.node_id.hex().upper(): {"record": record.to_text()},
    })
    loaded = load_nodes_json(path)
    assert list(loaded) == [record.node_id]
    item = loaded[record.node_id]
    assert item.score == 0
    assert item.first_response == item.last_response == item.last_check == ZERO_TIME


@pytest.mark.parametrize("score", ['"many"', "[1]", "1.5e999"])
def test_load_skips_an_entry_with_a_nonsense_score(tmp_path: Path, score: str) -> None:
    """BUG (discv5/crawl/_output.py, load_nodes_json: ``int(value.get("score", 0) or 0)``): a
    score that is not an integer raises ValueError/TypeError/OverflowError out of the loader
    instead of skipping that entry (the CLI then fails, with a traceback for TypeError)."""
    good, bad = onion_record(1), onion_record(2)
    path = tmp_path / "nodes.json"
    path.write_text(
        "{\n"
        f'  "{good.node_id.hex()}": {{"record": "{good.to_text()}", "score": 3}},\n'
        f'  "{bad.node_id.hex()}": {{"record": "{bad.to_text()}", "score": {score}}}\n'
        "}\n",
        encoding="utf-8",
    )
    loaded = load_nodes_json(path)
    assert loaded[good.node_id].score == 3
    assert bad.node_id not in loaded


def test_load_empty_file_is_an_empty_set(tmp_path: Path) -> None:
    path = tmp_path / "nodes.json"
    path.write_text("", encoding="utf-8")
    assert load_nodes_json(path) == {}
    path.write_text("{}\n", encoding="utf-8")
    assert load_nodes_json(path) == {}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"abc": ', "not valid JSON"),
        ("\x00\x01garbage", "not valid JSON"),
        ("[1, 2, 3]", "expected a JSON object"),
        ('"enr:-IS4Q"', "expected a JSON object"),
    ],
    ids=["truncated", "binary", "array", "string"],
)
def test_load_corrupt_file_raises(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "nodes.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(NodesFileError, match=fragment):
        load_nodes_json(path)


def test_load_unreadable_file_raises(tmp_path: Path) -> None:
    with pytest.raises(NodesFileError, match="cannot read"):
        load_nodes_json(tmp_path / "missing.json")
    with pytest.raises(NodesFileError, match="cannot read"):
        load_nodes_json(tmp_path)  # a directory


def test_load_file_that_is_not_utf8_raises_nodes_file_error(tmp_path: Path) -> None:
    """BUG (discv5/crawl/_output.py, load_nodes_json): only OSError is caught around
    read_text, so a file that is not UTF-8 escapes as UnicodeDecodeError instead of the
    documented NodesFileError."""
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"\xff": 1}')
    with pytest.raises(NodesFileError):
        load_nodes_json(path)


# --- write_atomic ---------------------------------------------------------------------------


def test_write_atomic_creates_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    write_atomic(path, "first\n")
    assert path.read_text(encoding="utf-8") == "first\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    os.chmod(path, 0o600)
    before = path.stat().st_ino
    write_atomic(path, "second\n")
    assert path.read_text(encoding="utf-8") == "second\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the existing mode is kept
    assert path.stat().st_ino != before  # a new file renamed over the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def failing(exc: BaseException) -> Any:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise exc

    return fail


@pytest.mark.parametrize("where", ["fsync", "replace", "fchmod"])
@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()],
                         ids=["oserror", "interrupt"])
def test_write_atomic_failure_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, exc: BaseException
) -> None:
    path = tmp_path / "nodes.json"
    path.write_text("old content\n", encoding="utf-8")
    monkeypatch.setattr(os, where, failing(exc))
    with pytest.raises(type(exc)):
        write_atomic(path, "new content\n" * 1000)
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nodes.json"]


def test_write_atomic_failure_in_the_middle_of_writing(tmp_path: Path) -> None:
    path = tmp_path / "nodes.json"
    path.write_text("old content\n", encoding="utf-8")
    # Half a megabyte of good text, then a character UTF-8 cannot encode: the write fails
    # part-way through, after some bytes may already be in the temporary file.
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "x" * 500_000 + "\udcff" + "y" * 10)
    assert path.read_text(encoding="utf-8") == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nodes.json"]


def test_write_atomic_failure_for_a_new_file_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "fsync", failing(OSError(5, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        write_atomic(tmp_path / "fresh.json", "{}\n")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
