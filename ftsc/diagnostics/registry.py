'''The rule registry: every diagnostic code, its name, default severity, message and docs.

Input: nothing. Output: `RULES`, keyed by code, and `lookup()` that accepts a code or a name.
Each rule's `doc` is what `ftsc rule CODE` prints; its `## Example` must trigger the rule and
its `## Use instead` must not (checked by tests/test_rule_docs.py for rules that need no model).
Never imports torch.
'''

from __future__ import annotations

from dataclasses import dataclass

from ftsc.diagnostics import Severity


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """A diagnostic code's fixed facts."""

    code: str
    name: str
    severity: Severity
    summary: str
    message: str
    doc: str
    needs_model: bool = False
    aliases: tuple[str, ...] = ()


_E, _W, _I = Severity.ERROR, Severity.WARNING, Severity.INFO

_RULE_LIST: tuple[Rule, ...] = (
    Rule(
        code="FTS001", name="syntax-error", severity=_E,
        summary="the file cannot be parsed",
        message="{detail}",
        doc="""## What it does
Reports a file that cannot be parsed: a DSL syntax error, malformed YAML, a file that is not
UTF-8 text, or input nested too deeply to process.

## Why is this bad?
Nothing else can be checked until the file parses.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
```
""",
    ),
    Rule(
        code="FTS090", name="unused-suppression", severity=_W,
        summary="a suppression comment suppresses nothing",
        message="unused suppression of `{rule}`",
        doc="""## What it does
Reports a `# ftsc: ignore[CODE]` or `# ftsc: ignore-file[CODE]` comment that suppressed no
diagnostic, or that names an unknown code.

## Why is this bad?
Stale suppressions hide future problems on that line.

## Example
```ftsc
phase 0 {
    thaw model.head.weight  # ftsc: ignore[FTS205]
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
```
""",
    ),
    Rule(
        code="FTS101", name="invalid-regex", severity=_E,
        summary="a regular expression does not compile",
        message="invalid regular expression: {detail}",
        doc="""## What it does
Reports a parameter or module pattern that Python's `re` cannot compile.

## Why is this bad?
FinetuningScheduler crashes with a raw `re.error` at setup; ftsc reports it with a position.

## Example
```ftsc
phase 0 {
    thaw /model.3.(*/
}
```

## Use instead
```ftsc
phase 0 {
    thaw /model\\.3\\..*/
}
```
""",
    ),
    Rule(
        code="FTS102", name="invalid-value", severity=_E,
        summary="a value has the wrong type or is out of range",
        message="{detail}",
        doc="""## What it does
Reports a setting whose value has the wrong type or is out of range: an `lr` that is not a
positive number, an epoch that is not an integer, a reinit directive without its class, a
duplicated setting, an empty selector.

## Why is this bad?
FinetuningScheduler either crashes with a raw `TypeError`/`KeyError` at setup or, worse,
only after epochs of training.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
    lr = "fast"
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
    lr = 1e-5
}
```
""",
    ),
    Rule(
        code="FTS103", name="unknown-key", severity=_E,
        summary="an unknown key or option (a warning in FTS YAML, which ignores them)",
        message="unknown {where} `{key}`",
        doc="""## What it does
Reports a key or setting that ftsc does not know. In FTS YAML schedules this is a warning,
since FinetuningScheduler silently ignores such keys; in `.ftsc` files it is an error.

## Why is this bad?
A typo such as `max_transition_epochs` is silently ignored by FinetuningScheduler, and the
phase never ends by epoch.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
    max_transition_epochs = 3
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
    until epoch 3
}
phase 1 {
    thaw model.body.weight
}
```
""",
    ),
    Rule(
        code="FTS104", name="duplicate-key", severity=_E,
        summary="a key appears twice in one mapping",
        message="duplicate key `{key}`",
        doc="""## What it does
Reports a key written twice in one YAML mapping or one `.ftsc` block.

## Why is this bad?
FinetuningScheduler refuses schedules with duplicate keys; plain YAML loaders silently keep
the last one.

## Example
```ftsc
schedule {
    max_depth = 1
    max_depth = 2
}
phase 0 {
    thaw model.head.weight
}
```

## Use instead
```ftsc
schedule {
    max_depth = 2
}
phase 0 {
    thaw model.head.weight
}
```
""",
    ),
    Rule(
        code="FTS105", name="schedule-not-found", severity=_W,
        summary="a LightningCLI config names a schedule file that cannot be found",
        message="schedule file `{path}` named by `ft_schedule` was not found",
        doc="""## What it does
Reports a LightningCLI config whose scheduler callback's `ft_schedule` path exists neither
relative to the working directory nor relative to the config file. Schedule checks are
skipped; options and strategy settings are still checked.

## Why is this bad?
FinetuningScheduler resolves the path relative to the directory training is launched from.
If it is missing there too, training stops at setup.

## Example
```yaml
trainer:
  callbacks:
  - class_path: finetuning_scheduler.FinetuningScheduler
    init_args:
      ft_schedule: ./does/not/exist.yaml
```

## Use instead
Run `ftsc check` from the launch directory, or pass the schedule file itself.
""",
    ),
    Rule(
        code="FTS201", name="non-contiguous-phases", severity=_E,
        summary="phase numbers are not contiguous from 0",
        message="phase numbers must run 0, 1, 2, ... without gaps: {detail}",
        doc="""## What it does
Reports phases whose numbers are not exactly `0..N-1` (a gap, a duplicate, a negative or
non-integer number).

## Why is this bad?
FinetuningScheduler stops at setup with "non-contiguous or non-zero-indexed keys".

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 2 {
    thaw model.body.weight
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
}
```
""",
    ),
    Rule(
        code="FTS202", name="pattern-matches-nothing", severity=_E, needs_model=True,
        summary="a parameter pattern matches no parameter",
        message="`{pattern}` matches no parameter of the model",
        doc="""## What it does
Reports a selector that matches no parameter of the model, with the closest names.

## Why is this bad?
FinetuningScheduler stops at setup ("did not match any named parameter").

## Example
```ftsc
phase 0 {
    thaw model.haed.weight
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
```
""",
    ),
    Rule(
        code="FTS203", name="param-in-multiple-phases", severity=_E, needs_model=True,
        summary="a parameter is thawed in more than one phase",
        message="{detail}",
        doc="""## What it does
Reports a parameter that selectors of two different phases both thaw. (A parameter matched
twice inside one phase is fine, unlike FinetuningScheduler's check.)

## Why is this bad?
Every parameter must belong to exactly one phase; FinetuningScheduler stops at setup.

## Example
```ftsc
phase 0 {
    thaw /model\\.layers\\.[0-3]\\..*/
}
phase 1 {
    thaw /model\\.layers\\.3\\..*/
}
```

## Use instead
```ftsc
phase 0 {
    thaw /model\\.layers\\.[0-2]\\..*/
}
phase 1 {
    thaw /model\\.layers\\.3\\..*/
}
```
""",
    ),
    Rule(
        code="FTS204", name="never-thawed", severity=_I, needs_model=True,
        summary="parameters never thawed by any phase",
        message="{count} parameters ({numel} elements) are never thawed by any phase",
        doc="""## What it does
Lists, once, the parameters no phase thaws, with their total numel.

## Why is this bad?
They stay frozen for the whole run, silently.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw /(?!model\\.head\\.weight).*/
}
```
""",
    ),
    Rule(
        code="FTS205", name="over-matching-pattern", severity=_W,
        summary="a pattern matches more than it looks like it should",
        message="{detail}",
        doc="""## What it does
Reports patterns that match more than they appear to:
- a regex `{m,n}` quantifier right after a `.`, which repeats *any character* (FTS's DeBERTa
  example `layer.{0,11}.` matches every layer, not layers 0 and 11);
- a `.` used as a separator that is not escaped (it matches any character);
- an FTS pattern (`fts "..."`, or any FTS YAML pattern) whose literal index prefix also
  catches sibling indices: `layers.1` also thaws `layers.10`-`layers.19` (needs a model).

## Why is this bad?
The phase thaws parameters the author meant for another phase, or thaws everything at once.

## Example
```ftsc
phase 0 {
    thaw fts "model.encoder.layer.{0,11}.attention.*"
}
```

## Use instead
```ftsc
phase 0 {
    thaw /model\\.encoder\\.layer\\.(0|11)\\.attention\\..*/
}
```
""",
    ),
    Rule(
        code="FTS206", name="ineffective-transition", severity=_W,
        summary="transition epochs that cannot take effect",
        message="{detail}",
        doc="""## What it does
Reports transition epochs that cannot take effect: a phase's epoch not greater than an
earlier phase's (the phase may run a single epoch), an epoch at or beyond `max_epochs`, a final
phase's epoch (overridden by `max_epochs`), and phases cut off by `max_depth`.

## Why is this bad?
The schedule silently runs differently from how it reads.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
    until epoch 3
}
phase 1 {
    thaw model.body.weight
    until epoch 2
}
phase 2 {
    thaw model.embed.weight
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
    until epoch 2
}
phase 1 {
    thaw model.body.weight
    until epoch 3
}
phase 2 {
    thaw model.embed.weight
}
```
""",
    ),
    Rule(
        code="FTS207", name="phase-zero-lr-ignored", severity=_W,
        summary="an `lr` in phase 0 has no effect",
        message="`lr` in phase 0 is ignored: phase 0 uses the optimizer's configured lr",
        doc="""## What it does
Reports an `lr` given for phase 0.

## Why is this bad?
Phase 0's learning rate comes from `configure_optimizers`; FinetuningScheduler deletes the
phase-0 `lr` with a warning.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
    lr = 1e-3
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
```
""",
    ),
    Rule(
        code="FTS208", name="reinit-in-phase-zero", severity=_E,
        summary="an optimizer or lr-scheduler reinit in phase 0",
        message="phase 0 cannot reinitialize the {target}: configure it in the LightningModule",
        doc="""## What it does
Reports a `reinit optimizer` or `reinit lr_scheduler` directive in phase 0.

## Why is this bad?
The initial optimizer and scheduler come from `configure_optimizers`; FinetuningScheduler
stops at setup.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
    reinit optimizer torch.optim.SGD(lr = 0.1)
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
    reinit optimizer torch.optim.SGD(lr = 0.1)
}
```
""",
    ),
    Rule(
        code="FTS209", name="conflicting-options", severity=_E,
        summary="schedule options that contradict each other or the phases",
        message="{detail}",
        doc="""## What it does
Reports option combinations FinetuningScheduler rejects: `epoch_transitions_only` with a
phase that has no epoch transition or has a plateau transition; an explicit schedule together
with a schedule-wide `reinit lr_scheduler` (FTS's `reinit_lr_cfg`); `init_pg_lrs` in a
schedule-wide lr-scheduler reinit.

## Why is this bad?
FinetuningScheduler stops at setup.

## Example
```ftsc
schedule {
    epoch_transitions_only = true
}
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
}
```

## Use instead
```ftsc
schedule {
    epoch_transitions_only = true
}
phase 0 {
    thaw model.head.weight
    until epoch 2
}
phase 1 {
    thaw model.body.weight
}
```
""",
    ),
    Rule(
        code="FTS210", name="empty-phase", severity=_W,
        summary="a phase thaws nothing",
        message="phase {phase} thaws no parameters",
        doc="""## What it does
Reports a phase with no selectors.

## Why is this bad?
The phase adds no parameter group; it only spends epochs.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    until epoch 3
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
}
```
""",
    ),
    Rule(
        code="FTS211", name="unsupported-class", severity=_E,
        summary="a reinit class FinetuningScheduler does not support",
        message="{detail}",
        doc="""## What it does
Reports a reinit `lr_scheduler` class outside the ten torch schedulers FinetuningScheduler
supports (unless `allow_untested = true`, then a warning), a `ZeroRedundancyOptimizer` reinit,
and class paths outside `torch.optim` (ftsc never imports other classes from a schedule unless
`allow_untested = true`).

## Why is this bad?
FinetuningScheduler stops at setup, or the class path imports arbitrary code.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
    reinit lr_scheduler torch.optim.lr_scheduler.CyclicLR(base_lr = 0.1, max_lr = 1.0)
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
    reinit lr_scheduler torch.optim.lr_scheduler.StepLR(step_size = 1)
}
```
""",
    ),
    Rule(
        code="FTS212", name="init-pg-lrs-mismatch", severity=_W,
        summary="`init_pg_lrs` lists a different number of lrs than there are parameter groups",
        message="{detail}",
        doc="""## What it does
Counts the parameter groups the optimizer will hold when a phase's lr scheduler is
reinitialized (one per thawing phase so far, replayed from phase 0 after an optimizer reinit;
two per phase when the LightningModule defines `no_decay`) and reports an `init_pg_lrs` list
that matches neither count.

## Why is this bad?
FinetuningScheduler zips the list against the groups: extra lrs are dropped and missing ones
leave groups at their old lr, silently.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
    reinit lr_scheduler torch.optim.lr_scheduler.StepLR(step_size = 1) {
        init_pg_lrs = [1e-5, 1e-5, 1e-5]
    }
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.body.weight
    reinit lr_scheduler torch.optim.lr_scheduler.StepLR(step_size = 1) {
        init_pg_lrs = [1e-5, 1e-5]
    }
}
```
""",
    ),
    Rule(
        code="FTS213", name="shared-parameter-alias", severity=_W, needs_model=True,
        summary="a selector names an alias of a shared (tied) parameter",
        message="`{alias}` is an alias of shared parameter `{primary}`: pruned from the schedule",
        doc="""## What it does
Reports a selector that names a shared parameter by an alias (a later registration of the
same tensor, e.g. tied input/output embeddings). Like FinetuningScheduler, ftsc prunes it:
the tensor thaws where its primary name (its first registration) thaws. A warning when that
is another phase or no phase; an info when it is the same phase.

## Why is this bad?
`named_parameters()` lists a shared tensor once, under its primary name; the alias thaws
nothing by itself, and the tensor may thaw in a different phase than this one, or never.

## Example
```ftsc
phase 0 {
    thaw model.lm_head.weight  # tied to model.embed.weight
}
phase 1 {
    thaw model.embed.weight
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.embed.weight
}
```
""",
    ),
    Rule(
        code="FTS301", name="phase-splits-flat-parameter", severity=_E, needs_model=True,
        summary="FSDP1 (use_orig_params=False): a FlatParameter spans phases",
        message="FSDP unit `{unit}` flattens parameters of more than one phase",
        doc="""## What it does
With `use_orig_params = false`, reports an FSDP unit whose FlatParameter holds parameters of
more than one phase, or scheduled and never-thawed parameters together.

## Why is this bad?
All parameters in one FlatParameter share `requires_grad`; FinetuningScheduler stops at fit
start ("do not have disjoint FSDP-flattened parameter sets").

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.head.bias
}
fsdp {
    use_orig_params = false
}
```

## Use instead
```ftsc
phase 0 {
    thaw /model\\.head\\..*/
}
fsdp {
    use_orig_params = false
    wrap model.head
}
```

## FSDP notes
FSDP1 flattens every parameter of a unit into one FlatParameter; "`requires_grad` must be
uniform" within it unless `use_orig_params=True`.
""",
    ),
    Rule(
        code="FTS302", name="partially-thawed-unit", severity=_W, needs_model=True,
        summary="FSDP1 (use_orig_params=True): a FlatParameter is partially thawed",
        message="FSDP unit `{unit}` is partially thawed in phase {phase}",
        doc="""## What it does
With `use_orig_params = true`, reports FSDP units partially thawed in some phase, with the
wasted gradient numel per phase.

## Why is this bad?
Frozen parameters inside a thawed FlatParameter still cost gradient memory and traffic.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
}
phase 1 {
    thaw model.head.bias
}
fsdp {
    wrap model.head
}
```

## Use instead
```ftsc
phase 0 {
    thaw /model\\.head\\..*/
}
fsdp {
    wrap model.head
}
```
""",
    ),
    Rule(
        code="FTS303", name="wrap-target-matches-nothing", severity=_E, needs_model=True,
        summary="an auto-wrap class, override or ignored module matches nothing",
        message="`{target}` matches no module of the model",
        doc="""## What it does
Reports an auto-wrap policy class, a `wrap` override or an `ignore` entry that matches no
module.

## Why is this bad?
The intended FSDP unit boundary does not exist, so phases end up in the root FlatParameter.

## Example
```ftsc
phase 0 {
    thaw glob "model.head.*"
}
fsdp {
    wrap model.haed
}
```

## Use instead
```ftsc
phase 0 {
    thaw glob "model.head.*"
}
fsdp {
    wrap model.head
}
```
""",
    ),
    Rule(
        code="FTS304", name="tie-split-across-units", severity=_E, needs_model=True,
        summary="a tied/shared parameter or module is split across FSDP units",
        message="tied parameter `{param}` is split across FSDP units",
        doc="""## What it does
Reports tied parameters or shared modules whose users land in different FSDP units.

## Why is this bad?
With `use_orig_params=False` the tie is copied into two FlatParameters and silently broken
(the copies train apart). With `use_orig_params=True` one unit owns it and the other path
sees a sharded 1-D view: the first forward fails.

## Example
```ftsc
phase 0 {
    thaw glob "**"
}
fsdp {
    wrap model.lm_head  # tied to model.embed.weight
}
```

## Use instead
```ftsc
phase 0 {
    thaw glob "**"
}
fsdp {
    wrap model
}
```
""",
    ),
    Rule(
        code="FTS305", name="phase-zero-owns-no-unit", severity=_E, needs_model=True,
        summary="FSDP1: phase 0 owns no FSDP-flattened parameter",
        message="phase 0 owns no FSDP-flattened parameter",
        doc="""## What it does
Reports an FSDP1 configuration in which no phase-0 module is (or contains) its own FSDP unit.

## Why is this bad?
FinetuningScheduler stops at fit start ("requires one or more FSDP parameters to be included
in the optimizer").

## Example
```ftsc
phase 0 {
    thaw glob "model.head.*"
}
fsdp {
    use_orig_params = false
}
```

## Use instead
```ftsc
phase 0 {
    thaw glob "model.head.*"
}
fsdp {
    use_orig_params = false
    wrap model.head
}
```
""",
    ),
    Rule(
        code="FTS401", name="mixed-dtensor-param-group", severity=_W, needs_model=True,
        summary="FSDP2: a phase's parameter group mixes DTensor and plain tensors",
        message="phase {phase} mixes DTensor and plain-tensor parameters",
        doc="""## What it does
Reports a phase whose parameter group holds both `fully_shard`-managed (DTensor) and plain
parameters.

## Why is this bad?
foreach/fused optimizers (the CUDA default) fail at the first step; gradient clipping over
mixed sets fails in every mode.

## Example
```ftsc
phase 0 {
    thaw /model\\..*/
}
fsdp2 {
    shard model.layers.0
}
```

## Use instead
```ftsc
phase 0 {
    thaw /model\\..*/
}
fsdp2 {
    shard model.layers.0
    shard model
}
```
""",
    ),
    Rule(
        code="FTS402", name="plan-key-matches-nothing", severity=_E, needs_model=True,
        summary="FSDP2: an fsdp_plan key matches no module",
        message="plan key `{key}` matches no module",
        doc="""## What it does
Reports a `shard` entry that matches no module.

## Why is this bad?
FinetuningScheduler stops at setup.

## Example
```ftsc
fsdp2 {
    shard model.haed
}
```

## Use instead
```ftsc
fsdp2 {
    shard model.head
}
```
""",
    ),
    Rule(
        code="FTS403", name="plan-not-bottom-up", severity=_W, needs_model=True,
        summary="FSDP2: a child listed after an ancestor is folded into the ancestor",
        message="`{child}` is sharded after its ancestor `{ancestor}` and is folded into it",
        doc="""## What it does
Reports plan entries that come after an entry for one of their ancestors.

## Why is this bad?
`fully_shard` must be applied bottom-up; the later child entry is skipped.

## Example
```ftsc
fsdp2 {
    shard model
    shard model.layers.0
}
```

## Use instead
```ftsc
fsdp2 {
    shard model.layers.0
    shard model
}
```
""",
    ),
    Rule(
        code="FTS404", name="tie-split-across-groups", severity=_E, needs_model=True,
        summary="FSDP2: tied parameters managed by different fully_shard groups",
        message="tied parameter `{param}` is managed by different `fully_shard` groups",
        doc="""## What it does
Reports tied parameters whose modules land in different `fully_shard` groups.

## Why is this bad?
torch >= 2.13 fails at the first forward; if only one alias is sharded, the tie silently breaks.

## Example
```ftsc
fsdp2 {
    shard model.embed
    shard model.lm_head
}
```

## Use instead
```ftsc
fsdp2 {
    shard model
}
```
""",
    ),
    Rule(
        code="FTS405", name="plan-targets-container", severity=_W, needs_model=True,
        summary="FSDP2: a plan entry targets a ModuleList/ModuleDict",
        message="plan entry `{key}` targets a container module with no forward",
        doc="""## What it does
Reports a `shard` entry that resolves to a `ModuleList` or `ModuleDict`.

## Why is this bad?
Containers have no forward, so FSDP2's hooks never run; FinetuningScheduler prunes the entry.

## Example
```ftsc
fsdp2 {
    shard model.layers
}
```

## Use instead
```ftsc
fsdp2 {
    shard /model\\.layers\\.\\d+/
}
```
""",
    ),
    Rule(
        code="FTS406", name="invalid-fully-shard-kwarg", severity=_E,
        summary="FSDP2: unknown fully_shard keyword or alias value",
        message="{detail}",
        doc="""## What it does
Reports an unknown `fully_shard` keyword in a `shard` entry or in `fsdp_default_kwargs`, and
invalid `act_ckpt` / `cpu_offload_policy` alias values (including a bare-string `act_ckpt`,
which crashes FinetuningScheduler).

## Why is this bad?
FinetuningScheduler crashes with a `TypeError` while applying the plan, after the process
group and model are set up.

## Example
```ftsc
fsdp2 {
    shard model.layers.0(reshard_after_fwd = true)
}
```

## Use instead
```ftsc
fsdp2 {
    shard model.layers.0(reshard_after_forward = true)
}
```
""",
    ),
    Rule(
        code="FTS407", name="unsynchronized-parameters", severity=_W, needs_model=True,
        summary="FSDP2: trainable parameters outside every fully_shard group",
        message="{count} trainable parameters are in no `fully_shard` group: their gradients are not synchronized",
        doc="""## What it does
With an FSDP2 plan, reports (once) the parameters that some phase thaws but that no
`fully_shard` group manages.

## Why is this bad?
They stay plain tensors: not sharded, and their gradients are never all-reduced, so every
rank trains its own copy and the replicas drift apart without any error.

## Example
```ftsc
phase 0 {
    thaw glob "model.head.*"
}
fsdp2 {
    shard model.body
}
```

## Use instead
```ftsc
phase 0 {
    thaw glob "model.head.*"
}
fsdp2 {
    shard model.body
    shard ""
}
```
""",
    ),
    Rule(
        code="FTS501", name="not-expressible-in-fts-yaml", severity=_E,
        summary="a DSL feature FTS YAML cannot express",
        message="{detail}",
        doc="""## What it does
Reports, during `ftsc convert --to fts-yaml`, a feature of the schedule that an FTS YAML
schedule cannot express (step transitions, per-phase plateau criteria, globs that have no
start-anchored regex form, ...).

## Why is this bad?
The converted file would mean something else.

## Example
```ftsc
phase 0 {
    thaw model.head.weight
    until step 1000
}
```

## Use instead
```ftsc
phase 0 {
    thaw model.head.weight
    until epoch 2
}
```
""",
    ),
    Rule(
        code="FTS901", name="internal-error", severity=_E,
        summary="an internal error in ftsc (a bug)",
        message="internal error: {detail}",
        doc="""## What it does
Reports a bug in ftsc instead of a traceback.

## Why is this bad?
It is a bug in ftsc; please report it with the input that triggered it.

## Example
There is no example input; any one would be a bug.

## Use instead
Nothing to change in your schedule.
""",
    ),
)

RULES: dict[str, Rule] = {rule.code: rule for rule in _RULE_LIST}
_BY_NAME: dict[str, Rule] = {rule.name: rule for rule in _RULE_LIST} | {
    alias: rule for rule in _RULE_LIST for alias in rule.aliases
}


def lookup(code_or_name: str) -> Rule | None:
    """Find a rule by code (`FTS203`, case-insensitive) or kebab-case name."""
    key = code_or_name.strip()
    return RULES.get(key.upper()) or _BY_NAME.get(key.lower())


def expand_selection(items: list[str]) -> tuple[set[str], list[str]]:
    """Turn `--select`/`--ignore` items (codes, names or prefixes like `FTS2`) into codes.

    Returns:
        The selected codes and the items that matched nothing.
    """
    codes: set[str] = set()
    unknown: list[str] = []
    for item in items:
        rule = lookup(item)
        if rule is not None:
            codes.add(rule.code)
            continue
        prefix = item.strip().upper()
        matched = {code for code in RULES if prefix and code.startswith(prefix)}
        if matched:
            codes |= matched
        else:
            unknown.append(item)
    return codes, unknown
