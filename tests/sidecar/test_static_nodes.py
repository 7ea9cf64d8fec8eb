"""static-nodes.json upkeep: validation, merge, TTL across restarts, pins, exclusion, and the
file faults (corrupt file, directory not writable, failed writes, a writer killed mid-write)."""

from __future__ import annotations

import errno
import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from discv5._cli import main
from discv5.sidecar import (
    StaticNodes,
    StaticNodesError,
    atomic_write,
    check_enode,
    read_enode_list,
)
from enr import ENRError, parse_enode

from ._helpers import (
    RANDOM_ID_ENODE,
    ip_enode,
    node_id,
    onion_enode,
    read_only_dir,
    temp_files,
)

DAY = 86400.0
T0 = 1_700_000_000.0


def live(*seeds: int) -> dict[bytes, str]:
    """What the DHT shows live: node id -> enode, for onion enodes of ``seeds``."""
    return {node_id(s): onion_enode(s) for s in seeds}


def file_entries(path: Path) -> list[str]:
    data = json.loads(path.read_text())
    assert isinstance(data, list)
    return data


def assert_all_valid(path: Path) -> None:
    """Every entry parses, and ``discv5 static-nodes check`` accepts the file."""
    for entry in file_entries(path):
        check_enode(entry)
    assert main(["static-nodes", "check", str(path)]) == 0


# --- check_enode / read_enode_list ----------------------------------------------------------


def test_check_enode_accepts_dialable_enodes() -> None:
    for text in (onion_enode(1), ip_enode(2), ip_enode(3, "2001:db8::1").replace(
            "2001:db8::1", "[2001:db8::1]"), ip_enode(4) + "?discport=30305"):
        assert str(check_enode(text)) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (RANDOM_ID_ENODE, "invalid public key"),
        ("enode://" + "ab" * 32 + "@203.0.113.9:30303", "invalid public key"),
        (ip_enode(1).partition("@")[0], "no host"),
        (ip_enode(1, tcp=0), "tcp port is 0"),
        (onion_enode(1).replace(".onion", "a.onion"), "onion"),
        (onion_enode(1)[:-30] + "aaaa" + onion_enode(1)[-26:], "onion"),
        # geth accepts enr: records in static-nodes.json; a truncated one is still invalid.
        ("enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOon", "rlp|base64"),
        # The EIP-778 example record has no tcp port: not dialable.
        (
            "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R"
            "33Ls8RRcy5wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8y"
            "WM0xOIN1ZHCCdl8",
            "tcp port",
        ),
        ("", "scheme"),
    ],
)
def test_check_enode_rejects(text: str, reason: str) -> None:
    with pytest.raises(ENRError, match=reason):
        check_enode(text)


