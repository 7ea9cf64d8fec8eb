"""The examples in docs/ are run here, so the documentation cannot drift from the code.

Python blocks of a page run in order in one namespace, in an empty temporary directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
_BLOCK_RE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: str) -> list[str]:
    return _BLOCK_RE.findall((DOCS / page).read_text())


@pytest.mark.parametrize("page", ["enr.md", "quickstart.md"])
def test_python_examples_run(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = python_blocks(page)
    assert blocks, f"no python examples in docs/{page}"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page.replace('.', '_')}"}
    for number, block in enumerate(blocks, start=1):
        code = compile(block, f"docs/{page} python block {number}", "exec")
        exec(code, namespace)
    capsys.readouterr()
