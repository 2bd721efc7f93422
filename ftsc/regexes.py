"""Regular-expression utilities: compiling safely, globs, and FTS pattern forms.

Input: pattern strings. Output: compile problems, glob translations, structural facts about
a regex (via `re._parser`) used by FTS205 and by `ftsc convert`. Never imports torch.
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any

try:  # Python >= 3.11
    import re._constants as _sre_c  # type: ignore[import-not-found]
    import re._parser as _sre_p  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    import sre_constants as _sre_c  # type: ignore[no-redef]
    import sre_parse as _sre_p  # type: ignore[no-redef]

# Characters that can appear in a parameter or module FQN.
NAME_CHARS = re.compile(r"[A-Za-z0-9_.]*")


def compile_problem(pattern: str) -> str | None:
    """Why `pattern` does not compile, or cannot be matched in bounded time; None if it can.

    Example:
        >>> compile_problem("a(b"), compile_problem("(a+)+$")
        ('missing ), unterminated subpattern at position 1', None)
    """
    from ftsc.matching import unsupported_reason

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            re.compile(pattern)
    except re.error as err:
        return f"{err.msg} at position {err.pos}" if err.pos is not None else err.msg
    except (OverflowError, RecursionError, ValueError, MemoryError) as err:
        return str(err) or type(err).__name__
    return unsupported_reason(pattern)


@functools.lru_cache(maxsize=4096)
def compiled(pattern: str) -> re.Pattern[str]:
    """`re.compile`, cached."""
    return re.compile(pattern)


def glob_to_regex(glob: str) -> str:
    """Translate an FQN glob to a regex (matched against the whole FQN).

    `*` matches within one dotted segment, `**` across segments, `?` one non-dot character,
    `[...]` a character class (`[!...]` negated), `{a,b}` either alternative.

    Example:
        >>> glob_to_regex("model.layers.*.attn.**")
        'model\\\\.layers\\\\.[^.]*\\\\.attn\\\\..*'
    """
    out: list[str] = []
    i, n, depth = 0, len(glob), 0
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^.]*")
        elif c == "?":
            out.append("[^.]")
        elif c == "[":
            j = glob.find("]", i + 2 if glob.startswith("[!", i) or glob.startswith("[]", i) else i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j + 1
                continue
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "," and depth:
            out.append("|")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        else:
            out.append(re.escape(c))
        i += 1
    out.extend(")" * depth)
    return "".join(out)


def is_plain_name(pattern: str) -> bool:
    """True if `pattern` could itself be an FQN (only letters, digits, `_` and `.`)."""
    return bool(pattern) and NAME_CHARS.fullmatch(pattern) is not None


def _parse(pattern: str) -> Any | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _sre_p.parse(pattern)
    except Exception:  # noqa: BLE001 - invalid patterns are reported elsewhere (FTS101)
        return None


def has_top_level_branch(pattern: str) -> bool:
    """True if `pattern` has an alternation `|` outside every group."""
    parsed = _parse(pattern)
    return parsed is not None and any(op is _sre_c.BRANCH for op, _ in parsed.data)


def _ends_with(parsed: Any, op_test: Any) -> bool:
    return bool(parsed.data) and op_test(parsed.data[-1])


def ends_with_dollar(pattern: str) -> bool:
    """True if the pattern's last top-level item is `$` and there is no top-level `|`."""
    parsed = _parse(pattern)
    if parsed is None or has_top_level_branch(pattern):
        return False
    return _ends_with(parsed, lambda item: item[0] is _sre_c.AT and item[1] is _sre_c.AT_END)


def ends_with_dot_star(pattern: str) -> bool:
    """True if the pattern ends with a greedy top-level `.*` and has no top-level `|`."""
    parsed = _parse(pattern)
    if parsed is None or has_top_level_branch(pattern):
        return False

    def test(item: Any) -> bool:
        op, av = item
        if op is not _sre_c.MAX_REPEAT:
            return False
        lo, hi, sub = av
        return lo == 0 and hi is _sre_c.MAXREPEAT and len(sub.data) == 1 and sub.data[0][0] is _sre_c.ANY

    return _ends_with(parsed, test)


