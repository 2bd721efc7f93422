"""Catastrophic backtracking: patterns on which Python's `re` can take exponential time (FTS106).

Input: a Python regex pattern and whether it is matched from the start only (`re.match`, FTS)
or in full. Output: whether a backtracking engine can be driven into exponential time by some
name. Never imports torch; never runs the pattern.

Method: the pattern's position automaton (Glushkov: one state per character item, no empty
moves) is built from Python's parse tree over a small universe of characters (printable
ASCII plus every character the pattern names; each item's set is decided by Python `re`).
Repeats of at most `_UNROLL` copies are unrolled; a larger count `{25}` becomes a loop followed
by a step that can fail (the count not reached), as it behaves like one for a backtracker.
The automaton is exponentially ambiguous when some state can loop back to itself in two
different ways on the same text: in the product of the automaton with itself, a strongly
connected component holds a pair `(p, p)` and a pair `(q, r)` with `q != r`. A backtracker only
explores those ways when what follows can fail; so a component that contains a state where a
`re.match` may end successfully (nothing but empty, unconditional items after it) is harmless:
`(a+)+` alone is fine for `re.match`, `(a+)+$` is not.
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

try:  # Python >= 3.11
    import re._constants as _c  # type: ignore[import-not-found]
    import re._parser as _p  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

from ftsc.matching import _char_source, _linear_in_python  # one source of truth for single-character items

_UNROLL = 3
_MAX_POSITIONS = 120
_MAX_EDGES = 400_000
_FAIL = 1  # bit 0: a pseudo-character no name has (assertions and unmet counts)
_SINGLE = (_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN)


class _TooBig(Exception):
    pass


@dataclass(frozen=True)
class _Frag:
    first: frozenset[int]
    last: frozenset[int]
    nullable: bool


@dataclass
class _Automaton:
    universe: tuple[str, ...]
    charset: list[int] = field(default_factory=list)  # position -> bitmask over universe (bit i+1)
    follow: list[set[tuple[int, int]]] = field(default_factory=list)  # (next position, loop id or 0)
    loops: int = 0

    def position(self, mask: int) -> int:
        if len(self.charset) >= _MAX_POSITIONS:
            raise _TooBig
        self.charset.append(mask)
        self.follow.append(set())
        return len(self.charset) - 1

    def link(self, a: frozenset[int], b: frozenset[int], label: int = 0) -> None:
        for p in a:
            self.follow[p] |= {(q, label) for q in b}


def _universe(parsed: Any) -> tuple[str, ...]:
    chars = {chr(c) for c in range(32, 127)}
    stack = list(parsed.data)
    while stack:
        op, av = stack.pop()
        if op in (_c.LITERAL, _c.NOT_LITERAL):
            chars.add(chr(av))
        elif op is _c.IN:
            for item_op, item_av in av:
                if item_op is _c.LITERAL:
                    chars.add(chr(item_av))
                elif item_op is _c.RANGE:
                    chars.update((chr(item_av[0]), chr(item_av[1])))
        elif op is _c.BRANCH:
            for b in av[1]:
                stack.extend(b.data)
        elif op is _c.SUBPATTERN:
            stack.extend(av[3].data)
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            stack.extend(av[2].data)
    return tuple(sorted(chars))


class _Builder:
    def __init__(self, automaton: _Automaton) -> None:
        self.a = automaton

    def mask(self, op: Any, av: Any, flags: int) -> int:
        if op is _c.LITERAL and not flags & re.IGNORECASE:  # most items: one character, no regex needed
            ch = chr(av)
            return sum(1 << (i + 1) for i, u in enumerate(self.a.universe) if u == ch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rx = re.compile(_char_source(op, av), flags & (re.IGNORECASE | re.DOTALL | re.ASCII))
        out = 0
        for i, ch in enumerate(self.a.universe):
            if rx.fullmatch(ch):
                out |= 1 << (i + 1)
        return out

    def atom(self, mask: int) -> _Frag:
        p = self.a.position(mask)
        return _Frag(frozenset({p}), frozenset({p}), False)

    def seq(self, items: Any, flags: int) -> _Frag:
        frag = _Frag(frozenset(), frozenset(), True)
        for op, av in items:
            frag = self.cat(frag, self.item(op, av, flags))
        return frag

    def cat(self, x: _Frag, y: _Frag) -> _Frag:
        self.a.link(x.last, y.first)
        return _Frag(x.first | y.first if x.nullable else x.first,
                     y.last | x.last if y.nullable else y.last, x.nullable and y.nullable)

    def star(self, x: _Frag) -> _Frag:
        self.a.loops += 1
        self.a.link(x.last, x.first, self.a.loops)  # a back edge of its own: nested loops differ
        return _Frag(x.first, x.last, True)

    def item(self, op: Any, av: Any, flags: int) -> _Frag:
        if op in _SINGLE:
            return self.atom(self.mask(op, av, flags))
        if op is _c.BRANCH:
            frags = [self.seq(b.data, flags) for b in av[1]]
            return _Frag(frozenset().union(*(f.first for f in frags)), frozenset().union(*(f.last for f in frags)),
                         any(f.nullable for f in frags))
        if op is _c.SUBPATTERN:
            return self.seq(av[3].data, (flags | av[1]) & ~av[2])
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            return self.repeat(av, flags)
        if op is _c.AT and av in (_c.AT_BEGINNING, _c.AT_BEGINNING_STRING):
            return _Frag(frozenset(), frozenset(), True)  # fails at once, never after a search
        # `$`, `\b`, lookaround, atomic and possessive parts, backreferences: a step that can fail.
        return self.atom(_FAIL)

    def repeat(self, av: Any, flags: int) -> _Frag:
        lo, hi, body = av
        unbounded = hi is _c.MAXREPEAT
        if not unbounded and hi <= _UNROLL:
            frag = _Frag(frozenset(), frozenset(), True)
            for k in range(hi):
                copy = self.seq(body.data, flags)
                if k >= lo:
                    copy = _Frag(copy.first, copy.last, True)
                frag = self.cat(frag, copy)
            return frag
        frag = _Frag(frozenset(), frozenset(), True)
        for _ in range(min(max(lo - 1, 0), _UNROLL - 1)):
            frag = self.cat(frag, self.seq(body.data, flags))
        once = self.seq(body.data, flags)
        looped = self.star(once)
        frag = self.cat(frag, looped if lo == 0 else _Frag(looped.first, looped.last, once.nullable))
        if lo > _UNROLL:  # more iterations are required than unrolled: the count can fail
            frag = self.cat(frag, self.atom(_FAIL))
        return frag


@functools.lru_cache(maxsize=1024)
def exponential_backtracking(pattern: str, *, full: bool = False) -> bool:
    """True if Python's backtracking `re` can take exponential time matching `pattern`.

    `full`: the pattern must match the whole name (`re.fullmatch`, or a pattern compiled to FTS
    with a final `$`); otherwise `re.match`, which succeeds at the first end it reaches.

    Example:
        >>> [exponential_backtracking(p) for p in ("(a+)+$", "(a|aa)+$", "(.*a){25}", "(a+)+", r"(\\w+\\.)+$")]
        [True, True, True, False, False]
        >>> exponential_backtracking("(a+)+", full=True), exponential_backtracking(r"model\\.layers\\.1\\..*")
        (True, False)
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = _p.parse(pattern)
        universe = _universe(parsed)
        if _linear_in_python(parsed.data, parsed.state.flags, universe, full):
            return False  # provably linear (the common case): no automaton needed
        automaton = _Automaton(universe)
        builder = _Builder(automaton)
        frag = builder.seq(parsed.data, parsed.state.flags)
        if full:
            frag = builder.cat(frag, builder.atom(_FAIL))
        return _ambiguous(automaton, frag)
    except (_TooBig, re.error, RecursionError, OverflowError, ValueError):
        return False


