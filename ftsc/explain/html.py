"""`ftsc explain --format html`: SPEC §5.3's JSON dict drawn as one self-contained HTML page.

Input: the dict `ftsc explain --format json` prints (`Explanation.to_json`, or the empty report
of a schedule that did not parse). Output: one HTML document as a string, with inline CSS and a
small inline script (a tooltip), nothing fetched from anywhere. It shows:

- a heat map of units x phases: each cell coloured by its state (`trainable`, `frozen`,
  `partial`, `none`), partial cells striped and marked, the trainable numel written in it;
- per phase, a stacked bar of the bytes on the busiest rank (params, buffers, grads,
  optimizer, and activations when estimated; the peak estimate as a marker), and a second bar
  for host memory when the JSON has a `host` object (CPU offload);
- the diagnostics, and the layer-wise lr groups of phases that have them.

Every matrix cell and bar segment carries `data-*` attributes holding the JSON's values
(`data-unit`, `data-phase`, `data-state`, `data-trainable`; `data-kind`, `data-bytes`), so a
test reads the picture back. Rows are the JSON's units, one each: the JSON does not fold
repeated layers, so neither does this page (`--all` changes nothing here). Every string from the
document is escaped; the same dict gives the same bytes. Never imports torch.

Example:
    >>> doc = {"version": 1, "world_size": 1, "optimizer": "sgd", "units": [], "phases": [], "diagnostics": []}
    >>> page = render(doc)
    >>> page.startswith("<!DOCTYPE html>") and "no phases to explain" in page
    True
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ftsc.explain.render import human_bytes

SEGMENTS = ("params", "buffers", "grads", "optimizer", "activations")
STATE_MARK = {"trainable": "", "frozen": "", "partial": "\u25d0 ", "none": ""}

_CSS = """\
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1b1f24;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.setup{color:#57606a;margin:0 0 12px}
table{border-collapse:collapse}
th,td{padding:4px 10px;border:1px solid #d0d7de;white-space:nowrap}
thead th{background:#f6f8fa}
th.unit{text-align:left;font-family:ui-monospace,monospace;font-weight:normal}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.cell{text-align:center;font-variant-numeric:tabular-nums;min-width:96px}
.cell .state{display:block;font-size:12px}
.cell .numel{display:block;font-weight:600}
.s-trainable{background:#2da44e;color:#fff}
.s-frozen{background:#d8dee4;color:#424a53}
.s-partial{background:repeating-linear-gradient(45deg,#f2c94c 0 6px,#fbe3a1 6px 12px);color:#3d2e00;
outline:2px solid #bf8700;outline-offset:-2px}
.s-none{background:#fff;color:#8c959f}
tfoot th,tfoot td{background:#f6f8fa;font-weight:600}
tfoot td.num{text-align:center}
.legend span{display:inline-block;margin-right:14px}
.swatch{display:inline-block;width:14px;height:14px;vertical-align:-2px;margin-right:4px;border:1px solid #d0d7de}
.bar-row{display:grid;grid-template-columns:110px 480px auto;align-items:center;gap:10px;margin:6px 0}
.track{position:relative;height:22px;background:#f6f8fa;border:1px solid #d0d7de}
.bar{display:flex;height:100%}
.seg{height:100%}
.k-params{background:#0969da}.k-buffers{background:#8250df}.k-grads{background:#e16f24}
.k-optimizer{background:#cf222e}.k-activations{background:#1b7c83}
.peak{position:absolute;top:-4px;bottom:-4px;width:0;border-left:2px dashed #1b1f24}
.total{font-variant-numeric:tabular-nums;color:#424a53;white-space:nowrap}
.note{color:#57606a;font-size:12px}
.sev-error{color:#cf222e}.sev-warning{color:#9a6700}.sev-info{color:#57606a}
#tooltip{position:fixed;z-index:10;max-width:420px;padding:6px 8px;background:#1b1f24;color:#fff;
border-radius:4px;font-size:12px;white-space:pre-line;pointer-events:none}
#tooltip[hidden]{display:none}
"""

_JS = """\
(function () {
  var tip = document.getElementById("tooltip");
  function place(x, y) {
    var w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = Math.max(0, Math.min(x + 12, window.innerWidth - w - 4)) + "px";
    tip.style.top = Math.max(0, Math.min(y + 12, window.innerHeight - h - 4)) + "px";
  }
  function show(el, x, y) {
    tip.textContent = el.getAttribute("data-tip");
    tip.hidden = false;
    place(x, y);
  }
  document.addEventListener("mouseover", function (e) {
    var el = e.target.closest("[data-tip]");
    if (el) { show(el, e.clientX, e.clientY); } else { tip.hidden = true; }
  });
  document.addEventListener("mousemove", function (e) { if (!tip.hidden) { place(e.clientX, e.clientY); } });
  document.addEventListener("focusin", function (e) {
    var el = e.target.closest("[data-tip]");
    if (el) { var r = el.getBoundingClientRect(); show(el, r.left, r.bottom); }
  });
  document.addEventListener("focusout", function () { tip.hidden = true; });
})();
"""


def _e(value: object) -> str:
    """Text or attribute value, escaped (`&`, `<`, `>`, both quotes; newlines as `&#10;`).

    Example:
        >>> _e('<script>"x"</script>')
        '&lt;script&gt;&quot;x&quot;&lt;/script&gt;'
    """
    return html.escape(str(value), quote=True).replace("\n", "&#10;")


def _label(name: str) -> str:
    """A unit's display name: the root unit `""` shows as `<root>`."""
    return name or "<root>"


def _tag(name: str, attrs: Mapping[str, object], body: str = "") -> str:
    """`<name attrs>body</name>`, attribute values escaped, in the given order."""
    text = "".join(f' {k}="{_e(v)}"' for k, v in attrs.items())
    return f"<{name}{text}>{body}</{name}>"


def _memory_lines(mem: Mapping[str, Any], where: str = "") -> list[str]:
    """Tooltip lines for a memory object: each kind's bytes, model states, estimates."""
    lines = [f"{where}{k}: {human_bytes(mem[k])} ({mem[k]:,} B)" for k in SEGMENTS[:4]]
    lines.append(f"{where}model states: {human_bytes(mem['model_states'])} ({mem['model_states']:,} B)")
    for k in ("activations", "peak"):
        if mem.get(k) is not None:
            lines.append(f"{where}{k} (estimate): {human_bytes(mem[k])} ({mem[k]:,} B)")
    return lines


def _cell(unit: Mapping[str, Any], phase: Mapping[str, Any], cell: Mapping[str, Any]) -> str:
    """One matrix cell: state, trainable numel, and the tooltip of the unit in that phase."""
    state, numel = cell["state"], cell["trainable_numel"]
    shown = "-" if state == "none" else f"{numel:,}" if state != "frozen" else "0"
    of = f" of {unit['numel']:,}" if state == "partial" else ""
    tip = [f"unit: {_label(unit['name'])}", f"phase {phase['index']}: {state}",
           f"trainable numel: {numel:,}{of}", f"numel: {unit['numel']:,}", f"dtype: {unit['dtype']}",
           f"phase {phase['index']} model states per rank: {human_bytes(phase['memory']['model_states'])}"]
    if state == "partial":
        tip.insert(2, "partial: some of the unit's parameters train; its whole gradient is allocated")
    body = (f'<span class="state">{_e(STATE_MARK[state] + state)}</span>'
            f'<span class="numel">{_e(shown + of)}</span>')
    attrs = {"class": f"cell s-{state}", "data-unit": unit["name"], "data-phase": phase["index"],
             "data-state": state, "data-trainable": numel, "data-tip": "\n".join(tip), "tabindex": 0}
    return _tag("td", attrs, body)


def _matrix(doc: Mapping[str, Any]) -> str:
    """The units x phases table; the footer row gives each phase's trainable numel."""
    units, phases = doc["units"], doc["phases"]
    heads = "".join(_tag("th", {"data-phase": p["index"], "data-tip": "\n".join(
        [f"phase {p['index']} per rank:", *_memory_lines(p["memory"], "  ")])}, f"phase {_e(p['index'])}")
        for p in phases)
    out = ['<table id="matrix">', f"<thead><tr><th>unit</th><th>numel</th><th>dtype</th>{heads}</tr></thead>",
           "<tbody>"]
    for i, u in enumerate(units):
        cells = "".join(_cell(u, p, p["units"][i]) for p in phases)
        out.append(_tag("tr", {"data-unit": u["name"]},
                        f'<th class="unit">{_e(_label(u["name"]))}</th><td class="num">{u["numel"]:,}</td>'
                        f"<td>{_e(u['dtype'])}</td>{cells}"))
    foot = "".join(_tag("td", {"class": "num", "data-phase": p["index"], "data-trainable": p["trainable_numel"]},
                        f"{p['trainable_numel']:,}") for p in phases)
    out += ["</tbody>", f'<tfoot><tr><th colspan="3">trainable numel</th>{foot}</tr></tfoot>', "</table>"]
    return "\n".join(out)


def _legend(items: Iterable[tuple[str, str]]) -> str:
    """A row of colour swatches with their names."""
    spans = (f'<span><i class="swatch {cls}"></i>{_e(text)}</span>' for cls, text in items)
    return f'<p class="legend">{"".join(spans)}</p>'


def _bar(index: int, mem: Mapping[str, Any], scale: int, where: str) -> str:
    """One phase's stacked bar: a segment per memory kind, width in proportion to its bytes."""
    kinds = [k for k in SEGMENTS if k in mem and mem[k] is not None]
    segs = "".join(_tag("div", {"class": f"seg k-{k}", "data-kind": k, "data-bytes": mem[k],
                                "style": f"width:{100 * mem[k] / scale:.4f}%",
                                "data-tip": f"phase {index} {where}{k}: {human_bytes(mem[k])} ({mem[k]:,} B)"})
                   for k in kinds)
    peak = ""
    if mem.get("peak") is not None:
        peak = _tag("div", {"class": "peak", "data-kind": "peak", "data-bytes": mem["peak"],
                            "style": f"left:{100 * mem['peak'] / scale:.4f}%",
                            "data-tip": f"phase {index} peak (estimate): {human_bytes(mem['peak'])}"})
    total = f"model states {human_bytes(mem['model_states'])}"
    if mem.get("activations") is not None:
        total += f" + activations {human_bytes(mem['activations'])} (estimate)"
    if mem.get("peak") is not None:
        total += f"; peak {human_bytes(mem['peak'])} (estimate)"
    label = f"phase {index}" + (" host" if where else "")
    attrs = {"class": "bar-row", "data-phase": index, "data-where": "host" if where else "device",
             "data-model-states": mem["model_states"]}
    return _tag("div", attrs, f'<span>{_e(label)}</span><div class="track"><div class="bar">{segs}</div>{peak}'
                              f'</div><span class="total">{_e(total)}</span>')


def _stacked(mem: Mapping[str, Any]) -> int:
    """Bytes a bar spans: its segments, or the peak marker when that is further."""
    return max(sum(mem[k] for k in SEGMENTS if mem.get(k) is not None), mem.get("peak") or 0)


def _memory(phases: Sequence[Mapping[str, Any]]) -> str:
    """Every phase's bars on one scale (the largest bar fills the track)."""
    mems = [p["memory"] for p in phases] + [p["memory"]["host"] for p in phases if "host" in p["memory"]]
    scale = max((_stacked(m) for m in mems), default=0) or 1
    rows = []
    for p in phases:
        rows.append(_bar(p["index"], p["memory"], scale, ""))
        if "host" in p["memory"]:
            rows.append(_bar(p["index"], p["memory"]["host"], scale, "host "))
    estimated = any(p["memory"].get("activations") is not None for p in phases)
    kinds = SEGMENTS if estimated else SEGMENTS[:4]
    note = ("Bytes on the busiest rank after backward of a step after the first; model states are exact"
            + ("; activations and peak (dashed marker) are estimates." if estimated else
               " (give --batch and --seq for an activation and peak estimate)."))
    return "\n".join([_legend((f"k-{k}", k) for k in kinds), f'<div id="memory">{"".join(rows)}</div>',
                      f'<p class="note">{_e(note)}</p>'])


def _lr_groups(phases: Sequence[Mapping[str, Any]]) -> str:
    """The layer-wise lr decay groups of the phases that have them (empty when none do)."""
    out = []
    for p in phases:
        for g in p.get("lr_groups") or ():
            out.append(f"<tr><td>phase {_e(p['index'])}</td><th class=\"unit\">{_e(g['name'])}</th>"
                       f'<td class="num">{_e(format(g["lr"], ".6g"))}</td><td class="num">{len(g["params"])}</td></tr>')
    if not out:
        return ""
    return ('<h2>Layer-wise lr groups</h2>\n<table id="lr-groups"><thead><tr><th>phase</th><th>group</th>'
            f"<th>lr</th><th>params</th></tr></thead><tbody>{''.join(out)}</tbody></table>")


def _diagnostics(diags: Sequence[Mapping[str, Any]]) -> str:
    """The diagnostics as a list (empty when there are none)."""
    if not diags:
        return ""
    items = []
    for d in diags:
        where = f"{d['file']}:{d['start']['line']}: " if d.get("file") and d.get("start") else ""
        items.append(_tag("li", {"class": f"sev-{d.get('severity', 'info')}", "data-code": d.get("code", "")},
                          _e(f"{where}{d.get('severity', '')}[{d.get('code', '')}] {d.get('message', '')}")))
    return f'<h2>Diagnostics</h2>\n<ul id="diagnostics">{"".join(items)}</ul>'


def render(doc: Mapping[str, Any]) -> str:
    """The page for one explain report (SPEC §5.3's dict).

    Args:
        doc: the report, as `ftsc explain --format json` prints it.

    Returns:
        A complete HTML document (UTF-8 text), the same bytes for the same dict.
    """
    setup = f"world size {doc['world_size']} · optimizer {doc['optimizer']} · " \
            f"{len(doc['units'])} units · {len(doc['phases'])} phases"
    if doc["phases"]:
        states = (("s-trainable", "trainable"), ("s-frozen", "frozen"), ("s-partial", "\u25d0 partial"),
                  ("s-none", "no parameters"))
        body = [_legend(states), _matrix(doc), "<h2>Memory per rank</h2>", _memory(doc["phases"]),
                _lr_groups(doc["phases"])]
    else:
        body = ['<p class="note">no phases to explain (see the diagnostics)</p>']
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>ftsc explain: {_e(setup)}</title>", f"<style>\n{_CSS}</style>", "</head>", "<body>",
             "<h1>ftsc explain</h1>", f'<p class="setup">{_e(setup)}</p>', "<h2>What trains</h2>", *body,
             _diagnostics(doc.get("diagnostics") or ()), '<div id="tooltip" role="tooltip" hidden></div>',
             f"<script>\n{_JS}</script>", "</body>", "</html>"]
    return "\n".join(p for p in parts if p) + "\n"