def test_read_enode_list(tmp_path: Path) -> None:
    path = tmp_path / "static-nodes.json"
    assert read_enode_list(path) == []
    path.write_text("  \n")
    assert read_enode_list(path) == []
    path.write_text(json.dumps([ip_enode(1), "anything"]))
    assert read_enode_list(path) == [ip_enode(1), "anything"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('["enode://', "not valid JSON"),
        ("\x00\x00\x00", "not valid JSON"),
        ('{"enode": "x"}', "not a JSON array"),
        ('"enode://x"', "not a JSON array"),
        ('["enode://x", 5]', "not a JSON array"),
        ("[null]", "not a JSON array"),
    ],
)
def test_read_enode_list_corrupt(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "static-nodes.json"
    path.write_text(content)
    with pytest.raises(StaticNodesError, match=reason):
        read_enode_list(path)


# --- merge, pins, exclusion -----------------------------------------------------------------


def test_new_file_gets_live_enodes_sorted_and_valid(tmp_path: Path) -> None:
    path = tmp_path / "static-nodes.json"
    nodes = StaticNodes.load(path, ttl=DAY, now=T0)
    added, dropped = nodes.update(live(3, 1, 2), T0)
    assert sorted(added) == sorted(live(1, 2, 3).values())
    assert dropped == []
    assert nodes.save() is True
    assert file_entries(path) == sorted(live(1, 2, 3).values())
    assert path.stat().st_mode & 0o777 == 0o644
    assert_all_valid(path)
    assert temp_files(tmp_path) == []
    # Nothing changed: the file is not rewritten.
    before = path.stat().st_mtime_ns
    assert nodes.update(live(1, 2, 3), T0 + 5) == ([], [])
    assert nodes.save() is False
    assert path.stat().st_mtime_ns == before


def test_invalid_existing_entries_dropped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "static-nodes.json"
    bad = [
        RANDOM_ID_ENODE,
        ip_enode(5).partition("@")[0],  # no host
        ip_enode(6, tcp=0),
        onion_enode(7).replace(".onion", "x.onion"),
        "not an enode",
    ]
    good = [ip_enode(1), onion_enode(2)]
    path.write_text(json.dumps([good[0], *bad, good[1]]))
    nodes = StaticNodes.load(path, ttl=DAY, now=T0)
    assert [text for text, _ in nodes.invalid_on_load] == bad
    reasons = dict(nodes.invalid_on_load)
    assert "invalid public key" in reasons[RANDOM_ID_ENODE]
    assert all(reason for _, reason in nodes.invalid_on_load)
    assert set(nodes.entries.values()) == set(good)
    nodes.update(live(3), T0)
    assert nodes.save() is True
    assert set(file_entries(path)) == {*good, onion_enode(3)}
    assert_all_valid(path)


def test_update_never_writes_an_invalid_entry_it_is_given(tmp_path: Path) -> None:
    """The merge input comes from validated records; still, what goes out must parse."""
    path = tmp_path / "static-nodes.json"
    nodes = StaticNodes.load(path, ttl=DAY, now=T0)
    nodes.update(live(1, 2), T0)
    nodes.save()
    for entry in file_entries(path):
        assert parse_enode(entry).node_id in live(1, 2)


def test_pins_always_kept_and_first(tmp_path: Path) -> None:
    path = tmp_path / "static-nodes.json"
    pins = [ip_enode(9, "198.51.100.1"), onion_enode(8)]
    nodes = StaticNodes.load(path, ttl=60, now=T0, pinned=pins)
    nodes.update(live(1), T0)
    nodes.save()
    assert file_entries(path) == [*pins, onion_enode(1)]
    # Long after: the unseen live node is dropped, the pins (never seen) stay.
    nodes = StaticNodes.load(path, ttl=60, now=T0 + DAY, pinned=pins)
    added, dropped = nodes.update({}, T0 + DAY)
    assert (added, dropped) == ([], [onion_enode(1)])
    nodes.save()
    assert file_entries(path) == pins
    assert_all_valid(path)


def test_invalid_pin_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StaticNodesError, match=r"pinned entry .* is invalid"):
        StaticNodes.load(tmp_path / "s.json", ttl=DAY, now=T0, pinned=[RANDOM_ID_ENODE])


def test_excluded_node_never_added_and_removed_on_load(tmp_path: Path) -> None:
    path = tmp_path / "static-nodes.json"
    path.write_text(json.dumps([onion_enode(1), onion_enode(2)]))
    nodes = StaticNodes.load(path, ttl=DAY, now=T0, exclude=[node_id(1)])
    assert set(nodes.entries) == {node_id(2)}
    added, _ = nodes.update(live(1, 3), T0)
    assert added == [onion_enode(3)]
    nodes.save()
    assert set(file_entries(path)) == {onion_enode(2), onion_enode(3)}


def test_changed_enode_replaces_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "static-nodes.json"
    nodes = StaticNodes.load(path, ttl=DAY, now=T0)
    nodes.update({node_id(1): onion_enode(1, tcp=30303)}, T0)
    nodes.save()
    added, dropped = nodes.update({node_id(1): onion_enode(1, tcp=30310)}, T0 + 1)
    assert (added, dropped) == ([], [])
    nodes.save()
    assert file_entries(path) == [onion_enode(1, tcp=30310)]


# --- TTL across restarts --------------------------------------------------------------------


def test_ttl_drop_across_reload_uses_state_file(tmp_path: Path) -> None:
    path = tmp_path / "static-nodes.json"
    ttl = 100.0
    nodes = StaticNodes.load(path, ttl=ttl, now=T0)
    nodes.update(live(1, 2), T0)
    nodes.save()
    assert nodes.state_path.exists()
    state = json.loads(nodes.state_path.read_text())
    assert state == {node_id(1).hex(): T0, node_id(2).hex(): T0}

    # Restart 50 s later: only node 1 is still live.
    nodes = StaticNodes.load(path, ttl=ttl, now=T0 + 50)
    assert nodes.last_seen == {node_id(1): T0, node_id(2): T0}
    assert nodes.update(live(1), T0 + 50) == ([], [])
    nodes.save()

    # Restart again, 120 s after node 2 was last seen: it is dropped, node 1 (70 s) kept.
    nodes = StaticNodes.load(path, ttl=ttl, now=T0 + 120)
    added, dropped = nodes.update({}, T0 + 120)
    assert (added, dropped) == ([], [onion_enode(2)])
    assert nodes.save() is True
    assert file_entries(path) == [onion_enode(1)]
    assert json.loads(nodes.state_path.read_text()) == {node_id(1).hex(): T0 + 50}


