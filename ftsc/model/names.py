"""Fast pattern matching over many FQNs.

Input: names in registration order, then regex patterns. Output: the names a pattern
matches (`re.match` or `re.fullmatch` semantics), in registration order. Never imports torch.

A plain loop tries every pattern on every name. `NameIndex` keeps the names sorted and
uses the fixed starts every match must have (`regexes.match_prefixes`: literal characters,
`.` wildcards, and branches for classes like `[0-3]` and groups like `(4|5)`) to visit only the names that can match: literal runs narrow the sorted range
by bisection, a wildcard branches over the distinct characters present at that position.
The pattern is then tried on those candidates only, so the result is exactly the plain loop's.
Patterns are run by `ftsc.matching` (Python `re` semantics in bounded time: RE2, or a memoised
machine), never by Python's backtracking engine, so no pattern and no name list can hang it.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from ftsc.matching import Matcher, accepts, matcher_for
from ftsc.regexes import match_prefixes

_MAX_WILDCARDS = 200  # the walk recurses once per `.`; beyond this, scan every name


class NameIndex:
    """Sorted view of a name list for prefix-pruned regex matching.

    Example:
        >>> idx = NameIndex(["m.1.w", "m.10.w", "m.2.w", "m_1.w"])
        >>> idx.match(r"m.1")
        ['m.1.w', 'm.10.w', 'm_1.w']
        >>> idx.match(r"m\\.1\\..*", full=True)
        ['m.1.w']
        >>> idx.match(r"(m|m.)+$")
        []
    """

    __slots__ = ("_alphabet", "_names", "_order", "_sorted")

    def __init__(self, names: Sequence[str]) -> None:
        self._names = list(names)
        order = sorted(range(len(self._names)), key=self._names.__getitem__)
        self._order = order
        self._sorted = [self._names[i] for i in order]
        self._alphabet: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self._names)

    def candidates(self, pattern: str) -> list[int]:
        """Positions (in the sorted list) of the names that can match `pattern`."""
        info = match_prefixes(pattern)
        if info is None or any(t.count(None) > _MAX_WILDCARDS for t in info[0]):
            return list(range(len(self._sorted)))
        templates, dotall = info
        out: list[int] = []
        for template in templates:
            self._walk(template, dotall, 0, len(self._sorted), 0, out)
        return sorted(set(out)) if len(templates) > 1 else out

    def _walk(self, template: tuple[str | None, ...], dotall: bool, lo: int, hi: int, pos: int,
              out: list[int]) -> None:
        names = self._sorted
        # Every name in names[lo:hi] agrees with the template on [0, pos).
        while pos < len(template) and lo < hi:
            ch = template[pos]
            if ch is not None:
                end = pos + 1
                while end < len(template) and template[end] is not None:
                    end += 1
                prefix = names[lo][:pos] + "".join(template[pos:end])  # type: ignore[arg-type]

                def key(n: str, k: int = end) -> str:
                    return n[:k]

                lo, hi = bisect_left(names, prefix, lo, hi, key=key), bisect_right(names, prefix, lo, hi, key=key)
                pos = end
                continue
            # A wildcard: names too short to have this character cannot match; they sort first.
            while lo < hi and len(names[lo]) <= pos:
                lo += 1
            i = lo
            while i < hi:
                head = names[i][: pos + 1]

                def key1(n: str, k: int = pos + 1) -> str:
                    return n[:k]

                j = bisect_right(names, head, i, hi, key=key1)
                if dotall or head[pos] != "\n":
                    self._walk(template, dotall, i, j, pos + 1, out)
                i = j
            return
        out.extend(range(lo, hi))

    def matcher(self, pattern: str) -> Matcher:
        """A bounded matcher for `pattern` over these names (`ftsc.matching.Matcher`).

        Raises:
            re.error: `pattern` does not compile.
            ftsc.matching.UnsupportedPattern: it cannot be matched in bounded time.
        """
        if self._alphabet is None:
            self._alphabet = tuple(sorted(set("".join(self._names))))  # every character of every name
        return matcher_for(pattern, self._alphabet)

    def match(self, rx: str | re.Pattern[str], *, full: bool = False) -> list[str]:
        """Names the pattern matches (`re.match`; `re.fullmatch` with `full`), in registration order.

        Raises:
            re.error: the pattern does not compile.
            ftsc.matching.UnsupportedPattern: it cannot be matched in bounded time.
        """
        pattern = rx if isinstance(rx, str) else _with_inline_flags(rx)
        m = self.matcher(pattern)
        sorted_names = self._sorted
        positions = self.candidates(pattern)
        ok = accepts(m, [sorted_names[k] for k in positions], full=full)
        hits = [self._order[k] for k, yes in zip(positions, ok, strict=True) if yes]
        hits.sort()
        return [self._names[i] for i in hits]

    def with_prefix(self, prefix: str) -> list[str]:
        """Names starting with `prefix`, in sorted order."""
        lo = bisect_left(self._sorted, prefix)
        hi = bisect_right(self._sorted, prefix, lo, key=lambda n: n[: len(prefix)])
        return self._sorted[lo:hi]


_FLAG_LETTERS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"), (re.ASCII, "a"))


def _with_inline_flags(rx: re.Pattern[str]) -> str:
    """`rx.pattern` with the flags given to `re.compile` written inline, as `(?i)`."""
    extra = rx.flags & ~re.compile(rx.pattern).flags
    letters = "".join(letter for flag, letter in _FLAG_LETTERS if extra & flag)
    return f"(?{letters}){rx.pattern}" if letters else rx.pattern
