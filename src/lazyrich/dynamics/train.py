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

    def final(self, observable: str | Sequence[str], layer: str = "", step: int | None = None,
              config: bool = True) -> pd.DataFrame:
        """One row per member: its configuration (τ, δ, lr, seed, …; `config=False` leaves it out), its
        status where any member diverged, and one column per observable holding the value (index 0) at
        the last recorded step (or at `step`). E.g. ``run.final("loss")["loss"]``."""
        names = [observable] if isinstance(observable, str) else list(observable)
        r = self.recorder.table()
        out = self.members if config else pd.DataFrame(index=range(self.ens.size))
        if config and not (self.diverged_step >= 0).any():
            out = out.drop(columns=["status", "diverged_step"])
        for name in names:
            v = r[(r.observable == name) & (r.layer == layer) & (r["index"] == 0)]
            require(len(v) > 0, f"observable {name!r} (layer {layer!r}) was not recorded: record it with "
                                f"observers=[...] or pick one of {', '.join(sorted(set(r.observable.astype(str))))}")
            at = v.step.max() if step is None else step
            require(bool((v.step == at).any()), f"{name!r} was not recorded at step {at}: recorded steps are "
                                                f"{', '.join(map(str, sorted(set(v.step))))}")
            out[name] = v[v.step == at].set_index("member")["value"].reindex(range(self.ens.size)).to_numpy()
        out.index.name = "member"
        return out


def loss_and_grads(ens: Ensemble, params: Params, x: Tensor, y: Tensor, active: Tensor,
                   autograd: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-member loss [E] and gradients (hand-written backprop; `autograd=True` for the reference).
    Inactive members get zero gradients and never leak NaNs into others."""
    if not autograd:
        offset = None if ens.center is None else forward(ens.net, ens.center, x, ens.multipliers)
        loss, grads = mse_grads(ens.net, params, x, y, ens.multipliers, ens.loss_scale, active.to(x.dtype), offset)
        return loss, grads
    with torch.enable_grad():
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        loss = mse(predict(ens, leaves, x), y, ens.loss_scale)
        total = torch.where(active, loss, torch.zeros_like(loss)).sum()
        grads = torch.autograd.grad(total, list(leaves.values()))
    return loss.detach(), dict(zip(leaves, grads))


def _batch(data: Data, idx: Tensor | None) -> tuple[Tensor, Tensor]:
    if idx is None:
        return data.x, data.y
    return data.x.index_select(-2, idx), data.y.index_select(-2, idx)


def _where(mask: Tensor, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(mask.reshape(-1, *[1] * (new.dim() - 1)), new, old)


def train(ens: Ensemble, data: Data, steps: int, optimizer: OptimizerSpec | str = "gd",
          schedule: Schedule | None = None, record: Sequence[int] | None = None,
          observers: Iterable[str | Observer] = ("loss", "conserved"), data_seed: int = 0,
          divergence: float = DIVERGENCE_FACTOR, kernel: str = "batched") -> Run:
    """Train every member for `steps` updates, recording observers at the steps in `record`
    (default: log-spaced). Members share the minibatch order (common random numbers, from `data_seed`).
    A member whose loss turns non-finite or exceeds `divergence` × its initial loss is frozen at its
    last parameters and flagged with that step; the others continue bitwise unaffected.

    `kernel`: "batched" (default) computes one GEMM per member, so member e equals the same
    configuration run alone bitwise; "fused" uses the two-layer fast path of `dynamics.fused` (one
    GEMM across all members, 2-4× faster at Kunin Fig. 1 size) where it applies (two layers, no
    biases, not centred) — equal to "batched" to rounding (1e-12 in float64), not bitwise."""
    spec = OptimizerSpec(kind=optimizer) if isinstance(optimizer, str) else optimizer
    schedule = schedule or Schedule()
    require(steps >= 0, f"steps={steps} must be non-negative")
    n = data.x.shape[-2]
    require(data.y.shape[-2] == n, f"x has {n} samples but y has {data.y.shape[-2]}: they must match")
    require(spec.batch_size is None or spec.batch_size <= n, f"batch_size {spec.batch_size} exceeds the {n} training samples")
    require(kernel in ("batched", "fused"), f"kernel={kernel!r}: choose 'batched' (bitwise per member) or 'fused' (fast two-layer path)")
    grads_of = fused.loss_and_grads if kernel == "fused" and fused.supports(ens, data.x) else loss_and_grads
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
    recorder, memory = Recorder(), {}
    bound = None
    all_active = True
    rec_set = set(rec_steps)
    decay = {k: v for k, v in ens.weight_decay.items() if bool((v != 0).any())}  # skip zero-decay passes
    for k in range(steps + 1):
        idx = None
        if spec.kind != "gd" and spec.batch_size is not None and spec.batch_size < n:
            idx = torch.randperm(n, generator=gen)[: spec.batch_size].to(data.x.device)
        x, y = _batch(data, idx)
        loss, grads = grads_of(ens, params, x, y, active)
        full_loss = loss if idx is None else None
        if bound is None:
            bound = divergence * torch.clamp(loss, min=1e-8)
        bad = active & (~torch.isfinite(loss) | (loss > bound))
        if bool(bad.any()):
            diverged[bad.cpu().numpy()] = k
            active = active & ~bad
            all_active = False
        if k in rec_set:
            cur = ens.with_params(params)
            st = State(cur, params0, data, k, time, {"loss": full_loss} if full_loss is not None else {}, memory)
            for o in obs:
                for ob in o(st):
                    recorder.add(k, time, ob.observable, ob.layer, ob.value)
        if k == steps:
            break
        f = schedule.factor(k, steps)
        lr = ens.lr if f == 1.0 else {name: v * f for name, v in ens.lr.items()}  # v·1.0 is v: one pass less
        new_params, new_state = optim.step(spec, params, grads, state, lr, decay)
        if all_active:  # common case: no masking pass over every tensor
            params, state = new_params, new_state
        else:
            params = {name: _where(active, new_params[name], params[name]) for name in params}
            state = {name: {s: (_where(active, v, state[name][s]) if v.dim() else v) for s, v in st_.items()}
                     for name, st_ in new_state.items()}
        time = time + (ens.base_lr * f if all_active else torch.where(active, ens.base_lr * f, torch.zeros_like(time)))
    return Run(ens.with_params(params), params0, recorder, diverged, time)
