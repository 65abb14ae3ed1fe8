"""Sweep throughput: config-steps/s and achieved FLOP/s of full-batch GD on two-layer ReLU students,
side by side in one run, against a GEMM peak measured in the same run.

    python bench/sweep_throughput.py                  # CPU, 2 threads
    python bench/sweep_throughput.py --device cuda    # the same benchmark on a GPU
    python bench/sweep_throughput.py --quick          # a few seconds (smoke test)

Rows, for the Kunin Fig. 1 size (d=100, h=50, n=1000) and a small net (d=10, h=50, n=100):
  loop                per-configuration NumPy loop with hand-written gradients, written lean,
                      float64, BLAS pinned to one thread: the baseline ("× loop")
  authors' step       the same loop doing exactly what the authors' `fit_nn_gd` step does
                      (getrichquick/two-layer-relu/utils.py: per-step checkpoint tests, ReLU
                      derivative by masked assignment into a transposed view, np.outer): "× authors"
  lazyrich E=1        lazyrich.train on one configuration, one thread, its default kernel (the README's
                      call): a per-configuration loop of the engine ("× E=1")
  core                lazyrich.train on an ensemble chunk as the core ships it (models.mse_grads: per-member
                      batched backprop, any depth), float64, N threads
  fused               lazyrich.train(kernel="fused") (dynamics.fused two-layer pass: one GEMM for all
                      members each way, activations reused in place)
  2 procs × 1 thread  the fused ensemble in 2 processes of one thread each (the Dask backend's way)
The GEMM peak is measured the same ways (1 thread, N threads, 2 processes × 1 thread); "% peak" is
against the better of the last two: the machine's peak.
Ensemble chunks are sized by a short search over members per chunk (the best fits the caches).
Every rate is the best of 3 timings (other processes on a shared machine can only slow a run down).
FLOP per config-step: 4·n·d·h (Z = W x and ∇W) + 4·n·h (f = A H, ∇A) + 3·n·h (σ, σ', A g) + 3·n + 2·h·(d+1).
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the NumPy loop runs on one core, as the authors' did
os.environ.setdefault("MKL_NUM_THREADS_NUMPY", "1")

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _loops import authors_step  # noqa: E402

SIZES = {"fig1": (100, 50, 1000), "small": (10, 50, 100)}  # d, h, n
CHUNKS = {"cpu": (4, 8, 16, 32, 64, 128), "cuda": (256, 1024, 4096, 16384)}
REPEATS = 3  # every rate is the best of 3 timings: other processes on a shared machine only slow things down
_CLOCK = {"clock": time.perf_counter}


def clock() -> float:
    """Wall time, or this process's CPU time with --clock cpu (single-threaded rows on a busy machine)."""
    return _CLOCK["clock"]()


def step_flops(d: int, h: int, n: int) -> int:
    return 4 * n * d * h + 4 * n * h + 3 * n * h + 3 * n + 2 * h * (d + 1)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def gemm_peak(dtype: torch.dtype, device: str, seconds: float) -> float:
    """Best FLOP/s of square matmuls (N = 1024, 2048 on CPU; 8192 on GPU)."""
    best = 0.0
    for size in ((8192,) if device.startswith("cuda") else (1024, 2048)):
        a = torch.randn(size, size, dtype=dtype, device=device)
        b = torch.randn(size, size, dtype=dtype, device=device)
        a @ b
        _sync(device)
        for _ in range(3):
            reps, start = 0, clock()
            while clock() - start < seconds / 3:
                a @ b
                reps += 1
            _sync(device)
            best = max(best, 2 * size**3 * reps / (clock() - start))
    return best


def _data(d: int, h: int, n: int, dtype: torch.dtype = torch.float64):
    from lazyrich.tasks import teacher_student
    data = teacher_student(d, 3, n, 1, seed=0, dtype=dtype)
    data.x_test = data.y_test = None
    return data


def numpy_loop_rate(d: int, h: int, n: int, seconds: float) -> float:
    """Config-steps/s of one configuration trained by a NumPy loop (loss (1/n) Σ (f − y)², no ½)."""
    data = _data(d, h, n)
    x, y = data.x.numpy(), data.y.numpy()[:, 0]
    rng = np.random.default_rng(0)
    w, a = rng.standard_normal((h, d)) / np.sqrt(d), rng.standard_normal(h) / np.sqrt(h)
    lr = 1e-3

    def step(w: np.ndarray, a: np.ndarray) -> None:
        z = x @ w.T
        hidden = np.maximum(z, 0.0)
        g = (2.0 / n) * (hidden @ a - y)
        grad_a = hidden.T @ g
        grad_w = (np.outer(g, a) * (z > 0)).T @ x
        w -= lr * grad_w
        a -= lr * grad_a

    for _ in range(3):
        step(w, a)
    best = 0.0
    for _ in range(REPEATS):
        steps, start = 0, clock()
        while clock() - start < seconds:
            for _ in range(10):
                step(w, a)
            steps += 10
        best = max(best, steps / (clock() - start))
    return best


