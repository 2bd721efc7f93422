"""UI tests: every diagnostic of tests/ui/**/*.ftsc|yaml is annotated inline, and the full
rendering equals the golden `.stderr` next to it (`pytest --bless` or FTSC_BLESS=1 rewrites).

Annotations: `# error[FTS201]` at the end of the line the diagnostic starts on, or alone on the
line before it (applies to the next non-comment line); `# file-level: info[FTS204]` for a
diagnostic with no source position. Cases under `ui/model/` are checked against the doc model
(tests/docmodel.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ftsc.cli import check_file
from ftsc.diagnostics.render import render_text
from ftsc.frontend import load_file

from .docmodel import doc_graph

UI = Path(__file__).resolve().parent / "ui"
CASES = sorted(p for p in UI.rglob("*") if p.suffix in (".ftsc", ".yaml"))
ANNOTATION = re.compile(r"#\s*(error|warning|info)\[(FTS\d{3})\]")
FILE_LEVEL = re.compile(r"(error|warning|info)\[(FTS\d{3})\]")


def expected_annotations(text: str) -> set[tuple[int, str, str]]:
    out: set[tuple[int, str, str]] = set()
    pending: list[tuple[str, str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        found = ANNOTATION.findall(line)
        code_part = line.split("#", 1)[0].strip()
        if "# file-level:" in line:
            out |= {(0, sev, code) for sev, code in FILE_LEVEL.findall(line)}
            continue
        if found and not code_part:
            pending.extend(found)
            continue
        if code_part:
            out |= {(n, sev, code) for sev, code in found + pending}
            pending = []
    return out


@pytest.mark.parametrize("path", CASES, ids=[str(p.relative_to(UI)) for p in CASES])
def test_ui(path: Path, bless: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inline annotations match the diagnostics; the text rendering matches the golden file."""
    monkeypatch.chdir(path.parent)
    graph = doc_graph() if "model" in path.relative_to(UI).parts[:-1] else None
    diags = sorted(check_file(load_file(path.name), graph), key=lambda d: d.sort_key())
    got = {(d.start().line if d.start() else 0, d.severity.value, d.code) for d in diags}
    assert got == expected_annotations(path.read_text())
    rendered = render_text(diags)
    golden = path.with_suffix(path.suffix + ".stderr")
    if bless:
        golden.write_text(rendered)
    assert golden.exists(), f"missing {golden.name}: run pytest --bless"
    assert rendered == golden.read_text()
