"""Names a package exports but imports on first use, so that importing the package stays cheap
(no torch for the parts that do not need it)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: each public name of ``where`` (name -> the
    submodule, relative to ``package``, that defines it) is imported when first asked for."""

    def getattr_(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{where[name]}"), name)

    return getattr_
