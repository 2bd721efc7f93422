"""Bounded pattern matching with Python `re` semantics.

Input: a Python regex pattern (flags only inline, as schedules write them) and the names it
is tried on. Output: for each name, where `re.match(pattern, name)` (or `re.fullmatch`) would
end, or None. Never imports torch; never runs a search whose time can grow faster than
`pattern size x name length`.

How: the pattern is parsed with Python's own parser (`re._parser`), so its syntax is exactly
Python's. Every single-character item (a literal, `.`, a class, `\\d`, ... under the flags in
force there, `IGNORECASE` included) is evaluated by Python `re` itself on each distinct
character of the names (one character at a time: constant time), and becomes an explicit set
of those characters. The rest of the pattern (sequence, alternation, groups, greedy and lazy
repeats, anchors) is then run by a linear-time engine:

- Python's own `re`, where its backtracking is provably linear on this pattern
  (`_linear_in_python`: fixed characters, alternations of fixed strings with distinct first
  characters, at most one ambiguous single-character repeat): the fastest per name;
- RE2 (`google-re2`, leftmost-first, so a match ends where Python's would) when the pattern
  has nothing RE2 lacks;
- otherwise our own memoised backtracking machine (`_Machine`): each (instruction, position)
  pair is expanded at most once, so the work is bounded by program size x (name length + 1).
  It covers lookahead, lookbehind, atomic groups, possessive repeats, `$` before a trailing
  newline and counts above RE2's limit of 1000.

Backreferences and conditional groups (`\\1`, `(?P=name)`, `(?(1)a|b)`) make matching
NP-hard; `unsupported_reason` names them and they are reported as invalid patterns (FTS101)
rather than run. So are programs beyond `MAX_PROGRAM` instructions.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

try:  # Python >= 3.11
    import re._constants as _c  # type: ignore[import-not-found]
    import re._parser as _p  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

try:
    import re2 as _re2  # google-re2
except ImportError:  # pragma: no cover - the fallback machine alone is still exact and bounded
    _re2 = None
_anchors = getattr(_re2, "_Anchor", None)
_ANCHOR_START = getattr(_anchors, "ANCHOR_START", None)
_ANCHOR_BOTH = getattr(_anchors, "ANCHOR_BOTH", None)

MAX_PROGRAM = 20_000  # instructions of the fallback machine (counted repeats are unrolled)
MAX_STEPS = 4_000_000  # states the fallback machine may expand for one pattern, over all names
_RE2_MAX_COUNT = 1000
_CHAR_FLAGS = re.IGNORECASE | re.DOTALL | re.ASCII | re.UNICODE
_CATEGORY = {
    _c.CATEGORY_DIGIT: r"\d", _c.CATEGORY_NOT_DIGIT: r"\D", _c.CATEGORY_SPACE: r"\s",
    _c.CATEGORY_NOT_SPACE: r"\S", _c.CATEGORY_WORD: r"\w", _c.CATEGORY_NOT_WORD: r"\W",
}
_SINGLE = (_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN)


class UnsupportedPattern(ValueError):
    """A pattern that compiles in Python but cannot be matched in bounded time."""


def _parse(pattern: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _p.parse(pattern)


def _walk(items: Any) -> Iterable[tuple[Any, Any]]:
    for op, av in items:
        yield op, av
        if op is _c.BRANCH:
            for b in av[1]:
                yield from _walk(b.data)
        elif op is _c.SUBPATTERN:
            yield from _walk(av[3].data)
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            yield from _walk(av[2].data)
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            yield from _walk(av[1].data)
        elif op is _c.ATOMIC_GROUP:
            yield from _walk(av.data)
        elif op is _c.GROUPREF_EXISTS:
            yield from _walk(av[1].data)
            if av[2] is not None:
                yield from _walk(av[2].data)


@functools.lru_cache(maxsize=4096)
def unsupported_reason(pattern: str) -> str | None:
    """Why `pattern` (which compiles in Python) cannot be matched in bounded time, or None.

    Example:
        >>> unsupported_reason(r"(a)\\1"), unsupported_reason(r"(?!x).*") is None
        ('backreferences (`\\\\1`, `(?P=name)`) and conditional groups are not supported: their matching time cannot be bounded', True)
    """
    try:
        parsed = _parse(pattern)
    except Exception:  # noqa: BLE001 - compile errors are reported by `regexes.compile_problem`
        return None
    for op, _ in _walk(parsed.data):
        if op in (_c.GROUPREF, _c.GROUPREF_EXISTS):
            return ("backreferences (`\\1`, `(?P=name)`) and conditional groups are not supported: "
                    "their matching time cannot be bounded")
    if _size(parsed.data) > MAX_PROGRAM:
        return (f"the pattern is too large to match in bounded time (over {MAX_PROGRAM} steps once its "
                "counted repeats are expanded)")
    return None


def _size(items: Any) -> int:
    """An upper bound on the fallback machine's program size for `items`."""
    total = 0
    for op, av in items:
        if op is _c.BRANCH:
            total += sum(_size(b.data) for b in av[1]) + 2 * len(av[1])
        elif op is _c.SUBPATTERN:
            total += _size(av[3].data)
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            lo, hi, body = av
            copies = lo + 1 if hi is _c.MAXREPEAT else hi
            total += _size(body.data) * copies + copies + 4
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            total += _size(av[1].data) + 2
        elif op is _c.ATOMIC_GROUP:
            total += _size(av.data) + 2
        else:
            total += 1
        if total > MAX_PROGRAM:
            return total
    return total