def _ambiguous(a: _Automaton, frag: _Frag) -> bool:
    """An SCC of the product automaton with a pair `(p, p)` and a step where the two copies differ
    (different states, or the same states through different loops' back edges)."""
    accepting = frag.last
    graph: dict[tuple[int, int], list[tuple[int, int]]] = {}  # node -> successors
    divergent: list[tuple[tuple[int, int], tuple[int, int]]] = []
    edges = 0
    start = [(p, q) for p in frag.first for q in frag.first if a.charset[p] & a.charset[q] & ~_FAIL]
    seen = set(start)
    todo = list(start)
    while todo:
        node = todo.pop()
        p, q = node
        succ = graph.setdefault(node, [])
        for p2, l1 in a.follow[p]:
            for q2, l2 in a.follow[q]:
                edges += 1
                if edges > _MAX_EDGES:
                    raise _TooBig
                if not a.charset[p2] & a.charset[q2] & ~_FAIL:
                    continue
                succ.append((p2, q2))
                if p2 != q2 or l1 != l2 or p != q:
                    divergent.append((node, (p2, q2)))
                if (p2, q2) not in seen:
                    seen.add((p2, q2))
                    todo.append((p2, q2))
    component_of: dict[tuple[int, int], int] = {}
    components = _components(graph)
    for k, component in enumerate(components):
        for node in component:
            component_of[node] = k
    for u, v in divergent:
        k = component_of[u]
        if component_of[v] != k:
            continue
        component = components[k]
        if not any(p == q for p, q in component):
            continue
        states = {p for p, _ in component} | {q for _, q in component}
        if not states & accepting:
            return True
    return False


def _components(succ: dict[Any, list[Any]]) -> list[set[Any]]:
    """Strongly connected components of the directed graph `succ` (node -> successors, every
    node a key): Tarjan's algorithm on an explicit stack, so no depth limit and no networkx.

    Example:
        >>> sorted(sorted(c) for c in _components({1: [2], 2: [1, 3], 3: [3, 4], 4: []}))
        [[1, 2], [3], [4]]
    """
    index: dict[Any, int] = {}
    low: dict[Any, int] = {}
    on_stack: set[Any] = set()
    stack: list[Any] = []
    out: list[set[Any]] = []
    for root in succ:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(succ[root]))]
        while work:
            v, targets = work[-1]
            for w in targets:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(succ[w])))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    u = work[-1][0]
                    low[u] = min(low[u], low[v])
                if low[v] == index[v]:
                    component = set()
                    while True:
                        x = stack.pop()
                        on_stack.discard(x)
                        component.add(x)
                        if x == v:
                            break
                    out.append(component)
    return out


__all__ = ["exponential_backtracking"]
