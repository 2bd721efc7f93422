"""Layer-wise lr decay: the lr of each parameter a decay form covers.

Input: an `ir.LrDecay`, the FQNs of the phase it sits in and every parameter FQN of the model.
Output: `LrGroup`s (label, the preset's layer id, scale, lr, parameters), lowest layer first.
The layer count and the groups that exist come from the whole model, as each project computes
them (BEiT's `get_num_layers()`, ELECTRA's `n_transformer_layers`, timm's group matcher over
`named_parameters()`, fastai's splitter groups); only the phase's parameters are listed.
Never imports torch.

The presets (docs/lr-decay.md has each formula and the source it was read from):

| preset | embeddings | layer `i` of `L` | `norm` | everything else (head) |
|---|---|---|---|---|
| `beit` | `d^(L+1)` | `d^(L-i)` | `1` | `1` |
| `electra` | `d^(L+2)` | `d^(L+1-i)` | (not placed) | `1` |
| `timm` | `d^m` (id 0) | `d^(m-id)` | the last layer's | `1` (id `m`) |
| `fastai` | `even_mults` over the groups the model has: embeddings, each layer, head | | | |

(`timm`: ids number the groups the model has in order; `m` is the largest.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ftsc import ir
from ftsc.matching import UnsupportedPattern, match_names
from ftsc.regexes import compile_problem, glob_to_regex

INDEX = "{i}"
_MATCH_PREV = 99999.0  # timm's MATCH_PREV_GROUP ordinal: the group joins the one before it


@dataclass(frozen=True, slots=True, kw_only=True)
class LrGroup:
    """Parameters a decay form gives one lr: `lr = top lr x scale`."""

    label: str  # "embeddings", "layer 3", "layer 11 + norm", "head"
    layer_id: int  # the preset's id: BEiT/timm group id, ELECTRA depth, fastai group index
    scale: float
    lr: float
    params: tuple[str, ...]


def layers_problem(sel: ir.Selector) -> str | None:
    """Why a `per` pattern is unusable (not exactly one `{i}`, or a glob that does not compile), or None."""
    if sel.pattern.count(INDEX) != 1:
        return "the layer pattern needs exactly one `{i}` (the layer index)"
    if sel.kind is ir.SelectorKind.GLOB:
        return compile_problem(_regex(sel))
    return None


def _regex(sel: ir.Selector) -> str:
    """The full-match regex of a `per` pattern; its one group is the layer index."""
    left, right = sel.pattern.split(INDEX, 1)
    if sel.kind is ir.SelectorKind.GLOB:
        return glob_to_regex(left) + r"(\d+)" + glob_to_regex(right)
    # A module prefix: the parameters of module `left<i>right` (or a parameter of that name).
    return re.escape(left) + r"(\d+)" + re.escape(right) + r"(?:\..+)?"


def layer_indices(sel: ir.Selector, names: Sequence[str]) -> dict[str, int]:
    """`{FQN: layer index}` for the names the `per` pattern matches (registration order).

    Example:
        >>> sel = ir.Selector(kind=ir.SelectorKind.EXACT, pattern="enc.layer.{i}")
        >>> layer_indices(sel, ["enc.layer.0.w", "enc.layer.11.b", "enc.layer_norm.w", "enc.layer.1"])
        {'enc.layer.0.w': 0, 'enc.layer.11.b': 11, 'enc.layer.1': 1}
    """
    if layers_problem(sel):
        return {}
    regex = _regex(sel)
    if sel.kind is ir.SelectorKind.GLOB:
        try:  # bounded membership first; the index is read only from names known to match
            hits = match_names(regex, list(names), full=True)
        except (UnsupportedPattern, re.error, ValueError):
            return {}
    else:
        hits = list(names)
    pattern = re.compile(regex)
    out: dict[str, int] = {}
    for name in hits:
        m = pattern.fullmatch(name)
        if m is not None:
            out[name] = int(m.group(1))
    return out


def _even_mults(start: float, stop: float, n: int) -> list[float]:
    """fastai's geometric steps from `start` to `stop` over `n` groups (`start x step^k`)."""
    if n == 1:
        return [stop]
    step = (stop / start) ** (1 / (n - 1))
    return [start * (step ** k) for k in range(n)]


MatchFn = Callable[[ir.Selector], Sequence[str]]


def _roles(decl: ir.LrDecay, model: Sequence[str], match: MatchFn) -> dict[str, tuple[str, int]]:
    """Each model parameter's role: ("embeddings", 0), ("layer", i), ("norm", 0) or ("head", 0)."""
    emb = {n for sel in decl.embeddings for n in match(sel)}
    norm = {n for sel in decl.norm for n in match(sel)}
    layers = layer_indices(decl.layers, model)
    roles: dict[str, tuple[str, int]] = {}
    for n in model:
        if n in emb:
            roles[n] = ("embeddings", 0)
        elif n in norm:
            roles[n] = ("norm", 0)
        elif n in layers:
            roles[n] = ("layer", layers[n])
        else:
            roles[n] = ("head", 0)
    return roles


