"""Fixtures for the ChainSafe interop tests.

``chainsafe`` yields a running :class:`~.chainsafe.ChainSafeHarness`. The tests skip only when
``node`` is not on PATH; a failing ``npm ci`` (or a harness that does not start) fails them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .chainsafe import (
    ChainSafeHarness,
    ensure_npm_packages,
    node_executable,
    open_chainsafe_harness,
)


@pytest.fixture(scope="session")
def chainsafe_js_dir() -> Path:
    """The harness folder with its npm packages installed (once per session, xdist-safe)."""
    if node_executable() is None:
        pytest.skip(
            "Node.js (`node`) is not on PATH: the ChainSafe discv5 interop tests need it "
            "(install Node.js >= 20 and npm; the tests install their npm packages themselves)"
        )
    return ensure_npm_packages()


@pytest.fixture
async def chainsafe(chainsafe_js_dir: Path) -> AsyncIterator[ChainSafeHarness]:
    """A fresh harness process for one test; all its ChainSafe nodes stop afterwards."""
    async with open_chainsafe_harness(js_dir=chainsafe_js_dir) as harness:
        yield harness