# --------------------------------------------------------------------------------------------
# Single characters: Python decides, one character at a time
# --------------------------------------------------------------------------------------------


def _u(code: int) -> str:
    return "\\U%08x" % code


def _char_source(op: Any, av: Any) -> str:
    """Python source for one single-character item of the parse tree."""
    if op is _c.LITERAL:
        return _u(av)
    if op is _c.NOT_LITERAL:
        return f"[^{_u(av)}]"
    if op is _c.ANY:
        return "."
    parts: list[str] = []
    for item_op, item_av in av:
        if item_op is _c.NEGATE:
            parts.append("^")
        elif item_op is _c.LITERAL:
            parts.append(_u(item_av))
        elif item_op is _c.RANGE:
            parts.append(f"{_u(item_av[0])}-{_u(item_av[1])}")
        elif item_op is _c.CATEGORY:
            parts.append(_CATEGORY[item_av])
        else:  # pragma: no cover - the parser emits nothing else inside a class
            raise UnsupportedPattern(f"class item {item_op}")
    return "[" + "".join(parts) + "]"


@functools.lru_cache(maxsize=65536)
def _single(source: str, flags: int) -> re.Pattern[str]:
    flags &= _CHAR_FLAGS
    if flags & re.ASCII:  # a local `(?a:...)` inside a str pattern, whose global flags say UNICODE
        flags &= ~re.UNICODE
    return re.compile(source, flags)


def _char_set(op: Any, av: Any, flags: int, alphabet: tuple[str, ...]) -> frozenset[str]:
    return _chars_of(_char_source(op, av), flags, alphabet)


@functools.lru_cache(maxsize=65536)
def _chars_of(source: str, flags: int, alphabet: tuple[str, ...]) -> frozenset[str]:
    """The characters of `alphabet` one single-character item (`source`, under `flags`) accepts;
    cached: schedules repeat the same items (`\\.`, `\\d`, letters) in every pattern."""
    rx = _single(source, flags)
    return frozenset(ch for ch in alphabet if rx.fullmatch(ch))


def _is_word(ch: str, flags: int) -> bool:
    return _single(r"\w", flags).fullmatch(ch) is not None


# --------------------------------------------------------------------------------------------
# RE2: translation of the parse tree with explicit character sets
# --------------------------------------------------------------------------------------------


