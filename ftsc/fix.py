"""`ftsc check --fix`: add the suggested FSDP `wrap` overrides to the file that configures FSDP.

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
        >>> cfg = ir.FSDPConfig(wrap=(ir.Selector(kind=ir.SelectorKind.FTS, pattern="a", span=ir.Span(31, 34)),))
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
                  r"[ \t]*$", text, re.M)
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
