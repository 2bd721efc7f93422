"""`ftsc convert`: between `.ftsc` and FTS YAML with the same meaning.

Input: a loaded schedule. Output: text in the other format and diagnostics (FTS501 where FTS
YAML cannot express a DSL feature, or, for either target, an `fsdp2` plan entry grouping
modules in one `fully_shard` call, which only dialect imports make). FTS patterns become `/regex/` selectors where that is
provably equivalent (the pattern cannot be an exact FQN, so only `re.match` applies) and the
regex reads as what it means (every separator `.` escaped, no quantified `.`: a `/regex/` with
an unescaped `.` draws FTS205, which the FTS pattern did not); they stay `fts "..."` otherwise.
Suppression comments of the input become one file-level suppression in the output (comments
are kept only from `.ftsc` to `.ftsc`). The output checks with no finding the input did not
have. Never imports torch.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ftsc import ir
from ftsc.diagnostics import Diagnostic, make
from ftsc.emit_yaml import to_fts_yaml
from ftsc.fmt import format_schedule
from ftsc.regexes import fts_as_fullmatch, quantified_dots, unescaped_separator_dots
from ftsc.source import SourceFile
from ftsc.suppress import suppressed_codes

if TYPE_CHECKING:
    from ftsc.parse import Comment


def tighten(sel: ir.Selector, *, modules: bool = False) -> ir.Selector:
    """An FTS selector as an equivalent `/regex/` when there is one that reads as it means, else unchanged
    (`modules`: the selector names modules, as in `fsdp` and `fsdp2` blocks).

    Example:
        >>> print(tighten(ir.Selector(kind=ir.SelectorKind.FTS, pattern=r"model\\.layers\\.\\d*$")).pattern)
        model\\.layers\\.\\d*
        >>> tighten(ir.Selector(kind=ir.SelectorKind.FTS, pattern="model.classifier.*")).kind.value
        'fts'
    """
    if sel.kind is not ir.SelectorKind.FTS:
        return sel
    if not sel.pattern:
        # FTS: `""` is the root module's exact name; no parameter has it, so as a parameter
        # pattern it is `re.match("")`, which takes every name. `fts ""` is no DSL selector.
        return replace(sel, kind=ir.SelectorKind.EXACT) if modules else replace(
            sel, kind=ir.SelectorKind.REGEX, pattern=".*")
    regex = fts_as_fullmatch(sel.pattern)
    if regex is None or unescaped_separator_dots(regex) or quantified_dots(regex):
        return sel
    return replace(sel, kind=ir.SelectorKind.REGEX, pattern=regex)


def tighten_schedule(schedule: ir.Schedule) -> ir.Schedule:
    """Apply `tighten` to every selector."""
    phases = tuple(replace(p, selectors=tuple(tighten(s) for s in p.selectors)) for p in schedule.phases)
    fsdp = schedule.fsdp and replace(schedule.fsdp, wrap=tuple(tighten(s, modules=True) for s in schedule.fsdp.wrap),
                                     ignore=tuple(tighten(s, modules=True) for s in schedule.fsdp.ignore))
    fsdp2 = schedule.fsdp2 and replace(schedule.fsdp2, plan=tuple(
        replace(e, selector=tighten(e.selector, modules=True)) for e in schedule.fsdp2.plan))
    return replace(schedule, phases=phases, fsdp=fsdp, fsdp2=fsdp2)


def convert(schedule: ir.Schedule, to: str, *, source: SourceFile | None = None,
            comments: list[Comment] | None = None) -> tuple[str, list[Diagnostic]]:
    """Convert to `ftsc` or `fts-yaml` text.

    Raises:
        ValueError: for an unknown target format.
    """
    if to in ("ftsc", "fts-yaml") and (grouped := _grouped_entries(schedule, to, source)):
        return "", grouped
    same_format = source is not None and source.path.endswith(".ftsc") == (to == "ftsc")
    carried = _carried_suppressions(source) if source is not None and not same_format else ""
    if to == "ftsc":
        keep = comments if source is not None and source.path.endswith(".ftsc") else None
        return carried + format_schedule(tighten_schedule(schedule), keep or (), source), []
    if to == "fts-yaml":
        text, diags = to_fts_yaml(schedule, source)
        return carried + text, diags
    raise ValueError(f"Invalid conversion target: {to}. Expected one of: ftsc, fts-yaml.")


def _carried_suppressions(source: SourceFile) -> str:
    """The input's suppression comments, as one file-level suppression for the converted file
    (its comments are not carried over, so line-level ones could not follow their lines)."""
    codes = suppressed_codes(source)
    if not codes:
        return ""
    return (f"# Suppressions carried over from {source.display_path} (narrow them to their lines):\n"
            f"# ftsc: ignore-file[{', '.join(codes)}]\n")


def _grouped_entries(schedule: ir.Schedule, to: str, source: SourceFile | None) -> list[Diagnostic]:
    """FTS501 for each `fsdp2` plan entry that groups modules in one list-form `fully_shard`
    call (accelerate's tail, imported from a dialect): neither the DSL's `shard` nor FTS's
    `fsdp_plan` writes one, and one entry per module would shard them as separate groups."""
    if schedule.fsdp2 is None:
        return []
    target = "the DSL's `shard`" if to == "ftsc" else "FTS's `fsdp_plan`"
    out = []
    for e in schedule.fsdp2.grouped():
        names = ", ".join(m.pattern or '""' for m in (e.selector, *e.members))
        out.append(make("FTS501", source, e.span if e.span.end else None, label="grouped fully_shard call",
                        detail=f"the `fsdp2` plan shards [{names}] in one `fully_shard` call; {target} "
                               "shards one module per entry, which would make them separate groups"))
    return out
