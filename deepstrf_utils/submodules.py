"""Lazy access to a package's submodules, found on disk.

A package's ``__init__`` calls :func:`lazy_submodules` and binds the two functions it returns
as its module-level ``__getattr__`` and ``__dir__``: ``package.name`` then imports
``package.name`` on first use when ``name`` is a module or subpackage in the package's folder
(found with :func:`pkgutil.iter_modules`, so a new module needs no list to be kept up to date),
and ``dir(package)`` lists them. Importing the package itself stays cheap.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Iterable

__all__ = ["lazy_submodules", "submodule_names"]


def submodule_names(path: Iterable[str]) -> frozenset[str]:
    """Names of the modules and subpackages directly inside the package folder(s) ``path``
    (a package's ``__path__``), private ones (leading underscore) and ``__main__`` left out."""
    return frozenset(info.name for info in pkgutil.iter_modules(list(path)) if not info.name.startswith("_"))


def lazy_submodules(package: str, path: Iterable[str], module_globals: dict) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for the package called ``package`` whose ``__path__`` is ``path``
    and whose namespace is ``module_globals``: unknown attributes that name a submodule are
    imported; others raise AttributeError naming the package and the attribute."""
    names = submodule_names(path)

    def __getattr__(name: str):
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(module_globals) | names)

    return __getattr__, __dir__
