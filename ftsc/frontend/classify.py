"""Tell a YAML document's kind: an FTS schedule, a LightningCLI config, or neither.

Input: the root `YNode` of a loaded YAML document. Output: whether it reads as a LightningCLI
config (`looks_like_config`), and for a document that is neither a schedule nor a config, a
one-line reason (`unrecognized`) that `ftsc check` prints when it skips the file; a stream of
several documents, which neither FTS nor LightningCLI reads, is judged by its first
(`unrecognized_stream`). A document
that could be a broken schedule (a phase-number key, a phase-shaped value) is always a
schedule, so that its errors are reported. A document that is neither is next offered to the
freeze dialects (`ftsc.frontend.dialects.detect`: axolotl, LLaMA-Factory); only what none of
them takes stays unrecognized. Never imports torch; never reports diagnostics.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ftsc.frontend.yaml_nodes import MAX_DEPTH, YNode
from ftsc.source import Span

CONFIG_KEYS = frozenset({"trainer", "model", "data", "seed_everything", "optimizer", "lr_scheduler",
                         "ckpt_path", "fit", "validate", "test", "predict", "config"})
# Keys only an FTS phase has (`lr` alone is too common elsewhere to tell a phase by).
_PHASE_ONLY_KEYS = frozenset({"params", "max_transition_epoch", "new_optimizer", "new_lr_scheduler"})
_SHOWN_KEYS = 3


def is_phase_key(key: Any) -> bool:
    """True for a key FinetuningScheduler reads as a phase number (`int(key)` succeeds; no booleans).

    Example:
        >>> [is_phase_key(k) for k in (0, "1", " 2 ", 1.0, True, "x", None)]
        [True, True, True, True, False, False, False]
    """
    if isinstance(key, bool) or key is None:
        return False
    try:
        int(key)
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def _show(key: Any) -> str:
    text = " ".join(str(key).split())
    return f"`{text[:40]}...`" if len(text) > 40 else f"`{text}`"


def _phase_shaped(node: YNode) -> bool:
    return isinstance(node.value, dict) and any(k in _PHASE_ONLY_KEYS for k in node.value)


def looks_like_config(root: YNode | None) -> bool:
    """True if a YAML document is a LightningCLI config rather than an FTS schedule: every top-level
    key is a LightningCLI section, or it has a `trainer` mapping and nothing phase-like.

    Example:
        >>> looks_like_config(YNode({"trainer": YNode({}, None), "compile": YNode(True, None)}, None))
        True
        >>> looks_like_config(YNode({0: YNode({}, None), "trainer": YNode({}, None)}, None))
        False
    """
    if root is None or not isinstance(root.value, dict) or not root.value:
        return False
    keys = root.value
    if any(is_phase_key(k) or _phase_shaped(v) for k, v in keys.items()):
        return False
    if all(isinstance(k, str) and k.rstrip("+") in CONFIG_KEYS for k in keys):
        return True
    trainer = keys.get("trainer", keys.get("trainer+"))
    return trainer is not None and isinstance(trainer.value, dict)


def unrecognized(root: YNode | None) -> str | None:
    """Why a YAML document is neither an FTS schedule nor a LightningCLI config; None when it is one.

    Example:
        >>> unrecognized(YNode({"dim": YNode(4096, None), "n_layers": YNode(32, None)}, None))
        'top-level keys `dim`, `n_layers` are neither phase numbers nor LightningCLI sections'
        >>> unrecognized(YNode({"0": YNode(None, None)}, None)) is None
        True
    """
    if root is None:
        return "the document is empty"
    value = root.value
    if isinstance(value, dict):
        if not value or looks_like_config(root):
            return None  # `{}` is an empty (broken) schedule
        if any(is_phase_key(k) or _phase_shaped(v) for k, v in value.items()):
            return None
        shown = ", ".join(_show(k) for k in list(value)[:_SHOWN_KEYS]) + (", ..." if len(value) > _SHOWN_KEYS else "")
        if len(value) == 1:
            return f"top-level key {shown} is neither a phase number nor a LightningCLI section"
        return f"top-level keys {shown} are neither phase numbers nor LightningCLI sections"
    if isinstance(value, list):
        if any(_phase_shaped(item) for item in value):
            return None
        return "the document is a list, not a mapping of phases"
    return "the document is a single value, not a mapping of phases"


_SEPARATOR = re.compile(r"^(?:---|\.\.\.)(?:[ \t]|$)", re.MULTILINE)
_NO_KEY = object()


def _first_document(text: str) -> tuple[YNode | None, int]:
    """The first document of a YAML stream down to two levels (keys and nesting; deeper values
    left out), and how many documents start (counting stops at 2); `(None, 0)` past the
    loader's nesting limit. Built from parser events: iterative, nothing constructed."""
    docs = 0
    root: YNode | None = None
    # frames: [container (dict, list, or None below two levels), pending mapping key]
    stack: list[list[Any]] = []

    def add(node: YNode) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        frame = stack[-1]
        if isinstance(frame[0], list):
            frame[0].append(node)
        elif frame[1] is _NO_KEY:
            frame[1] = node.value if isinstance(node.value, str | int | float | bool) or node.value is None else id(node)
        else:
            if frame[0] is not None:
                frame[0][frame[1]] = node
            frame[1] = _NO_KEY

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.DocumentStartEvent):
                docs += 1
                if docs > 1:
                    break
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                if len(stack) >= MAX_DEPTH:  # the loader refuses it anyway; PyYAML's scanner slows
                    return None, 0           # down with every open flow level
                container: dict[Any, YNode] | list[YNode] | None = None
                if len(stack) < 2:
                    container = {} if isinstance(event, yaml.MappingStartEvent) else []
                stack.append([container, _NO_KEY])
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                container = stack.pop()[0]
                add(YNode(container, Span(0, 0)))
            elif isinstance(event, yaml.ScalarEvent):
                add(YNode(event.value, Span(0, 0)))
            elif isinstance(event, yaml.AliasEvent):
                add(YNode(None, Span(0, 0)))
    except yaml.YAMLError:
        pass
    return root, docs


def unrecognized_stream(text: str) -> str | None:
    """Why YAML text holding several documents is neither a schedule nor a config (judged by its
    first document's keys, without constructing any value); None for one document, a text that
    does not parse, or a first document that could be a schedule or a config.

    Example:
        >>> unrecognized_stream("kind: Service\\n---\\nkind: Deployment\\n")
        'the file holds several YAML documents; in the first, top-level key `kind` is neither a phase number nor a LightningCLI section'
        >>> unrecognized_stream("0:\\n  params: [a]\\n---\\n1: {}\\n") is None
        True
    """
    if _SEPARATOR.search(text) is None:
        return None
    first, docs = _first_document(text)
    if docs < 2:
        return None
    reason = unrecognized(first)
    return None if reason is None else f"the file holds several YAML documents; in the first, {reason}"
