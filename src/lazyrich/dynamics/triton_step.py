"""The fused Triton GD step of two-layer ensembles (`train(..., kernel="triton")`).

One kernel launch per step does what `dynamics.fused` + `optim.step` do with ~15 launches: for
every member (one program each) the forward pass, the MSE residual, ∇A = m_A·gᵀH and
∇W = m_W·((g A m_A) ⊙ σ'(Z))ᵀ x accumulated over sample tiles in registers (the [h, n]
pre-activations never reach global memory), then the update W ← W − η_W·f_k·(∇W + κ_W W)
(coupled decay; decoupled: W(1 − η f κ) − η f ∇W), skipped for members frozen by divergence.

Precision of the two big products (`precision`):
  "fp32"   exact fp32 FMA (tl.dot input_precision="ieee"): the reference mode, ≈ the PyTorch path.
  "tf32"   one TF32 tensor-core product (10-bit mantissa inputs, fp32 accumulate): relative
           error ≈ 2⁻¹¹ per product, fastest.
  "3xtf32" split-precision compensation (input_precision="tf32x3": a = a_hi + a_lo, three TF32
           products a_hi·b_hi + a_hi·b_lo + a_lo·b_hi): ≈ fp32 accuracy on tensor cores.
Default: "fp32" everywhere — the tf32 modes' trajectory error against float64 has not been
measured on a GPU yet (bench/RESULTS.md), so no faster mode is the default until it has.

Runs on CUDA tensors, or on CPU tensors in Triton's interpreter (TRITON_INTERPRET=1, slow: tests
only). The interpreter ignores `input_precision` (numpy fp32 matmul), so on CPU only the fp32
semantics can be checked. Supports: float32 two-layer nets without biases, not centred, any
activation of `models.activations`, MSE, optimizer "gd" or "sgd" (full batch or minibatch).
"""
from __future__ import annotations

import importlib
from typing import Callable

import torch
from torch import Tensor

from ..errors import require
from ..models.activations import LEAKY_SLOPE, NAMES, check
from ..models.mlp import Params

PRECISIONS = {"fp32": "ieee", "tf32": "tf32", "3xtf32": "tf32x3"}
DEFAULT_PRECISION = "fp32"
BLOCK_N = 16  # samples per tile (tl.dot's minimum); sm_90 ptxas, d = 100, h = 50, 8 warps: tf32 no spills at 16, 256 B at 32

_KERNELS: dict = {}


