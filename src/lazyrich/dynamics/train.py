"""Discrete training of an ensemble (GD, SGD, momentum, Adam, Muon, spectral) with observers,
schedules, weight decay and per-member divergence handling."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..conventions import mse
from ..ensemble import Ensemble, predict
from ..errors import require
from ..models.mlp import Params, forward, mse_grads
from ..observe.base import Data, Observer, State, make
from ..records import Recorder, log_steps
from . import fused, optim
from .optim import OptimizerSpec
from .schedules import Schedule

DIVERGENCE_FACTOR = 1e8  # loss above this × max(initial loss, 1e-8) counts as diverged


@dataclass
class Run:
    """Result of training: final ensemble, init params, records, per-member status."""

    ens: Ensemble
    params0: Params
    recorder: Recorder
    diverged_step: np.ndarray  # -1 where the member did not diverge
    time: Tensor
    extra: dict = field(default_factory=dict)

    @property
    def members(self) -> pd.DataFrame:
        m = self.ens.members.reset_index(drop=True).copy()
        m["status"] = np.where(self.diverged_step >= 0, "diverged", "ok")
        m["diverged_step"] = self.diverged_step
        return m

    def records(self, config: bool = True) -> pd.DataFrame:
        """The tidy long table; `config=True` joins the members' config columns."""
        return self.recorder.table(self.ens.members if config else None)

    def final(self, observable: str | Sequence[str], layer: str | None = None, step: int | None = None,
              config: bool = True) -> pd.DataFrame:
        """One row per member: its configuration (τ, δ, lr, seed, …; `config=False` leaves it out), its
        status where any member diverged, and the value (index 0) of each observable at the last recorded
        step (or at `step`). Columns are named by the observable, `name[layer]` for per-layer ones (all
        layers, or only `layer`, then named by the observable). E.g. ``run.final("loss")["loss"]``."""
        names = [observable] if isinstance(observable, str) else list(observable)
        r = self.recorder.table()
        out = self.members if config else pd.DataFrame(index=range(self.ens.size))
        if config and not (self.diverged_step >= 0).any():
            out = out.drop(columns=["status", "diverged_step"])
        for name in names:
            v = r[(r.observable == name) & (r["index"] == 0)]
            if layer is not None:
                v = v[v.layer == layer]
            require(len(v) > 0, f"observable {name!r}{'' if layer is None else f' (layer {layer!r})'} was not recorded: "
                                f"record it with observers=[...] or pick one of {', '.join(sorted(set(r.observable.astype(str))))}")
            at = v.step.max() if step is None else step
            require(bool((v.step == at).any()), f"{name!r} was not recorded at step {at}: recorded steps are "
                                                f"{', '.join(map(str, sorted(set(v.step))))}")
            v = v[v.step == at]
            for lay in sorted(set(v.layer.astype(str))):
                col = name if layer is not None or lay == "" else f"{name}[{lay}]"
                out[col] = v[v.layer == lay].set_index("member")["value"].reindex(range(self.ens.size)).to_numpy()
        out.index.name = "member"
        return out


