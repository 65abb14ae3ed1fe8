"""The reproductions' names, descriptions and runtimes read from the sources without importing them,
so `lazyrich reproduce --list` answers without torch. The `@reproduction(...)` decorators stay the one
place these are written; tests/test_imports.py checks this catalog against the imported registry."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    runtime: dict[str, str]
    target: str  # "module:function", what `lazyrich reproduce NAME` imports


def _literal(node: ast.expr) -> object:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def catalog() -> dict[str, Entry]:
    """name → Entry for every `@reproduction("name", "description", ..., runtime={...})` in this package."""
    out: dict[str, Entry] = {}
    here = Path(__file__).parent
    for path in sorted(here.glob("*.py")):
        if path.stem.startswith("_") or path.stem in ("base", "runner", "cli", "common", "catalog"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for fn in tree.body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            for dec in fn.decorator_list:
                if not (isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "reproduction" and len(dec.args) >= 2):
                    continue
                name, description = _literal(dec.args[0]), _literal(dec.args[1])
                runtime = next((_literal(k.value) for k in dec.keywords if k.arg == "runtime"), None)
                if isinstance(name, str):
                    out[name] = Entry(name, description if isinstance(description, str) else "",
                                      runtime if isinstance(runtime, dict) else {},
                                      f"lazyrich.experiments.{path.stem}:{fn.name}")
    return out