def fts_as_fullmatch(pattern: str) -> str | None:
    """An equivalent full-match regex for an FTS pattern that can never be an exact FQN.

    FTS first tries `pattern` as an exact FQN, then `re.match`. When the pattern contains a
    character no FQN has, only `re.match` applies, and `re.match(p)` equals
    `re.fullmatch(p + ".*")` over FQNs (which contain no newline). Returns None when no
    simple equivalent exists (plain names, top-level alternation).

    Example:
        >>> fts_as_fullmatch("model.classifier.*")
        'model.classifier.*'
        >>> fts_as_fullmatch(r"model.layers.\\d*$")
        'model.layers.\\\\d*'
        >>> fts_as_fullmatch("model.classifier.bias") is None
        True
    """
    if is_plain_name(pattern) or compile_problem(pattern) or has_top_level_branch(pattern):
        return None
    if ends_with_dollar(pattern) and not pattern.endswith("\\$"):
        stripped = pattern[:-1]
        return stripped if stripped and not compile_problem(stripped) and not ends_with_dollar(stripped) else None
    if ends_with_dot_star(pattern):
        return pattern
    return None


def fullmatch_as_fts(regex: str) -> str:
    """An FTS (`re.match`) pattern equivalent to full-matching `regex`."""
    if ends_with_dot_star(regex):
        return regex
    body = f"(?:{regex})" if has_top_level_branch(regex) else regex
    return body + "$"


def quantified_dots(pattern: str) -> list[tuple[int, str]]:
    """Positions of `{m,n}` quantifiers applied directly to an unescaped `.` (FTS205)."""
    found: list[tuple[int, str]] = []
    for m in re.finditer(r"(?<!\\)\.(\{\d*,?\d*\})", pattern):
        # An odd number of backslashes before the dot escapes it.
        k = m.start() - 1
        slashes = 0
        while k >= 0 and pattern[k] == "\\":
            slashes += 1
            k -= 1
        if slashes % 2 == 0 and not _inside_class(pattern, m.start()):
            found.append((m.start(), m.group(0)))
    return found


def unescaped_separator_dots(pattern: str) -> list[int]:
    """Offsets of unescaped `.` used between name segments (e.g. `layers.1`), not `.*`/`.+`."""
    out: list[int] = []
    for i, c in enumerate(pattern):
        if c != "." or _escaped(pattern, i) or _inside_class(pattern, i):
            continue
        nxt = pattern[i + 1] if i + 1 < len(pattern) else ""
        prev = pattern[i - 1] if i > 0 else ""
        if nxt in "*+?{" or not nxt:
            continue
        if (prev.isalnum() or prev in "_)]") and (nxt.isalnum() or nxt in "_(["):
            out.append(i)
    return out


def _escaped(pattern: str, i: int) -> bool:
    k, slashes = i - 1, 0
    while k >= 0 and pattern[k] == "\\":
        slashes += 1
        k -= 1
    return slashes % 2 == 1


def _inside_class(pattern: str, i: int) -> bool:
    depth = False
    j = 0
    while j < i:
        c = pattern[j]
        if c == "\\":
            j += 2
            continue
        if c == "[" and not depth:
            depth = True
        elif c == "]" and depth:
            depth = False
        j += 1
    return depth


_MAX_PREFIXES = 64


def _sequence_alternatives(items: Any) -> list[str] | None:
    """The strings a sequence of literals, small classes and literal groups can match, or None."""
    out = [""]
    for op, av in items:
        if op is _sre_c.LITERAL:
            out = [o + chr(av) for o in out]
            continue
        if op is _sre_c.BRANCH:
            alternatives: list[str] = []
            for branch in av[1]:
                sub = _sequence_alternatives(branch.data)
                if sub is None:
                    return None
                alternatives.extend(sub)
        else:
            found = _literal_alternatives(op, av)
            if found is None:
                return None
            alternatives = found
        out = [o + a for o in out for a in alternatives]
        if len(out) > _MAX_PREFIXES:
            return None
    return out


def _literal_alternatives(op: Any, av: Any) -> list[str] | None:
    """The strings a class `[0-3]` or a group of literal alternatives `(4|5|10)` can match, or None."""
    if op is _sre_c.IN:
        chars: list[str] = []
        for item_op, item_av in av:
            if item_op is _sre_c.LITERAL:
                chars.append(chr(item_av))
            elif item_op is _sre_c.RANGE and item_av[1] - item_av[0] < 16:
                chars.extend(chr(c) for c in range(item_av[0], item_av[1] + 1))
            else:
                return None
        return chars
    if op is _sre_c.SUBPATTERN:
        _group, add_flags, del_flags, body = av
        if add_flags or del_flags:
            return None
        return _sequence_alternatives(body.data)
    return None


