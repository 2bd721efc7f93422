"""`ftsc explain --format html`: the page drawn from real `ftsc explain` runs, read back in headless
Chromium (playwright driving the system's Chromium; nothing downloaded), must show exactly the
JSON's units x phases states and trainable numels and its memory numbers; plus escaping,
determinism and self-containment without a browser.

The browser tests skip when playwright or Chromium is missing, unless the environment variable CI
is set: then they fail (.ci/run sets it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from ftsc.cli import main

from .conftest import REPO
from .test_explain import _layered_manifest

EXAMPLE = ["examples/explain/schedule.ftsc", "--manifest", "examples/explain/manifest.json"]
NASTY = ['<script>alert("unit")</script>', "a\"b'c&d<e>", "</td></tr><tr><td>x"]


# (case id, schedule text or None for the bundled example, extra CLI arguments)
CASES = [
    ("example-fsdp1", None, ["--world-size", "2"]),
    ("fsdp1-partial", 'phase 0 { thaw glob "layers.2.**" }\nphase 1 { thaw glob "layers.1.fc.weight" }\n'
                      "fsdp { auto_wrap_policy = [Block] }\n", ["--world-size", "2"]),
    ("fsdp2-estimate", 'phase 0 { thaw glob "layers.2.**" }\nphase 1 { thaw glob "layers.0.**" }\n'
                       'fsdp2 { shard glob "layers.*" shard "" }\n',
     ["--world-size", "4", "--batch", "2", "--seq", "16"]),
    ("fsdp2-offload", 'phase 0 { thaw glob "layers.2.**" }\n'
                      'fsdp2 { fsdp_default_kwargs = { offload_policy = {} } shard glob "layers.*" shard "" }\n',
     ["--world-size", "2"]),
]


def _explain(case: str, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run `ftsc explain` for a case in `--format fmt` (html via `-o`); (exit status, output)."""
    _, text, extra = next(c for c in CASES if c[0] == case)
    if text is None:
        args = [*EXAMPLE, *extra]
    else:
        (tmp_path / "s.ftsc").write_text(text, encoding="utf-8")
        args = [str(tmp_path / "s.ftsc"), "--manifest", _layered_manifest(tmp_path, 3), *extra]
    out = tmp_path / f"out.{fmt}"
    rc = main(["explain", *args, "--format", fmt, "-o", str(out)])
    capsys.readouterr()
    return rc, out.read_text(encoding="utf-8")


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


# --- without a browser -----------------------------------------------------------------------

class _Cells(HTMLParser):
    """The attributes of every matrix cell and bar segment, as an HTML parser reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str | None]] = []
        self.rows: list[str | None] = []
        self.scripts = 0
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "td" and "data-state" in a:
            self.cells.append(a)
        if tag == "tr" and "data-unit" in a:
            self.rows.append(a["data-unit"])
        self.scripts += tag == "script"
        self.external += [v for k, v in attrs if k in ("src", "href") and v]


def _nasty_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with hostile unit names, dtype, diagnostic message and optimizer."""
    doc = json.loads(json.dumps(doc))
    names = {u["name"]: NASTY[i % len(NASTY)] + str(i) for i, u in enumerate(doc["units"])}
    for u in doc["units"]:
        u["name"] = names[u["name"]]
    for p in doc["phases"]:
        for c in p["units"]:
            c["name"] = names[c["name"]]
    doc["units"][0]["dtype"] = "<b>float32</b>"
    doc["optimizer"] = "<img src=x onerror=alert(1)>"
    doc["diagnostics"] = [{"code": "FTS302", "severity": "warning", "message": "</ul><script>alert(2)</script>",
                           "file": "a<b>.ftsc", "start": {"line": 1, "column": 1}}]
    return doc


