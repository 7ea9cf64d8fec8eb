"""Import rules of docs/architecture.md, checked on the source with ``ast`` (nothing is imported).

1. The sans-IO core (every top-level ``discv5/_*.py`` except the driver and tool modules in
   ``DRIVER_MODULES`` below) imports no I/O, clock or entropy module and never calls
   ``os.urandom``: time and randomness are parameters.
2. ``enr`` never imports ``discv5``.
3. Crypto backends are reached through one adapter per package: in ``discv5`` only
   ``_crypto.py``; in ``enr`` only ``_keys.py`` and ``_keyfiles.py``.
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DISCV5 = ROOT / "discv5"
ENR_DIR = ROOT / "enr"

# Modules of discv5/ that sit above the I/O boundary and may use trio, sockets and the clock.
# The allow-list is explicit: a new I/O module has to be named here on purpose.
DRIVER_MODULES = (
    "_node.py",  # the trio driver
    "_node_*.py",
    "_driver*.py",
    "_testnet*.py",  # local test network launcher
    "_cli.py",  # command-line front end (if it is a single module)
    "__main__.py",  # ``python -m discv5`` entry point (calls the CLI)
    "_conformance*.py",  # devp2p-style conformance tester: drives a node over real UDP
)
# Subpackages of discv5/ that are tools built on the public API, not part of the core.
# (They are not checked for I/O imports; the crypto-backend rule still applies to them.)
TOOL_PACKAGES = ("_cli", "crawl", "sidecar")

FORBIDDEN_IN_CORE = frozenset(
    {"trio", "socket", "asyncio", "time", "random", "secrets", "select", "selectors"}
)
CRYPTO_BACKENDS = frozenset({"cryptography", "coincurve", "Crypto", "Cryptodome", "eth_hash"})
DISCV5_CRYPTO_ADAPTERS = frozenset({"_crypto.py"})
ENR_CRYPTO_ADAPTERS = frozenset({"_keys.py", "_keyfiles.py"})


def _is_driver(path: Path) -> bool:
    return any(fnmatch.fnmatchcase(path.name, pattern) for pattern in DRIVER_MODULES)


def core_modules() -> list[Path]:
    """Top-level discv5/_*.py files below the I/O boundary (``__init__`` is the facade)."""
    return sorted(p for p in DISCV5.glob("_*.py") if p.name != "__init__.py" and not _is_driver(p))


def _package_of(path: Path) -> list[str]:
    return list(path.relative_to(ROOT).with_suffix("").parts[:-1])


def imported_modules(path: Path) -> Iterator[tuple[str, int]]:
    """Every absolute module name ``path`` imports (relative imports resolved), with line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _package_of(path)
                base = package[: len(package) - node.level + 1]
                prefix = ".".join(base)
                module = f"{prefix}.{node.module}" if node.module else prefix
            else:
                module = node.module or ""
            yield module, node.lineno
            # ``from x import y`` may import submodule x.y
            for alias in node.names:
                yield f"{module}.{alias.name}", node.lineno


def urandom_uses(path: Path) -> Iterator[int]:
    """Lines that touch ``os.urandom`` (attribute access or ``from os import urandom``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "urandom":
            yield node.lineno
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            yield from (node.lineno for alias in node.names if alias.name == "urandom")


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_core_module_list_is_sane() -> None:
    names = {p.name for p in core_modules()}
    # The codec layer this file was written with must be covered.
    assert {"_crypto.py", "_packet.py", "_messages.py", "_types.py", "_errors.py"} <= names
    assert "_node.py" not in names


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: p.name)
def test_core_modules_do_no_io(path: Path) -> None:
    bad = [
        f"{_rel(path)}:{line} imports {module}"
        for module, line in imported_modules(path)
        if _top(module) in FORBIDDEN_IN_CORE
    ]
    bad += [f"{_rel(path)}:{line} uses os.urandom" for line in urandom_uses(path)]
    assert not bad, "sans-IO core must take time and randomness as parameters:\n" + "\n".join(bad)


def test_enr_never_imports_discv5() -> None:
    bad = [
        f"{_rel(path)}:{line} imports {module}"
        for path in sorted(ENR_DIR.rglob("*.py"))
        for module, line in imported_modules(path)
        if _top(module) == "discv5"
    ]
    assert not bad, "\n".join(bad)


def test_discv5_crypto_backend_only_in_crypto_adapter() -> None:
    bad = [
        f"{_rel(path)}:{line} imports {module}"
        for path in sorted(DISCV5.rglob("*.py"))
        if not (path.parent == DISCV5 and path.name in DISCV5_CRYPTO_ADAPTERS)
        for module, line in imported_modules(path)
        if _top(module) in CRYPTO_BACKENDS
    ]
    assert not bad, "only discv5/_crypto.py may import a crypto backend:\n" + "\n".join(bad)


def test_enr_crypto_backend_only_in_key_modules() -> None:
    bad = [
        f"{_rel(path)}:{line} imports {module}"
        for path in sorted(ENR_DIR.rglob("*.py"))
        if not (path.parent == ENR_DIR and path.name in ENR_CRYPTO_ADAPTERS)
        for module, line in imported_modules(path)
        if _top(module) in CRYPTO_BACKENDS
    ]
    assert not bad, "only enr/_keys.py and enr/_keyfiles.py may import a crypto backend:\n" + (
        "\n".join(bad)
    )


# --- the checker itself -------------------------------------------------------------------------


def test_checker_sees_every_import_form(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "import trio.lowlevel\n"
        "from time import monotonic\n"
        "def f():\n"
        "    import secrets\n"
        "    from os import urandom\n"
        "    import os\n"
        "    return os.urandom(4)\n"
    )
    modules = {_top(m) for m, _ in imported_modules(source)}
    assert {"trio", "time", "secrets", "os"} <= modules
    assert sorted(urandom_uses(source)) == [5, 7]


def test_checker_resolves_relative_imports() -> None:
    path = DISCV5 / "_packet.py"
    modules = {m for m, _ in imported_modules(path)}
    assert "discv5._crypto" in modules
