"""Text edits to a `.ftsc` file's sharding blocks for `ftsc check --fix`.

Input: the text of a `.ftsc` file and the `ir.FSDPConfig` / `ir.FSDP2Config` read from it.
Output: the edited text, or None when the layout is not one these edits understand. Edits are
minimal and textual, so comments and formatting elsewhere are kept. Never reads or writes
files, never imports torch.
"""

from __future__ import annotations

import re

from ftsc import ir
from ftsc.fmt import selector


def line_bounds(text: str, offset: int) -> tuple[int, int]:
    """The `[start, end)` of the line holding `offset` (end excludes the newline)."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return start, len(text) if end < 0 else end


def wrap_statement(names: list[str]) -> str:
    """The `wrap` statement that adds `names` as overrides.

    Example:
        >>> wrap_statement(["enc", "layers.0"])
        'wrap enc, layers.0'
    """
    return "wrap " + ", ".join(selector(ir.Selector(kind=ir.SelectorKind.EXACT, pattern=n)) for n in names)


def add_dsl_overrides(text: str, config: ir.FSDPConfig, names: list[str]) -> str | None:
    """Insert `wrap NAME, ...` before the closing brace of the `fsdp` block.

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.source import SourceFile
        >>> src = "phase 0 { thaw a.w }\\nfsdp {\\n    use_orig_params = false\\n}\\n"
        >>> print(add_dsl_overrides(src, load_text(SourceFile("x.ftsc", src)).schedule.fsdp, ["a"]), end="")
        phase 0 { thaw a.w }
        fsdp {
            use_orig_params = false
            wrap a
        }
    """
    close = config.span.end - 1
    if close < 0 or close >= len(text) or text[close] != "}":
        return None
    line_start, _ = line_bounds(text, close)
    before = text[line_start:close]
    if before.strip():  # `fsdp { ... }` on one line
        return text[:close].rstrip() + f" {wrap_statement(names)} " + text[close:]
    indent = re.match(r"[ \t]*", before).group(0)  # type: ignore[union-attr]
    return text[:line_start] + f"{indent}    {wrap_statement(names)}\n" + text[line_start:]


def reorder_dsl_plan(text: str, config: ir.FSDP2Config, order: list[int]) -> str | None:
    """Rewrite a `.ftsc` `fsdp2` block's `shard` entries in a new order, dropping some.

    `order` lists indices into `config.plan`: the entry placed at each kept position, in turn;
    entries whose index is missing are dropped with their whole line. Entries are moved as
    their source text, so kwargs and spelling are kept.

    Example:
        >>> from ftsc.frontend import load_text
        >>> from ftsc.source import SourceFile
        >>> src = "phase 0 { thaw a.w }\\nfsdp2 {\\n    shard a\\n    shard a.b\\n    shard c\\n}\\n"
        >>> cfg = load_text(SourceFile("x.ftsc", src)).schedule.fsdp2
        >>> print(reorder_dsl_plan(src, cfg, [1, 0]), end="")
        phase 0 { thaw a.w }
        fsdp2 {
            shard a.b
            shard a
        }
    """
    entries = list(config.plan)
    if sorted(set(order)) != sorted(order) or any(not 0 <= i < len(entries) for i in order):
        return None
    pieces = [text[entries[i].span.start : entries[i].span.end] for i in order]
    slots = list(range(len(entries)))
    kept_slots, dropped = slots[: len(order)], slots[len(order):]
    # The entries keep their slots in source order; the last len(entries) - len(order) slots go.
    out = text
    for slot in sorted(slots, key=lambda s: -entries[s].span.start):
        span = entries[slot].span
        if slot in dropped:
            line_start, line_end = line_bounds(out, span.start)
            head = out[line_start : span.start].strip()
            if head not in ("", "shard") or out[span.end : line_end].strip():
                return None
            out = out[:line_start] + out[min(line_end + 1, len(out)):]
        else:
            out = out[: span.start] + pieces[kept_slots.index(slot)] + out[span.end :]
    return out
