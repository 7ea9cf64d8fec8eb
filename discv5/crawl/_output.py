"""What a crawl writes: nodes.json (go-ethereum's format), JSON Lines, enode lists, summary.

Every enode emitted comes from a signature-verified record (so its public key is on the
curve), of a node that answered us, with a checksum-valid onion3 address when it has one and a
real TCP port. Records that cannot give such an enode are counted with the reason, never
emitted.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enr import ENR, EnodeError, ENRError, enode_from_enr, write_file_atomic

from ._frontier import CrawlEntry, Frontier

__all__ = [
    "Classification",
    "NodesFileError",
    "classify",
    "entry_json",
    "iter_nodes_json",
    "load_nodes_json",
    "nodes_json",
    "write_atomic",
]

_ZERO_TIME = "0001-01-01T00:00:00Z"


class NodesFileError(ValueError):
    """An existing nodes.json cannot be used."""


@dataclass(frozen=True, slots=True)
class Classification:
    """What a crawled node is good for."""

    onion_capable: bool
    """The record has an ``onion3`` entry (valid or not)."""
    onion3_status: str
    """"valid", "absent", or "invalid: <reason>"."""
    enode: str | None
    """The valid enode to emit, or None."""
    rejected: str | None
    """Why no enode is emitted (None when one is)."""


def classify(entry: CrawlEntry, record: ENR | None = None) -> Classification:
    """Decide whether ``entry`` yields a valid enode, and why not if it does not."""
    record = record or entry.enr()
    raw = record.get("onion3")
    problem = record.onion3_problem
    status = "absent" if raw is None else ("valid" if problem is None else f"invalid: {problem}")
    onion_capable = raw is not None
    if not entry.verified:
        return Classification(
            onion_capable, status, None, "no signed record (known only from an enode URL)"
        )
    if not entry.live:
        return Classification(onion_capable, status, None, "not live (never answered us)")
    try:
        enode = enode_from_enr(record)
    except EnodeError as exc:
        return Classification(onion_capable, status, None, str(exc))
    problems = enode.problems()
    if problems:
        return Classification(onion_capable, status, None, "; ".join(problems))
    return Classification(onion_capable, status, str(enode), None)


def _utc(t: float | None) -> str | None:
    if t is None:
        return None
    stamp = _dt.datetime.fromtimestamp(int(t), _dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_json(entry: CrawlEntry, clock_offset: float = 0.0) -> dict[str, Any]:
    """One JSON Lines object for a crawled node.

    Args:
        clock_offset: add to the crawl's (monotonic) times to get Unix time.
    """
    record = entry.enr()
    c = classify(entry, record)
    ip, udp, tcp = record.endpoint()

    def at(t: float | None) -> str | None:
        return None if t is None else _utc(t + clock_offset)

    return {
        "node_id": entry.node_id.hex(),
        "enr": record.to_text(),
        "seq": record.seq,
        "ip": None if ip is None else str(ip),
        "udp": udp,
        "tcp": tcp,
        "onion3": record.onion3,
        "onion3_status": c.onion3_status,
        "enode": c.enode,
        "rejected": c.rejected,
        "live": entry.live,
        "first_seen": at(entry.first_seen),
        "last_seen": at(entry.last_response),
        "failure": entry.failure,
    }


def write_atomic(path: str | os.PathLike[str], text: str | Iterable[str]) -> None:
    """Write ``text`` (or its pieces) atomically (see :func:`enr.write_file_atomic`)."""
    write_file_atomic(path, text)


@dataclass(slots=True)
class NodesFileEntry:
    """One node of a nodes.json file."""

    record: ENR
    score: int = 0
    first_response: str = _ZERO_TIME
    last_response: str = _ZERO_TIME
    last_check: str = _ZERO_TIME


def load_nodes_json(path: str | os.PathLike[str]) -> dict[bytes, NodesFileEntry]:
    """Read go-ethereum's crawler output (a JSON object keyed by node id).

    Entries whose record is not a valid ``enr:`` record, or whose key does not match the
    record's node id, are skipped (the crawler reports how many).

    Raises:
        NodesFileError: unreadable, not JSON, or not an object.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise NodesFileError(f"cannot read {os.fspath(path)}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise NodesFileError(f"{os.fspath(path)} is not UTF-8 text") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise NodesFileError(f"{os.fspath(path)} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise NodesFileError(f"{os.fspath(path)}: expected a JSON object keyed by node id")
    out: dict[bytes, NodesFileEntry] = {}
    for key, value in data.items():
        if not isinstance(value, dict) or not isinstance(value.get("record"), str):
            continue
        try:
            record = ENR.from_text(value["record"])
        except ENRError:
            continue
        if record.node_id.hex() != str(key).lower():
            continue
        score = value.get("score", 0) or 0
        if not isinstance(score, int) or isinstance(score, bool):
            continue  # a score that is not a whole number: not our format, skip the entry
        out[record.node_id] = NodesFileEntry(
            record,
            score,
            str(value.get("firstResponse", _ZERO_TIME)),
            str(value.get("lastResponse", _ZERO_TIME)),
            str(value.get("lastCheck", _ZERO_TIME)),
        )
    return out


def _nodes_items(
    frontier: Frontier, previous: dict[bytes, NodesFileEntry], clock_offset: float
) -> Iterator[tuple[str, Callable[[], dict[str, Any]]]]:
    """(node id hex, a maker of its nodes.json item): items are built one at a time."""
    for node_id, old in previous.items():
        entry = frontier.get(node_id)
        if entry is not None and entry.live:
            continue  # handled below with fresh data
        checked = entry is not None and entry.last_check is not None
        if checked:
            # go-ethereum: a failed check halves the score; at zero the node is dropped.
            score = old.score // 2
            if score <= 0:
                continue
        else:
            score = old.score  # not asked this time: copied as it was (score 0 included)
        last_check = old.last_check
        if entry is not None and entry.last_check is not None:
            last_check = _utc(entry.last_check + clock_offset) or last_check

        def make_old(old: NodesFileEntry = old, score: int = score,
                     last_check: str = last_check) -> dict[str, Any]:
            return {
                "seq": old.record.seq,
                "record": old.record.to_text(),
                "score": score,
                "firstResponse": old.first_response,
                "lastResponse": old.last_response,
                "lastCheck": last_check,
            }

        yield node_id.hex(), make_old
    for entry in frontier.entries():
        if not entry.live:
            continue

        def make_live(entry: CrawlEntry = entry) -> dict[str, Any]:
            record = entry.enr()
            old_entry = previous.get(entry.node_id)
            first: str | None = _utc((entry.first_response or 0) + clock_offset)
            if old_entry is not None and old_entry.first_response != _ZERO_TIME:
                first = old_entry.first_response
            return {
                "seq": record.seq,
                "record": record.to_text(),
                "score": (old_entry.score if old_entry is not None else 0) + 1,
                "firstResponse": first,
                "lastResponse": _utc((entry.last_response or 0) + clock_offset),
                "lastCheck": _utc((entry.last_check or 0) + clock_offset),
            }

        yield entry.node_id.hex(), make_live


def iter_nodes_json(
    frontier: Frontier,
    previous: dict[bytes, NodesFileEntry],
    clock_offset: float,
) -> Iterator[str]:
    """The merged nodes.json text in pieces (go-ethereum layout: 4-space indent, sorted keys),
    one node at a time, so that writing 100,000 nodes needs no copy of the whole document.

    Live nodes gain one point of score; previously known nodes that did not answer this
    time lose half their score and are dropped at zero; previously known nodes not asked
    this time are copied; nodes never heard from are not listed.
    """
    items = sorted(_nodes_items(frontier, previous, clock_offset), key=lambda kv: kv[0])
    if not items:
        yield "{}\n"
        return
    yield "{\n"
    for i, (key, make) in enumerate(items):
        item = make()
        if item["score"] == 0:
            del item["score"]
        body = json.dumps(item, indent=4, sort_keys=True).replace("\n", "\n    ")
        yield f"    {json.dumps(key)}: {body}" + (",\n" if i + 1 < len(items) else "\n")
    yield "}\n"


def nodes_json(
    frontier: Frontier,
    previous: dict[bytes, NodesFileEntry],
    clock_offset: float,
) -> str:
    """The merged nodes.json text (see :func:`iter_nodes_json`)."""
    return "".join(iter_nodes_json(frontier, previous, clock_offset))
