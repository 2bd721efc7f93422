"""Every shell example in README.md and docs/*.md that shows output is run, and its output compared.

Convention (docs/diagnostics.md, "Examples in these docs"): a ```console block holds `$ command`
lines, each followed by the exact output it prints (stdout and stderr, in the order written).
A fenced block whose info string names a file after its language (```yaml fts_fsdp.yaml) is
written to that file before the console blocks after it in the same document run. Each console
block runs in a fresh folder holding those files and a copy of `examples/`; its commands run in
order, in one shell each. `pytest --bless` (or FTSC_BLESS=1) rewrites the outputs in the docs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
        *sorted((REPO / "docs" / "dialects").glob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
PROMPT = "$ "


@dataclass(frozen=True)
class Example:
    """One console block: the document, where it starts, the files declared before it, its commands."""

    doc: Path
    line: int
    index: int
    body_span: tuple[int, int]
    files: tuple[tuple[str, str], ...]
    steps: tuple[tuple[str, str], ...]  # (command, expected output)


def _steps(body: str) -> tuple[tuple[str, str], ...]:
    steps: list[tuple[str, list[str]]] = []
    for row in body.splitlines():
        if row.startswith(PROMPT):
            steps.append((row[len(PROMPT):], []))
        elif steps:
            steps[-1][1].append(row)
        elif row.strip():
            raise AssertionError(f"console block starts with output, not a `$ ` command: {row!r}")
    return tuple((cmd, "\n".join(out).rstrip("\n")) for cmd, out in steps)


def collect(doc: Path) -> list[Example]:
    """The console examples of one document, with the files declared before each."""
    text = doc.read_text()
    files: dict[str, str] = {}
    out: list[Example] = []
    for m in FENCE.finditer(text):
        info, body = m.group(1).split(), m.group(2)
        line = text.count("\n", 0, m.start()) + 1
        if info[:1] == ["console"]:
            out.append(Example(doc, line, len(out), m.span(2), tuple(files.items()), _steps(body)))
        elif len(info) == 2 and "/" not in info[1] and "." in info[1]:
            files[info[1]] = body
    return out


EXAMPLES = [ex for doc in DOCS for ex in collect(doc)]


def _run(command: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTSC_")}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", COLUMNS="100", PATH=f"{cwd / '.bin'}{os.pathsep}"
               f"{env.get('PATH', '')}")
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
    return "\n".join(row.rstrip() for row in done.stdout.splitlines()).rstrip("\n")


def _workdir(tmp_path: Path, files: tuple[tuple[str, str], ...]) -> Path:
    work = tmp_path / "work"
    shutil.copytree(REPO / "examples", work / "examples", ignore=shutil.ignore_patterns("__pycache__", "lightning_logs"))
    (work / ".git").mkdir()  # the project folder, for [tool.ftsc] discovery and ft_schedule paths
    shim = work / ".bin" / "ftsc"
    shim.parent.mkdir()
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m ftsc \"$@\"\n")
    shim.chmod(0o755)
    for name, body in files:
        (work / name).write_text(body)
    return work


@pytest.mark.parametrize("example", EXAMPLES,
                         ids=[f"{ex.doc.relative_to(REPO).as_posix()}:{ex.line}" for ex in EXAMPLES])
def test_console_example(example: Example, tmp_path: Path, bless: bool) -> None:
    """Each `$ command` prints exactly the output shown under it."""
    work = _workdir(tmp_path, example.files)
    got = [(cmd, _run(cmd, work)) for cmd, _ in example.steps]
    if bless and got != list(example.steps):
        _rewrite(example, got)
        return
    for (cmd, expected), (_, actual) in zip(example.steps, got, strict=True):
        assert actual == "\n".join(row.rstrip() for row in expected.splitlines()), f"$ {cmd}"


def _rewrite(example: Example, got: list[tuple[str, str]]) -> None:
    """Replace the block's outputs with what the commands printed (found again by its position
    among the document's console blocks, as earlier rewrites move it)."""
    text = example.doc.read_text()
    fresh = collect(example.doc)[example.index]
    start, end = fresh.body_span
    body = "".join(f"{PROMPT}{cmd}\n" + (out + "\n" if out else "") for cmd, out in got)
    example.doc.write_text(text[:start] + body + text[end:])


def test_examples_are_collected() -> None:
    """The docs have console examples in several documents (the collection is not vacuous)."""
    assert len(EXAMPLES) >= 8
    assert len({ex.doc for ex in EXAMPLES}) >= 3
    assert all(ex.steps for ex in EXAMPLES)


@pytest.mark.parametrize("doc", DOCS, ids=[d.relative_to(REPO).as_posix() for d in DOCS])
def test_shell_output_only_in_console_blocks(doc: Path) -> None:
    """A block that shows a `$ ` prompt is a console block (so it is run); shell blocks hold
    commands only."""
    text = doc.read_text()
    for m in FENCE.finditer(text):
        lang = (m.group(1).split() or [""])[0]
        prompts = [row for row in m.group(2).splitlines() if row.startswith(PROMPT)]
        line = text.count("\n", 0, m.start()) + 1
        assert lang == "console" or not prompts, f"{doc.name}:{line}: `$ ` lines outside a console block"


def test_a_wrong_output_fails(tmp_path: Path) -> None:
    """The comparison is real: an example with a wrong output line does not match."""
    doc = tmp_path / "doc.md"
    doc.write_text("```ftsc s.ftsc\nphase 1 {\n    thaw a\n}\n```\n\n```console\n$ ftsc check --format concise s.ftsc\n"
                   "s.ftsc:1:7: error[FTS201] something else\n```\n")
    (example,) = collect(doc)
    work = _workdir(tmp_path, example.files)
    ((cmd, expected),) = example.steps
    actual = _run(cmd, work)
    assert actual.startswith("s.ftsc:1:7: error[FTS201] ") and actual != expected
