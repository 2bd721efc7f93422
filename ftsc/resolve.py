"""Selector resolution: which names a selector picks out of a list of FQNs.

Input: a selector and candidate names (parameter or module FQNs, in registration order).
Output: the matching names, in candidate order. FTS selectors follow FinetuningScheduler
exactly: the exact FQN if it is a candidate, else `re.match` (anchored at the start only).
Never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from ftsc import ir
from ftsc.regexes import compiled, glob_to_regex


def resolve(selector: ir.Selector, names: Sequence[str]) -> list[str]:
    """The names `selector` matches.

    Example:
        >>> from ftsc.ir import Selector, SelectorKind
        >>> names = ["model.1.weight", "model.10.weight"]
        >>> resolve(Selector(kind=SelectorKind.FTS, pattern="model.1"), names)
        ['model.1.weight', 'model.10.weight']
        >>> resolve(Selector(kind=SelectorKind.REGEX, pattern=r"model\\.1\\..*"), names)
        ['model.1.weight']
    """
    match selector.kind:
        case ir.SelectorKind.EXACT:
            return [n for n in names if n == selector.pattern]
        case ir.SelectorKind.FTS:
            if selector.pattern in names:
                return [selector.pattern]
            rx = compiled(selector.pattern)
            return [n for n in names if rx.match(n)]
        case ir.SelectorKind.REGEX:
            rx = compiled(selector.pattern)
            return [n for n in names if rx.fullmatch(n)]
        case ir.SelectorKind.GLOB:
            rx = compiled(glob_to_regex(selector.pattern))
            return [n for n in names if rx.fullmatch(n)]
        case _:
            raise ValueError(f"Invalid selector kind: {selector.kind}.")