def triton_missing() -> str | None:
    """Why triton cannot be used here (None when it can be imported)."""
    try:
        import triton  # noqa: F401
    except ImportError as exc:  # the `gpu` extra is not installed
        return f"triton is not installed ({exc}); install the gpu extra: pip install -e '.[gpu]'"
    return None


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1)."""
    from triton import knobs
    return bool(knobs.runtime.interpret)


def _kernels():
    """The kernel module, (re)imported so that it matches the current TRITON_INTERPRET setting:
    triton.jit picks the interpreter or the compiler when the kernel is decorated."""
    mode = interpreting()
    if _KERNELS.get("mode") is not mode:
        from . import _triton_kernels
        _KERNELS["module"], _KERNELS["mode"] = importlib.reload(_triton_kernels), mode
    return _KERNELS["module"]


def unsupported(ens: object, x: Tensor, optimizer_kind: str = "gd") -> str | None:
    """Why `kernel="triton"` cannot train `ens` on `x` (None when it can), with what to use instead."""
    missing = triton_missing()
    if missing:
        return f"kernel='triton' needs triton: {missing}; or use kernel='fused'"
    net = getattr(ens, "net", None)
    if net is None or net.depth != 2 or net.bias or net.bias_out or getattr(ens, "center", None) is not None:
        return "kernel='triton' supports two-layer nets without biases and not centred: use kernel='fused' or 'batched'"
    if optimizer_kind not in ("gd", "sgd"):
        return f"kernel='triton' fuses plain GD/SGD updates, not {optimizer_kind!r}: use kernel='fused' for this optimizer"
    w = ens.params["W1"]  # type: ignore[attr-defined]
    if w.dtype != torch.float32:
        return f"kernel='triton' computes in float32, the ensemble is {w.dtype}: use dtype=torch.float32 or kernel='fused'"
    if w.device.type != "cuda" and not interpreting():
        return (f"kernel='triton' needs a CUDA device (the ensemble is on {w.device.type}): use kernel='fused' on CPU "
                "(TRITON_INTERPRET=1 runs it in Triton's slow CPU interpreter, for tests)")
    if x.dim() not in (2, 3):
        return f"kernel='triton' needs x as [n, d] or [E, n, d], got {x.dim()} dimensions"
    return None


def _block(size: int) -> int:
    return max(16, 1 << (max(size, 1) - 1).bit_length())


def _per_member(v: Tensor | float, E: int, like: Tensor) -> Tensor:
    v = torch.as_tensor(v, dtype=torch.float32, device=like.device)
    return (v.expand(E) if v.dim() == 0 else v.reshape(E)).contiguous()


def two_layer_gd_step(params: Params, x: Tensor, y: Tensor, multipliers: dict[str, Tensor | float], lr: dict[str, Tensor | float],
                      weight_decay: dict[str, Tensor | float] | None = None, factor: float = 1.0, act: str = "relu",
                      loss_scale: float = 0.5, active: Tensor | None = None, decoupled: bool = False,
                      precision: str = DEFAULT_PRECISION) -> tuple[Tensor, Params]:
    """One fused GD step: (loss [E] at `params`, new params). W1: [E, h, d], W2: [E, c, h] float32;
    x: [n, d] shared or [E, n, d]; y: [n, c] or [E, n, c]; lr, weight_decay, multipliers: per tensor,
    [E] or scalars (lr before the schedule `factor`). Members with `active` False keep their params."""
    require(precision in PRECISIONS, f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
    check(act)
    w, a = params["W1"], params["W2"]
    require(w.dtype == torch.float32 and a.dtype == torch.float32, f"the triton step computes in float32, got {w.dtype}")
    E, h, d = w.shape
    c = a.shape[1]
    n = x.shape[-2]
    require(x.shape[-1] == d and y.shape[-2] == n and y.shape[-1] == c,
            f"shapes do not match: W1 {tuple(w.shape)}, W2 {tuple(a.shape)}, x {tuple(x.shape)}, y {tuple(y.shape)}")
    k = _kernels()
    x, y, w, a = (t.to(torch.float32).contiguous() for t in (x, y, w, a))
    wd = weight_decay or {}
    vec = {name: _per_member(v, E, w) for name, v in (("mw", multipliers.get("W1", 1.0)), ("ma", multipliers.get("W2", 1.0)),
                                                        ("lrw", lr["W1"]), ("lra", lr["W2"]),
                                                        ("wdw", wd.get("W1", 0.0)), ("wda", wd.get("W2", 0.0)))}
    w_out, a_out = torch.empty_like(w), torch.empty_like(a)
    loss = torch.empty(E, dtype=torch.float32, device=w.device)
    act_mask = active.to(torch.int8).contiguous() if active is not None else loss  # any pointer when unused
    k.two_layer_gd_step[(E,)](
        w, a, x, y, w_out, a_out, loss, vec["mw"], vec["ma"], vec["lrw"], vec["lra"], vec["wdw"], vec["wda"], act_mask,
        n, d, h, n * d if x.dim() == 3 else 0, n * c if y.dim() == 3 else 0, 2.0 * loss_scale / n, float(loss_scale),
        float(factor), C=c, ACT=k.ACT_CODES[act], SLOPE=LEAKY_SLOPE, PRECISION=PRECISIONS[precision],
        DECOUPLED=bool(decoupled), HAS_ACTIVE=active is not None,
        BLOCK_N=BLOCK_N, BLOCK_H=_block(h), BLOCK_D=_block(d), BLOCK_C=1 << (c - 1).bit_length(),
        num_warps=_warps(h, d))
    return loss, {"W1": w_out, "W2": a_out}


_ARGS = ("W", "A", "X", "Y", "W_OUT", "A_OUT", "LOSS", "MW", "MA", "LRW", "LRA", "WDW", "WDA", "ACTIVE", "n", "d", "h",
         "stride_xe", "stride_ye", "grad_scale", "loss_scale", "factor")
_TYPES = ("*fp32",) * 13 + ("*i8",) + ("i32",) * 5 + ("fp32",) * 3


def compile_for_gpu(h: int, d: int, c: int = 1, act: str = "relu", precision: str = DEFAULT_PRECISION,
                    arch: int = 90, active: bool = True) -> object:
    """Compile the kernel ahead of time for CUDA compute capability `arch` (90: H100) without a GPU
    (Triton's bundled ptxas): its PTX, cubin and metadata, for tests and inspection on CPU machines."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    require(precision in PRECISIONS, f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
    k = _kernels()
    require(not interpreting(), "compile_for_gpu needs the compiler: unset TRITON_INTERPRET")
    consts = dict(C=c, ACT=k.ACT_CODES[check(act)], SLOPE=LEAKY_SLOPE, PRECISION=PRECISIONS[precision], DECOUPLED=False,
                  HAS_ACTIVE=active, BLOCK_N=BLOCK_N, BLOCK_H=_block(h), BLOCK_D=_block(d), BLOCK_C=1 << (c - 1).bit_length())
    sig = {**dict(zip(_ARGS, _TYPES)), **{name: "constexpr" for name in consts}}
    names = list(sig)
    src = ASTSource(fn=k.two_layer_gd_step, signature=sig, constexprs={(names.index(n),): v for n, v in consts.items()})
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"num_warps": _warps(h, d)})


def _warps(h: int, d: int) -> int:
    return 8 if _block(h) * _block(d) >= 8192 else 4  # the ∇W accumulator lives in registers: more warps, fewer each


def prepare(ens: object, decoupled: bool = False, precision: str = DEFAULT_PRECISION
            ) -> Callable[[Params, Tensor, Tensor, float, Tensor | None], tuple[Tensor, Params]]:
    """`step(params, x, y, factor, active) -> (loss, new params)` for `ens`, its per-member constants
    (multipliers, learning rates, weight decays as [E] float32) made once."""
    E = ens.size  # type: ignore[attr-defined]
    w = ens.params["W1"]  # type: ignore[attr-defined]
    mult = {k: _per_member(ens.multipliers.get(k, 1.0), E, w) for k in ("W1", "W2")}  # type: ignore[attr-defined]
    lr = {k: _per_member(ens.lr[k], E, w) for k in ("W1", "W2")}  # type: ignore[attr-defined]
    wd = {k: _per_member(ens.weight_decay.get(k, 0.0), E, w) for k in ("W1", "W2")}  # type: ignore[attr-defined]
    act, scale = ens.net.activation, ens.loss_scale  # type: ignore[attr-defined]

    def step(params: Params, x: Tensor, y: Tensor, factor: float, active: Tensor | None) -> tuple[Tensor, Params]:
        return two_layer_gd_step(params, x, y, mult, lr, wd, factor, act, scale, active, decoupled, precision)
    return step


__all__ = ["two_layer_gd_step", "prepare", "unsupported", "compile_for_gpu", "PRECISIONS", "DEFAULT_PRECISION", "NAMES"]
