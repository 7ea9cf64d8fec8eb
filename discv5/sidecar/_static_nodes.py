"""The relay's ``static-nodes.json``: read, validate, merge and write it safely.

The file is a JSON array of enode URLs (geth's format). geth rejects an entry whose public key
is not a secp256k1 point ("invalid public key"), so only enodes that parse and validate are ever
written. Writes are atomic: a temporary file in the same directory, flushed and fsynced, then
renamed over the old one (and the directory fsynced), so a crash leaves the old or the new file,
never a partial or empty one.

To drop nodes unseen for a TTL across restarts, the last time each entry was seen is kept in a
small state file beside it; entries without state count as seen at load time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from enr import (
    ENR,
    Enode,
    EnodeError,
    ENRError,
    enode_from_enr,
    parse_enode,
    write_file_atomic,
)

__all__ = [
    "StaticNodes",
    "StaticNodesError",
    "atomic_write",
    "check_enode",
    "read_enode_list",
]


class StaticNodesError(ValueError):
    """The file cannot be used (unreadable, not JSON, not an array of strings...)."""


def atomic_write(path: str | os.PathLike[str], text: str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` atomically (temp file, fsync, rename, fsync directory);
    an existing file keeps its permission bits, a new one gets ``mode``.

    Raises:
        OSError: the directory is not writable, the disk is full... The old file is untouched.
    """
    target = Path(path)
    write_file_atomic(target, text, mode=None if target.exists() else mode)


def check_enode(text: str) -> Enode:
    """Parse an entry geth accepts in static-nodes.json (an enode URL or an ``enr:`` record)
    and insist it is dialable (a host and a non-zero TCP port).

    Raises:
        ENRError: not a valid entry; the message says why.
    """
    enode = enode_from_enr(ENR.from_text(text)) if text.startswith("enr:") else parse_enode(text)
    problems = enode.problems()
    if problems:
        raise EnodeError("; ".join(problems))
    return enode


def read_enode_list(path: str | os.PathLike[str]) -> list[str]:
    """A JSON array of strings from ``path`` (missing file: empty list).

    Raises:
        StaticNodesError: unreadable, not JSON, not an array of strings.
    """
    p = Path(path)
    if not p.exists():
        return []
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise StaticNodesError(f"cannot read {p}: {exc.strerror}") from None
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StaticNodesError(
            f"{p} is not valid JSON ({exc.msg}; line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise StaticNodesError(f"{p} is not a JSON array of enode strings")
    return data


@dataclass
class StaticNodes:
    """The managed set of static nodes.

    Args:
        path: the static-nodes.json file.
        ttl: seconds after which an entry not seen by the DHT is dropped (pins never are).
        pinned: enodes always kept.
        exclude: node ids never added (the relay itself).
    """

    path: Path
    ttl: float
    pinned: dict[bytes, str] = field(default_factory=dict)
    exclude: set[bytes] = field(default_factory=set)
    entries: dict[bytes, str] = field(default_factory=dict)
    """node id -> enode URL currently in the file."""
    last_seen: dict[bytes, float] = field(default_factory=dict)
    """node id -> Unix time the DHT last showed the node live."""
    invalid_on_load: list[tuple[str, str]] = field(default_factory=list)
    """Entries of the existing file that were not valid enodes, with the reason."""

    @property
    def state_path(self) -> Path:
        """Where last-seen times are kept."""
        return self.path.with_name(f".{self.path.name}.discv5-state.json")

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        ttl: float,
        now: float,
        pinned: Iterable[str] = (),
        exclude: Iterable[bytes] = (),
        replace_corrupt: bool = False,
    ) -> StaticNodes:
        """Read the current file and its state.

        Raises:
            StaticNodesError: the file is corrupt (not JSON / not an array of strings) and
                ``replace_corrupt`` is False; a pinned entry is not a valid enode.
        """
        self = cls(Path(path), ttl, exclude=set(exclude))
        self._remove_stale_temporaries()
        for text in pinned:
            try:
                enode = check_enode(text)
            except ENRError as exc:
                raise StaticNodesError(f"pinned entry {text[:40]!r} is invalid: {exc}") from None
            if enode.node_id not in self.exclude:  # the relay itself is never listed
                self.pinned[enode.node_id] = text
        try:
            existing = read_enode_list(self.path)
        except StaticNodesError:
            if not replace_corrupt:
                raise
            existing = []
        state: dict[str, float] = {}
        try:
            raw = json.loads(self.state_path.read_text(encoding="utf-8"))
            if isinstance(raw, dict):
                state = {str(k): float(v) for k, v in raw.items()}
        except (OSError, ValueError, TypeError):
            state = {}
        for text in existing:
            try:
                enode = check_enode(text)
            except ENRError as exc:
                self.invalid_on_load.append((text, str(exc)))
                continue
            if enode.node_id in self.exclude:
                continue
            self.entries[enode.node_id] = text
            self.last_seen[enode.node_id] = state.get(enode.node_id.hex(), now)
        for node_id, text in self.pinned.items():
            self.entries.setdefault(node_id, text)
        return self

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary files a killed writer left beside the file (``.<name>.*.tmp``)."""
        try:
            leftovers = list(self.path.parent.glob(f".{self.path.name}.*.tmp"))
        except OSError:
            return
        for tmp in leftovers:
            try:
                tmp.unlink()
            except OSError:
                pass

    def update(self, live: Mapping[bytes, str], now: float) -> tuple[list[str], list[str]]:
        """Merge the enodes the DHT shows live now; drop entries unseen for ``ttl``.

        Returns:
            (added, dropped) enode URLs.
        """
        added: list[str] = []
        for node_id, text in live.items():
            if node_id in self.exclude:
                continue
            self.last_seen[node_id] = now
            if self.entries.get(node_id) != text:
                if node_id not in self.entries:
                    added.append(text)
                self.entries[node_id] = text
        dropped: list[str] = []
        for node_id in list(self.entries):
            if node_id in self.pinned:
                continue
            if now - self.last_seen.get(node_id, now) > self.ttl:
                dropped.append(self.entries.pop(node_id))
                self.last_seen.pop(node_id, None)
        return added, dropped

    def text(self) -> str:
        """The file content: a JSON array, pinned entries first, then sorted."""
        pinned = [self.entries[n] for n in self.pinned if n in self.entries]
        rest = sorted(v for n, v in self.entries.items() if n not in self.pinned)
        return json.dumps(pinned + rest, indent=2) + "\n"

    def save(self) -> bool:
        """Write the file (and the state) if the content changed. Returns True if written.

        Raises:
            OSError: cannot write; the old file is untouched.
        """
        text = self.text()
        try:
            current = self.path.read_text(encoding="utf-8")
        except OSError:
            current = None
        changed = current != text
        if changed:
            atomic_write(self.path, text)
        state = {n.hex(): t for n, t in sorted(self.last_seen.items()) if n in self.entries}
        atomic_write(self.state_path, json.dumps(state, indent=1) + "\n")
        return changed
