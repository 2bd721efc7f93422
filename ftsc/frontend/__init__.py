"""Front ends: read any schedule file into the IR.

Input: a path (`.ftsc` DSL, FTS YAML schedule, LightningCLI YAML config, or another project's
fine-tuning config in a freeze dialect: `ftsc.frontend.dialects`). Output: `Loaded`: the source,
the IR (None when the file cannot be parsed), the comments (for the formatter) and diagnostics.
A dialect config is read here without the model; `ftsc.check.import_dialect` reads it again
against the model once that is known. Never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from ftsc import ir
from ftsc.diagnostics import Diagnostic, make
from ftsc.frontend.classify import looks_like_config, unrecognized, unrecognized_stream
from ftsc.frontend.fts_yaml import schedule_from_yaml
from ftsc.frontend.lightning_config import load_lightning_config
from ftsc.frontend.yaml_nodes import YNode, load_yaml
from ftsc.source import ReadLimitError, SourceFile, Span, read_regular

if TYPE_CHECKING:
    from ftsc.parse import Comment


class InputKind(StrEnum):
    """What a file is: the DSL, an FTS YAML schedule, or a LightningCLI config."""

    DSL = "ftsc"
    FTS_YAML = "fts-yaml"
    LIGHTNING_CONFIG = "lightning-config"
    DIALECT = "dialect"


@dataclass(frozen=True, slots=True)
class DialectInput:
    """A config in a freeze dialect, kept to be read again against the model.

    Attributes:
        name: the dialect (a key of `ftsc.frontend.dialects.DIALECTS`).
        root: the loaded YAML document.
        yaml_diagnostics: what loading the YAML reported (the importer's own are added per read).
        with_model: True once the schedule was read against a model (`ftsc.check.import_dialect`).
    """

    name: str
    root: YNode
    yaml_diagnostics: tuple[Diagnostic, ...] = ()
    with_model: bool = False


@dataclass(slots=True)
class Loaded:
    """A file read through its front end."""

    source: SourceFile
    kind: InputKind
    schedule: ir.Schedule | None
    diagnostics: list[Diagnostic]
    comments: list[Comment] = field(default_factory=list)
    related: list[SourceFile] = field(default_factory=list)
    # Why a YAML file is neither an FTS schedule nor a LightningCLI config (`ftsc check` skips it;
    # the schedule and diagnostics are still those of an FTS schedule, for callers that insist).
    unrecognized: str | None = None
    # A freeze-dialect config (axolotl, LLaMA-Factory, ...): kind is `InputKind.DIALECT`.
    dialect: DialectInput | None = None


class ReadError(Exception):
    """The file cannot be read at all (missing, unreadable): exit status 2."""


def kind_of(path: str) -> InputKind:
    """The input kind by file extension (YAML configs are told apart after loading)."""
    return InputKind.FTS_YAML if path.lower().endswith((".yaml", ".yml")) else InputKind.DSL


def read_source(path: str) -> SourceFile:
    """Read a regular file (up to `ftsc.source.MAX_SOURCE_BYTES`) as UTF-8 text.

    Raises:
        ReadError: when it does not exist, cannot be read, is not a regular file or is too large.
    """
    try:
        data = read_regular(path)
    except ReadLimitError as err:
        raise ReadError(str(err)) from None
    except FileNotFoundError:
        raise ReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ReadError(f"{path}: is a directory") from None
    except OSError as err:
        raise ReadError(f"{path}: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        source = SourceFile(path, data.decode("utf-8", errors="replace"))
        raise _Undecodable(source, err.start) from None
    return SourceFile(path, text, bom=data.startswith(b"\xef\xbb\xbf"))


class _Undecodable(Exception):
    def __init__(self, source: SourceFile, offset: int) -> None:
        self.source, self.offset = source, offset


def load_text(source: SourceFile, kind: InputKind | None = None, dialect: str | None = None) -> Loaded:
    """Run the front end for `source` (kind by extension unless given).

    `dialect` forces a YAML file to be read as that freeze dialect; None or `auto` reads one only
    when the document is neither a schedule nor a LightningCLI config and its keys say which.
    """
    kind = kind or kind_of(source.path)
    if "\x00" in source.text:
        pos = source.text.index("\x00")
        return Loaded(source, kind, None, [make("FTS001", source, Span(pos, pos + 1),
                                                   detail="file contains a NUL byte; is it binary?",
                                                   label="NUL byte")])
    if kind is InputKind.DSL:
        from ftsc.build_ir import build_ir  # lark is imported only for DSL input
        from ftsc.parse import parse

        result = parse(source)
        if result.tree is None:
            return Loaded(source, kind, None, result.diagnostics, result.comments)
        schedule, diags = build_ir(result.tree, source)
        return Loaded(source, kind, schedule, diags, result.comments)
    root, diags = load_yaml(source)
    forced = dialect if dialect not in (None, "auto") else None
    if root is None and diags:
        return Loaded(source, InputKind.DIALECT if forced else kind, None, diags,
                      unrecognized=None if forced else unrecognized_stream(source.text))
    other = unrecognized(root)
    if forced or (other is not None and root is not None):
        from ftsc.frontend import dialects

        name = forced or dialects.detect(root)
        if name is not None:
            return _dialect(source, name, root, diags)
    if looks_like_config(root):
        assert root is not None
        schedule, more, related = load_lightning_config(source, root)
        return Loaded(source, InputKind.LIGHTNING_CONFIG, schedule, diags + more, related=related)
    schedule, more = schedule_from_yaml(root, source)
    return Loaded(source, InputKind.FTS_YAML, schedule, diags + more, unrecognized=other)


def _dialect(source: SourceFile, name: str, root: YNode | None, diags: list[Diagnostic]) -> Loaded:
    """A dialect config read without the model (what can be said before the model is known)."""
    from ftsc.frontend import dialects

    if root is None:
        return Loaded(source, InputKind.DIALECT, None, diags)
    imported = dialects.load(name, source, root, None)
    return Loaded(source, InputKind.DIALECT, imported.schedule, diags + imported.diagnostics,
                  dialect=DialectInput(name, root, tuple(diags)))


def load_file(path: str, dialect: str | None = None) -> Loaded:
    """Read and load a schedule file (`dialect`: as `load_text`).

    Raises:
        ReadError: when the file cannot be read (exit status 2).
    """
    try:
        source = read_source(path)
    except _Undecodable as err:
        return Loaded(err.source, kind_of(path), None, [make(
            "FTS001", err.source, Span(err.offset, err.offset + 1),
            detail="file is not valid UTF-8 text", label="invalid byte")])
    return load_text(source, InputKind.FTS_YAML if dialect not in (None, "auto") else None, dialect)
