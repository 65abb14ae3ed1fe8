"""The delayed rich regime, where the theory puts it (Kunin et al.: downstream init, δ ≪ 0, with too few
neurons for the frozen features to fit): one net crosses lazy → mixed → rich as the horizon grows, the
horizon-aware predictor follows it, the configuration-only one cannot (it never sees the horizon).
bench/regime_accuracy.py's `delayed` condition measures this over 32 nets × 4 horizons."""
import torch

from lazyrich import MLP, build, train
from lazyrich.param.init import kunin_scales
from lazyrich.tasks import teacher_student
from lazyrich.theory import predict_regime, predict_regime_on_data

HORIZONS = (256, 1024, 4096)


def _band(s: float) -> str:
    return "lazy" if s < 0.05 else ("rich" if s > 0.3 else "mixed")


def test_downstream_net_crosses_into_rich_late_and_the_horizon_aware_predictor_follows():
    """Kunin task (d = 5, n = 50, 3 teacher neurons), h = 10 symmetric ReLU student at τ = 0.01, δ = −½
    (||w||² ≈ ½, |a| ≈ 2e-4), lr 0.02, ½·MSE. Measured S(0, T) = 0.002, 0.199, 0.429 at T = 256, 1,024,
    4,096 (bands lazy, mixed, rich); Ŝ (q = 16) lands in the same band at each T."""
    data = teacher_student(d=5, k=3, n=50, n_test=10, seed=0)
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    w = torch.cat([w, w]) / w.norm(dim=1).repeat(2)[:, None]
    a = torch.sign(torch.randn(5, generator=gen, dtype=torch.float64))
    a = torch.cat([a, -a])
    a_norm, w_norm = kunin_scales(torch.tensor([0.01], dtype=torch.float64), torch.tensor([-0.5], dtype=torch.float64))
    W, A = w * w_norm, (a * a_norm)[None]
    lr = 0.01 / max(float((0.25 + 4 * 0.01**4) ** 0.5), 0.1)
    ens = build(MLP((5, 10, 1), "relu"), [{"lr": lr}], scheme="sp", loss_scale=0.5).with_params({"W1": W[None], "W2": A[None]})
    for p in ens.lr:
        ens.lr[p] = ens.base_lr.clone()
        ens.multipliers[p] = torch.ones(1, dtype=torch.float64)
    run = train(ens, data, HORIZONS[-1], record=[0, *HORIZONS], observers=("kernel_distance",), kernel="fused")
    S = [float(run.final("kernel_distance", step=T)["kernel_distance"].iloc[0]) for T in HORIZONS]
    measured = [_band(s) for s in S]
    assert measured == ["lazy", "mixed", "rich"], S
    on_data = [predict_regime_on_data(data.x, data.y, W, A, T, lr, lr, "relu", 0.5).regime for T in HORIZONS]
    assert [r.replace("ultra-", "") for r in on_data] == measured, on_data
    y_scale = float(data.y.pow(2).sum(1).mean().sqrt())
    config = predict_regime((5, 10, 1), 0.01, float(A.norm(dim=0).pow(2).mean() - W.norm(dim=1).pow(2).mean()), y_scale)
    assert config.regime == "lazy"  # downstream: f_w → 0, so R = 2f_w·B ≪ 0.1 at every horizon