def test_entries_without_state_count_as_seen_at_load(tmp_path: Path) -> None:
    path = tmp_path / "static-nodes.json"
    path.write_text(json.dumps([onion_enode(1)]))  # written by hand: no state file
    nodes = StaticNodes.load(path, ttl=100, now=T0)
    assert nodes.update({}, T0 + 100) == ([], [])
    assert nodes.update({}, T0 + 101) == ([], [onion_enode(1)])


@pytest.mark.parametrize("state", ["{", "[1, 2]", '{"zz": "not a number"}', ""])
def test_corrupt_state_file_is_ignored(tmp_path: Path, state: str) -> None:
    path = tmp_path / "static-nodes.json"
    path.write_text(json.dumps([onion_enode(1)]))
    nodes = StaticNodes.load(path, ttl=100, now=T0)
    nodes.state_path.write_text(state)
    nodes = StaticNodes.load(path, ttl=100, now=T0)
    assert nodes.last_seen == {node_id(1): T0}


# --- corrupt file ---------------------------------------------------------------------------


@pytest.mark.parametrize("content", ['["enode://abc', '{"nodes": []}', "[1, 2, 3]"])
def test_corrupt_file_refused_unless_asked(tmp_path: Path, content: str) -> None:
    path = tmp_path / "static-nodes.json"
    path.write_text(content)
    with pytest.raises(StaticNodesError):
        StaticNodes.load(path, ttl=DAY, now=T0)
    assert path.read_text() == content
    nodes = StaticNodes.load(path, ttl=DAY, now=T0, replace_corrupt=True)
    assert nodes.entries == {}
    nodes.update(live(1), T0)
    assert nodes.save() is True
    assert file_entries(path) == [onion_enode(1)]


# --- atomic writes and their failures -------------------------------------------------------


def test_atomic_write_keeps_mode_of_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "static-nodes.json"
    path.write_text("[]")
    path.chmod(0o600)
    atomic_write(path, "[1]\n")
    assert path.read_text() == "[1]\n"
    assert path.stat().st_mode & 0o777 == 0o600
    atomic_write(tmp_path / "new.json", "[]\n", mode=0o640)
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o640
    assert temp_files(tmp_path) == []


def test_parent_is_a_regular_file(tmp_path: Path) -> None:
    """Works as root too: no permission bits involved."""
    parent = tmp_path / "data"
    parent.write_text("I am a file")
    with pytest.raises(NotADirectoryError):
        atomic_write(parent / "static-nodes.json", "[]\n")
    nodes = StaticNodes.load(parent / "static-nodes.json", ttl=DAY, now=T0)
    nodes.update(live(1), T0)
    with pytest.raises(OSError):
        nodes.save()
    assert parent.read_text() == "I am a file"


def test_directory_not_writable(tmp_path: Path) -> None:
    """A real write-protected directory (mode 0555, or ``chattr +i`` as root)."""
    directory = tmp_path / "geth"
    directory.mkdir()
    path = directory / "static-nodes.json"
    nodes = StaticNodes.load(path, ttl=DAY, now=T0)
    nodes.update(live(1), T0)
    nodes.save()
    old = path.read_bytes()
    nodes.update(live(2), T0)
    with read_only_dir(directory):
        with pytest.raises(PermissionError):
            nodes.save()
        assert path.read_bytes() == old
        assert temp_files(directory) == []
    assert file_entries(path) == [onion_enode(1)]


