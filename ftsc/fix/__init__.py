"""The fixing stage of `ftsc check --fix`: search, edit, verify, write.

Input: a schedule file as checked (`Loaded`, with any LightningCLI config merged), the model
graph, and the `--lightning-config` read separately, if any. Output: at most one file
rewritten (the one configuring sharding) and one line per decision through `report`.

- Search (`ftsc.fix.search`): FSDP1, the fewest extra `wrap` overrides after which no
  FlatParameter mixes phases (FTS301/FTS302) and phase 0 owns a unit (FTS305). FSDP2, the
  plan reordered bottom-up (FTS403) and tied modules' own groups dropped so a common ancestor
  manages every alias (FTS404) (`.ftsc` only).
- Edit: `.ftsc` blocks textually (`ftsc.fix.dsl`), LightningCLI YAML at the parsed nodes of
  the scheduler callback (`ftsc.fix.yaml_edit`); comments and layout elsewhere are kept.
- Verify: the edited text is read back (the sharding block must hold exactly the intended
  settings) and checked again in memory; it is written only when none of the codes it
  addresses remain and no new code appears. Otherwise nothing is written and the edit to make
  by hand is reported. A fixed file therefore checks clean of those codes, and a second
  `--fix` finds nothing to do.

What has no safe automatic fix is reported as a choice, never written: FSDP2 parameters in no
`fully_shard` group (FTS401/FTS407) need the root `""` or the module `training_step` calls
sharded last, and which one works depends on code ftsc does not read. Never imports torch,
never prints (the caller passes `report`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ftsc import ir
from ftsc.analyze import AnalysisContext, prepare
from ftsc.atomic import atomic_write_text
from ftsc.check import merge_config, run_check
from ftsc.diagnostics import Severity
from ftsc.fix.dsl import add_dsl_overrides, reorder_dsl_plan, wrap_statement
from ftsc.fix.search import fsdp1_overrides, minimal_overrides, mixed_units, phase_zero_owns_unit
from ftsc.fix.yaml_edit import Refused, add_yaml_overrides, override_edit
from ftsc.frontend import Loaded, ReadError, load_file, load_text
from ftsc.model import ModelGraph
from ftsc.source import SourceFile

__all__ = ["FSDP1_CODES", "Proposal", "WriteError", "fix_file", "fsdp1_overrides", "minimal_overrides",
           "mixed_units", "phase_zero_owns_unit", "propose"]

FSDP1_CODES = frozenset({"FTS301", "FTS302", "FTS305"})
Report = Callable[[str], object]


class WriteError(ReadError):
    """The fixed file could not be written (exit status 2, like an unreadable file)."""


@dataclass(frozen=True, slots=True)
class Proposal:
    """One fix for one file.

    Attributes:
        target: the file the fix edits.
        what: what the fix does, for the report line.
        codes: the codes the fix addresses (none may remain after it).
        new: the edited text, or None when the edit could not be made.
        manual: the edit to make by hand (reported when `new` is None or fails verification).
        reason: why `new` is None.
        expect: reads the sharding block of the edited schedule back; the fix is kept only when
            it returns True.
    """

    target: SourceFile
    what: str
    codes: frozenset[str]
    new: str | None
    manual: str
    reason: str = ""
    expect: Callable[[ir.Schedule], bool] | None = None


def _is_yaml(source: SourceFile) -> bool:
    return source.path.endswith((".yaml", ".yml"))


def _fsdp1(loaded: Loaded, ctx: AnalysisContext, graph: ModelGraph, report: Report) -> Proposal | None:
    schedule, analysis, res = loaded.schedule, ctx.fsdp1, ctx.resolution
    assert schedule is not None and schedule.fsdp is not None and analysis is not None and res is not None
    phase0 = res.phase(0)
    names = fsdp1_overrides(graph, analysis.spec, analysis.prediction, res.phase_of,
                            phase0.params if phase0 is not None else ())
    target = schedule.fsdp.span.file or loaded.source
    if names is None:
        report(f"{target.display_path}: no `wrap` overrides found that give every phase its own FSDP units; "
               "not fixed\n")
        return None
    if not names:
        return None
    old = [s.pattern for s in schedule.fsdp.wrap]
    what = "wrap " + ", ".join(names) + (" in its own FSDP unit" if len(names) == 1 else " in their own FSDP units")

    def expect(new: ir.Schedule) -> bool:
        return new.fsdp is not None and [s.pattern for s in new.fsdp.wrap] == old + names

    if _is_yaml(target):
        edited = add_yaml_overrides(target.text, names, target.path)
        manual = override_edit(names)
        if isinstance(edited, Refused):
            return Proposal(target, what, FSDP1_CODES, None, manual, edited.reason, expect)
        return Proposal(target, what, FSDP1_CODES, edited, manual, expect=expect)
    manual = f"add `{wrap_statement(names)}` to the `fsdp` block"
    edited_dsl = add_dsl_overrides(target.text, schedule.fsdp, names)
    return Proposal(target, what, FSDP1_CODES, edited_dsl, manual,
                    "" if edited_dsl is not None else "the `fsdp` block's layout is not one --fix edits", expect)


def _plain_choice(loaded: Loaded, ctx: AnalysisContext, yaml: bool) -> str | None:
    """The choice reported for trainable parameters in no `fully_shard` group (never written)."""
    plan, res = ctx.fsdp2, ctx.resolution
    assert plan is not None and res is not None
    plain = [p for p in plan.prediction.unsharded if p in res.phases_of]
    if not plain:
        return None
    tops = sorted({p.split(".", 1)[0] for p in plain if "." in p})
    on_root = any("." not in p for p in plain)

    def entry(module: str) -> str:
        return f"'{module}': {{}}" if yaml else f'shard "{module}"' if module == "" else f"shard {module}"

    where = "`fsdp_plan`" if yaml else "the `fsdp2` block"
    lines = [(f"{len(plain)} trainable parameter{'s are' if len(plain) > 1 else ' is'} in no `fully_shard` group "
             "(FTS401/FTS407); not fixed automatically: which group can hold "
             f"{'them' if len(plain) > 1 else 'it'} depends on what `training_step` calls. Add, last in {where}:"),
             f"  `{entry('')}` if `training_step` calls `self(...)` (the LightningModule's forward)"]
    if tops and not on_root:
        lines.append("  " + " and ".join(f"`{entry(t)}`" for t in tops)
                     + f" if `training_step` calls {' and '.join(f'`self.{t}(...)`' for t in tops)}")
    return "\n".join(lines)


def _fsdp2(loaded: Loaded, ctx: AnalysisContext, report: Report) -> Proposal | None:
    schedule, plan = loaded.schedule, ctx.fsdp2
    assert schedule is not None and schedule.fsdp2 is not None and plan is not None
    target = schedule.fsdp2.span.file or loaded.source
    choice = _plain_choice(loaded, ctx, _is_yaml(target))
    if choice:
        report(f"{target.display_path}: {choice}\n")
    pred = plan.prediction
    entries = list(schedule.fsdp2.plan)
    index = {id(e): i for i, e in enumerate(entries)}
    # A tie split across plan groups: drop the groups of the tied modules below the last
    # (outermost) one, so a common ancestor manages every alias.
    dropped = sorted({index[id(plan.entry_of[g])] for groups in pred.multi.values() for g in groups[:-1]
                      if g in plan.entry_of and id(plan.entry_of[g]) in index})
    depth = [min((m.count(".") + 1 if m else 0 for m, e in plan.entry_of.items() if e is entry), default=0)
             for entry in entries]
    order = sorted((i for i in range(len(entries)) if i not in dropped), key=lambda i: (-depth[i], i))
    if pred.failed or [p for p in pred.untied if p not in pred.multi] or (pred.multi and not dropped):
        report(f"{target.display_path}: FTS404 not fixed automatically: a tie needs one group that holds every "
               "alias (a common ancestor, or a list-form `fully_shard` call); see `ftsc rule FTS404`\n")
    if not pred.skipped and not dropped:
        return None
    codes = frozenset({"FTS403"} if pred.skipped else ()) | frozenset({"FTS404"} if dropped else ())
    what = "; ".join(x for x in ("plan reordered bottom-up" if pred.skipped else "",
                                 "tied modules left to a common ancestor's group" if dropped else "") if x)
    patterns = [entries[i].selector.pattern for i in order]
    shown = ", ".join(f"'{p}'" if _is_yaml(target) else p for p in patterns)
    manual = f"list the plan as: {shown}"

    def expect(new: ir.Schedule) -> bool:
        return new.fsdp2 is not None and [e.selector.pattern for e in new.fsdp2.plan] == patterns

    if _is_yaml(target):
        return Proposal(target, what, codes, None, manual, "`fsdp_plan` entries are not reordered in YAML", expect)
    edited = reorder_dsl_plan(target.text, schedule.fsdp2, order)
    return Proposal(target, what, codes, edited, manual,
                    "" if edited is not None else "the `fsdp2` block's layout is not one --fix edits", expect)


def propose(loaded: Loaded, graph: ModelGraph, report: Report) -> Proposal | None:
    """The fix for one checked file, or None when there is nothing to fix automatically.

    Choices that have no safe automatic fix are passed to `report` on the way.
    """
    schedule = loaded.schedule
    if schedule is None:
        return None
    ctx = prepare(schedule, AnalysisContext(loaded.source, loaded.kind, graph))
    if ctx.resolution is None:
        return None
    if schedule.fsdp is not None and ctx.fsdp1 is not None:
        return _fsdp1(loaded, ctx, graph, report)
    if schedule.fsdp2 is not None and ctx.fsdp2 is not None:
        return _fsdp2(loaded, ctx, report)
    return None


def _reload(loaded: Loaded, config: Loaded | None, target: SourceFile, text: str) -> Loaded | None:
    """The checked file as it would read with `target` holding `text` (None: not a file we edit)."""
    edited = SourceFile(target.path, text)
    if target.path == loaded.source.path:
        new = load_text(edited, loaded.kind)
        return merge_config(new, config) if config is not None else new
    if config is not None and target.path == config.source.path:
        return merge_config(load_file(loaded.source.path), load_text(edited, config.kind))
    return None


def _codes(loaded: Loaded, graph: ModelGraph) -> set[str]:
    return {d.code for d in run_check(loaded, graph).diagnostics if d.severity is not Severity.INFO}


def _write(target: SourceFile, text: str) -> None:
    """Replace the target file with `text` atomically, in its own line endings and with its BOM."""
    if "\r\n" in target.text and target.text.count("\r\n") == target.text.count("\n"):
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    try:
        atomic_write_text(target.path, ("\ufeff" if getattr(target, "bom", False) else "") + text)
    except OSError as err:
        raise WriteError(f"cannot write {target.path}: {err}") from None


def fix_file(loaded: Loaded, graph: ModelGraph, config: Loaded | None, report: Report) -> bool:
    """Fix what can be fixed safely in the file configuring `loaded`'s sharding; True if written.

    Args:
        loaded: the schedule file as checked (`config` already merged into it).
        graph: the model.
        config: the `--lightning-config` read on its own, if one was given.
        report: receives one line (or a few) per decision: fixed, not fixed and why, choices.

    Raises:
        WriteError: when the edited file cannot be written.
    """
    proposal = propose(loaded, graph, report)
    if proposal is None:
        return False
    target = proposal.target
    new, reason = proposal.new, proposal.reason
    if new is not None and new != target.text:
        back = _reload(loaded, config, target, new)
        if back is None or back.schedule is None or (proposal.expect and not proposal.expect(back.schedule)):
            new, reason = None, "the edited file would not read back to the intended settings"
        else:
            before, after = _codes(loaded, graph), _codes(back, graph)
            left, added = sorted(after & proposal.codes), sorted(after - before)
            if left or added:
                new = None
                reason = "checking the edited file still reports " + ", ".join(left + added)
    elif new is not None:
        new, reason = None, reason or "the edit changes nothing"
    if new is None:
        report(f"{target.display_path}: not fixed ({proposal.what}): {reason}; edit by hand: "
               f"{proposal.manual}\n")
        return False
    _write(target, new)
    report(f"fixed {target.display_path}: {proposal.what}\n")
    return True
