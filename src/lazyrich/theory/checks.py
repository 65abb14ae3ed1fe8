"""Preconditions of the exact solutions, each raising `LazyrichError` that names the violated one."""
from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike

from ..errors import LazyrichError, require

WHITENED_TOL = 1e-8
PROBE = 1e-12  # relative size of the init perturbation that measures conditioning (saturates at κ ≈ 1/PROBE)
EPS = float(np.finfo(np.float64).eps)
WARN_ERROR = 1e-8  # estimated float64 relative error above which a solution warns


class IllConditionedWarning(UserWarning):
    """An exact solution evaluated in float64 where the problem itself amplifies rounding (near a saddle):
    the message gives the estimated relative error."""


def ill_conditioned(kappa: float, steps: int, what: str, where: str) -> None:
    """Warn when relative perturbations of the init are amplified κ-fold along the solution and the
    estimated float64 error κ·u·steps exceeds 1e-8: rounding of relative size u enters at each of the
    `steps` steps, and every float64 method shares the amplification — it is the problem's."""
    err = kappa * EPS * max(steps, 1)
    if err > WARN_ERROR:
        warnings.warn(f"{what} is ill-conditioned here ({where}): float64 rounding is amplified {kappa:.1e}-fold "
                      f"over {steps} steps, estimated relative error ~{err:.1e}", IllConditionedWarning, stacklevel=3)


def as_array(x: ArrayLike, name: str, ndim: int | None = None) -> np.ndarray:
    """float64 numpy copy of a tensor/array, with an optional dimension check."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()  # type: ignore[union-attr]
    arr = np.array(x, dtype=np.float64)
    require(np.all(np.isfinite(arr)), f"{name} has non-finite entries")
    if ndim is not None:
        require(arr.ndim == ndim, f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    return arr


def whitened(x: ArrayLike, tol: float = WHITENED_TOL) -> np.ndarray:
    """Check the precondition (1/n) XᵀX = I_d (rows of X are samples) and return X as float64."""
    X = as_array(x, "x", 2)
    n, d = X.shape
    err = float(np.abs(X.T @ X / n - np.eye(d)).max())
    if not err <= tol:
        raise LazyrichError(f"precondition 'whitened inputs' violated: (1/n)XᵀX differs from I by {err:.2e} "
                            f"(> {tol:g}); use lazyrich.tasks.whitened_regression or whiten X first")
    return X


def regression_moments(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, float]:
    """(Σ_yx = (1/n) Yᵀ X  [c × d], ½ mean ||y||²) of a data set; y may be [n] or [n, c]."""
    X = as_array(x, "x", 2)
    Y = as_array(y, "y")
    Y = Y.reshape(len(Y), -1)
    require(len(Y) == len(X), f"x has {len(X)} samples but y has {len(Y)}")
    return Y.T @ X / len(X), 0.5 * float((Y**2).sum(1).mean())


def positive(value: float, name: str) -> float:
    v = float(value)
    require(np.isfinite(v) and v > 0, f"{name}={value} must be a positive finite number")
    return v


def balanced(q: np.ndarray, lam: float, what: str, tol: float = 1e-8) -> None:
    """Check the precondition Q = λ I (relative to max(1, |Q|))."""
    scale = max(1.0, float(np.abs(q).max()))
    err = float(np.abs(q - lam * np.eye(q.shape[0])).max()) / scale
    if not err <= tol:
        raise LazyrichError(f"precondition '{what}' violated: Q − λI is off by {err:.2e} (relative, > {tol:g}); "
                            "initialise with lazyrich.param.init.lambda_balanced (or balanced_chain)")


def linear_regression_inputs(ens, data, member: int, theory: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Shared precondition of the linear-network solutions: unit multipliers for `member` and whitened
    inputs. Returns (X, Σ_yx rows, ½ mean ||y||² floor term)."""
    for k, m in ens.multipliers.items():
        require(bool((m[member] == 1).all()), f"the {theory} theory assumes multiplier 1; {k} has {float(m[member])}")
    X = whitened(data.x)
    sigma, half_y2 = regression_moments(X, data.y)
    return X, sigma, half_y2