@pytest.mark.parametrize("failing", ["replace", "fsync", "write"])
def test_failed_write_leaves_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """A failure at any step (disk full while writing, fsync error, rename refused): OSError,
    the old file untouched, the temporary file removed."""
    path = tmp_path / "static-nodes.json"
    atomic_write(path, json.dumps([onion_enode(1)]))
    old = path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if failing == "write":
        real_fdopen = os.fdopen

        class Full:
            def __init__(self, *args: object, **kwargs: object) -> None:
                self.f = real_fdopen(*args, **kwargs)  # type: ignore[call-overload]

            def __enter__(self) -> Full:
                return self

            def __exit__(self, *exc: object) -> None:
                self.f.close()

            def write(self, text: str) -> int:
                self.f.write(text[: len(text) // 2])
                self.f.flush()
                raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "fdopen", Full)
    else:
        monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, json.dumps([onion_enode(2)] * 100))
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert temp_files(tmp_path) == []


# --- a writer killed mid-write --------------------------------------------------------------

_WRITER = r"""
import json, os, sys
from discv5.sidecar import atomic_write

pool = json.loads(open(sys.argv[1]).read())
target = sys.argv[2]

def version(k):
    k %= len(pool)
    return json.dumps(pool[k:] + pool[:k], indent=2) + "\n"

for line in sys.stdin:
    start, count = map(int, line.split())
    pid = os.fork()
    if pid == 0:
        try:
            for k in range(start, start + count):
                atomic_write(target, version(k))
        finally:
            os._exit(0)
    print(pid, flush=True)
    print(os.waitpid(pid, 0)[1], flush=True)
"""


class _LineReader:
    """Lines from a pipe, each awaited with a deadline (a hang guard)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buffer = b""
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)

    def readline(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                raise TimeoutError("writer process did not answer")
            data = os.read(self.fd, 4096)
            if not data:
                raise EOFError("writer process ended")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()


def test_killed_mid_write_leaves_old_or_new_file(tmp_path: Path) -> None:
    """SIGKILL a process that rewrites a large static-nodes.json in a loop, at random
    (seeded) moments: afterwards the file is always complete, valid JSON equal to one of the
    versions written, never a partial or empty file.

    One Python process imports the library once and forks a fresh writer per round; the test
    kills the writer (the forked child) with SIGKILL after a random delay.
    """
    rounds, gap, size = 30, 100, 3200
    pool = [ip_enode(i + 1, f"198.51.{100 + i // 250}.{i % 250 + 1}") for i in range(size)]
    pool_path = tmp_path / "pool.json"
    pool_path.write_text(json.dumps(pool))
    target = tmp_path / "static-nodes.json"
    atomic_write(target, json.dumps(pool, indent=2) + "\n")  # version 0

    def version_of(data: list[str]) -> int:
        k = pool.index(data[0])
        assert data == pool[k:] + pool[:k]
        return k

    rng = random.Random(0x5EED)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(pool_path), str(target)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
    )
    assert proc.stdin is not None
    reader = _LineReader(proc)
    previous = 0
    versions = {0}
    killed_mid_write = 0
    try:
        for i in range(1, rounds + 1):
            start = i * gap
            proc.stdin.write(f"{start} {gap}\n".encode())
            proc.stdin.flush()
            pid = int(reader.readline())
            time.sleep(rng.uniform(0.0, 0.04))  # the random moment of the kill
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it wrote all its versions first
            status = int(reader.readline())
            assert os.WIFSIGNALED(status) or os.WEXITSTATUS(status) == 0
            leftovers = temp_files(tmp_path)
            if leftovers:
                killed_mid_write += 1
                for name in leftovers:
                    (tmp_path / name).unlink()
            text = target.read_text()
            assert text.endswith("]\n"), f"round {i}: partial file"
            k = version_of(json.loads(text))
            assert k == previous or start <= k < start + gap, (i, k, previous)
            previous = k
            versions.add(k)
    finally:
        reader.selector.close()
        proc.kill()
        proc.communicate(timeout=30)
    assert len(versions) > 1, "the writer never completed a write: the test proved nothing"
    assert killed_mid_write > 0, "no kill landed inside a write: the test proved nothing"
    assert_all_valid(target)


def test_check_enode_accepts_a_signed_record_with_tcp() -> None:
    """geth's static-nodes.json also takes ``enr:`` records; one with ip and tcp is dialable."""
    from enr import ENR, PrivateKey

    key = PrivateKey(bytes(31) + b"\x07")
    record = ENR.build(key, 1, ip="203.0.113.7", tcp=30303, udp=30303)
    enode = check_enode(record.to_text())
    assert enode.node_id == record.node_id
    assert enode.tcp == 30303