def match_prefixes(pattern: str) -> tuple[list[tuple[str | None, ...]], bool] | None:
    """The fixed starts every match of `pattern` has: one of the returned templates (literal
    characters, None for any character). Character classes and groups of literal alternatives
    branch into several templates (at most 64).

    Returns `(templates, dot_matches_newline)`, or None when the pattern cannot be analysed
    (invalid, or case-insensitive, where literals do not pin characters). Used to narrow the
    names a pattern is tried against; the full regex still decides.

    Example:
        >>> match_prefixes(r"ab(1|23)[xy]c*")[0]
        [('a', 'b', '1', 'x'), ('a', 'b', '1', 'y'), ('a', 'b', '2', '3', 'x'), ('a', 'b', '2', '3', 'y')]
        >>> match_prefixes("a|bc")
        ([()], False)
        >>> match_prefixes(r"x\\.(4|5)\\.")[0]
        [('x', '.', '4', '.'), ('x', '.', '5', '.')]
    """
    parsed = _parse(pattern)
    if parsed is None:
        return None
    flags = parsed.state.flags
    if flags & re.IGNORECASE:
        return None
    templates: list[tuple[str | None, ...]] = [()]
    for i, (op, av) in enumerate(parsed.data):
        if op is _sre_c.LITERAL:
            templates = [t + (chr(av),) for t in templates]
        elif op is _sre_c.ANY:
            templates = [t + (None,) for t in templates]
        elif op is _sre_c.AT and i == 0 and av in (_sre_c.AT_BEGINNING, _sre_c.AT_BEGINNING_STRING):
            continue
        else:
            alternatives = _literal_alternatives(op, av)
            if not alternatives or len(templates) * len(alternatives) > _MAX_PREFIXES:
                break
            templates = [t + tuple(alt) for t in templates for alt in alternatives]
    return templates, bool(flags & re.DOTALL)


def match_prefix(pattern: str) -> tuple[tuple[str | None, ...], bool] | None:
    """The single fixed start every match of `pattern` has (see `match_prefixes`).

    Example:
        >>> match_prefix(r"model.layers\\.1\\d")
        (('m', 'o', 'd', 'e', 'l', None, 'l', 'a', 'y', 'e', 'r', 's', '.', '1'), False)
        >>> match_prefix("a|b")
        ((), False)
    """
    info = match_prefixes(pattern)
    if info is None:
        return None
    templates, dotall = info
    if len(templates) == 1:
        return templates[0], dotall
    common: list[str | None] = []
    for column in zip(*templates, strict=False):
        if len(set(column)) != 1:
            break
        common.append(column[0])
    return tuple(common), dotall


def ends_inside_segment(pattern: str) -> bool:
    """True if the pattern's last top-level item matches one name character (a letter, digit,
    `_` or a class like `\\d`), so a `re.match` can stop in the middle of a name segment.

    Example:
        >>> ends_inside_segment("model.layers.1"), ends_inside_segment(r"layers\\.\\d"), ends_inside_segment("a.*")
        (True, True, False)
    """
    parsed = _parse(pattern)
    if parsed is None or not parsed.data or has_top_level_branch(pattern):
        return False
    op, av = parsed.data[-1]
    if op is _sre_c.LITERAL:
        ch = chr(av)
        return ch.isalnum() or ch == "_"
    return op is _sre_c.IN


def literal_intent(pattern: str) -> str | None:
    """The pattern an FTS pattern looks like it means: dotted names with literal separators.

    Every unescaped `.` between name characters becomes `\\.`, and a final `.*` or `.+` right
    after a name character becomes `\\..*` / `\\..+` (`layers.1.*` reads as "everything under
    `layers.1`"). None when nothing changes or the result does not compile.

    Example:
        >>> literal_intent("model.layers.1.*"), literal_intent("h.2.attn.*"), literal_intent("layers.1")
        ('model\\\\.layers\\\\.1\\\\..*', 'h\\\\.2\\\\.attn\\\\..*', 'layers\\\\.1')
        >>> literal_intent(r"layers\\.1\\..*") is None, literal_intent("model.*")
        (True, 'model\\\\..*')
    """
    out = list(pattern)
    for i in reversed(unescaped_separator_dots(pattern)):
        out[i] = "\\."
    n = len(pattern)
    if n >= 3 and pattern[-1] in "*+" and pattern[-2] == "." and not _escaped(pattern, n - 2) \
            and not _inside_class(pattern, n - 2) and (pattern[-3].isalnum() or pattern[-3] in "_)]") \
            and not _escaped(pattern, n - 3):
        out[n - 2] = "\\.."
    intent = "".join(out)
    if intent == pattern or compile_problem(intent):
        return None
    return intent
