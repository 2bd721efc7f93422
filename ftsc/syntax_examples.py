"""Malformed snippets that teach the parser's error reporter what each syntax error means.

Input: nothing. Output: `EXAMPLES`, message -> snippets, for Lark's `match_examples`: an error
whose parser state matches one of a message's snippets gets that message. Keep each message
short and each list at 3-6 snippets. Never imports torch.
"""

from __future__ import annotations

EXAMPLES: dict[str, list[str]] = {
    "unclosed block: expected `}`": [
        "phase 0 {",
        "phase 0 { thaw a",
        "schedule { max_depth = 1",
        "fsdp { wrap a",
        "fsdp2 { shard a",
        "phase 0 { until epoch 1",
    ],
    "expected `=` after the setting name": [
        "schedule { max_depth 2 }",
        "phase 0 { lr 1e-4 }",
        "fsdp { use_orig_params true }",
        "schedule { early_stopping = { patience 2 } }",
    ],
    "expected a value after `=`": [
        "schedule { max_depth = }",
        "schedule { max_depth = = }",
        "phase 0 { lr = }",
        "schedule { x = [1, ] ] }",
    ],
    "expected a phase number after `phase`": [
        "phase { }",
        'phase "head" { }',
        "phase a { }",
        "phase 1.5 { }",
    ],
    "expected `{` to open the block": [
        "phase 0 thaw a }",
        'phase 0 "x" thaw a',
        "schedule max_depth = 1",
        "fsdp wrap a",
    ],
    "expected a selector: a name, \"exact name\", /regex/, glob \"...\" or fts \"...\"": [
        "phase 0 { thaw }",
        "phase 0 { thaw = }",
        "phase 0 { thaw a, }",
        "fsdp { wrap }",
        "fsdp2 { shard }",
        "phase 0 { thaw glob a }",
    ],
    "expected `epoch N`, `step N` or `plateau` after `until` / `or`": [
        "phase 0 { until }",
        "phase 0 { until 3 }",
        "phase 0 { until epoch 1 or }",
        "phase 0 { until epochs 3 }",
    ],
    "expected an integer": [
        "phase 0 { until epoch }",
        "phase 0 { until step }",
        "phase 0 { until epoch 1.5 }",
        "phase 0 { until epoch x }",
    ],
    "expected `optimizer` or `lr_scheduler` and a class path after `reinit`": [
        "phase 1 { reinit }",
        "phase 1 { reinit SGD }",
        "phase 1 { reinit optimizer }",
        "phase 1 { reinit optimizer (lr = 1) }",
    ],
    "expected `,` or `]` in a list": [
        "schedule { x = [1 2] }",
        "schedule { x = [1, 2 }",
        "schedule { x = [a b] }",
    ],
    "expected `name = value`, `,` or `)` in an argument list": [
        "phase 1 { reinit optimizer torch.optim.SGD(0.1) }",
        "phase 1 { reinit optimizer torch.optim.SGD(lr = 0.1 }",
        "phase 0 { until plateau(val_loss) }",
        "fsdp2 { shard a(b) }",
    ],
    "expected a statement: `thaw`, `until`, `reinit` or `name = value`": [
        "phase 0 { 3 }",
        "phase 0 { [ }",
        "phase 0 { shard a }",
    ],
    "expected `phase`, `schedule`, `fsdp` or `fsdp2` at the top level": [
        "thaw a",
        "lr = 1",
        "foo { }",
        "phase 0 { } }",
        "3",
    ],
}
