"""One ensemble vs a pinned per-configuration loop (hand-written NumPy gradients, like the authors'
code), side by side: config-steps/s, the ratio, and achieved FLOP/s as a fraction of the machine's
measured GEMM peak. FLOPs counted as 4·n·d·h per config-step (forward Wx and the W gradient;
readout and elementwise work excluded, so the fraction is a lower bound).

    python bench/ensemble_vs_loop.py [--quick]
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the per-configuration loops run on one core, as the authors' did

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lazyrich import MLP, build, train  # noqa: E402
from lazyrich.tasks import teacher_student  # noqa: E402

from _loops import authors_step  # noqa: E402


def gemm_peak(threads: int, dtype=torch.float64, n: int = 1536, reps: int = 5) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)


def numpy_loop(x, y, W, a, lr, steps):
    """Per configuration, full-batch GD on f = a·relu(Wx), loss mean (f−y)² (authors' normalisation)."""
    n = x.shape[0]
    for e in range(W.shape[0]):
        w, v = W[e].copy(), a[e].copy()
        for _ in range(steps):
            z = x @ w.T                     # [n, h]
            h = np.maximum(z, 0)
            r = h @ v - y                   # [n]
            g = (2.0 / n) * r
            gv = h.T @ g
            gz = np.outer(g, v) * (z > 0)
            gw = gz.T @ x
            w -= lr[e] * gw
            v -= lr[e] * gv


def torch_autograd_loop(data, ens, steps, members):
    """Per configuration, a plain PyTorch autograd loop (the usual hand-rolled sweep)."""
    x, y = data.x, data.y
    t = time.perf_counter()
    for e in range(members):
        w = ens.params["W1"][e].clone().requires_grad_(True)
        a = ens.params["W2"][e].clone().requires_grad_(True)
        for _ in range(steps):
            loss = (torch.relu(x @ w.T) @ a.T - y).pow(2).mean()
            gw, ga = torch.autograd.grad(loss, (w, a))
            with torch.no_grad():
                w -= 0.01 * gw
                a -= 0.01 * ga
    return members * steps / (time.perf_counter() - t)


def case(name, d, h, n, E, steps, loop_members, threads, peak):
    data = teacher_student(d, 3, n, 10, seed=0)
    net = MLP((d, h, 1), "relu")
    rows = [{"seed": s, "tau": 0.5, "delta": 0.0, "lr": 0.01} for s in range(E)]
    ens = build(net, rows, scheme="sp", init="kunin", loss_scale=1.0)
    flops = 4 * n * d * h
    # naive: per-configuration NumPy loop on one thread
    torch.set_num_threads(1)
    x, y = data.x.numpy(), data.y[:, 0].numpy()
    W, a = ens.params["W1"].numpy()[:loop_members], ens.params["W2"].numpy()[:loop_members, 0, :]
    t = time.perf_counter()
    numpy_loop(x, y, W, a, [0.01] * loop_members, steps)
    loop_rate = loop_members * steps / (time.perf_counter() - t)
    step = authors_step(x, y, h)
    t = time.perf_counter()
    for _ in range(loop_members * steps):
        step()
    authors_rate = loop_members * steps / (time.perf_counter() - t)
    autograd_rate = torch_autograd_loop(data, ens, steps, loop_members)
    # ensemble: one batched computation
    torch.set_num_threads(threads)
    results = {}
    for dtype, kernel in [(torch.float64, "batched"), (torch.float64, "fused"), (torch.float32, "fused")]:
        e = build(net, rows, scheme="sp", init="kunin", loss_scale=1.0, dtype=dtype)
        d_ = type(data)(data.x.to(dtype), data.y.to(dtype))
        train(e, d_, 2, "gd", record=[], observers=[], kernel=kernel)
        t = time.perf_counter()
        train(e, d_, steps, "gd", record=[], observers=[], kernel=kernel)
        results[(dtype, kernel)] = E * steps / (time.perf_counter() - t)
    print(f"\n## {name}: d={d}, h={h}, n={n}, E={E}, {steps} GD steps")
    print(f"per-config NumPy loop (1 thread, {loop_members} configs): {loop_rate:,.0f} config-steps/s, "
          f"{loop_rate * flops / 1e9:.2f} GFLOP/s = {loop_rate * flops / peak[1]:.1%} of 1-thread GEMM peak")
    print(f"per-config NumPy loop doing the authors' step (`bench/_loops.py`, 1 thread): {authors_rate:,.0f} config-steps/s")
    print(f"per-config PyTorch autograd loop (1 thread): {autograd_rate:,.0f} config-steps/s")
    for (dtype, kernel), rate in results.items():
        p = peak[threads] if dtype == torch.float64 else peak[(threads, "f32")]
        print(f"ensemble {str(dtype)[6:]} kernel={kernel} ({threads} threads): {rate:,.0f} config-steps/s = {rate / loop_rate:.1f}× the NumPy loop, {rate / authors_rate:.1f}× the authors' step, {rate / autograd_rate:.1f}× the autograd loop, "
              f"{rate * flops / 1e9:.2f} GFLOP/s = {rate * flops / p:.1%} of {threads}-thread GEMM peak")
    return loop_rate, results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    th = args.threads
    peak = {1: gemm_peak(1), th: gemm_peak(th), (th, "f32"): gemm_peak(th, torch.float32)}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"measured GEMM peak: float64 1 thread {peak[1] / 1e9:.1f} GFLOP/s, {th} threads {peak[th] / 1e9:.1f}; "
          f"float32 {th} threads {peak[(th, 'f32')] / 1e9:.1f}")
    s = 0.2 if args.quick else 1.0
    case("small networks", 10, 50, 100, 256, int(500 * s), int(64 * s) or 8, th, peak)
    case("Kunin Fig. 1 size", 100, 50, 1000, 64, int(100 * s) or 10, 8, th, peak)


if __name__ == "__main__":
    main()