def authors_loop_rate(d: int, h: int, n: int, seconds: float) -> float:
    """Config-steps/s of the authors' per-step operations (`_loops.authors_step`)."""
    data = _data(d, h, n)
    step = authors_step(data.x.numpy(), data.y.numpy()[:, 0], h)
    for _ in range(3):
        step()
    best = 0.0
    for _ in range(REPEATS):
        steps, start = 0, clock()
        while clock() - start < seconds:
            for _ in range(10):
                step()
            steps += 10
        best = max(best, steps / (clock() - start))
    return best


def _ensemble(d: int, h: int, n: int, members: int, dtype: torch.dtype, device: str):
    import lazyrich
    rows = [{"seed": s, "tau": 0.5, "delta": 0.0, "lr": 0.02} for s in range(members)]
    ens = lazyrich.build(lazyrich.MLP((d, h, 1)), rows, init="kunin", loss_scale=1.0, dtype=dtype, device=device)
    data = _data(d, h, n, dtype)
    data.x, data.y = data.x.to(device), data.y.to(device)
    return ens, data


def train_rate(d: int, h: int, n: int, members: int, dtype: torch.dtype, device: str, fused: bool | None,
               seconds: float, threads: int) -> float:
    """Config-steps/s of lazyrich.train (no observers) on one ensemble chunk; `fused` swaps in the
    two-layer pass of dynamics.fused for the core's loss_and_grads."""
    import lazyrich

    torch.set_num_threads(threads)
    ens, data = _ensemble(d, h, n, members, dtype, device)
    kw = {} if fused is None else {"kernel": "fused" if fused else "batched"}  # None: train's default
    lazyrich.train(ens, data, 3, record=[], observers=(), **kw)
    _sync(device)
    steps = 5
    while True:  # grow the step count until one call lasts `seconds`
        start = clock()
        lazyrich.train(ens, data, steps, record=[], observers=(), **kw)
        _sync(device)
        elapsed = clock() - start
        if elapsed >= seconds or steps > 10**7:
            break
        steps = int(steps * min(10.0, 1.2 * seconds / max(elapsed, 1e-4))) + 1
    best = members * (steps + 1) / elapsed
    for _ in range(REPEATS - 1):
        start = clock()
        lazyrich.train(ens, data, steps, record=[], observers=(), **kw)
        _sync(device)
        best = max(best, members * (steps + 1) / (clock() - start))
    return best


def best_chunk(d: int, h: int, n: int, dtype: torch.dtype, device: str, fused: bool, seconds: float,
               threads: int, candidates: tuple[int, ...]) -> tuple[int, float]:
    rates = {e: train_rate(d, h, n, e, dtype, device, fused, seconds / 5, threads) for e in candidates}
    e = max(rates, key=rates.get)
    return e, train_rate(d, h, n, e, dtype, device, fused, seconds, threads)


def _timed(args: tuple) -> float:
    """In a pool worker (one torch thread): warm up, wait for the common start, measure."""
    start_at, kind, params, which = args
    _CLOCK["clock"] = time.process_time if which == "cpu" else time.perf_counter
    torch.set_num_threads(1)
    fn = gemm_peak if kind == "gemm" else train_rate
    fn(*params[:-1], 0.05) if kind == "gemm" else train_rate(*params[:-2], 0.05, 1)
    time.sleep(max(0.0, start_at - time.time()))
    return fn(*params)


