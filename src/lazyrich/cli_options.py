"""Option types shared by the commands: parsed and bounded by typer/click before a command runs, so a
bad value is one line and exit code 2 (`lazyrich.cli.main`), never a traceback or a silent default.

Light on purpose (typer only): every command module imports it at the top.
"""
from __future__ import annotations

import math
import re
from typing import Callable, Literal, Optional

import typer

Device = Literal["cpu", "cuda"]
SCHEMES = ("sp", "ntp", "mup", "mf", "spectral")  # lazyrich.param.SCHEMES (tests/test_cli_fuzz.py checks)
Scheme = Literal["sp", "ntp", "mup", "mf", "spectral"]
Family = Literal["sgd", "adam", "muon"]            # lazyrich.param.OPTIMIZERS
ACTIVATIONS = ("linear", "relu", "leaky_relu", "tanh", "gelu", "quadratic")  # lazyrich.models.activations.NAMES
Activation = Literal["linear", "relu", "leaky_relu", "tanh", "gelu", "quadratic"]
MAX_TABLE_WIDTH = 2**31 - 1   # inspect/predict only compute a table: any int64-safe width
MAX_MODEL_WIDTH = 4096        # commands that build the model (coord check): ≤ 4096 keeps one run in memory
_DEVICE = re.compile(r"^(cpu|cuda(:\d{1,2})?)$")


def ints(text: str, what: str, lo: int, hi: int, count: tuple[int, int] = (1, 64)) -> tuple[int, ...]:
    """`"10,64,1"` → (10, 64, 1), each in [lo, hi], between count[0] and count[1] of them."""
    try:
        values = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{text!r} must be comma-separated integers, e.g. 10,64,64,1") from None
    if not count[0] <= len(values) <= count[1]:
        words = {1: "one", 2: "two", 3: "three"}
        many = (f"exactly {words.get(count[0], count[0])}" if count[0] == count[1] else
                f"at least {words.get(count[0], count[0])}" if len(values) < count[0] else f"at most {count[1]}")
        raise typer.BadParameter(f"give {many} {what}, got {len(values)}")
    bad = next((v for v in values if not lo <= v <= hi), None)
    if bad is not None:
        raise typer.BadParameter(f"{what} must be positive integers in [{lo}, {hi}], got {bad}")
    return values


def widths(lo: int = 1, hi: int = MAX_TABLE_WIDTH, count: tuple[int, int] = (2, 64)) -> Callable[[Optional[str]], Optional[str]]:
    """Callback that checks a comma-separated width list (the command parses it again with `ints`)."""
    def check(text: Optional[str]) -> Optional[str]:
        if text is not None:
            ints(text, "widths", lo, hi, count)
        return text
    return check


def finite(lo: float = -math.inf, hi: float = math.inf, *, positive: bool = False,
           nonnegative: bool = False) -> Callable[[Optional[float]], Optional[float]]:
    """Callback: a finite float in [lo, hi] (strictly > 0 with `positive`, ≥ 0 with `nonnegative`).
    click's FloatRange lets NaN through; this does not."""
    def check(value: Optional[float]) -> Optional[float]:
        if value is None:
            return value
        if not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a finite number")
        if positive and value <= 0:
            raise typer.BadParameter(f"{value:g} must be positive")
        if nonnegative and value < 0:
            raise typer.BadParameter(f"{value:g} must be non-negative")
        if not lo <= value <= hi:
            raise typer.BadParameter(f"{value:g} is outside [{lo:g}, {hi:g}]")
        return value
    return check


def device(value: str) -> str:
    """cpu, cuda or cuda:N (whether CUDA is present is checked when the command runs)."""
    if not _DEVICE.match(value):
        raise typer.BadParameter(f"{value!r} is not a device: use cpu, cuda or cuda:N")
    return value


def names(allowed: tuple[str, ...], what: str) -> Callable[[str], str]:
    """Callback for a comma-separated list drawn from `allowed`, e.g. --schemes sp,mup."""
    def check(text: str) -> str:
        items = [s.strip() for s in text.split(",")]
        bad = next((s for s in items if s not in allowed), None)
        if bad is not None or not items:
            raise typer.BadParameter(f"unknown {what} {bad!r}: choose from {', '.join(allowed)}")
        return text
    return check