class _NotRE2(Exception):
    pass


def _re2_set(chars: frozenset[str]) -> str:
    if not chars:
        return r"[^\x00-\x{10ffff}]"
    codes = sorted(ord(c) for c in chars)
    parts: list[str] = []
    start = prev = codes[0]
    for code in [*codes[1:], -2]:
        if code == prev + 1:
            prev = code
            continue
        parts.append(f"\\x{{{start:x}}}" if start == prev else f"\\x{{{start:x}}}-\\x{{{prev:x}}}")
        start = prev = code
    return "[" + "".join(parts) + "]"


class _ToRE2:
    def __init__(self, alphabet: tuple[str, ...]) -> None:
        self.alphabet = alphabet
        self.newline = "\n" in alphabet
        self.ascii_words = all(_is_word(ch, 0) == (ch.isascii() and (ch.isalnum() or ch == "_"))
                               for ch in alphabet)

    def seq(self, items: Any, flags: int) -> str:
        return "".join(self.item(op, av, flags) for op, av in items)

    def item(self, op: Any, av: Any, flags: int) -> str:
        if op in _SINGLE:
            return _re2_set(_char_set(op, av, flags, self.alphabet))
        if op is _c.BRANCH:
            return "(?:" + "|".join(self.seq(b.data, flags) for b in av[1]) + ")"
        if op is _c.SUBPATTERN:
            _group, add, delete, body = av
            return "(?:" + self.seq(body.data, (flags | add) & ~delete) + ")"
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            lo, hi, body = av
            if lo > _RE2_MAX_COUNT or (hi is not _c.MAXREPEAT and hi > _RE2_MAX_COUNT):
                raise _NotRE2
            count = f"{{{lo},}}" if hi is _c.MAXREPEAT else f"{{{lo},{hi}}}"
            return "(?:" + self.seq(body.data, flags) + ")" + count + ("?" if op is _c.MIN_REPEAT else "")
        if op is _c.AT:
            return self.at(av, flags)
        raise _NotRE2  # lookaround, atomic, possessive

    def at(self, av: Any, flags: int) -> str:
        multiline = bool(flags & re.MULTILINE)
        if av is _c.AT_BEGINNING:
            return "(?m:^)" if multiline else r"\A"
        if av is _c.AT_BEGINNING_STRING:
            return r"\A"
        if av is _c.AT_END:
            if multiline:
                return "(?m:$)"
            if self.newline:  # Python's `$` also matches before a final newline
                raise _NotRE2
            return r"\z"
        if av is _c.AT_END_STRING:
            return r"\z"
        if av in (_c.AT_BOUNDARY, _c.AT_NON_BOUNDARY):
            if flags & re.ASCII or self.ascii_words:
                return r"\b" if av is _c.AT_BOUNDARY else r"\B"
            raise _NotRE2
        raise _NotRE2  # pragma: no cover


# --------------------------------------------------------------------------------------------
# The fallback: a memoised backtracking machine
# --------------------------------------------------------------------------------------------

# Instructions: ("char", set) ("split", a, b) ("jmp", a) ("head", body, exit, greedy) ("loop", head, exit)
# ("at", code, flags) ("look", sub, ahead, negate, width) ("atomic", sub) ("possessive", sub, lo, hi)
# ("match",). `sub` indexes `_Machine.programs`.


