"""Phases x sharding units: which unit trains in which phase, and the rows the text output folds.

Input: the sharding groups (`ftsc.explain.memory.Group`) and the trainable set of each phase.
Output: per phase and unit, the state (`trainable`, `frozen`, `partial`, `none`) and trainable
numel; folded display rows (`layers.0–31`). Never imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ftsc.explain.memory import Group
from ftsc.model.graph import ModelGraph

STATES = ("trainable", "frozen", "partial", "none")


@dataclass(frozen=True, slots=True)
class Cell:
    """One unit in one phase."""

    state: str
    trainable_numel: int


def cell(graph: ModelGraph, group: Group, trainable: frozenset[str]) -> Cell:
    """The unit's state and trainable numel in a phase.

    Example:
        >>> g = ModelGraph.from_names({"a": [2], "b": [3]})
        >>> cell(g, Group(name="", params=("a", "b"), layout="flat"), frozenset({"b"}))
        Cell(state='partial', trainable_numel=3)
    """
    if not group.params:
        return Cell("none", 0)
    if trainable.isdisjoint(group.params):
        return Cell("frozen", 0)
    on = [p for p in group.params if p in trainable]
    numel = sum(graph.numel(p) for p in dict.fromkeys(on))
    if not on:
        return Cell("frozen", 0)
    return Cell("trainable" if len(on) == len(group.params) else "partial", numel)


@dataclass(frozen=True, slots=True)
class Row:
    """A display row: one unit, or a run of units that differ only in one layer index."""

    label: str
    members: tuple[int, ...]  # indexes into the unit list


_NUMBER = re.compile(r"(?<=\.)\d+(?=\.|$)")


def _shape(name: str) -> list[tuple[str, int, str]]:
    """Every way of reading `name` as prefix, layer index, suffix."""
    return [(name[: m.start()], int(m.group()), name[m.end():]) for m in _NUMBER.finditer(name)]


def fold(names: Sequence[str], cells: Sequence[Sequence[Cell]], numels: Sequence[int]) -> list[Row]:
    """Fold runs of consecutive units named `p.<i>.s`, `p.<i+1>.s`, ... with identical sizes and
    identical states in every phase into one row `p.<i>–<j>.s`.

    Args:
        names: unit names in display order.
        cells: per phase, the cell of each unit.
        numels: each unit's numel.

    Example:
        >>> c = [[Cell("frozen", 0)] * 3 + [Cell("trainable", 4)]]
        >>> [r.label for r in fold(["l.0", "l.1", "l.2", "l.3"], c, [4, 4, 4, 4])]
        ['l.0–2', 'l.3']
    """
    rows: list[Row] = []
    i = 0
    while i < len(names):
        best = i
        best_label = names[i]
        for prefix, start, suffix in _shape(names[i]):
            j = i
            while (j + 1 < len(names) and names[j + 1] == f"{prefix}{start + j + 1 - i}{suffix}"
                   and numels[j + 1] == numels[i] and all(ph[j + 1].state == ph[i].state for ph in cells)):
                j += 1
            if j > best:
                best, best_label = j, f"{prefix}{start}–{start + j - i}{suffix}"
        rows.append(Row(best_label, tuple(range(i, best + 1))))
        i = best + 1
    return rows
