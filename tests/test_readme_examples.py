"""Every code block in README.md works as pasted, so a sample cannot rot.

How blocks are collected (kept deliberately small, so README sections others add just work):

* A fenced block with the info string ``python`` is run as a script in a fresh interpreter
  (its own providers and globals), with the working directory in a temp dir, every ``OTEL_*``
  variable of the test run removed and ``OTEL_RUNCTX_LOCAL=true`` set, so nothing tries to reach
  a collector and whatever is exported lands in the temp dir's ``otel-runctx.jsonl``.
* A line ending in the comment ``# prints: TEXT`` makes the block's stdout have to contain TEXT
  (that keeps output shown in comments honest).
* ``toml`` and ``json`` blocks must parse. Other languages (``bash``, ``text``, bare fences) are
  shown, not run.
* Opt-out marker: an HTML comment on the line just before the opening fence,
  ``<!-- readme-test: skip: REASON -->``, skips that block; the reason is required and shows in
  the skip message (use it for blocks that need a server or another process).
* ``<!-- readme-test: continue -->`` before a python block runs it after the previous python
  block, in the same script (for a sample split by prose).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^`]*)$")
_MARKER = re.compile(r"<!--\s*readme-test:\s*(?P<what>skip|continue)\s*(?::\s*(?P<why>.*?))?\s*-->")
_PRINTS = re.compile(r"#\s*prints:\s*(?P<text>.+?)\s*$")


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    marker: str | None
    reason: str | None


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text``, with the readme-test marker just before each, if any."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, language = len(opening["indent"]), opening["info"].strip().split(" ")[0]
        body: list[str] = []
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            body.append(lines[end][indent:])
            end += 1
        previous = lines[index - 1] if index else ""
        marker = _MARKER.search(previous)
        blocks.append(
            Block(
                line=index + 1,
                language=language,
                code="\n".join(body) + "\n",
                marker=marker["what"] if marker else None,
                reason=(marker["why"] or None) if marker else None,
            )
        )
        index = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def _scripts() -> list[tuple[Block, str]]:
    """Python blocks as scripts to run; a ``continue`` block is appended to the one before."""
    scripts: list[tuple[Block, str]] = []
    for block in BLOCKS:
        if block.language != "python":
            continue
        if block.marker == "continue" and scripts:
            first, code = scripts[-1]
            scripts[-1] = (first, code + block.code)
            continue
        scripts.append((block, block.code))
    return scripts


def test_the_readme_has_the_blocks_this_test_is_about() -> None:
    assert len([b for b in BLOCKS if b.language == "python"]) >= 5
    assert all(b.reason for b in BLOCKS if b.marker == "skip"), "a skip needs its reason"


@pytest.mark.parametrize(
    ("block", "code"), [pytest.param(b, c, id=f"line-{b.line}") for b, c in _scripts()]
)
def test_python_block_runs_as_pasted(block: Block, code: str, tmp_path: Path) -> None:
    if block.marker == "skip":
        pytest.skip(f"README line {block.line}: {block.reason}")
    script = tmp_path / f"readme_line_{block.line}.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_RUNCTX_LOCAL"] = "true"
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    where = f"README.md line {block.line}"
    assert done.returncode == 0, (
        f"{where} failed:\n{code}\n--- output ---\n{done.stdout}{done.stderr}"
    )
    for expected in (m["text"] for m in map(_PRINTS.search, code.splitlines()) if m):
        assert expected in done.stdout, f"{where}: {expected!r} not printed:\n{done.stdout}"
    assert "Traceback" not in done.stderr, f"{where}:\n{done.stderr}"


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.language in ("toml", "json")], ids=lambda b: f"line-{b.line}"
)
def test_data_block_parses(block: Block) -> None:
    if block.marker == "skip":
        pytest.skip(f"README line {block.line}: {block.reason}")
    if block.language == "json":
        json.loads(block.code)
        return
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the stdlib from Python 3.11")
    tomllib.loads(block.code)


def test_the_collector_reads_markers_indentation_and_languages() -> None:
    sample = "\n".join(
        [
            "<!-- readme-test: skip: needs a server -->",
            "```python",
            "import server",
            "```",
            "  ```toml",
            "  a = 1",
            "  ```",
            "<!-- readme-test: continue -->",
            "```python",
            "x = 1",
            "```",
        ]
    )
    first, second, third = readme_blocks(sample)
    assert (first.marker, first.reason, first.code) == ("skip", "needs a server", "import server\n")
    assert (second.language, second.code) == ("toml", "a = 1\n")
    assert (third.marker, third.line) == ("continue", 9)