class _Compiler:
    def __init__(self, alphabet: tuple[str, ...]) -> None:
        self.alphabet = alphabet
        self.programs: list[list[tuple[Any, ...]]] = []
        self.size = 0

    def program(self, items: Any, flags: int) -> int:
        code: list[tuple[Any, ...]] = []
        index = len(self.programs)
        self.programs.append(code)
        self.seq(code, items, flags)
        self.emit(code, ("match",))
        return index

    def emit(self, code: list[tuple[Any, ...]], ins: tuple[Any, ...]) -> int:
        self.size += 1
        if self.size > MAX_PROGRAM:
            raise UnsupportedPattern(f"the pattern is too large to match in bounded time (over {MAX_PROGRAM} "
                                     "instructions once counted repeats are expanded)")
        code.append(ins)
        return len(code) - 1

    def seq(self, code: list[tuple[Any, ...]], items: Any, flags: int) -> None:
        for op, av in items:
            self.item(code, op, av, flags)

    def item(self, code: list[tuple[Any, ...]], op: Any, av: Any, flags: int) -> None:
        if op in _SINGLE:
            self.emit(code, ("char", _char_set(op, av, flags, self.alphabet)))
        elif op is _c.BRANCH:
            jumps: list[int] = []
            branches = av[1]
            for k, b in enumerate(branches):
                if k < len(branches) - 1:
                    split = self.emit(code, ("split", 0, 0))
                    self.seq(code, b.data, flags)
                    jumps.append(self.emit(code, ("jmp", 0)))
                    code[split] = ("split", split + 1, len(code))
                else:
                    self.seq(code, b.data, flags)
            for j in jumps:
                code[j] = ("jmp", len(code))
        elif op is _c.SUBPATTERN:
            _group, add, delete, body = av
            self.seq(code, body.data, (flags | add) & ~delete)
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            self.repeat(code, av, flags, greedy=op is _c.MAX_REPEAT)
        elif op is _c.POSSESSIVE_REPEAT:  # CPython: each iteration atomic, never given back (see `_Machine`)
            lo, hi, body = av
            self.emit(code, ("possessive", self.program(body.data, flags), lo, hi))
        elif op is _c.ATOMIC_GROUP:
            self.emit(code, ("atomic", self.program(av.data, flags)))
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            direction, body = av
            width = 0
            if direction < 0:
                lo, hi = body.getwidth()
                if lo != hi:  # pragma: no cover - Python refuses to compile these
                    raise UnsupportedPattern("look-behind requires a fixed-width pattern")
                width = lo
            self.emit(code, ("look", self.program(body.data, flags), direction > 0, op is _c.ASSERT_NOT, width))
        elif op is _c.AT:
            self.emit(code, ("at", av, flags))
        else:
            raise UnsupportedPattern(f"unsupported regex construct {op}")

    def repeat(self, code: list[tuple[Any, ...]], av: Any, flags: int, *, greedy: bool) -> None:
        lo, hi, body = av
        for _ in range(lo):
            self.seq(code, body.data, flags)
        if hi is _c.MAXREPEAT:
            head = self.emit(code, ("head", 0, 0, greedy))
            self.seq(code, body.data, flags)
            back = self.emit(code, ("loop", head, 0))
            after = len(code)
            code[back] = ("loop", head, after)
            code[head] = ("head", head + 1, after, greedy)
            return
        splits: list[int] = []
        for _ in range(hi - lo):
            splits.append(self.emit(code, ("split", 0, 0)))
            self.seq(code, body.data, flags)
        after = len(code)
        for s in splits:
            code[s] = ("split", s + 1, after) if greedy else ("split", after, s + 1)


def _at(code: Any, flags: int, name: str, pos: int) -> bool:
    n = len(name)
    multiline = bool(flags & re.MULTILINE)
    if code is _c.AT_BEGINNING:
        return pos == 0 or (multiline and name[pos - 1] == "\n")
    if code is _c.AT_BEGINNING_STRING:
        return pos == 0
    if code is _c.AT_END:
        if multiline:
            return pos == n or name[pos] == "\n"
        return pos == n or (pos == n - 1 and name[pos] == "\n")
    if code is _c.AT_END_STRING:
        return pos == n
    before = pos > 0 and _is_word(name[pos - 1], flags)
    after = pos < n and _is_word(name[pos], flags)
    if code is _c.AT_BOUNDARY:
        return before != after
    if code is _c.AT_NON_BOUNDARY:
        return n > 0 and before == after  # Python: `\\B` never matches in an empty string
    raise UnsupportedPattern(f"unsupported anchor {code}")  # pragma: no cover


