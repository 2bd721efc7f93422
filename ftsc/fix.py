"""`ftsc check --fix`: FSDP `wrap` overrides and FSDP2 plan repairs, written into the file that
configures sharding.

Input: the text of the file holding the sharding configuration (a `.ftsc` file's `fsdp` block,
or a LightningCLI config's `strategy_adapter_cfg.awp_overrides`), the `ir.FSDPConfig` read
from it, and module names. Output: the edited text, or None when the file's layout is not one
this edit understands (the caller then prints the suggestion instead). Edits are minimal and
textual, so comments and formatting elsewhere are kept. Never imports torch.
"""

from __future__ import annotations

import json
import re

from ftsc import ir
from ftsc.fmt import selector


def _line_bounds(text: str, offset: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return start, len(text) if end < 0 else end


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
    if close < 0 or text[close] != "}":
        return None
    sels = ", ".join(selector(ir.Selector(kind=ir.SelectorKind.EXACT, pattern=n)) for n in names)
    line_start, _ = _line_bounds(text, close)
    before = text[line_start:close]
    if before.strip():  # `fsdp { ... }` on one line
        return text[:close].rstrip() + f" wrap {sels} " + text[close:]
    indent = re.match(r"[ \t]*", before).group(0)  # type: ignore[union-attr]
    return text[:line_start] + f"{indent}    wrap {sels}\n" + text[line_start:]


def add_yaml_overrides(text: str, config: ir.FSDPConfig, names: list[str]) -> str | None:
    """Append names to `awp_overrides` in a LightningCLI config (flow or block list), or add the
    key under the scheduler callback's `init_args` when it is absent.

    Example:
        >>> cfg = ir.FSDPConfig(wrap=(ir.Selector(kind=ir.SelectorKind.FTS, pattern="a", span=ir.Span(40, 43)),))
        >>> print(add_yaml_overrides('strategy_adapter_cfg:\\n  awp_overrides: ["a"]\\n', cfg, ["b"]), end="")
        strategy_adapter_cfg:
          awp_overrides: ["a", "b"]
    """
    quoted = [json.dumps(n) for n in names]
    if config.wrap:
        last = config.wrap[-1].span
        rest = text[last.end:]
        if re.match(r"\s*[,\]]", rest):  # flow list
            return text[: last.end] + "".join(f", {q}" for q in quoted) + rest
        line_start, line_end = _line_bounds(text, last.start)
        m = re.match(r"([ \t]*-[ \t]+)", text[line_start:line_end])
        if m is None:
            return None
        lines = "".join(f"\n{m.group(1)}{q}" for q in quoted)
        return text[:line_end] + lines + text[line_end:]
    if "strategy_adapter_cfg" in text:  # present without awp_overrides: too varied to edit safely
        return None
    m = re.search(r"^([ \t]*)(- )?class_path:[ \t]*(finetuning_scheduler\.FinetuningScheduler|ftsc\.lightning\.\w+)"
                  r"[ \t]*$", text, re.MULTILINE)
    if m is None:
        return None
    indent = m.group(1) + ("  " if m.group(2) else "")
    after = text[m.end():]
    init = re.match(rf"\n{re.escape(indent)}init_args:[ \t]*\n", after)
    block = f"{indent}  strategy_adapter_cfg:\n{indent}    awp_overrides: [{', '.join(quoted)}]\n"
    if init:
        pos = m.end() + init.end()
        return text[:pos] + block + text[pos:]
    return text[: m.end()] + f"\n{indent}init_args:\n" + block.rstrip("\n") + text[m.end():]


def root_missing(plan_modules: list[str]) -> bool:
    """True when the FSDP2 plan does not shard the root module."""
    return "" not in plan_modules


def fix_dsl_plan(text: str, config: ir.FSDP2Config, depth_of: dict[int, int], add_root: bool,
                 drop: frozenset[int] = frozenset()) -> str | None:
    """Rewrite a `.ftsc` `fsdp2` block's `shard` statements bottom-up (deepest modules first, stable),
    drop the entries in `drop` (ids; e.g. a tied module's own group, so that the tie's common
    ancestor manages both aliases), and append `shard ""` (the root) when asked.

    `depth_of` maps `id(entry)` to the smallest depth (number of dots + 1; root 0) of the modules
    the entry selects. Entries are moved as their source text, so kwargs and spelling are kept.
    """
    entries = list(config.plan)
    ordered = sorted(entries, key=lambda e: -depth_of.get(id(e), 0))
    pieces = [text[e.span.start : e.span.end] for e in ordered]
    out = text
    for entry, (piece, kept) in sorted(zip(entries, zip(pieces, ordered, strict=True), strict=True),
                                       key=lambda t: -t[0].span.start):
        if id(kept) in drop:  # remove the whole `shard ...` line
            line_start, line_end = _line_bounds(out, entry.span.start)
            head = out[line_start : entry.span.start].strip()
            if head in ("", "shard") and not out[entry.span.end : line_end].strip():
                out = out[:line_start] + out[min(line_end + 1, len(out)):]
                continue
            return None
        out = out[: entry.span.start] + piece + out[entry.span.end :]
    if add_root:
        shifted = ir.FSDPConfig(span=ir.Span(config.span.start, config.span.end + len(out) - len(text)))
        close = shifted.span.end - 1
        if close < 0 or out[close] != "}":
            return None
        line_start, _ = _line_bounds(out, close)
        before = out[line_start:close]
        if before.strip():
            return out[:close].rstrip() + ' shard "" ' + out[close:]
        indent = re.match(r"[ \t]*", before).group(0)  # type: ignore[union-attr]
        out = out[:line_start] + f'{indent}    shard ""\n' + out[line_start:]
    return out


def add_yaml_plan_root(text: str, config: ir.FSDP2Config) -> str | None:
    """Append `'': {}` (shard the root, last) to a LightningCLI config's `fsdp_plan`.

    Example:
        >>> sel = ir.Selector(kind=ir.SelectorKind.FTS, pattern="a", span=ir.Span(12, 15))
        >>> cfg = ir.FSDP2Config(plan=(ir.ShardEntry(selector=sel, span=ir.Span(12, 19)),))
        >>> print(add_yaml_plan_root("fsdp_plan: {'a': {}}\\n", cfg), end="")
        fsdp_plan: {'a': {}, '': {}}
    """
    if not config.plan:
        return None
    last = config.plan[-1]
    end = max(last.span.end, last.selector.span.end)
    rest = text[end:]
    if re.match(r"\s*[,}]", rest):
        return text[:end] + ", '': {}" + rest
    line_start, line_end = _line_bounds(text, last.selector.span.start)
    indent = re.match(r"[ \t]*", text[line_start:line_end]).group(0)  # type: ignore[union-attr]
    return text[:line_end] + f"\n{indent}'': {{}}" + text[line_end:]
