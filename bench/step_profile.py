"""Cost model of one `lazyrich.train` step (torch.profiler): where a step's time goes.

    python bench/step_profile.py              # E = 1 and a cache-sized ensemble, both sizes, float64, 1 thread
    python bench/step_profile.py --kernel batched
    python bench/step_profile.py --flow       # gradient flow: accepted steps/s and time per accepted step
    python bench/step_profile.py --deep       # 3-layer balance-deep size: fused vs batched, interleaved

For each case it prints the wall time per step (process CPU time, best of 3: robust on a shared
machine), then the profiler's count of ATen dispatches per step and their self time by class:
GEMMs (mm/bmm), pointwise arithmetic, views/metadata (no arithmetic), host syncs (item /
is_nonzero / any), allocations; "python" is the wall time the profiler does not see (the
interpreter between dispatches). A measured dispatch cost (an add of two 1-element tensors) and
GEMM rate turn this into the floor: dispatches × dispatch cost + GEMM FLOP / GEMM rate.
"""
from __future__ import annotations

import argparse
import collections
import os
import time

import torch
from torch.profiler import ProfilerActivity, profile

import lazyrich
from lazyrich.tasks import teacher_student

SIZES = {"fig1": (100, 50, 1000, 8), "small": (10, 50, 100, 64)}  # d, h, n, cache-sized E
GEMM = {"aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::matmul"}
VIEW = {"aten::view", "aten::reshape", "aten::t", "aten::transpose", "aten::expand", "aten::as_strided",
        "aten::slice", "aten::select", "aten::unsqueeze", "aten::_unsafe_view", "aten::alias", "aten::detach",
        "aten::numpy_T", "aten::permute", "aten::_reshape_alias", "aten::lift_fresh", "aten::resolve_conj",
        "aten::resolve_neg"}
SYNC = {"aten::item", "aten::_local_scalar_dense", "aten::is_nonzero", "aten::any"}
ALLOC = {"aten::empty", "aten::empty_like", "aten::zeros_like", "aten::zeros", "aten::empty_strided",
         "aten::resize_", "aten::clone", "aten::copy_", "aten::to", "aten::_to_copy"}


def _case(d: int, h: int, n: int, members: int):
    rows = [{"seed": s, "tau": 0.5, "delta": 0.0, "lr": 0.02} for s in range(members)]
    ens = lazyrich.build(lazyrich.MLP((d, h, 1)), rows, init="kunin", loss_scale=1.0, dtype=torch.float64)
    data = teacher_student(d, 3, n, 1, seed=0, dtype=torch.float64)
    data.x_test = data.y_test = None
    return ens, data


def per_step_seconds(ens, data, kernel: str, steps: int) -> float:
    best = float("inf")
    lazyrich.train(ens, data, 5, record=[], observers=(), kernel=kernel)
    for _ in range(3):
        start = time.process_time()
        lazyrich.train(ens, data, steps, record=[], observers=(), kernel=kernel)
        best = min(best, (time.process_time() - start) / (steps + 1))
    return best