class _Machine:
    """Memoised backtracking over the compiled programs: first match in Python's priority order."""

    def __init__(self, programs: list[list[tuple[Any, ...]]], pattern: str) -> None:
        self.programs = programs
        self.pattern = pattern
        self.steps_left = MAX_STEPS

    def run(self, name: str, full: bool) -> int | None:
        memo: dict[tuple[int, int], int | None] = {}
        return self._run(0, name, 0, memo, end=len(name) if full else None)

    def _run(self, prog: int, name: str, start: int, memo: dict[tuple[int, int], int | None],
             end: int | None = None) -> int | None:
        code = self.programs[prog]
        # A state is (instruction, position, fresh): `fresh` counts the innermost enclosing loops
        # whose current iteration has consumed nothing yet (if an outer one has not, no inner one
        # has), so each loop end knows whether its iteration matched empty, as Python's repeat
        # does: it then leaves the loop rather than iterate again. `fresh` is bounded by the loop
        # nesting depth, so the states stay bounded by program size x (name length + 1) x depth.
        seen: set[tuple[int, int, int]] = set()
        stack = [(0, start, 0)]
        n = len(name)
        while stack:
            state = stack.pop()
            if state in seen:
                continue
            seen.add(state)
            self._step()
            pc, pos, fresh = state
            ins = code[pc]
            kind = ins[0]
            if kind == "char":
                if pos < n and name[pos] in ins[1]:
                    stack.append((pc + 1, pos + 1, 0))
            elif kind == "split":
                stack.append((ins[2], pos, fresh))
                stack.append((ins[1], pos, fresh))
            elif kind == "head":  # another iteration (a fresh one) or leave; greedy tries the iteration first
                _, body, after, greedy = ins
                first, second = ((body, pos, fresh + 1), (after, pos, fresh))
                stack.extend((second, first) if greedy else (first, second))
            elif kind == "jmp":
                stack.append((ins[1], pos, fresh))
            elif kind == "loop":
                # The end of an iteration: one that matched empty leaves the loop; others go back.
                stack.append((ins[2], pos, fresh - 1) if fresh else (ins[1], pos, 0))
            elif kind == "at":
                if _at(ins[1], ins[2], name, pos):
                    stack.append((pc + 1, pos, fresh))
            elif kind == "look":
                _, sub, ahead, negate, width = ins
                begin = pos if ahead else pos - width
                found = begin >= 0 and self._sub(sub, name, begin, memo) is not None
                if found != negate:
                    stack.append((pc + 1, pos, fresh))
            elif kind == "atomic":
                stop = self._sub(ins[1], name, pos, memo)
                if stop is not None:
                    stack.append((pc + 1, stop, fresh if stop == pos else 0))
            elif kind == "possessive":
                stop = self._possessive(ins, name, pos, memo)
                if stop is not None:
                    stack.append((pc + 1, stop, fresh if stop == pos else 0))
            elif end is None or pos == end:  # match
                return pos
        return None

    def _possessive(self, ins: tuple[Any, ...], name: str, pos: int,
                    memo: dict[tuple[int, int], int | None]) -> int | None:
        """Where `X{lo,hi}+` ends, as CPython runs it: each iteration is X's first match (atomic),
        the first `lo` must all succeed, more are taken while they succeed and the previous one
        consumed something, and none is given back. (Not `(?>X{lo,hi})`, which may backtrack
        between iterations to reach `lo`.) Each iteration is a memoised sub-match, and positions
        only grow, so at most name length + `lo`-bounded steps."""
        _, body, lo, hi = ins
        for _ in range(lo):
            self._step()
            stop = self._sub(body, name, pos, memo)
            if stop is None:
                return None
            if stop == pos:  # an empty iteration: every further one is the same empty match
                break
            pos = stop
        count, previous = lo, -1
        while (hi is _c.MAXREPEAT or count < hi) and pos != previous:
            self._step()
            previous = pos
            stop = self._sub(body, name, pos, memo)
            if stop is None:
                break
            pos, count = stop, count + 1
        return pos

    def _step(self) -> None:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise UnsupportedPattern(
                f"matching `{self.pattern}` against these names needs over {MAX_STEPS:,} steps of ftsc's "
                "bounded matcher (lookaround, atomic or possessive parts over long names); simplify it")

    def _sub(self, prog: int, name: str, pos: int, memo: dict[tuple[int, int], int | None]) -> int | None:
        key = (prog, pos)
        if key not in memo:
            memo[key] = self._run(prog, name, pos, memo)
        return memo[key]


