"""Edits to a LightningCLI config's scheduler callback for `ftsc check --fix`, made at the
positions of the parsed YAML nodes and verified by parsing the result again.

Input: the config's text and the override module names to add. Output: the edited text, or a
`Refused` saying why the edit was not made and what to write by hand. The scheduler callback
is found by its class (wherever it is listed among `trainer.callbacks`); new text goes next to
the nodes it extends, so comments, quoting and layout elsewhere are kept byte for byte. An
edit is returned only when the new text parses to exactly the old document with the intended
settings added. Never reads or writes files, never imports torch.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from ftsc.fix.dsl import line_bounds
from ftsc.frontend.yaml_nodes import YNode, load_yaml
from ftsc.source import SourceFile

SCHEDULER_CLASSES = ("FinetuningScheduler", "FtscCallback", "ScheduleCallback")


@dataclass(frozen=True, slots=True)
class Refused:
    """Why an edit was not made; `edit` is what the user can write by hand."""

    reason: str
    edit: str


def _class_name(node: YNode) -> str:
    if isinstance(node.value, str):
        return node.value
    cp = node.get("class_path")
    return cp.value if cp is not None and isinstance(cp.value, str) else ""


def _scheduler_callbacks(root: YNode) -> list[tuple[YNode, list[Any]]]:
    """Every scheduler callback with the path of keys/indices leading to it."""
    found: list[tuple[YNode, list[Any]]] = []
    if not isinstance(root.value, dict):
        return found
    for tkey in ("trainer", "trainer+"):
        trainer = root.get(tkey)
        if trainer is None or not isinstance(trainer.value, dict):
            continue
        for ckey in ("callbacks", "callbacks+"):
            node = trainer.get(ckey)
            if node is None:
                continue
            items = list(enumerate(node.value)) if isinstance(node.value, list) else [(None, node)]
            for idx, cb in items:
                if _class_name(cb).rsplit(".", 1)[-1] in SCHEDULER_CLASSES:
                    found.append((cb, [tkey, ckey] + ([] if idx is None else [idx])))
    return found


def _column(text: str, offset: int) -> int:
    return offset - (text.rfind("\n", 0, offset) + 1)


def _is_flow(text: str, node: YNode, opener: str) -> bool:
    return text[node.span.start : node.span.start + 1] == opener


def _block(lines: list[tuple[int, str]], indent: str) -> str:
    return "".join(f"{indent}{'  ' * depth}{line}\n" for depth, line in lines)


def _flow(lines: list[tuple[int, str]]) -> str:
    """`lines` (a nested block of `key:` lines ending in a flow value) as one flow mapping entry."""
    out = ""
    for i, (_, line) in enumerate(lines):
        out += ("{" if i else "") + (line if i == len(lines) - 1 else line + " ")
    return out + "}" * (len(lines) - 1)


def _add_child(text: str, key: YNode | None, value: YNode | None, lines: list[tuple[int, str]]) -> str | None:
    """Add the entry `lines` (nested `key:` lines) to the mapping `value` held under `key`.

    `value` None (or a null) means the key has no value yet: the entry goes on the lines after
    the key, indented under it.
    """
    if value is not None and isinstance(value.value, dict):
        if _is_flow(text, value, "{"):
            close = value.span.end - 1
            if text[close : close + 1] != "}":
                return None
            inner = text[value.span.start + 1 : close]
            if inner.strip():
                return text[:close].rstrip() + ", " + _flow(lines) + text[close:]
            return text[:close] + _flow(lines) + text[close:]
        if not value.key_nodes:
            return None
        first = min(value.key_nodes.values(), key=lambda n: n.span.start)
        line_start, _ = line_bounds(text, first.span.start)
        prefix = text[line_start : first.span.start]
        if prefix.strip():
            return None
        return text[:line_start] + _block(lines, prefix) + text[line_start:]
    if key is None or (value is not None and value.value is not None):
        return None
    _, line_end = line_bounds(text, key.span.start)
    indent = " " * (_column(text, key.span.start) + 2)
    body = _block(lines, indent)
    return text[:line_end] + "\n" + body.rstrip("\n") + text[line_end:]


def _append_items(text: str, node: YNode, quoted: list[str]) -> str | None:
    if _is_flow(text, node, "["):
        close = node.span.end - 1
        if text[close : close + 1] != "]":
            return None
        inner = text[node.span.start + 1 : close]
        if inner.strip():
            return text[:close].rstrip() + "".join(f", {q}" for q in quoted) + text[close:]
        return text[:close] + ", ".join(quoted) + text[close:]
    if not node.value:
        return None
    last = node.value[-1]
    line_start, _ = line_bounds(text, last.span.start)
    prefix = text[line_start : last.span.start]
    if prefix.strip() != "-":
        return None
    _, line_end = line_bounds(text, max(last.span.start, last.span.end - 1))
    return text[:line_end] + "".join(f"\n{prefix}{q}" for q in quoted) + text[line_end:]


def _expected(data: Any, path: list[Any], names: list[str]) -> Any:
    out = copy.deepcopy(data)
    cb = out
    for step in path:
        cb = cb[step]
    if cb.get("init_args") is None:
        cb["init_args"] = {}
    args = cb["init_args"]
    if args.get("strategy_adapter_cfg") is None:
        args["strategy_adapter_cfg"] = {}
    adapter = args["strategy_adapter_cfg"]
    adapter["awp_overrides"] = [*(adapter.get("awp_overrides") or []), *names]
    return out


def override_edit(names: list[str]) -> str:
    """The hand edit that adds `names` to the scheduler callback's `awp_overrides`.

    Example:
        >>> print(override_edit(["model.head"]))
        under the FinetuningScheduler callback's `init_args`:
            strategy_adapter_cfg:
              awp_overrides: ["model.head"]   # appended to any existing entries
    """
    quoted = ", ".join(json.dumps(n) for n in names)
    return ("under the FinetuningScheduler callback's `init_args`:\n    strategy_adapter_cfg:\n"
            f"      awp_overrides: [{quoted}]   # appended to any existing entries")


def add_yaml_overrides(text: str, names: list[str], path: str = "<config>.yaml") -> str | Refused:
    """Append `names` to `strategy_adapter_cfg.awp_overrides` of the scheduler callback,
    creating `init_args`, `strategy_adapter_cfg` or `awp_overrides` where absent.

    Example:
        >>> cfg = ("trainer:\\n  callbacks:\\n  - class_path: finetuning_scheduler.FTSEarlyStopping\\n"
        ...        "  - class_path: finetuning_scheduler.FinetuningScheduler\\n"
        ...        "    init_args:  # the schedule\\n      max_depth: 2\\n")
        >>> print(add_yaml_overrides(cfg, ["model.head"]), end="")
        trainer:
          callbacks:
          - class_path: finetuning_scheduler.FTSEarlyStopping
          - class_path: finetuning_scheduler.FinetuningScheduler
            init_args:  # the schedule
              strategy_adapter_cfg:
                awp_overrides: ["model.head"]
              max_depth: 2
    """
    edit = override_edit(names)
    root, diags = load_yaml(SourceFile(path, text))
    if root is None or diags:
        return Refused("the file does not parse cleanly", edit)
    found = _scheduler_callbacks(root)
    if len(found) != 1:
        return Refused("no FinetuningScheduler callback found" if not found else
                       "several FinetuningScheduler callbacks are listed", edit)
    cb, cb_path = found[0]
    if not isinstance(cb.value, dict):
        return Refused("the scheduler callback is not a `class_path` mapping", edit)
    quoted = [json.dumps(n) for n in names]
    flow_list = f"awp_overrides: [{', '.join(quoted)}]"
    args = cb.get("init_args")
    new: str | None
    if args is None:
        cls = cb.key_nodes.get("class_path")
        if cls is None or _is_flow(text, cb, "{"):
            return Refused("the scheduler callback's layout is not one --fix edits", edit)
        value = cb.value["class_path"]
        _, line_end = line_bounds(text, max(value.span.start, value.span.end - 1))
        body = _block([(0, "init_args:"), (1, "strategy_adapter_cfg:"), (2, flow_list)],
                      " " * _column(text, cls.span.start))
        new = text[:line_end] + "\n" + body.rstrip("\n") + text[line_end:]
    else:
        adapter = args.get("strategy_adapter_cfg") if isinstance(args.value, dict) else None
        if adapter is None:
            new = _add_child(text, cb.key_nodes["init_args"], args,
                             [(0, "strategy_adapter_cfg:"), (1, flow_list)])
        elif not isinstance(adapter.value, (dict, type(None))):
            return Refused("`strategy_adapter_cfg` is not a mapping", edit)
        else:
            overrides = adapter.get("awp_overrides")
            if overrides is None:
                new = _add_child(text, args.key_nodes["strategy_adapter_cfg"], adapter, [(0, flow_list)])
            elif isinstance(overrides.value, list):
                new = _append_items(text, overrides, quoted)
            else:
                return Refused("`awp_overrides` is not a list", edit)
    if new is None:
        return Refused("the layout around the scheduler callback is not one --fix edits", edit)
    back, back_diags = load_yaml(SourceFile(path, new))
    if back is None or back_diags or back.py() != _expected(root.py(), cb_path, names):
        return Refused("the edited file would not read back to the intended settings", edit)
    return new
