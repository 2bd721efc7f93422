"""Render diagnostics: `text` (rustc-style snippets), `concise`, `json`, `github`, `sarif`.

Input: diagnostics. Output: strings. One function per format; `RENDERERS` maps names to them.
Never imports torch.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from ftsc.diagnostics import Diagnostic, Label, Severity
from ftsc.diagnostics.registry import RULES
from ftsc.source import SourceFile

JSON_VERSION = 1


def _path(d: Diagnostic) -> str | None:
    return d.file.display_path if d.file else None


def _summary(diags: Sequence[Diagnostic]) -> dict[str, int]:
    counts = Counter(d.severity.value for d in diags)
    return {s.value: counts.get(s.value, 0) for s in Severity}


def _other_files(d: Diagnostic) -> list[tuple[SourceFile, list[Label]]]:
    """Secondary labels whose spans lie in another file than the diagnostic's, grouped by file."""
    assert d.file is not None
    groups: dict[str, tuple[SourceFile, list[Label]]] = {}
    for lab in d.secondary:
        other = lab.span.file
        if other is not None and other.path != d.file.path:
            groups.setdefault(other.path, (other, []))[1].append(lab)
    return list(groups.values())


def _snippet_lines(src: SourceFile, labels: list[tuple[Label, str]]) -> list[str]:
    """The lines of `src` under `labels` with `^` (primary) and `-` (secondary) underlines."""
    by_line: dict[int, list[tuple[int, int, str, str]]] = {}
    for label, mark in labels:
        start, end = src.position(label.span.start), src.position(label.span.end)
        line_text = src.line_text(start.line)
        col_end = end.column if end.line == start.line else len(line_text) + 1
        by_line.setdefault(start.line, []).append((start.column, max(col_end, start.column + 1), mark, label.message))
    width = len(str(max(by_line)))
    out = [f"{' ' * width} |"]
    previous = None
    for line in sorted(by_line):
        if previous is not None and line > previous + 1:
            out.append("...")
        text = src.line_text(line).replace("\t", " ")
        if len(text) > 200:
            text = text[:200] + "..."
        out.append(f"{line:>{width}} | {text}")
        for col, col_end, mark, message in sorted(by_line[line]):
            col = min(col, len(text) + 1)
            length = max(1, min(col_end, len(text) + 1) - col)
            out.append(f"{' ' * width} | {' ' * (col - 1)}{mark * length}{' ' + message if message else ''}")
        previous = line
    out.append(f"{' ' * width} |")
    return out


def render_text(diags: Sequence[Diagnostic]) -> str:
    """rustc-style: header, location, snippet with carets, notes, help, then a summary."""
    blocks: list[str] = []
    for d in diags:
        lines = [f"{d.severity.value}[{d.code}]: {d.message}"]
        start = d.start()
        if d.file is not None and start is not None:
            assert d.primary is not None
            lines.append(f"  --> {_path(d)}:{start.line}:{start.column}")
            others = _other_files(d)
            elsewhere = {id(lab) for _, labs in others for lab in labs}
            lines.extend(_snippet_lines(d.file, [(d.primary, "^")] + [(lab, "-") for lab in d.secondary
                                                                      if id(lab) not in elsewhere]))
            for other, labs in others:
                first = other.position(min(lab.span.start for lab in labs))
                lines.append(f"  ::: {other.display_path}:{first.line}:{first.column}")
                lines.extend(_snippet_lines(other, [(lab, "-") for lab in labs]))
        elif d.file is not None:
            lines.append(f"  --> {_path(d)}")
        pad = " " * (len(str(start.line)) if start else 2)
        lines.extend(f"{pad} = note: {n}" for n in d.notes)
        if d.help:
            lines.append(f"help: {d.help}")
        blocks.append("\n".join(lines))
    summary = _summary(diags)
    tail: list[str] = []
    if summary["error"]:
        plural = "s" if summary["error"] > 1 else ""
        tail.append(f"error: aborting due to {summary['error']} previous error{plural}")
        first = next(d.code for d in diags if d.severity is Severity.ERROR)
        tail.append(f"For more information about an error, try `ftsc rule {first}`.")
    elif summary["warning"]:
        plural = "s" if summary["warning"] > 1 else ""
        tail.append(f"warning: {summary['warning']} warning{plural} emitted")
    return "\n\n".join(blocks + (["\n".join(tail)] if tail else [])) + ("\n" if blocks or tail else "")


def render_concise(diags: Sequence[Diagnostic]) -> str:
    """`path:line:col: severity[CODE] message`, one line each."""
    out = []
    for d in diags:
        start = d.start()
        where = f"{_path(d)}:{start.line}:{start.column}" if start else (_path(d) or "<input>")
        out.append(f"{where}: {d.severity.value}[{d.code}] {d.message}")
    return "".join(line + "\n" for line in out)


def to_json_obj(d: Diagnostic) -> dict[str, Any]:
    """One diagnostic as SPEC §5.1 JSON."""
    start, end = d.start(), d.end()
    return {
        "code": d.code,
        "name": d.name,
        "severity": d.severity.value,
        "message": d.message,
        "file": _path(d),
        "start": {"line": start.line, "column": start.column} if start else None,
        "end": {"line": end.line, "column": end.column} if end else None,
        "notes": list(d.notes),
        "help": d.help,
        "data": dict(d.data),
    }


def render_json(diags: Sequence[Diagnostic]) -> str:
    """SPEC §5.1: `{"version": 1, "diagnostics": [...], "summary": {...}}`."""
    doc = {"version": JSON_VERSION, "diagnostics": [to_json_obj(d) for d in diags], "summary": _summary(diags)}
    return json.dumps(doc, indent=2, default=str) + "\n"


def _gh_escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def render_github(diags: Sequence[Diagnostic]) -> str:
    """GitHub Actions workflow annotations."""
    level = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
    out = []
    for d in diags:
        props = []
        start, end = d.start(), d.end()
        if d.file:
            props.append(f"file={_gh_escape(_path(d) or '', True)}")
        if start and end:
            props += [f"line={start.line}", f"col={start.column}", f"endLine={end.line}", f"endColumn={end.column}"]
        props.append(f"title={_gh_escape(f'{d.code} {d.name}', True)}")
        out.append(f"::{level[d.severity]} {','.join(props)}::{_gh_escape(f'[{d.code}] {d.message}')}")
    return "".join(line + "\n" for line in out)


def render_sarif(diags: Sequence[Diagnostic]) -> str:
    """SARIF 2.1.0 with one run, rules from the registry."""
    from ftsc import __version__

    level = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
    used = sorted({d.code for d in diags})
    results = []
    for d in diags:
        result: dict[str, Any] = {"ruleId": d.code, "level": level[d.severity], "message": {"text": d.message}}
        start, end = d.start(), d.end()
        if d.file:
            loc: dict[str, Any] = {"artifactLocation": {"uri": _path(d)}}
            if start and end:
                loc["region"] = {"startLine": start.line, "startColumn": start.column,
                                 "endLine": end.line, "endColumn": end.column}
            result["locations"] = [{"physicalLocation": loc}]
        results.append(result)
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "ftsc", "version": __version__, "rules": [
                {"id": c, "name": RULES[c].name, "shortDescription": {"text": RULES[c].summary}} for c in used]}},
            "results": results,
        }],
    }
    return json.dumps(doc, indent=2) + "\n"


RENDERERS: dict[str, Callable[[Sequence[Diagnostic]], str]] = {
    "text": render_text,
    "full": render_text,
    "concise": render_concise,
    "json": render_json,
    "github": render_github,
    "sarif": render_sarif,
}