def loss_and_grads(ens: Ensemble, params: Params, x: Tensor, y: Tensor, active: Tensor | None,
                   autograd: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-member loss [E] and gradients (hand-written backprop; `autograd=True` for the reference).
    Inactive members get zero gradients and never leak NaNs into others; `active=None`: all active."""
    if not autograd:
        offset = None if ens.center is None else forward(ens.net, ens.center, x, ens.multipliers)
        weight = None if active is None else active.to(x.dtype)
        loss, grads = mse_grads(ens.net, params, x, y, ens.multipliers, ens.loss_scale, weight, offset)
        return loss, grads
    with torch.enable_grad():
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        loss = mse(predict(ens, leaves, x), y, ens.loss_scale)
        total = loss.sum() if active is None else torch.where(active, loss, torch.zeros_like(loss)).sum()
        grads = torch.autograd.grad(total, list(leaves.values()))
    return loss.detach(), dict(zip(leaves, grads))


def _batch(data: Data, idx: Tensor | None) -> tuple[Tensor, Tensor]:
    if idx is None:
        return data.x, data.y
    return data.x.index_select(-2, idx), data.y.index_select(-2, idx)


def _where(mask: Tensor, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(mask.reshape(-1, *[1] * (new.dim() - 1)), new, old)


CHECK_EVERY = 64  # steps between bulk divergence checks (a host sync each); a hit replays the window step by step


def train(ens: Ensemble, data: Data, steps: int, optimizer: OptimizerSpec | str = "gd",
          schedule: Schedule | None = None, record: Sequence[int] | None = None,
          observers: Iterable[str | Observer] = ("loss", "conserved"), data_seed: int = 0,
          divergence: float = DIVERGENCE_FACTOR, kernel: str = "auto", check_every: int = CHECK_EVERY,
          precision: str | None = None) -> Run:
    """Train every member for `steps` updates, recording observers at the steps in `record`
    (default: log-spaced). Members share the minibatch order (common random numbers, from `data_seed`).
    A member whose loss turns non-finite or exceeds `divergence` × its initial loss is frozen at its
    last parameters and flagged with that step; the others continue bitwise unaffected.

    `kernel`: "auto" (default) is "fused" where it applies, else "batched". "fused" uses the
    fast path of `dynamics.fused` (one GEMM across all members; any depth, biases, not centred);
    a member's numbers then agree across ensemble sizes to the last bits (docs/guarantees.md §6).
    "batched" computes one GEMM per member, so member e equals the same configuration run alone
    bitwise (any depth). Divergence is checked in bulk every `check_every` steps (one host sync);
    when a member diverged in the window, the window is replayed step by step from its start, so the
    member is frozen at exactly the step it diverged, as with a check at every step.

    "triton" (`dynamics.triton_step`) fuses the whole GD/SGD step of a float32 two-layer net into one
    Triton launch (forward, backward, update, divergence mask) in `precision` "fp32" (default),
    "tf32" or "3xtf32"; it needs CUDA (or TRITON_INTERPRET=1 on CPU, slow) and agrees with "fused" to
    fp32 rounding (≈1e-7 relative per step), not bitwise. "auto" picks it on CUDA when triton imports
    and the run qualifies; anywhere else "auto" is unchanged."""
    spec = OptimizerSpec(kind=optimizer) if isinstance(optimizer, str) else optimizer
    schedule = schedule or Schedule()
    require(steps >= 0, f"steps={steps} must be non-negative")
    require(check_every >= 1, f"check_every={check_every} must be at least 1")
    n = data.x.shape[-2]
    require(data.y.shape[-2] == n, f"x has {n} samples but y has {data.y.shape[-2]}: they must match")
    require(spec.batch_size is None or spec.batch_size <= n, f"batch_size {spec.batch_size} exceeds the {n} training samples")
    require(kernel in ("auto", "batched", "fused", "triton"), f"kernel={kernel!r}: choose 'auto' (default), 'batched' "
            "(bitwise per member), 'fused' (fast two-layer path) or 'triton' (fused GPU step)")
    fused_step = _triton_stepper(ens, data.x, spec, kernel, precision)  # None: gradients, then optim.step
    grads_of = fused.prepare(ens, data.x, data.y) if kernel != "batched" and fused.supports(ens, data.x) else loss_and_grads
    rec_steps = sorted(set(log_steps(steps) if record is None else [int(k) for k in record if 0 <= k <= steps]))
    obs = make(observers)
    E = ens.size
    params0 = {k: v.clone() for k, v in ens.params.items()}
    params = dict(ens.params)
    state = optim.init_state(spec, params)
    active = torch.ones(E, dtype=torch.bool, device=ens.base_lr.device)
    diverged = np.full(E, -1, dtype=np.int64)
    time = torch.zeros_like(ens.base_lr)
    gen = torch.Generator().manual_seed(int(data_seed))
    sample = spec.kind != "gd" and spec.batch_size is not None and spec.batch_size < n
    recorder, memory = Recorder(), {}
    bound = None
    all_active = True
    rec_set = set(rec_steps)
    decay = {k: v for k, v in ens.weight_decay.items() if bool((v != 0).any())}  # skip zero-decay passes
    factors = [schedule.factor(k, steps) for k in range(steps)]
    per_factor: dict = {}  # (factor, frozen members) -> (lr table, time increment): computed once, not every step
    # Windows of steps between divergence checks. Nothing is mutated in place, so a window's start
    # is kept by reference; the arithmetic of a window without a new divergence is exactly that of
    # per-step checks (the same ops on the same mask), so replaying only where one occurred is exact.
    k, exact, frozen = 0, False, 0  # frozen: how many times the mask changed (keys the cached tables)
    while True:
        k0, snap, losses = k, (params, state, time, gen.get_state() if sample else None), []
        while True:
            idx = torch.randperm(n, generator=gen)[: spec.batch_size].to(data.x.device) if sample else None
            x, y = _batch(data, idx)
            if fused_step is None:
                loss, grads = grads_of(ens, params, x, y, None if all_active else active)
            else:  # loss at params and the already-updated params in one launch
                loss, stepped = fused_step(params, x, y, factors[k] if k < steps else 0.0, None if all_active else active)
            if bound is None:
                bound = divergence * torch.clamp(loss, min=1e-8)
            end = k in rec_set or k == steps or k - k0 + 1 >= check_every
            if exact:  # replaying: the per-step check
                bad = active & (~torch.isfinite(loss) | (loss > bound))
                if bool(bad.any()):
                    diverged[bad.cpu().numpy()] = k
                    active = active & ~bad
                    all_active, frozen = False, frozen + 1
            else:
                losses.append(loss)
                if end:
                    window = torch.stack(losses)
                    if bool((active & (~torch.isfinite(window) | (window > bound))).any()):
                        k, exact = k0, True  # a member diverged in this window: replay it step by step
                        params, state, time, gen_state = snap
                        if sample:
                            gen.set_state(gen_state)
                        continue
            if k in rec_set:
                cur = ens.with_params(params)
                st = State(cur, params0, data, k, time, {} if sample else {"loss": loss}, memory)
                for o in obs:
                    for ob in o(st):
                        recorder.add(k, time, ob.observable, ob.layer, ob.value)
            if k == steps:
                return Run(ens.with_params(params), params0, recorder, diverged, time)
            f = factors[k]
            key = (f, frozen)
            if key not in per_factor:
                if len(per_factor) > 4:  # a decaying schedule has a new factor every step: keep a few
                    per_factor.clear()
                lr = {name: optim._col(v if f == 1.0 else v * f, params[name])  # v·1.0 is v: one pass less
                      for name, v in ens.lr.items()}
                inc = ens.base_lr * f if all_active else torch.where(active, ens.base_lr * f, torch.zeros_like(time))
                per_factor[key] = (lr, inc)
            lr, inc = per_factor[key]
            if fused_step is None:
                new_params, new_state = optim.step(spec, params, grads, state, lr, decay)
            else:
                new_params, new_state = stepped, state
            if all_active:  # common case: no masking pass over every tensor
                params, state = new_params, new_state
            else:
                params = {name: _where(active, new_params[name], params[name]) for name in params}
                state = {name: {s: (_where(active, v, state[name][s]) if v.dim() else v) for s, v in st_.items()}
                         for name, st_ in new_state.items()}
            time = time + inc
            k += 1
            if end:
                exact = False
                break


def _triton_stepper(ens: Ensemble, x: Tensor, spec: OptimizerSpec, kernel: str, precision: str | None):
    """The fused Triton step when `kernel` asks for it ("triton", or "auto" on CUDA where it applies), else None."""
    require(precision is None or kernel in ("triton", "auto"),
            f"precision={precision!r} applies to kernel='triton' only (kernel={kernel!r} computes in the ensemble's dtype)")
    if kernel not in ("triton", "auto"):
        return None
    if kernel == "auto" and ens.params["W1"].device.type != "cuda":
        return None
    from . import triton_step
    why = triton_step.unsupported(ens, x, spec.kind)
    if kernel == "auto" and why is not None:
        return None
    require(why is None, why or "")
    if precision is not None:
        require(precision in triton_step.PRECISIONS,
                f"precision={precision!r}: choose one of {', '.join(triton_step.PRECISIONS)}")
    return triton_step.prepare(ens, spec.weight_decay_mode == "decoupled", precision or triton_step.DEFAULT_PRECISION)
