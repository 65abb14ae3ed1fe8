"""Gradient flow dθ_p/dt = −r_p (∇_p L + κ_p θ_p) by an adaptive Runge-Kutta solver (torchdiffeq).

Rates r_p = lr_p / base_lr (time is base-lr time, so GD with base lr η approximates GF at t = kη).
The error norm is the max over members of each member's RMS error ratio, so a shared step meets
every member's tolerance. A member whose loss turns non-finite or exceeds the divergence bound is
frozen (zero velocity) and flagged with the time at which that happened.

Cost: one gradient per stage (13 per dopri8 step; ≈ 58 per accepted step with ReLU, whose kinks reject
steps), by the fused pass where it applies (`kernel`, as in `train`). Non-smooth activations (ReLU) shrink
steps at every gate flip, and a gate that slides along its kink (Filippov sliding) stalls the solver
(`max_steps` then raises a clear error); GD with a small learning rate is the practical flow there.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..ensemble import Ensemble
from ..errors import LazyrichError, require
from ..observe.base import Data, Observer, State, make
from ..records import Recorder
from . import fused
from .train import DIVERGENCE_FACTOR, Run, loss_and_grads


def _pack(params: dict[str, Tensor]) -> Tensor:
    return torch.cat([v.reshape(v.shape[0], -1) for v in params.values()], 1)


def _unpack(y: Tensor, like: dict[str, Tensor]) -> dict[str, Tensor]:
    out, i = {}, 0
    for k, v in like.items():
        m = v[0].numel()
        out[k] = y[:, i:i + m].reshape(v.shape)
        i += m
    return out


def flow(ens: Ensemble, data: Data, times: Sequence[float], observers: Iterable[str | Observer] = ("loss", "conserved"),
         rtol: float = 1e-10, atol: float = 1e-12, method: str = "dopri8", divergence: float = DIVERGENCE_FACTOR,
         max_steps: int = 1_000_000, kernel: str = "auto") -> Run:
    """Integrate gradient flow and record observers at `times` (ascending, starting at 0).
    The record's `step` column is the index of the recorded time. `kernel` as in `train`: "auto" (default)
    evaluates the right-hand side by the fused pass where it applies (any MLP, not centred), "batched"
    per member (bitwise independent of the other members); they agree to rounding."""
    from torchdiffeq import odeint  # imported here: it costs ~0.5 s at every CLI start

    dev = ens.base_lr.device
    t = torch.as_tensor(list(times), dtype=ens.base_lr.dtype, device=dev)
    require(t.numel() >= 1 and float(t[0]) == 0.0 and bool((t[1:] > t[:-1]).all()),
            "times must start at 0 and increase strictly, e.g. [0, 0.5, 1, 2]")
    rates = ens.rates()
    E = ens.size
    frozen = torch.zeros(E, dtype=torch.bool, device=dev)
    frozen_at = torch.full((E,), -1.0, dtype=torch.float64, device=dev)  # on the device: no host sync per stage
    require(kernel in ("auto", "batched", "fused"),
            f"kernel={kernel!r}: choose 'auto' (default), 'batched' (bitwise per member) or 'fused' (one pass over members)")
    require(kernel != "fused" or fused.supports(ens, data.x), "kernel='fused' needs an MLP ensemble that is not centred: "
            "use kernel='auto' or 'batched'")
    active_all = torch.ones(E, dtype=torch.bool, device=dev)
    loss0, _ = loss_and_grads(ens, ens.params, data.x, data.y, active_all)
    use_fused = kernel != "batched" and fused.supports(ens, data.x)
    grads_of = fused.prepare(ens, data.x, data.y) if use_fused else loss_and_grads
    every = None if use_fused else active_all  # the fused pass skips its masking when all members are active
    bound = divergence * torch.clamp(loss0, min=1e-8)

    rate = {k: rates[k].reshape(-1, *[1] * (v.dim() - 1)) for k, v in ens.params.items()}  # shaped once
    decay = {k: ens.weight_decay[k].reshape(-1, *[1] * (v.dim() - 1)) for k, v in ens.params.items()}
    zero = torch.zeros((), dtype=ens.base_lr.dtype, device=dev)

    def rhs(tt: Tensor, y: Tensor) -> Tensor:
        p = _unpack(y, ens.params)
        if use_fused:  # the fused pass views each member block as one matrix: slices of y are not contiguous
            p = {k: v.contiguous() for k, v in p.items()}
        loss, g = grads_of(ens, p, data.x, data.y, every)
        bad = ~torch.isfinite(loss) | (loss > bound)
        new = bad & ~frozen
        frozen_at.copy_(torch.where(new, tt.to(frozen_at.dtype), frozen_at))
        frozen.logical_or_(new)
        vel = _pack({k: -rate[k] * (g[k] + decay[k] * p[k]) for k in g})
        return torch.where(frozen.reshape(-1, 1), zero, vel)

    def norm(ratio: Tensor) -> Tensor:
        if ratio.dim() == 2 and ratio.shape[0] == E:
            return ratio.pow(2).mean(1).sqrt().amax()
        return ratio.pow(2).mean().sqrt()

    y0 = _pack(ens.params)
    if t.numel() == 1:
        ys = y0.unsqueeze(0)
    else:
        try:
            ys = odeint(rhs, y0, t, rtol=rtol, atol=atol, method=method, options={"norm": norm, "max_num_steps": max_steps, "step_t": t[1:]})  # land on record times, no interpolant
        except AssertionError as exc:  # torchdiffeq signals step exhaustion by assertion
            if "max_num_steps" not in str(exc):
                raise
            raise LazyrichError(f"gradient flow needed more than max_steps={max_steps} solver steps (a ReLU gate sliding along "
                                "its kink stalls adaptive steps): shorten the horizon, loosen rtol, or use GD with a small lr") from None
    obs = make(observers)
    recorder, memory = Recorder(), {}
    params0 = {k: v.clone() for k, v in ens.params.items()}
    for i in range(t.numel()):
        cur = ens.with_params(_unpack(ys[i], ens.params))
        time = t[i].expand(E)
        st = State(cur, params0, data, i, time, {}, memory)
        for o in obs:
            for ob in o(st):
                recorder.add(i, time, ob.observable, ob.layer, ob.value)
    frozen_at = frozen_at.cpu().numpy()
    diverged = np.where(frozen_at >= 0, np.searchsorted(t.cpu().numpy(), frozen_at), -1).astype(np.int64)
    run = Run(ens.with_params(_unpack(ys[-1], ens.params)), params0, recorder, diverged, t[-1].expand(E).clone())
    run.extra["diverged_time"] = frozen_at
    return run
