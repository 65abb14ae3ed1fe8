"""Derived member keys: small arithmetic expressions of other keys (e.g. ``lr: "5e-3 / tau**2"``),
parsed with `ast` and evaluated column-wise on the members table. No names, calls or attributes
beyond the member keys and a few math functions are allowed (nothing is `eval`-ed)."""
from __future__ import annotations

import ast
from typing import Callable, Mapping

import numpy as np

FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "sqrt": np.sqrt, "log": np.log, "log10": np.log10, "exp": np.exp, "abs": np.abs,
    "min": np.minimum, "max": np.maximum,
}
ARITY = {"sqrt": 1, "log": 1, "log10": 1, "exp": 1, "abs": 1, "min": 2, "max": 2}  # np.minimum(a, b, c): c is `out`
MAX_LENGTH = 500  # characters of one expression
_BINARY = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
           ast.Pow: np.power, ast.FloorDiv: np.floor_divide, ast.Mod: np.mod}
_UNARY = {ast.USub: np.negative, ast.UAdd: np.positive}


def _names(tree: ast.AST) -> tuple[set[str], list[str]]:
    names, bad = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS) or node.keywords:
                bad.append("calls other than " + ", ".join(FUNCTIONS))
            elif len(node.args) != ARITY[node.func.id] or any(isinstance(a, ast.Starred) for a in node.args):
                n = ARITY[node.func.id]
                bad.append(f"{node.func.id}() with {len(node.args)} argument(s) ({node.func.id} takes {n})")
        elif isinstance(node, ast.BinOp) and type(node.op) not in _BINARY:
            bad.append(f"operator {type(node.op).__name__}")
        elif isinstance(node, ast.UnaryOp) and type(node.op) not in _UNARY:
            bad.append(f"operator {type(node.op).__name__}")
        elif isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            bad.append(f"constant {str(node.value)[:20]!r}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, int) and node.value.bit_length() > 1000:
            bad.append("an integer beyond float64")  # float() of it raises
        elif not isinstance(node, (ast.Expression, ast.Name, ast.Call, ast.BinOp, ast.UnaryOp, ast.Constant,
                                   ast.Load, *_BINARY, *_UNARY)):
            bad.append(type(node).__name__)
    return names - set(FUNCTIONS), bad


def check_expression(text: str, allowed: set[str]) -> str | None:
    """None if `text` is a valid expression of `allowed` names, else what is wrong and how to fix it."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        return f"an expression is a string of at most {MAX_LENGTH} characters, e.g. '0.005 / tau**2'"
    shown = repr(text) if len(text) <= 60 else repr(text[:57] + "...")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: NUL bytes; deep nesting
        return f"cannot parse {shown}; write arithmetic such as 0.005 / tau**2"
    names, bad = _names(tree)
    if bad:
        return f"{shown} uses {bad[0]}; only + - * / ** // %, numbers, member keys and {', '.join(FUNCTIONS)} are allowed"
    unknown = sorted(names - allowed)
    if unknown:
        return f"{shown} names unknown key(s) {', '.join(u[:20] for u in unknown[:3])}; use numeric member keys ({', '.join(sorted(allowed))})"
    return None


def evaluate(text: str, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Evaluate a checked expression on columns (numpy arrays of equal length)."""
    def ev(node: ast.AST) -> np.ndarray | float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return np.asarray(columns[node.id], dtype=float)
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](ev(node.operand))
        if isinstance(node, ast.Call):
            return FUNCTIONS[node.func.id](*[ev(a) for a in node.args])  # type: ignore[union-attr]
        raise ValueError(f"unsupported expression {ast.dump(node)}")

    n = len(next(iter(columns.values()))) if columns else 1
    with np.errstate(all="ignore"):
        out = ev(ast.parse(text, mode="eval"))
    return np.broadcast_to(np.asarray(out, dtype=float), (n,)).copy()
