"""Text and Markdown renderings of an explain report (the JSON is `Explanation.to_json`).

Input: an `Explanation`. Output: a string: the phases x units matrix (repeated layers folded
unless `all_rows`), then per-phase footer rows (trainable numel, memory per rank). Never
imports torch.
"""

from __future__ import annotations

from collections.abc import Callable

from ftsc.explain.matrix import Cell, fold
from ftsc.explain.memory import Memory
from ftsc.explain.report import Explanation

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_KIND = {"single": "single device", "ddp": "DDP", "fsdp": "FSDP1", "fsdp2": "FSDP2"}


def human_bytes(n: int) -> str:
    """Bytes with a binary unit, 3 significant digits.

    Example:
        >>> human_bytes(512), human_bytes(1536), human_bytes(3 * 2**30)
        ('512 B', '1.50 KiB', '3.00 GiB')
    """
    value, unit = float(n), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    if unit == 0:
        return f"{n} B"
    return f"{value:.3g} {_UNITS[unit]}" if value >= 100 else f"{value:.2f} {_UNITS[unit]}"


def _cell(c: Cell) -> str:
    if c.state == "none":
        return "-"
    if c.state == "frozen":
        return "frozen"
    return f"{c.state} {c.trainable_numel:,}"


def header(ex: Explanation) -> str:
    """One line naming the strategy, world size, optimizer and precision."""
    s = ex.setup
    parts = [_KIND[s.kind]]
    if s.kind == "fsdp":
        parts[0] += f" (use_orig_params={s.use_orig_params})"
    parts += [f"world size {s.world_size}", f"optimizer {s.optimizer}", f"compute {s.compute_dtype}"]
    if s.store_dtype:
        parts.append(f"stored in {s.store_dtype}")
    return ", ".join(parts)


def _table(ex: Explanation, all_rows: bool) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """(column heads, unit rows, footer rows) as strings."""
    heads = ["unit", "numel", "dtype", *(f"phase {p.index}" for p in ex.phases)]
    names = [g.name or "<root>" for g in ex.groups]
    per_phase = [p.cells for p in ex.phases]
    rows_spec = fold(names, per_phase, ex.numels) if not all_rows else None
    rows: list[list[str]] = []
    if rows_spec is None:
        for i, name in enumerate(names):
            rows.append([name, f"{ex.numels[i]:,}", ex.dtypes[i], *(_cell(p.cells[i]) for p in ex.phases)])
    else:
        for r in rows_spec:
            first = r.members[0]
            label = r.label if len(r.members) == 1 else f"{r.label} (x{len(r.members)})"
            total = sum(ex.numels[i] for i in r.members)
            cells = [_cell(Cell(p.cells[first].state, sum(p.cells[i].trainable_numel for i in r.members)))
                     for p in ex.phases]
            rows.append([label, f"{total:,}", ex.dtypes[first], *cells])
    foot: list[list[str]] = [["trainable numel", "", "", *(f"{p.trainable_numel:,}" for p in ex.phases)]]

    def line(label: str, get: Callable[[Memory], int], host: bool = False) -> list[str]:
        mems = [p.memory.host if host else p.memory.device for p in ex.phases]
        return [label, "", "", *(human_bytes(get(m)) if m is not None else "" for m in mems)]

    foot += [line("params / rank", lambda m: m.params), line("buffers / rank", lambda m: m.buffers),
             line("grads / rank", lambda m: m.grads), line("optimizer / rank", lambda m: m.optimizer),
             line("model states / rank", lambda m: m.model_states)]
    if any(p.memory.host is not None for p in ex.phases):
        foot.append(line("host (CPU offload) / rank", lambda m: m.model_states, host=True))
    if ex.estimated:
        foot.append(["activations (estimate)", "", "", *(human_bytes(p.activations or 0) for p in ex.phases)])
        foot.append(["peak (estimate)", "", "", *(human_bytes(p.peak or 0) for p in ex.phases)])
    if ex.setup.world_size > 1 and ex.setup.kind in ("fsdp", "fsdp2"):
        foot.append(["busiest rank", "", "", *(str(p.memory.rank) for p in ex.phases)])
    return heads, rows, foot


def render_text(ex: Explanation, *, all_rows: bool = False, title: str = "") -> str:
    """The matrix as aligned plain text."""
    heads, rows, foot = _table(ex, all_rows)
    widths = [max(len(r[i]) for r in [heads, *rows, *foot]) for i in range(len(heads))]

    def fmt(r: list[str]) -> str:
        cells = [r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].ljust(widths[2]),
                 *(c.rjust(w) for c, w in zip(r[3:], widths[3:], strict=True))]
        return "  ".join(cells).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    out = [f"{title}{header(ex)}", "", fmt(heads), rule, *map(fmt, rows), rule, *map(fmt, foot)]
    out.append("")
    if ex.no_blocks:
        out.append("activations: not estimated (no transformer blocks: no ModuleList of repeated layers)")
    what = ("model states exact; activations and peak are estimates" if ex.estimated else "model states" if
            ex.no_blocks else "model states; give --batch and --seq for an activation and peak estimate")
    out.append(f"memory: bytes on the busiest rank after backward of a step after the first ({what})")
    out += lr_group_lines(ex)
    return "\n".join(out) + "\n"


def lr_group_lines(ex: Explanation) -> list[str]:
    """Each layer-wise lr decay phase's groups: name, lr, parameter count."""
    out: list[str] = []
    for ph in ex.phases:
        if ph.lr_groups is None:
            continue
        out += ["", f"phase {ph.index} lr groups:"]
        width = max((len(g.label) for g in ph.lr_groups), default=0)
        lrs = [f"{g.lr:.6g}" for g in ph.lr_groups]
        lr_width = max(map(len, lrs), default=0)
        out += [f"  {g.label.ljust(width)}  {lr.rjust(lr_width)}  ({len(g.params)} params)"
                for g, lr in zip(ph.lr_groups, lrs, strict=True)]
    return out


def render_md(ex: Explanation, *, all_rows: bool = False, title: str = "") -> str:
    """The matrix as a Markdown table (pastes into a pull request)."""
    heads, rows, foot = _table(ex, all_rows)

    def fmt(r: list[str], bold: bool = False) -> str:
        cells = [c.replace("|", "\\|") for c in r]
        if bold:
            cells[0] = f"**{cells[0]}**"
        return "| " + " | ".join(cells) + " |"

    align = "| --- | ---: | --- | " + " | ".join("---:" for _ in heads[3:]) + " |"
    lines = [f"**{title}{header(ex)}**", "", fmt(heads), align, *map(fmt, rows), *(fmt(r, True) for r in foot), ""]
    lines.append("Memory: bytes on the busiest rank after backward of a step after the first; model states are "
                 "exact" + ("; activations and peak are estimates." if ex.estimated else "."))
    return "\n".join(lines) + "\n"
