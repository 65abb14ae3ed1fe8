"""PEP 562 lazy attributes for packages: `import lazyrich` (or a room) costs nothing until a name is used.

`attach(__name__, {"module": ["Name", ...]})` returns `(__getattr__, __dir__, __all__)`; the first
access to `Name` imports `package.module` and caches the attribute in the package namespace. Type
checkers read the `if TYPE_CHECKING:` imports each package keeps beside the call.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any, Callable, Iterable, Mapping


def attach(package: str, names: Mapping[str, Iterable[str]], submodules: Iterable[str] = (),
           before: Callable[[], None] | None = None) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """`names` maps a submodule (relative, e.g. "dynamics" or "observe.kernel") to the public names it
    defines; `submodules` are exposed as attributes themselves. `before` runs once before the first
    lazy import (e.g. to register plug-ins)."""
    where = {name: mod for mod, group in names.items() for name in group}
    subs = set(submodules)
    exported = sorted({*where, *subs})
    done: list[bool] = []

    def __getattr__(name: str) -> Any:
        if name in where or name in subs:
            if before is not None and not done:
                done.append(True)
                before()
            if name in subs:
                value: Any = importlib.import_module(f"{package}.{name}")
            else:
                value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*exported, *vars(sys.modules[package])})

    # A public name can equal a submodule's name (theory.single_neuron is a function in a module of that
    # name; theory.regime a function of single_neuron and a module). Importing a submodule binds it on the
    # package; as in an eager __init__, the name keeps meaning the public object instead.
    class _Package(types.ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in where and isinstance(value, types.ModuleType) and value.__name__ == f"{package}.{name}":
                if where[name] != name:
                    return  # __getattr__ resolves the public name from its own module
                value = getattr(value, name)
            super().__setattr__(name, value)

    sys.modules[package].__class__ = _Package
    return __getattr__, __dir__, exported