# --------------------------------------------------------------------------------------------
# When Python's own `re` is linear: its C engine, faster per name than any other here
# --------------------------------------------------------------------------------------------


def _tokens(items: Any, flags: int, alphabet: tuple[str, ...]) -> list[tuple[Any, ...]] | None:
    """The pattern as a flat sequence of ("char", set), ("rep", set, lo, hi), ("alt", first chars),
    ("at",), or None when it has anything else (a repeated group, lookaround, an alternation whose
    branches are not fixed strings starting with pairwise distinct characters, ...)."""
    out: list[tuple[Any, ...]] = []
    for op, av in items:
        if op in _SINGLE:
            out.append(("char", _char_set(op, av, flags, alphabet)))
        elif op is _c.AT:
            out.append(("at",))
        elif op is _c.SUBPATTERN:
            _group, add, delete, body = av
            inner = _tokens(body.data, (flags | add) & ~delete, alphabet)
            if inner is None:
                return None
            out.extend(inner)
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            lo, hi, body = av
            if len(body.data) != 1 or body.data[0][0] not in _SINGLE:
                return None
            item_op, item_av = body.data[0]
            out.append(("rep", _char_set(item_op, item_av, flags, alphabet), lo, hi))
        elif op is _c.BRANCH:
            firsts: set[str] = set()
            for branch in av[1]:
                inner = _tokens(branch.data, flags, alphabet)
                if not inner or any(t[0] != "char" for t in inner) or firsts & inner[0][1]:
                    return None
                firsts |= inner[0][1]
            out.append(("alt", frozenset(firsts)))
        else:
            return None
    return out


def _linear_in_python(items: Any, flags: int, alphabet: tuple[str, ...], full: bool) -> bool:
    r"""True when Python's backtracking `re` matches the pattern (`re.match`, or `re.fullmatch`
    with `full`) in time linear in the name.

    The pattern may hold fixed characters, anchors, alternations of fixed strings with distinct
    first characters (only one branch can go on) and repeats of single characters. A repeat is
    deterministic when the item after it cannot take what it repeats: backtracking into it fails
    at once. For `re.match`, a repeat that ends the pattern never gives anything back. Any other
    repeat is ambiguous: there may be one, tried at each of its (name length + 1) lengths. A
    repeat after it must then be the last one (for `re.match`), or deterministic and right after
    a character it cannot take (so the runs it scans from different starts do not overlap).
    Every name is then tried in O(name length x pattern size) steps.

    Example:
        >>> ab = tuple("abcdefghijklmnopqrstuvwxyz0123456789._")
        >>> def linear(p, full=False): return _linear_in_python(_parse(p).data, 0, ab, full)
        >>> linear(r"model\.layers\.\d+\..*"), linear("model.layers.1.*"), linear(r"(a+)+$")
        (True, True, False)
        >>> linear(".*norm.*"), linear(".*a.*b.*"), linear(r".*x", full=True), linear(r"(a|ab)c")
        (True, False, True, False)
        >>> linear(r".*\d+b"), linear(r".*a\d+b"), linear("a?a?a?aaa")
        (False, True, False)
    """
    return _linear_tokens(_tokens(items, flags, alphabet), full)