class TwoProcesses:
    """Two worker processes with one thread each, started once; `rate` sums what both measure at
    the same time (the Dask backend's way of using two cores)."""

    def __enter__(self) -> "TwoProcesses":
        self.pool = mp.get_context("spawn").Pool(2)
        self.pool.map(_timed, [(0.0, "gemm", (torch.float64, "cpu", 0.01), "wall")] * 2)  # imports done
        return self

    def rate(self, kind: str, params: tuple) -> float:
        start_at = time.time() + 1.5
        which = "cpu" if _CLOCK["clock"] is time.process_time else "wall"
        return sum(self.pool.map(_timed, [(start_at, kind, params, which)] * 2))

    def __exit__(self, *exc: object) -> None:
        self.pool.close()
        self.pool.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the ensembles (CPU)")
    parser.add_argument("--seconds", type=float, default=0.5, help="time per timing (each rate: best of 3)")
    parser.add_argument("--quick", action="store_true", help="short measurements (smoke test)")
    parser.add_argument("--sizes", default="fig1,small", help="comma-separated: fig1, small")
    parser.add_argument("--single", action="store_true", help="only the one-network rows (loops and lazyrich E=1)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: time single-threaded rows by process CPU time (a busy shared machine); "
                             "multi-threaded rows are then skipped, CPU time cannot time them")
    args = parser.parse_args()
    if args.clock == "cpu":
        _CLOCK["clock"] = time.process_time
    seconds = 0.2 if args.quick else args.seconds
    device = args.device
    cpu = not device.startswith("cuda")
    torch.set_num_threads(args.threads)
    print(f"device {device}, torch {torch.__version__}, {args.threads} threads, {args.clock} clock, load average "
          f"{os.getloadavg()[0]:.2f} at start")
    threaded = args.clock == "wall"  # N-thread rows need wall time
    dtypes = (torch.float64, torch.float32)
    peaks: dict[torch.dtype, float] = {}
    procs = TwoProcesses().__enter__() if cpu and not args.quick and not args.single else None
    try:
        for dtype in dtypes:
            torch.set_num_threads(1)
            one = gemm_peak(dtype, device, seconds) if cpu else 0.0
            torch.set_num_threads(args.threads)
            many = gemm_peak(dtype, device, seconds) if threaded else 0.0
            two = procs.rate("gemm", (dtype, "cpu", seconds)) if procs else 0.0
            peaks[dtype] = max(many, two) or one  # the machine's peak: the better way of using all cores (1 thread if only that ran)
            print(f"GEMM {str(dtype)[6:]}: " + (f"1 thread {one / 1e9:.1f}, {args.threads} threads {many / 1e9:.1f}, "
                  f"2 procs × 1 thread {two / 1e9:.1f} GFLOP/s" if cpu else f"{many / 1e9:.1f} GFLOP/s")
                  + f"  → peak {peaks[dtype] / 1e9:.1f}")
        candidates = CHUNKS["cpu" if cpu else "cuda"]
        if args.quick:
            candidates = candidates[1:4]
        header = (f"{'size':6} {'method':26} {'dtype':8} {'members':>7} {'config-steps/s':>15} {'GFLOP/s':>8} "
                  f"{'% peak':>7} {'× loop':>7} {'× authors':>9} {'× E=1':>6}")
        for size, (d, h, n) in ((k, v) for k, v in SIZES.items() if k in args.sizes.split(",")):
            flops = step_flops(d, h, n)
            print(f"\n{size}: d={d}, h={h}, n={n}, {flops / 1e6:.3f} MFLOP per config-step")
            print(header)
            loop = numpy_loop_rate(d, h, n, seconds)
            authors = authors_loop_rate(d, h, n, seconds)
            single = train_rate(d, h, n, 1, torch.float64, "cpu", None, seconds, 1)  # the README's call

            def row(method: str, dtype: torch.dtype, members: int, rate: float) -> None:
                gf = rate * flops
                print(f"{size:6} {method:26} {str(dtype)[6:]:8} {members:7d} {rate:15,.0f} {gf / 1e9:8.2f} "
                      f"{100 * gf / peaks[dtype]:6.1f}% {rate / loop:7.1f} {rate / authors:9.1f} {rate / single:6.1f}")

            row("loop: numpy, 1 thread", torch.float64, 1, loop)
            row("loop: authors' step", torch.float64, 1, authors)
            row("lazyrich E=1, 1 thread", torch.float64, 1, single)
            if args.single:
                continue
            threads = f"{args.threads} threads" if cpu else device
            if threaded:
                e, rate = best_chunk(d, h, n, torch.float64, device, False, seconds, args.threads, candidates)
                row(f"core, {threads}", torch.float64, e, rate)
            if procs:
                e1, _ = best_chunk(d, h, n, torch.float64, device, False, seconds, 1, candidates)
                row("core, 2 procs × 1 thread", torch.float64, 2 * e1,
                    procs.rate("train", (d, h, n, e1, torch.float64, "cpu", False, seconds, 1)))
            for dtype in dtypes:
                if threaded:
                    e, rate = best_chunk(d, h, n, dtype, device, True, seconds, args.threads, candidates)
                    row(f"fused, {threads}", dtype, e, rate)
                if procs:
                    e1, _ = best_chunk(d, h, n, dtype, device, True, seconds, 1, candidates)
                    row("fused, 2 procs × 1 thread", dtype, 2 * e1,
                        procs.rate("train", (d, h, n, e1, dtype, "cpu", True, seconds, 1)))
    finally:
        if procs:
            procs.__exit__()
    print(f"\nload average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