def _ids(decl: ir.LrDecay, roles: dict[str, tuple[str, int]]) -> tuple[dict[tuple[str, int], int], int]:
    """Each role's layer id under the preset, and the exponent base (the id whose scale is 1)."""
    present = set(roles.values())
    num_layers = max((i + 1 for kind, i in present if kind == "layer"), default=0)
    ids: dict[tuple[str, int], int] = {}
    match decl.preset:
        case ir.LrPreset.BEIT | ir.LrPreset.ELECTRA:
            # BEiT: embeddings 0, `blocks.i` i+1, everything else (norm, head) L+1 = top.
            # ELECTRA: embeddings depth 0, `layer_i` i+1, task-specific L+2 = top.
            top = num_layers + (1 if decl.preset is ir.LrPreset.BEIT else 2)
            for kind, i in present:
                ids[(kind, i)] = 0 if kind == "embeddings" else i + 1 if kind == "layer" else top
            return ids, top
        case ir.LrPreset.TIMM:
            # timm's group matcher: ordinals (0,) stem, (1, i) blocks, (1, 99999) a final norm
            # that joins the group before it, (inf,) unmatched; sorted, then numbered in order.
            ordinal = {"embeddings": lambda i: (0.0,), "layer": lambda i: (1.0, float(i)),
                       "norm": lambda i: (1.0, _MATCH_PREV), "head": lambda i: (math.inf,)}
            keys = {role: ordinal[role[0]](role[1]) for role in present}
            lid = -1
            numbered: dict[tuple[float, ...], int] = {}
            for key in sorted(set(keys.values())):
                if lid < 0 or key[-1] != _MATCH_PREV:
                    lid += 1
                numbered[key] = lid
            ids = {role: numbered[key] for role, key in keys.items()}
            return ids, max(ids.values(), default=0)
        case _:  # fastai: one group per part the model has, embeddings first, head last
            order = sorted(present, key=lambda r: (0, 0) if r[0] == "embeddings" else
                           (2, 0) if r[0] in ("head", "norm") else (1, r[1]))
            groups: list[tuple[str, int]] = []
            for role in order:
                key = ("head", 0) if role[0] == "norm" else role
                if key not in groups:
                    groups.append(key)
            ids = {role: groups.index(("head", 0) if role[0] == "norm" else role) for role in present}
            return ids, len(groups) - 1


def _scales(decl: ir.LrDecay, top: int) -> list[tuple[float, float]]:
    """`(scale, lr)` of each id 0..top."""
    if decl.preset is ir.LrPreset.FASTAI:
        n = top + 1
        if decl.decay is not None:  # ULMFiT's "divide by 2.6 per layer": slice(lr * d^(n-1), lr)
            lrs = _even_mults(decl.lr * decl.decay ** (n - 1), decl.lr, n)
        elif decl.start is not None:  # slice(start, stop)
            lrs = _even_mults(decl.start, decl.lr, n)
        else:  # slice(stop)
            lrs = [decl.lr / 10] * (n - 1) + [decl.lr]
        return [(lr / decl.lr, lr) for lr in lrs]
    assert decl.decay is not None
    scales = [decl.decay ** (top - k) for k in range(top + 1)]
    return [(scale, decl.lr * scale) for scale in scales]


def _names_matcher(names: Sequence[str]) -> MatchFn:
    from ftsc.analyze.resolve import resolve

    def match(sel: ir.Selector) -> Sequence[str]:
        try:
            return resolve(sel, names)
        except (UnsupportedPattern, re.error, ValueError, OverflowError, RecursionError):
            return []
    return match


def layer_lrs(decl: ir.LrDecay, phase_params: Sequence[str], model_params: Sequence[str],
              match: MatchFn | None = None) -> tuple[LrGroup, ...]:
    """The lr groups of a phase's parameters under `decl`, lowest layer id first.

    Args:
        decl: the decay form.
        phase_params: the phase's parameters (their order is kept inside each group).
        model_params: every parameter of the model (primary FQNs).
        match: `selector -> matched FQNs` for `embeddings` / `norm` selectors (default:
            `ftsc.analyze.resolve.resolve` over `model_params`).

    Example:
        >>> sel = ir.Selector(kind=ir.SelectorKind.EXACT, pattern="layers.{i}")
        >>> emb = (ir.Selector(kind=ir.SelectorKind.EXACT, pattern="emb.w"),)
        >>> decl = ir.LrDecay(lr=1.0, decay=0.5, preset=ir.LrPreset.BEIT, layers=sel, embeddings=emb)
        >>> names = ["emb.w", "layers.0.w", "layers.1.w", "head.w"]
        >>> [(g.label, g.lr) for g in layer_lrs(decl, names, names)]
        [('embeddings', 0.125), ('layer 0', 0.25), ('layer 1', 0.5), ('head', 1.0)]
    """
    match = match or _names_matcher(model_params)
    roles = _roles(decl, list(dict.fromkeys([*model_params, *phase_params])), match)
    ids, top = _ids(decl, roles)
    scales = _scales(decl, top)
    members: dict[int, list[str]] = {}
    labels: dict[int, list[str]] = {}
    for n in phase_params:
        role = roles[n]
        lid = ids[role]
        members.setdefault(lid, []).append(n)
        label = f"layer {role[1]}" if role[0] == "layer" else role[0]
        if label not in labels.setdefault(lid, []):
            labels[lid].append(label)
    out = []
    for lid in sorted(members):
        ordered = sorted(labels[lid], key=lambda s: (s != "embeddings", s == "norm", s == "head",
                                                     int(s.split()[1]) if s.startswith("layer ") else 0))
        scale, lr = scales[lid]
        out.append(LrGroup(label=" + ".join(ordered), layer_id=lid, scale=scale, lr=lr,
                           params=tuple(members[lid])))
    return tuple(out)


def num_layers(decl: ir.LrDecay, model_params: Sequence[str]) -> int:
    """The layer count the decay is computed with (largest index the `per` pattern matches, plus one)."""
    return max((i + 1 for i in layer_indices(decl.layers, model_params).values()), default=0)


__all__ = ["INDEX", "LrGroup", "layer_indices", "layer_lrs", "layers_problem", "num_layers"]