def _linear_tokens(tokens: list[tuple[Any, ...]] | None, full: bool) -> bool:
    """`_linear_in_python` on the pattern's `_tokens`."""
    if tokens is None:
        return False
    seen_ambiguous = False
    for k, tok in enumerate(tokens):
        if tok[0] != "rep" or tok[2] == tok[3]:  # fixed counts are fixed characters
            continue
        nxt = tokens[k + 1] if k + 1 < len(tokens) else None
        if nxt is None and not full:
            continue  # ends the pattern: never gives anything back
        deterministic = nxt is not None and nxt[0] in ("char", "alt") and not (nxt[1] & tok[1])
        if not seen_ambiguous:
            seen_ambiguous = not deterministic
            continue
        prev = tokens[k - 1]
        if not (deterministic and prev[0] == "char" and not (prev[1] & tok[1])):
            return False
    return True


# --------------------------------------------------------------------------------------------
# The public matcher
# --------------------------------------------------------------------------------------------


class Matcher:
    """`pattern` compiled for names drawn from `alphabet` (the characters the names use).

    `use_re2=False` and `use_python=False` leave those engines out (tests compare all three); `engine`
    names the one used where Python is not linear for both `re.match` and `re.fullmatch`, else "python".

    Example:
        >>> m = Matcher(r"(a+)+$", "ab")
        >>> m.match("a" * 5000 + "b") is None, m.match("aaa"), m.engine
        (True, 3, 're2')
        >>> Matcher(r"(?!.*bias)layers\\.\\d+", "abiyerls.0123456789w").match("layers.12.w")
        9
    """

    __slots__ = ("_chars", "_direct", "_fallback", "_flags", "_parsed", "_python", "_re2", "engine", "pattern")

    def __init__(self, pattern: str, alphabet: Iterable[str], *, use_re2: bool = True,
                 use_python: bool = True) -> None:
        self.pattern = pattern
        reason = unsupported_reason(pattern)
        if reason:
            raise UnsupportedPattern(reason)
        parsed = _parse(pattern)
        flags = parsed.state.flags
        chars = tuple(sorted(set(alphabet)))
        self._re2: Any = None
        self._direct: Any = None
        self._fallback: _Machine | None = None
        self.engine = "fallback"
        # Python's `re` itself where it is linear on this pattern (for `re.match`, `re.fullmatch`).
        tokens = _tokens(parsed.data, flags, chars) if use_python else None
        self._python = (_python_compile(pattern) if use_python else None, _linear_tokens(tokens, False),
                        _linear_tokens(tokens, True))
        python_only = bool(self._python[1] and self._python[2])  # neither RE2 nor the machine is ever asked
        if python_only:
            self.engine = "python"
        elif use_re2 and _re2 is not None and not any(0xD800 <= ord(ch) <= 0xDFFF for ch in chars):
            try:
                source = _ToRE2(chars).seq(parsed.data, flags)
                options = _re2.Options()
                options.log_errors = False
                options.max_mem = 64 << 20
                self._re2 = _re2.compile(source, options)
                self.engine = "re2"
                # The binding's compiled program, called without its per-call Python wrapping (4x faster
                # over many names); the public API when a binding version lacks it.
                self._direct = getattr(self._re2, "_regexp", None) if _ANCHOR_START is not None else None
            except _NotRE2:
                pass
            except Exception:  # noqa: BLE001 - RE2 refused (program too large): the machine decides
                self._re2 = None
        self._parsed, self._flags, self._chars = parsed, flags, chars
        if self._re2 is None and not python_only:
            self._machine()

    def _machine(self) -> _Machine:
        if self._fallback is None:
            compiler = _Compiler(self._chars)
            compiler.program(self._parsed.data, self._flags)
            self._fallback = _Machine(compiler.programs, self.pattern)
        return self._fallback

    def match(self, name: str) -> int | None:
        """Where `re.match(pattern, name)` ends, or None if it does not match."""
        if self._python[1]:
            m = self._python[0].match(name)
            return None if m is None else m.end()
        if self._re2 is not None and name:  # the empty name: Python's `\\B` differs, the machine decides
            if self._direct is None:
                m = self._re2.match(name)
                return None if m is None else m.end()
            data = name.encode("utf-8")
            end = self._direct.Match(_ANCHOR_START, data, 0, len(data))[0][1]
            if end < 0:
                return None
            return end if len(data) == len(name) else len(data[:end].decode("utf-8"))
        return self._machine().run(name, False)

    def fullmatch(self, name: str) -> bool:
        """`re.fullmatch(pattern, name) is not None`."""
        if self._python[2]:
            return self._python[0].fullmatch(name) is not None
        if self._re2 is not None and name:
            if self._direct is None:
                return self._re2.fullmatch(name) is not None
            data = name.encode("utf-8")
            return self._direct.Match(_ANCHOR_BOTH, data, 0, len(data))[0][1] >= 0
        return self._machine().run(name, True) is not None


