"""ftsc: a fine-tuning schedule compiler and static FSDP wrap-alignment analyzer.

The pipeline, one module per stage: `parse` (DSL text -> tree), `build_ir` (tree -> IR),
`frontend` (any file -> IR), `analyze` (IR -> diagnostics), `fmt`/`convert` (IR -> text).
Importing ftsc never imports torch.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "check_text", "load"]


def load(path: str):  # type: ignore[no-untyped-def]
    """Read a schedule file (`.ftsc`, FTS YAML or LightningCLI config) into the IR."""
    from ftsc.frontend import load_file

    return load_file(path)


def check_text(text: str, path: str = "<input>.ftsc"):  # type: ignore[no-untyped-def]
    """Check schedule text and return its diagnostics.

    Example:
        >>> [d.code for d in check_text("phase 1 { thaw a }")]
        ['FTS201']
    """
    from ftsc.cli import check_file
    from ftsc.frontend import load_text
    from ftsc.source import SourceFile

    return check_file(load_text(SourceFile(path, text)))