def test_html_escapes_every_string(in_repo: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Unit names, dtypes, the optimizer and diagnostics with markup in them come out as text: one
    script element (ours), no injected tags, and the data attributes read back to the raw names."""
    from ftsc.explain.html import render

    _, raw = _explain("example-fsdp1", tmp_path, "json", capsys)
    doc = _nasty_doc(json.loads(raw))
    page = render(doc)
    for bad in ("<script>alert", "<img", "<b>", "</ul><script>", "</td></tr><tr>"):
        assert bad not in page
    parsed = _Cells()
    parsed.feed(page)
    assert parsed.scripts == 1 and parsed.external == []
    assert parsed.rows == [u["name"] for u in doc["units"]]
    want = [(u["name"], str(p["index"]), p["units"][i]["state"]) for i, u in enumerate(doc["units"])
            for p in doc["phases"]]
    assert [(c["data-unit"], c["data-phase"], c["data-state"]) for c in parsed.cells] == want


def test_html_is_deterministic_and_self_contained(in_repo: None) -> None:
    """The same report gives the same bytes whatever PYTHONHASHSEED is; the page loads nothing."""
    outs = set()
    for seed in ("0", "1", "4242"):
        proc = subprocess.run([sys.executable, "-m", "ftsc", "explain", *EXAMPLE, "--world-size", "8",
                               "--format", "html"], check=False, capture_output=True, text=True, timeout=60,
                              cwd=REPO, env={**os.environ, "PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr
        outs.add(proc.stdout)
    assert len(outs) == 1
    page = outs.pop()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for ref in ("http://", "https://", "//fonts", "<link", " src=", "@import", "url("):
        assert ref not in page


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_cli_html_draws_its_own_json(case: str, in_repo: None, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`--format html` is the renderer applied to what `--format json` prints for the same inputs."""
    from ftsc.explain.html import render

    rc_json, raw = _explain(case, tmp_path, "json", capsys)
    rc_html, page = _explain(case, tmp_path, "html", capsys)
    assert rc_json == rc_html == 0
    assert page == render(json.loads(raw))


def test_unparsed_schedule_shows_its_diagnostics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A schedule that does not parse: the page says there is nothing to explain and lists the error."""
    bad = tmp_path / "bad.ftsc"
    bad.write_text("phase 0 { thaw glob }\n", encoding="utf-8")
    out = tmp_path / "out.html"
    rc = main(["explain", str(bad), "--manifest", _layered_manifest(tmp_path, 2), "--format", "html",
               "-o", str(out)])
    capsys.readouterr()
    page = out.read_text(encoding="utf-8")
    assert rc == 1 and "no phases to explain" in page and 'id="diagnostics"' in page and "error[FTS0" in page


# --- in a browser ----------------------------------------------------------------------------

CHROMIUM = os.environ.get("FTSC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through playwright; skipped when absent, failed when absent under CI."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed (pip install playwright)"
    if missing is None and not Path(CHROMIUM).is_file():
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set FTSC_CHROMIUM)"
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and the browser test cannot run: {missing}")
        pytest.skip(missing)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def _open(browser: Any, page_html: str, tmp_path: Path) -> tuple[Any, list[str], list[str]]:
    """Load the page from a file; (page, URLs it requested, dialogs it opened)."""
    path = tmp_path / "explain.html"
    path.write_text(page_html, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(path.as_uri())
    return page, requests, dialogs


_READ_CELLS = """els => els.map(e => ({
  unit: e.dataset.unit, phase: Number(e.dataset.phase), state: e.dataset.state,
  trainable: Number(e.dataset.trainable), text: e.innerText,
  look: getComputedStyle(e).backgroundColor + " " + getComputedStyle(e).backgroundImage}))"""
_READ_BARS = """els => els.map(e => ({
  phase: Number(e.dataset.phase), where: e.dataset.where, states: Number(e.dataset.modelStates),
  track: e.querySelector('.track').getBoundingClientRect().width, text: e.innerText,
  segs: [...e.querySelectorAll('.seg')].map(s => ({kind: s.dataset.kind, bytes: Number(s.dataset.bytes),
                                                   width: s.getBoundingClientRect().width})),
  peak: [...e.querySelectorAll('.peak')].map(p => ({bytes: Number(p.dataset.bytes),
      left: p.getBoundingClientRect().left - e.querySelector('.track').getBoundingClientRect().left - 1}))}))"""


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _check_matrix(page: Any, doc: dict[str, Any]) -> None:
    """The DOM's matrix (data attributes and visible text) is the JSON's units x phases."""
    names = [u["name"] for u in doc["units"]]
    assert page.eval_on_selector_all("#matrix tbody tr", "rs => rs.map(r => r.dataset.unit)") == names
    shown = page.eval_on_selector_all("#matrix tbody th.unit", "hs => hs.map(h => h.innerText)")
    assert shown == [n or "<root>" for n in names]
    cells = page.eval_on_selector_all("#matrix td.cell", _READ_CELLS)
    by_key = {(c["unit"], c["phase"]): c for c in cells}
    assert len(by_key) == len(cells) == len(names) * len(doc["phases"])
    looks: dict[str, set[str]] = {}
    for p in doc["phases"]:
        for want, unit in zip(p["units"], doc["units"], strict=True):
            got = by_key[(want["name"], p["index"])]
            assert (got["state"], got["trainable"]) == (want["state"], want["trainable_numel"])
            state_line, numel_line = got["text"].split("\n")
            assert state_line == ("\u25d0 partial" if want["state"] == "partial" else want["state"])
            if want["state"] == "none":
                assert numel_line == "-"
            elif want["state"] == "partial":
                assert numel_line == f"{want['trainable_numel']:,} of {unit['numel']:,}"
            else:
                assert _number(numel_line) == want["trainable_numel"]
            looks.setdefault(want["state"], set()).add(got["look"])
    assert all(len(v) == 1 for v in looks.values())  # one colour per state ...
    assert len({next(iter(v)) for v in looks.values()}) == len(looks)  # ... and a different one for each
    if "partial" in looks:
        assert "repeating-linear-gradient" in next(iter(looks["partial"]))  # partial cells are striped
    foot = page.eval_on_selector_all("#matrix tfoot td", "ts => ts.map(t => [Number(t.dataset.phase), t.innerText])")
    assert [(i, _number(t)) for i, t in foot] == [(p["index"], p["trainable_numel"]) for p in doc["phases"]]


def _check_bars(page: Any, doc: dict[str, Any]) -> None:
    """Each phase's bar has a segment per memory kind with the JSON's bytes, drawn to one scale."""
    bars = page.eval_on_selector_all("#memory .bar-row", _READ_BARS)
    want_rows = [(p["index"], w) for p in doc["phases"] for w in ("device", "host")
                 if w == "device" or "host" in p["memory"]]
    assert [(b["phase"], b["where"]) for b in bars] == want_rows
    px_per_byte = []
    for b in bars:
        mem = next(p["memory"] for p in doc["phases"] if p["index"] == b["phase"])
        mem = mem["host"] if b["where"] == "host" else mem
        kinds = ["params", "buffers", "grads", "optimizer"] + (["activations"] if mem.get("activations") is not None
                                                                else [])
        assert [(s["kind"], s["bytes"]) for s in b["segs"]] == [(k, mem[k]) for k in kinds]
        assert b["states"] == mem["model_states"] == sum(mem[k] for k in ("params", "buffers", "grads", "optimizer"))
        assert [p["bytes"] for p in b["peak"]] == ([mem["peak"]] if mem.get("peak") is not None else [])
        assert b["text"].startswith(f"phase {b['phase']}" + (" host" if b["where"] == "host" else ""))
        assert ("activations" in b["text"]) == (mem.get("activations") is not None)
        px_per_byte += [s["width"] / s["bytes"] for s in b["segs"] if s["bytes"]]
        px_per_byte += [p["left"] / p["bytes"] for p in b["peak"] if p["bytes"]]
    if px_per_byte:  # one scale for every segment; the largest bar or peak fills its track
        longest = max(max([sum(s["bytes"] for s in b["segs"]), *(p["bytes"] for p in b["peak"])]) for b in bars)
        track = bars[0]["track"] - 2  # inside the 1px border
        for ratio in px_per_byte:
            assert ratio == pytest.approx(track / longest, rel=0.02)


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_browser_shows_the_json(case: str, browser: Any, in_repo: None, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """Rendered in Chromium, the HTML of a real run reads back as the JSON of the same run: units x
    phases states and trainable numels, the per-phase trainable numel, and each memory bar; hovering
    a cell shows its tooltip; the page requests nothing but itself."""
    _, raw = _explain(case, tmp_path, "json", capsys)
    _, page_html = _explain(case, tmp_path, "html", capsys)
    doc = json.loads(raw)
    if case == "fsdp1-partial":  # each case shows what it is here for
        assert {c["state"] for p in doc["phases"] for c in p["units"]} == {"trainable", "frozen", "partial", "none"}
    assert any(p["memory"]["activations"] for p in doc["phases"]) == (case == "fsdp2-estimate")
    assert any("host" in p["memory"] for p in doc["phases"]) == (case == "fsdp2-offload")
    page, requests, dialogs = _open(browser, page_html, tmp_path)
    try:
        _check_matrix(page, doc)
        _check_bars(page, doc)
        assert page.is_hidden("#tooltip")
        phase = doc["phases"][-1]
        unit, target = next((u, c) for u, c in zip(doc["units"], phase["units"], strict=True) if c["state"] != "none")
        page.hover(f'#matrix td.cell[data-phase="{phase["index"]}"] >> nth={doc["units"].index(unit)}')
        assert page.is_visible("#tooltip")
        tip = page.inner_text("#tooltip")
        assert f"unit: {unit['name'] or '<root>'}" in tip
        assert f"phase {phase['index']}: {target['state']}" in tip
        assert f"trainable numel: {target['trainable_numel']:,}" in tip and f"dtype: {unit['dtype']}" in tip
        page.mouse.move(1, 1)
        assert page.is_hidden("#tooltip")
        where = "host" if "host" in phase["memory"] else "device"
        mem = phase["memory"].get("host", phase["memory"])
        page.hover(f'#memory .bar-row[data-phase="{phase["index"]}"][data-where="{where}"] .seg[data-kind="grads"]')
        assert "grads: " in page.inner_text("#tooltip") and f"({mem['grads']:,} B)" in page.inner_text("#tooltip")
        assert requests == [(tmp_path / "explain.html").as_uri()] and dialogs == []
    finally:
        page.close()


def test_browser_shows_hostile_names_as_text(browser: Any, in_repo: None, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Unit names with markup run no script and show verbatim in the matrix and the tooltip."""
    from ftsc.explain.html import render

    _, raw = _explain("example-fsdp1", tmp_path, "json", capsys)
    doc = _nasty_doc(json.loads(raw))
    page, _, dialogs = _open(browser, render(doc), tmp_path)
    try:
        _check_matrix(page, doc)
        assert page.eval_on_selector_all("script", "s => s.length") == 1 and dialogs == []
        page.hover("#matrix td.cell >> nth=0")
        assert f"unit: {doc['units'][0]['name']}" in page.inner_text("#tooltip")
        assert page.inner_text("#diagnostics") == "a<b>.ftsc:1: warning[FTS302] </ul><script>alert(2)</script>"
    finally:
        page.close()