def accepts(matcher: Matcher, names: Sequence[str], *, full: bool = False) -> list[bool]:
    """For each name, whether `matcher` accepts it (`re.match`, or `re.fullmatch` with `full`):
    `Matcher.match` / `fullmatch` over many names, with RE2's call hoisted out of the loop.

    Example:
        >>> accepts(Matcher("a.", "abc"), ["ab", "a", "ba", "abc"])
        [True, False, False, True]
    """
    rx, linear_match, linear_full = matcher._python
    if linear_full if full else linear_match:
        test = rx.fullmatch if full else rx.match
        return [test(n) is not None for n in names]
    direct = matcher._direct
    if direct is None:
        if full:
            return [matcher.fullmatch(n) for n in names]
        return [matcher.match(n) is not None for n in names]
    call = direct.Match
    anchor = _ANCHOR_BOTH if full else _ANCHOR_START
    out = []
    for n in names:
        if n:
            data = n.encode("utf-8")
            out.append(call(anchor, data, 0, len(data))[0][1] >= 0)
        else:  # the empty name goes to the machine (see `Matcher.match`)
            out.append(matcher.fullmatch(n) if full else matcher.match(n) is not None)
    return out


def matcher_for(pattern: str, names: Iterable[str]) -> Matcher:
    """A `Matcher` for `pattern` over `names` (cached on the names' character set).

    Raises:
        re.error: `pattern` does not compile.
        UnsupportedPattern: it cannot be matched in bounded time.
    """
    alphabet: set[str] = set()
    for n in names:
        alphabet.update(n)
    matcher = _cached(pattern, frozenset(alphabet))
    if matcher._fallback is not None:  # a fresh step budget for each pass over the names
        matcher._fallback.steps_left = MAX_STEPS
    return matcher


def _python_compile(pattern: str) -> re.Pattern[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return re.compile(pattern)


@functools.lru_cache(maxsize=4096)
def _cached(pattern: str, alphabet: frozenset[str]) -> Matcher:
    re.compile(pattern)  # raise `re.error` for invalid patterns, as Python would
    return Matcher(pattern, alphabet)


def match_names(pattern: str, names: list[str], *, full: bool = False) -> list[str]:
    """The names `re.match(pattern, n)` (or `re.fullmatch`) accepts, in order; bounded time.

    Example:
        >>> match_names("layers.1", ["layers.1.w", "layers.10.w", "layers.2.w"])
        ['layers.1.w', 'layers.10.w']
    """
    ok = accepts(matcher_for(pattern, names), names, full=full)
    return [n for n, yes in zip(names, ok, strict=True) if yes]


__all__ = ["MAX_PROGRAM", "Matcher", "UnsupportedPattern", "accepts", "match_names", "matcher_for",
           "unsupported_reason"]
