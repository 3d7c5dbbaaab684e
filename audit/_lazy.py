"""Lazy public names for a package (PEP 562), so that importing the package stays cheap.

Why: `import audit` runs before every command and every page, and the export must start
without loading pandas (bench/bench_export.py measures it). A package's public face therefore
names its entry points in a table, {public name: "module path"} (or "module path:attribute"
when the public name differs from the one in the module), and imports a module only when one
of its names is first used. The package also lists them in `__all__` and imports them under
`if TYPE_CHECKING:` so that linters, type checkers and editors see them; tests/test_structure.py
checks that the three agree and that every name resolves.

A public name must not be the name of a submodule of the same package: once that submodule is
imported, Python sets it as the package's attribute and the module would hide the function.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_names(package: str, table: Mapping[str, str]
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, resolving `table`'s names on first use.

    Use at the end of the package's __init__, beside a literal `__all__` naming the same
    names (a literal, so that linters and type checkers read it):
        __getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
    """
    targets = {name: target_of(table, name) for name in table}

    def __getattr__(name: str) -> Any:
        try:
            module, attribute = targets[name]
        except KeyError:
            # AttributeError, not KeyError: `from package import submodule` relies on it to go
            # on and import the submodule.
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(import_module(module), attribute)
        setattr(sys.modules[package], name, value)  # later uses skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *targets})

    return __getattr__, __dir__


def target_of(table: Mapping[str, str], name: str) -> tuple[str, str]:
    """The module and attribute a public name stands for: "audit.log.service" gives
    (audit.log.service, name); "audit.analytics.reports:build" gives (..., build)."""
    module, _, attribute = table[name].partition(":")
    return module, attribute or name
