"""Every docstring example in the package runs (doctest), so documented behaviour stays true."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ftsc

MODULES = sorted(m.name for m in pkgutil.walk_packages(ftsc.__path__, "ftsc.") if m.name != "ftsc.__main__")


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} failing example(s) in {name}"
