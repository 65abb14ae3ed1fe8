"""On a CUDA device the engine gives the float64 CPU reference's numbers: every optimizer and kernel, every
observer, gradient flow, divergence isolation, and float32 within its rounding. Skipped without a GPU
(CI has none); run on one with `pytest tests/dynamics/test_cuda.py`."""
import numpy as np
import pandas as pd
import pytest
import torch

from lazyrich import MLP, build, flow, train
from lazyrich.tasks import teacher_student

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

OBSERVERS = ("loss", "conserved", "kernel_distance", "hamming", "param_distance", "weight_change", "spectral",
             "alignment", "feature_change", "balance", "sharpness", "linearized", "agop", "fact")


def _setup(device: str, dtype=torch.float64, lrs=(0.02,) * 6, act: str = "relu"):
    rows = [{"seed": s, "tau": t, "delta": dl, "lr": lr}
            for s, (t, dl, lr) in enumerate(zip([0.1, 0.5, 1.0, 0.1, 0.5, 1.0], [-1, 0, 1, 1, 0, -1], lrs))]
    ens = build(MLP((10, 32, 1), act), rows, init="kunin", loss_scale=0.5, dtype=dtype, device=device)
    data = teacher_student(d=10, k=3, n=64, n_test=64, seed=0)
    for name in ("x", "y", "x_test", "y_test"):
        value = getattr(data, name)
        if value is not None:
            setattr(data, name, value.to(device=device, dtype=dtype))
    return ens, data


def _values(run) -> tuple[np.ndarray, pd.DataFrame]:
    """Record values and their keys, in one order."""
    rec = run.records(config=False).sort_values(["member", "step", "observable", "layer", "index"])
    return rec["value"].to_numpy(np.float64), rec[["member", "step", "observable", "layer", "index"]]


@pytest.mark.parametrize("kernel", ["batched", "fused"])
@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_cuda_matches_cpu_float64(kernel, optimizer):
    runs = {}
    for device in ("cpu", "cuda"):
        ens, data = _setup(device, lrs=(0.02,) * 6 if optimizer == "gd" else (1e-3,) * 6)
        obs = OBSERVERS if kernel == "batched" and optimizer == "gd" else ("loss", "conserved", "kernel_distance")
        runs[device] = train(ens, data, 300, optimizer, record=[0, 10, 100, 300], observers=obs, kernel=kernel)
    (a, ka), (b, kb) = _values(runs["cpu"]), _values(runs["cuda"])
    assert ka.reset_index(drop=True).equals(kb.reset_index(drop=True))
    np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-11)


def test_cuda_flow_matches_cpu():
    runs = {}
    for device in ("cpu", "cuda"):
        ens, data = _setup(device, act="tanh")
        runs[device] = flow(ens, data, [0.0, 1.0, 5.0], ("loss", "conserved"), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_values(runs["cuda"])[0], _values(runs["cpu"])[0], rtol=1e-8, atol=1e-10)


def test_cuda_diverging_member_is_recorded_and_isolated():
    ok, _ = _setup("cuda")
    bad, data = _setup("cuda", lrs=(0.02, 0.02, 500.0, 0.02, 0.02, 0.02))
    r_ok = train(ok, data, 200, record=[0, 200], observers=("loss",))
    r_bad = train(bad, data, 200, record=[0, 200], observers=("loss",))
    div = np.asarray(r_bad.diverged_step)
    assert div[2] >= 0 and (np.delete(div, 2) < 0).all()
    keep = [0, 1, 3, 4, 5]
    a = r_ok.final("loss")["loss"].sort_index().to_numpy()[keep]
    b = r_bad.final("loss")["loss"].sort_index().to_numpy()[keep]
    np.testing.assert_allclose(b, a, rtol=1e-12)


def test_cuda_float32_within_rounding_of_float64():
    ens64, d64 = _setup("cpu")
    ens32, d32 = _setup("cuda", dtype=torch.float32)
    l64 = train(ens64, d64, 1000, record=[1000], observers=("loss",), kernel="fused").final("loss")["loss"].sort_index().to_numpy()
    l32 = train(ens32, d32, 1000, record=[1000], observers=("loss",), kernel="fused").final("loss")["loss"].sort_index().to_numpy()
    np.testing.assert_allclose(l32, l64, rtol=1e-3)


def test_cuda_balance_law_and_update_structure_match_cpu():
    """Two helpers the reproductions call outside `train`: the exact one-step law of Q and the update
    structure vs batch size (both crashed on cuda with CPU-side rate tensors before)."""
    from lazyrich.dynamics.train import loss_and_grads
    from lazyrich.observe.spectral import update_structure
    from lazyrich.theory import conserved_step

    out = {}
    for device in ("cpu", "cuda"):
        ens, data = _setup(device)
        active = torch.ones(ens.size, dtype=torch.bool, device=device)
        _, g = loss_and_grads(ens, ens.params, data.x, data.y, active)
        q = conserved_step(ens.params["W1"], ens.params["W2"], g["W1"], g["W2"], ens.lr["W1"], ens.lr["W2"], 0.1, 0.1)
        upd = update_structure(ens, ens.params, data, [1, 8, 64], layer=2, trials=1, seed=0)
        out[device] = (q.cpu().numpy(), upd.sort_values(["member", "batch_size"])[["update_stable_rank", "update_alignment"]].to_numpy())
    np.testing.assert_allclose(out["cuda"][0], out["cpu"][0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out["cuda"][1], out["cpu"][1], rtol=1e-8)
