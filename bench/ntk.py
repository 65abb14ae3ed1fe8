"""Benchmark: structured two-layer NTK (`mlp_ntk`) vs torch.func Jacobian contraction (`empirical_ntk`).

Issue 8 target: n = 1000 samples, d = 100, width 1000, float64, one network: equal to 1e-10 and
≥ 30× faster. `--chunked` also times both generic methods under a memory budget of a quarter of
the full Jacobian.

    .venv/bin/python bench/ntk.py [--n 1000 --d 100 --width 1000 --threads 1 --quick --chunked]
"""
from __future__ import annotations

import argparse
import time

import torch

from lazyrich.models import MLP, forward
from lazyrich.observe.kernel import empirical_ntk, mlp_ntk, ntk_row_bytes


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="n=300, width=300 (a smoke run)")
    ap.add_argument("--chunked", action="store_true", help="also time both generic methods under a budget of full/4")
    a = ap.parse_args()
    if a.quick:
        a.n, a.width = 300, 300
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(0)
    net = MLP((a.d, a.width, 1), activation="relu")
    params = {"W1": torch.randn(1, a.width, a.d, generator=gen, dtype=torch.float64) / a.d**0.5,
              "W2": torch.randn(1, 1, a.width, generator=gen, dtype=torch.float64) / a.width**0.5}
    lr = {"W1": torch.tensor([0.3], dtype=torch.float64), "W2": torch.tensor([1.7], dtype=torch.float64)}
    x = torch.randn(a.n, a.d, generator=gen, dtype=torch.float64)
    fn = lambda p, xx: forward(net, {k: v.unsqueeze(0) for k, v in p.items()}, xx)[0]  # noqa: E731
    single = {k: v[0] for k, v in params.items()}
    lr1 = {k: float(v) for k, v in lr.items()}

    for m in ("jacobian", "ntk_vp"):  # warm up torch.func tracing outside the timings
        empirical_ntk(fn, single, x[:4], lr1, m)
    K_fast, t_fast = timed(lambda: mlp_ntk(net, params, x, lr=lr)[0], repeat=3)
    K_jac, t_jac = timed(lambda: empirical_ntk(fn, single, x, lr1, "jacobian", memory_budget_bytes=None))
    full = a.n * ntk_row_bytes(single, 1)
    scale = float(K_jac.abs().max())
    err = lambda K: float((K - K_jac).abs().max()) / scale  # noqa: E731
    print(f"n={a.n} d={a.d} width={a.width} float64 threads={a.threads}; full Jacobian {full / 2**20:.0f} MiB")
    print(f"{'method':44s} {'seconds':>8s} {'speedup':>8s} {'max rel err':>12s}")
    print(f"{'torch.func Jacobian contraction (baseline)':44s} {t_jac:8.3f} {1.0:8.1f} {0.0:12.1e}")
    print(f"{'structured mlp_ntk':44s} {t_fast:8.3f} {t_jac / t_fast:8.1f} {err(K_fast):12.1e}")
    print(f"max abs err of mlp_ntk: {float((K_fast - K_jac).abs().max()):.1e} (|K| ≤ {scale:.3g})")
    if a.chunked:
        budget = full // 4
        for method in ("jacobian", "ntk_vp"):
            K, t = timed(lambda: empirical_ntk(fn, single, x, lr1, method, memory_budget_bytes=budget))
            print(f"{method + ', budget = full/4 (chunked)':44s} {t:8.3f} {t_jac / t:8.1f} {err(K):12.1e}")


if __name__ == "__main__":
    main()
