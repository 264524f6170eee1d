"""Re-exports imported on first use (PEP 562), for `core` and each of its packages.

A package's public names live in its modules; its `__init__` lists them here and imports none of them, so
that `import core.store` costs no torch or scikit-learn import (`core/__init__` says why that matters).
"""
from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(package: str, exports: dict[str, list[str]]) -> tuple[Callable, Callable, list[str]]:
    """`__getattr__`, `__dir__` and `__all__` of `package`, whose names `exports` gives by module (its path
    relative to `package`, e.g. "store.run_store" in `core`)."""
    module_of = {name: f"{package}.{module}" for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module_of[name]), name)
        setattr(importlib.import_module(package), name, value)  # found in the namespace from now on
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(module_of))

    return __getattr__, __dir__, sorted(module_of)