def dispatch_cost() -> float:
    a, b = torch.ones(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(20000):
            torch.add(a, b)
        best = min(best, (time.process_time() - start) / 20000)
    return best


def gemm_rate(d: int, h: int, n: int, members: int) -> float:
    """FLOP/s of the step's main product alone, [E·h, d] @ [d, n]."""
    w, x = torch.randn(members * h, d, dtype=torch.float64), torch.randn(d, n, dtype=torch.float64)
    reps = max(20, int(2e8 / (2 * members * h * d * n)))
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(reps):
            w @ x
        best = min(best, (time.process_time() - start) / reps)
    return 2 * members * h * d * n / best


def profile_steps(ens, data, kernel: str, steps: int) -> dict[str, tuple[float, float]]:
    """Per step: {class: (dispatches, self µs)} from the profiler."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        lazyrich.train(ens, data, steps, record=[], observers=(), kernel=kernel)
    out: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for ev in prof.key_averages():
        if not ev.key.startswith("aten::"):
            continue
        cls = ("GEMM" if ev.key in GEMM else "view/metadata" if ev.key in VIEW else "host sync" if ev.key in SYNC
               else "alloc/copy" if ev.key in ALLOC else "pointwise")
        out[cls][0] += ev.count / (steps + 1)
        out[cls][1] += ev.self_cpu_time_total / (steps + 1)
    return {k: (v[0], v[1]) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", default=None, help="train's kernel (default: train's own default)")
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    kw = {} if args.kernel is None else {"kernel": args.kernel}
    kernel = kw.get("kernel", "auto" if "auto" in lazyrich.train.__doc__ else "batched")
    disp = dispatch_cost()
    print(f"torch {torch.__version__}, 1 thread, float64, kernel {kernel}, load average {os.getloadavg()[0]:.2f}; "
          f"dispatch cost (1-element add) {disp * 1e6:.2f} µs")
    print(f"{'size':6} {'E':>3} {'µs/step':>8} {'µs/member':>9} {'dispatches':>10} {'GEMM':>5} {'pointw.':>7} "
          f"{'views':>5} {'syncs':>5} {'alloc':>5} {'GEMM µs':>8} {'disp. µs':>8} {'rest µs':>8}")
    for size, (d, h, n, big) in SIZES.items():
        for members in (1, big):
            ens, data = _case(d, h, n, members)
            steps = max(50, int(args.steps * (10 / d) / (members ** 0.5)))
            wall = per_step_seconds(ens, data, kernel, steps) * 1e6
            prof = profile_steps(ens, data, kernel, min(steps, 300))
            rate = gemm_rate(d, h, n, members)
            total = sum(v[0] for v in prof.values())
            flops = 4 * n * d * h * members
            gemm_us, disp_us = flops / rate * 1e6, total * disp * 1e6

            def cell(k: str) -> str:
                return f"{prof.get(k, (0.0, 0.0))[0]:5.0f}"
            print(f"{size:6} {members:3d} {wall:8.1f} {wall / members:9.1f} {total:10.1f} {cell('GEMM')} {cell('pointwise'):>7} "
                  f"{cell('view/metadata')} {cell('host sync')} {cell('alloc/copy')} {gemm_us:8.1f} {disp_us:8.1f} "
                  f"{wall - gemm_us - disp_us:8.1f}")
    print(f"load average {os.getloadavg()[0]:.2f} at end. Dispatches per step by class (profiler counts); GEMM µs: the "
          "step's big products at the measured GEMM rate; disp. µs: dispatches × dispatch cost; rest: the remainder "
          "(interpreter, pointwise arithmetic, small products). Floor of a PyTorch step: GEMM µs + disp. µs")


if __name__ == "__main__" and not {"--flow", "--deep"} & set(__import__("sys").argv):
    main()


def flow_cost(d: int, h: int, n: int, members: int, horizon: float) -> tuple[int, int, float]:
    """(accepted steps, right-hand-side evaluations, seconds) of `lazyrich.flow` over [0, horizon]
    (dopri8, the default tolerances), counted by wrapping the solver's step and the gradient."""
    import torchdiffeq._impl.rk_common as rk

    import importlib
    flow_module = importlib.import_module("lazyrich.dynamics.flow")  # the module (the package exports the function)
    ens, data = _case(d, h, n, members)
    counts = {"accepted": 0, "rhs": 0}
    step, grads = rk.RKAdaptiveStepsizeODESolver._adaptive_step, flow_module.loss_and_grads

    def counted_step(self, rk_state):  # accepted when the solver's time moved
        new = step(self, rk_state)
        counts["accepted"] += int(bool(new.t1 != rk_state.t1))
        return new

    def counted_grads(*args, **kwargs):
        counts["rhs"] += 1
        return grads(*args, **kwargs)
    rk.RKAdaptiveStepsizeODESolver._adaptive_step, flow_module.loss_and_grads = counted_step, counted_grads
    try:
        start = time.process_time()
        lazyrich.flow(ens, data, [0.0, horizon], observers=())
        return counts["accepted"], counts["rhs"], time.process_time() - start
    finally:
        rk.RKAdaptiveStepsizeODESolver._adaptive_step, flow_module.loss_and_grads = step, grads


def flow_main() -> None:
    torch.set_num_threads(1)
    print(f"gradient flow (dopri8, rtol 1e-10, atol 1e-12), float64, 1 thread, load average {os.getloadavg()[0]:.2f}")
    print(f"{'size':6} {'E':>3} {'horizon':>7} {'accepted':>8} {'rhs evals':>9} {'accepted/s':>10} {'ms/accepted':>11} {'µs/rhs':>8}")
    for size, (d, h, n, big) in SIZES.items():
        for members in (1, big):
            horizon = 0.05 if size == "fig1" else 0.5
            acc, evals, sec = flow_cost(d, h, n, members, horizon)
            print(f"{size:6} {members:3d} {horizon:7.1f} {acc:8d} {evals:9d} {acc / sec:10.1f} {1e3 * sec / max(acc, 1):11.2f} "
                  f"{1e6 * sec / evals:8.1f}")


if __name__ == "__main__" and "--flow" in __import__("sys").argv:
    flow_main()


# balance-deep's net (experiments/balance_deep.py): MLP((d, w, w, c)), GD with weight decay κ = 1e-3
DEEP = {"quick": (10, 64, 5, 100), "full": (10, 128, 5, 100)}  # d, width, c, n


def deep_case(d: int, w: int, c: int, n: int, members: int, bias: bool = False):
    from lazyrich.tasks import whitened_regression
    rows = [{"std_scale": 0.1 if s % 2 else 1.0, "seed": s} for s in range(members)]
    ens = lazyrich.build(lazyrich.MLP((d, w, w, c), "relu", bias=bias), rows, scheme="sp", lr=0.05, weight_decay=1e-3)
    data = whitened_regression(d, c, n, seed=0)
    data.x_test = data.y_test = None
    return ens, data


def deep_main() -> None:
    """Fused vs batched per-step time on balance-deep's 3-layer net, E = 1, 6 (its quick ensemble) and
    64, float64, one thread. The two kernels alternate run by run (5 rounds, best of each): on a
    shared machine only their ratio is meaningful, not the absolute times."""
    torch.set_num_threads(1)
    print(f"3-layer ReLU nets (balance-deep sizes), GD + weight decay, float64, 1 thread, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'size':6} {'bias':>4} {'E':>3} {'batched µs/step':>15} {'fused µs/step':>13} {'fused speed-up':>14}")
    for size, (d, w, c, n) in DEEP.items():
        for bias in (False, True):
            for members in (1, 6, 64):
                ens, data = deep_case(d, w, c, n, members, bias)
                steps = max(20, int(600 / members ** 0.5 * (64 / w) ** 2))
                best = {"batched": float("inf"), "fused": float("inf")}
                for _ in range(5):  # interleaved: both kernels see the same load
                    for kernel in best:
                        best[kernel] = min(best[kernel], per_step_once(ens, data, kernel, steps))
                print(f"{size:6} {str(bias):>4} {members:3d} {best['batched'] * 1e6:15.1f} {best['fused'] * 1e6:13.1f} "
                      f"{best['batched'] / best['fused']:13.2f}x")
    print(f"load average {os.getloadavg()[0]:.2f} at end")


def per_step_once(ens, data, kernel: str, steps: int) -> float:
    lazyrich.train(ens, data, 2, record=[], observers=(), kernel=kernel)  # warm the buffers and caches
    start = time.process_time()
    lazyrich.train(ens, data, steps, record=[], observers=(), kernel=kernel)
    return (time.process_time() - start) / (steps + 1)


if __name__ == "__main__" and "--deep" in __import__("sys").argv:
    deep_main()
