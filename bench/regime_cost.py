"""Cost of the horizon-aware regime predictor as a fraction of training the same members, side by side
(one thread): wall time and FLOPs, at n = 80 / 6,000 steps, n = 200 / 3,000 steps (d = 20, h = 20, the
`paper` grid's net) and n = 1,000 / 2,000 steps (d = 100, h = 50: Kunin Fig. 1 size). Nine cells per
size (τ ∈ {0.1, 0.5, 2} × δ ∈ {−1, 0, 1}, Kunin's symmetric init, lr = 5e-3/τ², loss without ½, the
3-neuron teacher); training is `lazyrich.train(kernel="fused")` of the nine as one ensemble.

FLOPs are counted analytically (c = 1):
  training, per member-step   4ndh (Wx and the W gradient) + 4nh (readout forward and gradient)
  predictor, per phase         9n³ (eigh with vectors, Golub & Van Loan's count for symmetric QR)
                               + 2n²(d + 2h) (analytic NTK: XXᵀ, ΦΦᵀ, GGᵀ) + 4ndh + 4n² (fit, Jᵀv)
  predictor, per net           (N + 1) phases' worth, N = ⌈q·log₁₀T⌉ + 1 phases (+ the two NTKs of Ŝ)
  Krylov, per phase             2n²(d + 2h) (NTK) + Σ over its Lanczos iterations (2n² + 8nj) (matvec and the
                               two reorthogonalizations at dimension j) + 9j³ per convergence check (every 4th)
                               + 4ndh + 2nj (fit, Jᵀv), j counted by the solver
with n → n_s under `max_samples`. Variants: the full predictor (q = 16), fewer phases (q = 4), one phase per
decade (q = 1), the Krylov (Lanczos) lazy fit at q = 16 and 4 (the same Ŝ to ≤ 1e-6, no eigendecomposition),
and q = 4 on a fixed subset of n_s = 384 or 128 samples (the cheap approximation). Also printed: how many of the
nine cells each variant puts in the measured S(0,T) band, and its largest |Ŝ − S|.

    python bench/regime_cost.py [--sizes 80,200,1000] [--variants "q=4;Krylov q=4"]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lazyrich import MLP, build, train  # noqa: E402
from lazyrich.observe.kernel import kernel_distance, mlp_ntk  # noqa: E402
from lazyrich.param.init import kunin_scales  # noqa: E402
from lazyrich.tasks import teacher_student  # noqa: E402
from lazyrich.theory import relinearized  # noqa: E402
from lazyrich.theory.regime import predict_regime_on_data  # noqa: E402

SIZES = {80: (20, 20, 6000), 200: (20, 20, 3000), 1000: (100, 50, 2000)}  # n: (d, h, steps)
TAUS, DELTAS = (0.1, 0.5, 2.0), (-1.0, 0.0, 1.0)
VARIANTS = {"full (q=16)": (16, None, "eigh"), "q=4": (4, None, "eigh"), "q=1": (1, None, "eigh"),
            "Krylov q=16": (16, None, "krylov"), "Krylov q=4": (4, None, "krylov"),
            "q=4, n_s=384": (4, 384, "eigh"), "q=4, n_s=128": (4, 128, "eigh")}
KRYLOV_DIMS: list[int] = []  # the Lanczos dimension of every Krylov phase run (for the FLOP count)
_krylov = relinearized._krylov_coefficients


def _counting_krylov(K, r0, a, tol=relinearized.KRYLOV_TOL, info=None):
    info = {} if info is None else info
    out = _krylov(K, r0, a, tol, info)
    KRYLOV_DIMS.append(info["dim"])
    return out


relinearized._krylov_coefficients = _counting_krylov


def band(s: float) -> str:
    return "lazy" if s < 0.05 else ("rich" if s > 0.3 else "mixed")


def krylov_flops(n: int, d: int, h: int, dims: list[int]) -> float:
    """The FLOPs of the Krylov phases whose Lanczos dimensions are `dims` (module docstring)."""
    return float(sum(2 * n * n * (d + 2 * h) + sum(2 * n * n + 8 * n * j for j in range(1, J + 1))
                     + sum(9 * j**3 for j in range(4, J + 1, 4)) + 4 * n * d * h + 2 * n * J for J in dims))


def training_flops(n: int, d: int, h: int, steps: int, members: int) -> float:
    return float(members * steps * (4 * n * d * h + 4 * n * h))


def predictor_flops(n: int, d: int, h: int, steps: int, per_decade: float, members: int) -> float:
    phases = math.ceil(per_decade * math.log10(steps)) + 1
    phase = 9 * n**3 + 2 * n * n * (d + 2 * h) + 4 * n * d * h + 4 * n * n
    return float(members * (phases * phase + 2 * 2 * n * n * (d + 2 * h)))


def cells(d: int, h: int, seed: int = 1):
    """Kunin's symmetric init at the nine (τ, δ): W1 [9, h, d], W2 [9, 1, h], lrs."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(h // 2, d, generator=gen, dtype=torch.float64)
    w = torch.cat([w, w]) / w.norm(dim=1).repeat(2)[:, None]
    a = torch.sign(torch.randn(h // 2, generator=gen, dtype=torch.float64))
    a = torch.cat([a, -a])
    tau, delta = (torch.tensor(v, dtype=torch.float64).reshape(-1) for v in np.meshgrid(TAUS, DELTAS, indexing="ij"))
    a_norm, w_norm = kunin_scales(tau, delta)
    rows = [{"tau": float(t), "delta": float(dl), "lr": 5e-3 / float(t) ** 2} for t, dl in zip(tau, delta)]
    return w * w_norm[:, None, None], (a * a_norm[:, None])[:, None, :], rows


def one_size(n: int) -> list[dict]:
    d, h, steps = SIZES[n]
    data = teacher_student(d=d, k=3, n=n, n_test=10, seed=0)
    W1, W2, rows = cells(d, h)
    ens = build(MLP((d, h, 1), "relu"), rows, scheme="sp", loss_scale=1.0).with_params({"W1": W1, "W2": W2})
    for p in ens.lr:
        ens.lr[p] = ens.base_lr.clone()
        ens.multipliers[p] = torch.ones(len(rows), dtype=torch.float64)
    train(ens, data, 10, record=[10], observers=("loss",), kernel="fused")  # warm-up (buffers, dispatch)
    t0 = time.perf_counter()
    run = train(ens, data, steps, record=[steps], observers=("loss",), kernel="fused")
    t_train = time.perf_counter() - t0
    assert (run.diverged_step < 0).all()
    lr = {k: ens.lr[k] for k in ("W1", "W2")}
    S = kernel_distance(mlp_ntk(ens.net, run.params0, data.x, None, lr), mlp_ntk(ens.net, run.ens.params, data.x, None, lr))
    out = []
    for name, (q, ns, solver) in VARIANTS.items():
        KRYLOV_DIMS.clear()
        t0 = time.perf_counter()
        S_hat = [predict_regime_on_data(data.x, data.y, W1[i], W2[i], steps, r["lr"], r["lr"], "relu", 1.0, q,
                                        max_samples=ns, solver=solver).kernel_distance for i, r in enumerate(rows)]
        t_pred = time.perf_counter() - t0
        n_eff = min(n, ns or n)
        if solver == "krylov":  # the two kernels of Ŝ per net on top of the phases
            flops = krylov_flops(n_eff, d, h, KRYLOV_DIMS) + 9 * 2 * 2 * n_eff**2 * (d + 2 * h)
        else:
            flops = predictor_flops(n_eff, d, h, steps, q, 9)
        out.append({"n": n, "d": d, "h": h, "steps": steps, "variant": name, "train_s": t_train, "predict_s": t_pred,
                    "wall_ratio": t_pred / t_train, "krylov_dim": (f"{np.median(KRYLOV_DIMS):.0f} (max {max(KRYLOV_DIMS)})"
                                                                   if KRYLOV_DIMS else "–"),
                    "flop_ratio": flops / training_flops(n, d, h, steps, 9),
                    "agree": sum(band(float(s)) == band(sh) for s, sh in zip(S, S_hat)),
                    "max_err": float(np.max(np.abs(np.array(S_hat) - S.numpy())))})
        print(f"  n={n} {name}: train {t_train:.2f} s, predict {t_pred:.2f} s; S / Ŝ per cell: "
              + ", ".join(f"{float(s):.3f}/{sh:.3f}" for s, sh in zip(S, S_hat)), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="80,200,1000", help="comma-separated n among 80, 200, 1000")
    ap.add_argument("--variants", default=";".join(VARIANTS), help=f"semicolon-separated among: {'; '.join(VARIANTS)}")
    args = ap.parse_args()
    for name in set(VARIANTS) - set(args.variants.split(";")):
        del VARIANTS[name]
    torch.set_num_threads(1)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread; start: {load}")
    rows = [r for n in (int(s) for s in args.sizes.split(",")) for r in one_size(n)]
    print(f"# end: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print("| n, d, h, steps | predictor | train 9 (s) | predict 9 (s) | wall ratio | FLOP ratio | band agreement | "
          "max abs(Ŝ − S) | Lanczos dim (median) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']}, {r['d']}, {r['h']}, {r['steps']} | {r['variant']} | {r['train_s']:.2f} | {r['predict_s']:.2f} | "
              f"{r['wall_ratio']:.2f}× | {r['flop_ratio']:.2f}× | {r['agree']}/9 | {r['max_err']:.3f} | {r['krylov_dim']} |")


if __name__ == "__main__":
    main()
