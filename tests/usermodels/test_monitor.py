"""Regime monitor: its measurements against slow references, its bands, and verdicts that flip with
their decisive knob on theory-backed toy models (Kunin et al.'s τ; NTP vs μP at large width)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lazyrich.errors import LazyrichError
from lazyrich.models import MLP
from lazyrich.observe.kernel import mlp_ntk
from lazyrich.param.init import kunin
from lazyrich.tasks import teacher_student
from lazyrich.usermodels import Bands, RegimeMonitor, param_groups, parametrize, plan_of, verdict_from


def _train(model, x, y, opt, steps, monitor):
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (model(x) - y).pow(2).sum(1).mean()).backward()
        opt.step()
        monitor.step()
    return monitor.verdict()


def test_bands():
    b = Bands()
    assert verdict_from(0.1, 0.0, b)[0] == "rich"
    assert verdict_from(0.01, 2.0, b)[0] == "rich"  # weights moved more than their size, kernel somewhat
    assert verdict_from(0.001, 2.0, b)[0] == "transitional"
    assert verdict_from(0.001, 0.05, b)[0] == "lazy"
    assert verdict_from(0.01, 0.05, b)[0] == "transitional"
    assert [verdict_from(None, w, b)[0] for w in (0.05, 0.5, 2.0)] == ["lazy", "transitional", "rich"]


def _chain(n: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(5, n, bias=False), nn.ReLU(), nn.Linear(n, n, bias=False), nn.ReLU(),
                         nn.Linear(n, 2, bias=False)).double()


def test_measurements_match_slow_references():
    torch.manual_seed(0)
    model = parametrize(_chain(16), "ntp", base=_chain(4), seed=0)  # hooked multipliers 1/sqrt(fan_in)
    x, y = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)
    w0 = {k: v.detach().clone() for k, v in model.named_parameters()}
    monitor = RegimeMonitor(model, x)
    _train(model, x, y, torch.optim.SGD(param_groups(model, 0.5), lr=0.5), 4, monitor)
    rec = monitor.records().set_index(["step", "observable", "layer"])["value"]
    rows = {r.name: r for r in plan_of(model).rows}
    names = {"0.weight": "W1", "2.weight": "W2", "4.weight": "W3"}
    net, w = MLP((5, 16, 16, 2)), {k: v.detach() for k, v in model.named_parameters()}
    as_core = lambda p: {names[k]: v[None] for k, v in p.items()}  # noqa: E731
    mult = {names[k]: rows[k].multiplier for k in names}
    lr = {names[k]: rows[k].lr_scale for k in names}
    K0, K = (mlp_ntk(net, as_core(p), x, mult, lr)[0] for p in (w0, w))
    S = 1 - (K0 * K).sum() / (K0.norm() * K.norm())
    assert rec[(4, "kernel_distance", "")] == pytest.approx(float(S), rel=1e-9, abs=1e-14)
    assert rec[(0, "kernel_distance", "")] == pytest.approx(0.0, abs=1e-14)
    h = x
    for i, name in ((0, "0.weight"), (2, "2.weight")):
        dw = w[name] - w0[name]
        spec = lambda m: float(torch.linalg.svdvals(m)[0])  # noqa: E731
        assert rec[(4, "weight_change_spectral", name)] == pytest.approx(spec(dw) / spec(w0[name]), rel=1e-12)
        assert rec[(4, "weight_change_frobenius", name)] == pytest.approx(float(dw.norm() / w0[name].norm()), rel=1e-12)
        ratios = [float((dw @ h[j]).norm() / (spec(dw) * h[j].norm())) for j in range(7)]
        assert rec[(4, "update_alignment", str(i))] == pytest.approx(sum(ratios) / 7, rel=1e-12)
        h0 = x if i == 0 else torch.relu(mult["W1"] * x @ w0["0.weight"].T)
        z, z0 = mult[names[name]] * h @ w[name].T, mult[names[name]] * h0 @ w0[name].T
        assert rec[(4, "activation_change", str(i))] == pytest.approx(float(((z > 0) != (z0 > 0)).double().mean()), abs=1e-15)
        h = torch.relu(z)
    for lo, up in (("0", "2"), ("2", "4")):
        top = w[f"{up}.weight"].T @ w[f"{up}.weight"] / rows[f"{up}.weight"].lr_scale
        bottom = w[f"{lo}.weight"] @ w[f"{lo}.weight"].T / rows[f"{lo}.weight"].lr_scale
        ref = (top - bottom).norm() / (top.norm() + bottom.norm())
        assert rec[(4, "relative_imbalance", f"{lo}-{up}")] == pytest.approx(float(ref), rel=1e-12)


def _kunin_net(tau: float, data_dim: int = 20, width: int = 50) -> nn.Sequential:
    p = kunin(MLP((data_dim, width, 1)), [tau], [0.0], [0])
    model = nn.Sequential(nn.Linear(data_dim, width, bias=False), nn.ReLU(), nn.Linear(width, 1, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(p["W1"][0])
        model[2].weight.copy_(p["W2"][0])
    return model


def test_verdict_flips_with_init_scale_tau():
    # Kunin et al. Fig. 1 corners (δ = 0, lr ∝ 1/τ², trained to interpolation): small τ rich, large τ lazy
    data = teacher_student(d=20, k=3, n=100, n_test=1, seed=0)
    verdicts = {}
    for tau in (0.1, 2.0):
        model = _kunin_net(tau)
        monitor = RegimeMonitor(model, data.x, every=1000)
        verdicts[tau] = _train(model, data.x, data.y, torch.optim.SGD(model.parameters(), lr=0.05 / tau**2), 1000, monitor)
    assert verdicts[0.1].regime == "rich" and verdicts[2.0].regime == "lazy", verdicts
    assert verdicts[0.1].kernel_distance > 100 * verdicts[2.0].kernel_distance


def _wide(n: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(20, n, bias=False), nn.ReLU(), nn.Linear(n, n, bias=False), nn.ReLU(),
                         nn.Linear(n, 1, bias=False))


def test_verdict_flips_with_parametrization_at_large_width():
    data = teacher_student(d=20, k=3, n=200, n_test=1, seed=0, dtype=torch.float32)
    x = data.x * math.sqrt(20)  # coordinates Θ(1)
    verdicts = {}
    for scheme, lr in (("ntp", 2.0), ("mup", 0.5)):  # each at a learning rate that trains it well
        model = parametrize(_wide(512), scheme, base=_wide(32), seed=0)
        monitor = RegimeMonitor(model, x[:32], every=200)
        verdicts[scheme] = _train(model, x, data.y, torch.optim.SGD(param_groups(model, lr), lr=lr), 200, monitor)
    assert verdicts["ntp"].regime == "lazy" and verdicts["mup"].regime == "rich", verdicts
    assert verdicts["mup"].weight_change > 1.0 > 0.15 > verdicts["ntp"].weight_change


class _Writer:
    def __init__(self):
        self.scalars = []

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))


def test_records_store_and_tensorboard(tmp_path):
    model = _chain(8)
    x = torch.randn(4, 5, dtype=torch.float64)
    writer = _Writer()
    monitor = RegimeMonitor(model, x, every=2, tensorboard=writer, kernel=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    _train(model, x, torch.zeros(4, 2, dtype=torch.float64), opt, 4, monitor)
    rec = monitor.records()
    assert list(rec.columns) == ["member", "step", "time", "observable", "layer", "index", "value"]
    assert sorted(rec.step.unique()) == [0, 2, 4] and "kernel_distance" not in set(rec.observable)
    assert ("lazyrich/weight_change_spectral/0.weight", rec.set_index(["step", "observable", "layer"]).value[
        (4, "weight_change_spectral", "0.weight")], 4) in writer.scalars
    from lazyrich.sweep.store import Store
    run_id = monitor.to_store(str(tmp_path / "runs.duckdb"), name="unit")
    back = Store(tmp_path / "runs.duckdb").records(run_id)
    assert len(back) == len(rec) and set(back.observable) == set(rec.observable)
    assert "verdict" in Store(tmp_path / "runs.duckdb").run(run_id)["config"]
    with pytest.raises(LazyrichError, match="every"):
        RegimeMonitor(model, x, every=0)


def test_lightning_callback(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from lazyrich.usermodels.lightning import RegimeCallback

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _chain(8)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _):
            x, y = batch
            return 0.5 * (self(x) - y).pow(2).sum(1).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    x, y = torch.randn(16, 5, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    callback = RegimeCallback(x[:4], every=2)
    trainer = pl.Trainer(max_epochs=2, callbacks=[callback], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(Module(), loader)
    assert callback.verdict is not None and callback.verdict.step == 4  # 4 optimizer steps, recorded every 2
    assert sorted(callback.monitor.records().step.unique()) == [0, 2, 4]
