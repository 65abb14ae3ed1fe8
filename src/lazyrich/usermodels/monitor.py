"""A lazy/rich regime monitor for a plain PyTorch training loop (two lines to add).

    monitor = RegimeMonitor(model, probe_x)       # before training: snapshots θ₀, K₀ on the probe
    ...  optimizer.step(); monitor.step()          # after each update (records every `every` steps)
    print(monitor.verdict())                       # lazy / rich / transitional, with the numbers

On a fixed probe batch it records the kernel distance S(0, t) of the empirical NTK (weighted by the
per-tensor lr scales of a parametrized model), the relative weight change ‖W − W₀‖/‖W₀‖ (spectral and
Frobenius) of every matrix, the update alignment E‖ΔW h‖/(‖ΔW‖₂‖h‖) of every Linear layer, the relative
imbalance of consecutive Linear layers (the conserved Q of docs/conventions) and the fraction of
preactivation signs flipped since init (activation-pattern change). Verdict bands: docs/usermodels.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd
import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..conventions import relative_imbalance
from ..errors import LazyrichError, require
from ..observe.distance import gate_flips, relative_change
from ..observe.kernel import DEFAULT_BUDGET, empirical_ntk, kernel_distance
from ..observe.spectral import input_alignment
from . import meta
from .distributed import unwrap
from .hf import logits
from .tensors import assign_roles, discover, linear_chain


@dataclass(frozen=True)
class Bands:
    """Verdict thresholds on the kernel distance S = S(0, t) and ω, the largest relative spectral change
    ‖W − W₀‖₂/‖W₀‖₂ of an input or hidden matrix:
    rich if S > kernel_rich, or S ≥ kernel_lazy while ω > weight_rich (the weights moved by more than
    their own size); lazy if S < kernel_lazy and ω < weight_lazy; transitional otherwise. Without a
    kernel: rich if ω > weight_rich, lazy if ω < weight_lazy. Calibration: docs/usermodels.md."""

    kernel_lazy: float = 0.005
    kernel_rich: float = 0.02
    weight_lazy: float = 0.15
    weight_rich: float = 1.0


@dataclass(frozen=True)
class Verdict:
    """lazy | rich | transitional at `step`, with the numbers it rests on and a one-line reason."""

    regime: str
    step: int
    kernel_distance: float | None
    weight_change: float
    activation_change: float | None
    reason: str

    def __str__(self) -> str:
        return f"{self.regime} at step {self.step}: {self.reason}"


def verdict_from(kernel: float | None, weight: float, bands: Bands = Bands()) -> tuple[str, str]:
    """(regime, reason) from the kernel distance S (None: not measured) and the weight change ω."""
    if kernel is None:
        if weight > bands.weight_rich:
            return "rich", f"weights moved ω={weight:.3g} > {bands.weight_rich} (no kernel measured)"
        if weight < bands.weight_lazy:
            return "lazy", f"weights barely moved: ω={weight:.3g} < {bands.weight_lazy} (no kernel measured)"
        return "transitional", f"ω={weight:.3g} between {bands.weight_lazy} and {bands.weight_rich} (no kernel measured)"
    if kernel > bands.kernel_rich:
        return "rich", f"the kernel moved: S={kernel:.3g} > {bands.kernel_rich} (ω={weight:.3g})"
    if kernel >= bands.kernel_lazy and weight > bands.weight_rich:
        return "rich", f"the weights moved by more than their size (ω={weight:.3g} > {bands.weight_rich}) and the kernel with them (S={kernel:.3g})"
    if kernel < bands.kernel_lazy and weight < bands.weight_lazy:
        return "lazy", f"kernel and weights stay put: S={kernel:.3g} < {bands.kernel_lazy}, ω={weight:.3g} < {bands.weight_lazy}"
    return "transitional", f"S={kernel:.3g}, ω={weight:.3g}: between the lazy and rich bands"


def _probe(model: nn.Module, x: Tensor, layers: dict[str, nn.Module]) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor]:
    """Inputs and outputs (preactivations) of `layers` and the model output on x, without grad."""
    ins: dict[str, Tensor] = {}
    outs: dict[str, Tensor] = {}

    def hook(name: str) -> Callable:
        def f(mod: nn.Module, args: tuple, out: Tensor) -> None:
            ins[name], outs[name] = args[0].detach(), out.detach()
        return f
    handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
    try:
        with torch.no_grad():
            y = model(x)
    finally:
        for h in handles:
            h.remove()
    return ins, outs, logits(y).detach()


class RegimeMonitor:
    """Measures where a model's training sits between lazy and rich, on a fixed probe batch.

    `output` maps the model's output to [n, c] for the kernel (default: the tensor returned, or a Hugging
    Face output's `.logits`, flattened per sample; for a language model pass e.g. ``lambda y: y[:, -1]``).
    `kernel=False` skips the NTK (the costly part: n·c Jacobian rows). `every`: record every that many
    calls of `step()`. `tensorboard`: a log directory or a SummaryWriter (needs the tensorboard package).
    `memory_budget_bytes`: the Jacobian rows held at once (the kernel is chunked to fit; None: no bound).
    Records: `records()`, `to_store()`.
    """

    def __init__(self, model: nn.Module, probe: Tensor, *, every: int = 1, kernel: bool = True,
                 kernel_weights: str = "lr", output: Callable[[Tensor], Tensor] | None = None,
                 bands: Bands = Bands(), tensorboard: Any = None, memory_budget_bytes: int | None = DEFAULT_BUDGET) -> None:
        require(every >= 1, f"every={every} must be a positive integer")
        require(kernel_weights in ("lr", "unit"), f"kernel_weights={kernel_weights!r}: choose 'lr' or 'unit'")
        require(probe.dim() >= 1 and probe.shape[0] >= 1, "the probe batch needs at least one sample")
        self.model, self.probe, self.every, self.bands = model, probe, every, bands
        self.kernel, self.output, self.budget = kernel, output or logits, memory_budget_bytes
        m = meta.find(model)
        if m is not None:  # inside DDP / torch.compile wrappers: the module whose names the plan uses
            self.model = model = unwrap(model)
        rows = {r["name"]: r for r in m.state["rows"]} if m is not None else {}
        infos = discover(model)
        roles = {r: rows[r]["role"] for r in rows} if rows else {t.name: t.role for t in assign_roles(infos)}
        self.lr = {t.name: rows[t.name]["lr_scale"] for t in infos} if rows and kernel_weights == "lr" else None
        self.matrices = [t.name for t in infos if len(t.shape) >= 2 and t.kind not in ("norm", "param")]
        self.inner = [n for n in self.matrices if roles.get(n) in ("input", "hidden")] or self.matrices
        self.layers = {n: mod for n, mod in model.named_modules()
                       if type(mod) is nn.Linear or isinstance(mod, nn.modules.conv._ConvNd)}
        self.hidden_layers = [n for n in self.layers if roles.get(f"{n}.weight") in ("input", "hidden")]
        self.pairs = linear_chain(model)
        self.writer = _writer(tensorboard)
        self.calls, self.rows = 0, []
        self.params0 = {k: v.detach().clone() for k, v in model.named_parameters()}
        _, self.z0, _ = self._probe()
        self.K0 = self._ntk() if kernel else None
        self._record(0)

    # ------------------------------------------------------------ measuring
    def _probe(self) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor]:
        was = self.model.training
        self.model.eval()  # dropout off: the probe must see a deterministic function
        try:
            return _probe(self.model, self.probe, self.layers)
        finally:
            self.model.train(was)

    def _ntk(self) -> Tensor:
        n = self.probe.shape[0]

        def fn(p: dict[str, Tensor], x: Tensor) -> Tensor:
            return self.output(functional_call(self.model, p, (x,))).reshape(x.shape[0], -1)
        was = self.model.training
        self.model.eval()
        try:
            params = {k: v.detach() for k, v in self.model.named_parameters()}
            # SDPA's fused CPU kernels have no vmap batching rule (a slow per-sample loop, with a warning);
            # its math backend is made of batched ops. K₀ and K_t use the same backend.
            with sdpa_kernel(SDPBackend.MATH):
                K = empirical_ntk(fn, params, self.probe, lr=self.lr, memory_budget_bytes=self.budget)
        finally:
            self.model.train(was)
        require(K.shape[0] % n == 0, "the kernel's size is not a multiple of the probe size")
        return K

    def step(self) -> dict[str, float] | None:
        """Call once per optimizer step; records (and returns the summary) every `every` calls."""
        self.calls += 1
        if self.calls % self.every:
            return None
        return self._record(self.calls)

    def _record(self, step: int) -> dict[str, float]:
        out: list[tuple[str, str, float]] = []
        ins, zs, _ = self._probe()
        params = dict(self.model.named_parameters())
        if self.K0 is not None:
            out.append(("kernel_distance", "", float(kernel_distance(self.K0, self._ntk()))))
        for name in self.matrices:
            w0, w = self.params0[name].flatten(1).double(), params[name].detach().flatten(1).double()
            out.append(("weight_change_spectral", name, float(relative_change(w0, w, 2))))
            out.append(("weight_change_frobenius", name, float(relative_change(w0, w, "fro"))))
        for layer, mod in self.layers.items():
            if type(mod) is nn.Linear and step > 0:
                dw = (mod.weight.detach() - self.params0[f"{layer}.weight"]).double()
                h = ins[layer].reshape(-1, dw.shape[1]).double()
                out.append(("update_alignment", layer, float(input_alignment(dw.unsqueeze(0), h)[0])))
        for layer in self.hidden_layers:
            out.append(("activation_change", layer, float(gate_flips(self.z0[layer], zs[layer]).mean())))
        for lower, upper in self.pairs:
            lr = lambda n: self.lr[f"{n}.weight"] if self.lr else 1.0  # noqa: E731
            imb = relative_imbalance(params[f"{upper}.weight"].detach().double()[None],
                                     params[f"{lower}.weight"].detach().double()[None], lr(upper), lr(lower))
            out.append(("relative_imbalance", f"{lower}-{upper}", float(imb[0])))
        summary = self._summary(out, step)
        self.rows += [{"step": step, "observable": o, "layer": l, "value": v} for o, l, v in out]
        if self.writer is not None:
            for o, l, v in out:
                self.writer.add_scalar(f"lazyrich/{o}/{l}" if l else f"lazyrich/{o}", v, step)
        return summary

    def _summary(self, out: list[tuple[str, str, float]], step: int) -> dict[str, float]:
        get = lambda o: [v for oo, l, v in out if oo == o and (o != "weight_change_spectral" or l in self.inner)]  # noqa: E731
        kd, wc, ac = get("kernel_distance"), get("weight_change_spectral"), get("activation_change")
        s = {"step": float(step), "weight_change": max(wc) if wc else 0.0}
        if kd:
            s["kernel_distance"] = kd[0]
        if ac:
            s["activation_change"] = sum(ac) / len(ac)
        self.last = s
        return s

    # ------------------------------------------------------------ results
    def verdict(self) -> Verdict:
        """lazy / rich / transitional at the latest record, with the numbers behind it."""
        s = self.last
        regime, reason = verdict_from(s.get("kernel_distance"), s["weight_change"], self.bands)
        return Verdict(regime, int(s["step"]), s.get("kernel_distance"), s["weight_change"],
                       s.get("activation_change"), reason)

    def records(self) -> pd.DataFrame:
        """Tidy table (member 0, step, time = step, observable, layer, index 0, value) as lazyrich records."""
        df = pd.DataFrame(self.rows, columns=["step", "observable", "layer", "value"])
        df.insert(0, "member", 0)
        df.insert(2, "time", df["step"].astype(float))
        df.insert(5, "index", 0)
        return df

    def to_store(self, path: str, name: str = "monitor") -> str:
        """Write the records as one run (one member) to a lazyrich DuckDB store; returns the run id."""
        from .store import write_monitor_run
        return write_monitor_run(path, name, self.records(), self.verdict())


def _writer(tensorboard: Any) -> Any:
    if tensorboard is None or hasattr(tensorboard, "add_scalar"):
        return tensorboard
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's writer needs the tensorboard package
        raise LazyrichError("tensorboard logging needs the tensorboard package: pip install tensorboard") from None
    return SummaryWriter(str(tensorboard))
