"""Kunin Fig. 1 engines side by side in one run: speed of every way to train the two-layer ReLU grid,
and each precision mode's trajectory error against float64.

    python bench/gpu_fig1.py --device cuda --size gpu --out gpu_out/gpu_fig1   # an H100: ~3 minutes (estimate)
    python bench/gpu_fig1.py --device cpu --size tiny                          # seconds (tests run this)

Error rows first, then speed rows (float32, no observers; config-steps/s, achieved TFLOP/s, % of the FP32 and TF32 GEMM
peaks measured in the same run with square matmuls):
  loop          one configuration at a time: per-step torch ops on the device (the per-config baseline)
  batched       lazyrich.train(kernel="batched"): one GEMM per member
  compile       torch.compile of the fused-ensemble step (mm/bmm, update included)
  fused         lazyrich.train(kernel="fused"): one GEMM for all members each way (PyTorch)
  triton/MODE   lazyrich.train(kernel="triton", precision=MODE), MODE in fp32, tf32, 3xtf32
Error rows: a subset of Fig. 1 members (τ × δ corners and middle, lr = lr0/τ²) trained in float64
(kernel="fused", the reference) and in float32 by `fused` and each triton mode; at every checkpoint
the largest relative loss error (and loss error / initial loss), absolute kernel-distance error and δ_k error relative to the member's
largest |δ_k| (δ_k = a_k² − ‖w_k‖², lr-weighted; conserved by gradient flow, so its drift under GD,
reported for float64 itself, is the discretization scale the float32 errors compare against).
On CPU, emulated rows add the modes' input rounding in a written-out float32 loop (TF32 = 10-bit mantissa,
round to nearest even; 3xtf32 = hi·hi + hi·lo + lo·hi) vs the same loop in float64: an estimate of the
modes' error, not a GPU measurement (tensor cores also differ in accumulation order).
FLOP per config-step: 4·n·d·h (the two big products), as bench/sweep_throughput.py's dominant term.
Every row is written to OUT/rates.jsonl or OUT/errors.jsonl as soon as it is measured (a killed run
keeps what it measured); a failing row (e.g. torch.compile without a C++ compiler) is reported, not fatal.
On CPU the triton rows run in Triton's interpreter (TRITON_INTERPRET=1 is set): correct, not fast.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

SIZES = {  # d, h, n, members timed, error members, error steps, checkpoints, seconds per speed row
    "gpu": dict(d=100, h=50, n=1000, members=4624, err_members=16, err_steps=100_000,
                checkpoints=[100, 1_000, 10_000, 100_000], seconds=2.0, small=dict(d=10, h=50, n=100, members=16384)),
    "cpu": dict(d=100, h=50, n=1000, members=64, err_members=4, err_steps=200, checkpoints=[10, 100, 200], seconds=2.0),
    "tiny": dict(d=8, h=8, n=32, members=4, err_members=4, err_steps=4, checkpoints=[2, 4], seconds=0.02),
}
MODES = ("fp32", "tf32", "3xtf32")


def _sync(device: str) -> None:
    import torch
    if device == "cuda":
        torch.cuda.synchronize()


def gemm_peaks(device: str, seconds: float) -> dict[str, float]:
    """FLOP/s of square float32 matmuls with TF32 off (FP32 peak) and, on CUDA, on (TF32 peak)."""
    import torch
    size = 8192 if device == "cuda" else 512
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    peaks = {}
    for name, tf32 in (("fp32", False), ("tf32", True)) if device == "cuda" else (("fp32", False),):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a @ b
        _sync(device)
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or reps < 2:
            a @ b
            reps += 1
        _sync(device)
        peaks[name] = 2 * size**3 * reps / (time.perf_counter() - start)
    torch.backends.cuda.matmul.allow_tf32 = False
    return peaks


def _fig1_members(count: int, seed: int = 100):
    """`count` cells of the Fig. 1 grid (τ ∈ [0.1, 2], δ ∈ [−1, 1], lr = 5e-3/τ²), corners first."""
    import numpy as np
    taus, deltas = np.logspace(-1, 0.3, 17), np.linspace(-1, 1, 17)
    order = [(0, 0), (0, 16), (16, 0), (16, 16), (8, 8), (0, 8), (16, 8), (8, 0), (8, 16)]
    order += [(i, j) for i in range(17) for j in range(17) if (i, j) not in order]
    cells = [order[k % len(order)] for k in range(count)]
    return [{"tau": float(taus[i]), "delta": float(deltas[j]), "seed": seed, "lr": 5e-3 / float(taus[i]) ** 2} for i, j in cells]


def _setup(d: int, h: int, n: int, members: int, device: str, dtype):
    import lazyrich
    from lazyrich.tasks import teacher_student
    data = teacher_student(d, 3, n, 1, seed=100, dtype=dtype)
    data.x_test = data.y_test = None
    data.x, data.y = data.x.to(device), data.y.to(device)
    ens = lazyrich.build(lazyrich.MLP((d, h, 1), "relu"), _fig1_members(members), init="kunin", loss_scale=1.0,
                         dtype=dtype, device=device)
    return ens, data


def _cast(ens, data, dtype):
    from dataclasses import replace
    to = lambda d: {k: v.to(dtype) for k, v in d.items()}  # noqa: E731
    ens = replace(ens, params=to(ens.params), lr=to(ens.lr), base_lr=ens.base_lr.to(dtype),
                  multipliers=to(ens.multipliers), weight_decay=to(ens.weight_decay))
    return ens, replace(data, x=data.x.to(dtype), y=data.y.to(dtype))


def _rate(run_steps, members: int, seconds: float, device: str) -> float:
    """Config-steps/s of `run_steps(k)`, growing k until one call lasts `seconds` (after a warm-up)."""
    run_steps(2)
    _sync(device)
    steps = 2
    while True:
        start = time.perf_counter()
        run_steps(steps)
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds or steps >= 10**6:
            return members * steps / elapsed
        steps = int(steps * min(10.0, 1.2 * seconds / max(elapsed, 1e-4))) + 1


def _loop_runner(ens, data):
    """One configuration, hand-written GD in torch ops on the device (member 0 of the ensemble)."""
    import torch
    w, a = ens.params["W1"][0].clone(), ens.params["W2"][0, 0].clone()
    x, y = data.x, data.y[:, 0]
    lr_w, lr_a, n = float(ens.lr["W1"][0]), float(ens.lr["W2"][0]), x.shape[0]

    def run(steps: int) -> None:
        nonlocal w, a
        for _ in range(steps):
            z = x @ w.T
            hid = torch.relu(z)
            g = (2.0 / n) * (hid @ a - y)
            grad_a = hid.T @ g
            grad_w = (torch.outer(g, a) * (z > 0)).T @ x
            w, a = w - lr_w * grad_w, a - lr_a * grad_a
    return run


def _compiled_runner(ens, data):
    """torch.compile of one fused-ensemble GD step (shared x: one mm each way, bmm for the readout)."""
    import torch
    w, a = ens.params["W1"].clone(), ens.params["W2"].clone()
    x, yt, n = data.x, data.y.T, data.x.shape[0]
    lr_w, lr_a = ens.lr["W1"].reshape(-1, 1, 1), ens.lr["W2"].reshape(-1, 1, 1)
    E, h, d = w.shape

    @torch.compile(dynamic=False)
    def step(w, a):
        z = (w.reshape(E * h, d) @ x.T).reshape(E, h, n)
        hid = torch.relu(z)
        g = (2.0 / n) * (torch.bmm(a, hid) - yt)
        grad_a = torch.bmm(g, hid.transpose(1, 2))
        dz = torch.bmm(a.transpose(1, 2), g) * (z > 0)
        grad_w = (dz.reshape(E * h, n) @ x).reshape(E, h, d)
        return w - lr_w * grad_w, a - lr_a * grad_a

    def run(steps: int) -> None:
        nonlocal w, a
        for _ in range(steps):
            w, a = step(w, a)
    return run


def _train_runner(ens, data, **kw):
    import lazyrich

    def run(steps: int) -> None:
        lazyrich.train(ens, data, steps, record=[], observers=(), **kw)
    return run


def speed_rows(cfg: dict, device: str, peaks: dict[str, float], emit) -> None:
    import torch
    shapes = [("fig1" if cfg["d"] == 100 else "tiny", cfg)] + ([("small", cfg["small"])] if "small" in cfg else [])
    for shape, s in shapes:
        ens, data = _setup(s["d"], s["h"], s["n"], s["members"], device, torch.float32)
        flops = 4 * s["n"] * s["d"] * s["h"]
        rows = [("loop", 1, lambda: _loop_runner(ens, data)),
                ("batched", s["members"], lambda: _train_runner(ens, data, kernel="batched")),
                ("compile", s["members"], lambda: _compiled_runner(ens, data)),
                ("fused", s["members"], lambda: _train_runner(ens, data, kernel="fused"))]
        rows += [(f"triton/{m}", s["members"], lambda m=m: _train_runner(ens, data, kernel="triton", precision=m)) for m in MODES]
        for method, members, make in rows:
            row = {"shape": shape, "d": s["d"], "h": s["h"], "n": s["n"], "method": method, "members": members}
            try:
                rate = _rate(make(), members, cfg["seconds"], device)
                row.update(rate=rate, tflops=rate * flops / 1e12,
                           **{f"pct_{k}_peak": 100 * rate * flops / v for k, v in peaks.items()})
            except Exception as exc:  # reported, so the other rows still run
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
            emit("rates", row)


def _observables(run) -> "object":
    r = run.records(config=False)
    keep = r.observable.isin(["loss", "kernel_distance", "delta_k"])
    return r[keep].set_index(["member", "step", "observable", "layer", "index"])["value"].sort_index()


def error_rows(cfg: dict, device: str, emit) -> None:
    """Trajectory error of float32 engines against float64 on a subset of Fig. 1 members."""
    import torch
    import lazyrich
    from lazyrich.observe.kernel import KernelDistance
    d, h, n, E, steps = cfg["d"], cfg["h"], cfg["n"], cfg["err_members"], cfg["err_steps"]
    record = sorted({0, *cfg["checkpoints"], steps})
    obs = ["loss", KernelDistance(weights="unit", alignment=False), "conserved"]
    ens64, data64 = _setup(d, h, n, E, device, torch.float64)
    start = time.perf_counter()
    ref = _observables(lazyrich.train(ens64, data64, steps, record=record, observers=obs, kernel="fused"))
    emit("errors", dict(engine="float64 fused (reference)", steps=steps, members=E, seconds=time.perf_counter() - start,
                        **_drift(ref)))
    ens32, data32 = _cast(ens64, data64, torch.float32)  # the same start, rounded once
    engines = [("fused fp32", dict(kernel="fused"))] + [(f"triton/{m}", dict(kernel="triton", precision=m)) for m in MODES]
    for name, kw in engines:
        row = dict(engine=name, steps=steps, members=E)
        try:
            start = time.perf_counter()
            got = _observables(lazyrich.train(ens32, data32, steps, record=record, observers=obs, **kw))
            row["seconds"] = time.perf_counter() - start
            row.update(_errors(got, ref), **_drift(got))
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        emit("errors", row)


def _errors(got, ref) -> dict[str, float]:
    got = got.reindex(ref.index)
    out = {}
    for name, col in (("loss", "loss_rel_err"), ("kernel_distance", "kernel_distance_abs_err"), ("delta_k", "delta_k_rel_err")):
        g, r = got.xs(name, level="observable"), ref.xs(name, level="observable")
        scale = r.abs() if name == "loss" else r.abs().groupby(level="member").transform("max") if name == "delta_k" else 1.0
        err = (g - r).abs() / scale
        out[col] = float(err.max())
        if name == "loss":  # near fp32's resolution of f the relative error grows: also against the initial loss
            out["loss_err_vs_init"] = float(((g - r).abs() / r.groupby(level="member").transform("first")).max())
    return out


def _drift(values) -> dict[str, float]:
    """max |δ_k(t) − δ_k(0)| / max_k |δ_k(0)| over members, neurons and checkpoints."""
    dk = values.xs("delta_k", level="observable")
    first = dk.groupby(level=["member", "layer", "index"]).transform("first")
    scale = first.abs().groupby(level="member").transform("max")
    return {"delta_k_drift": float(((dk - first).abs() / scale).max())}


def _tf32(t):
    """Round float32 to TF32 (10-bit mantissa, round to nearest even), as tensor cores read their inputs."""
    import torch
    bits = t.contiguous().view(torch.int32)
    rounded = (bits + (((bits >> 13) & 1) + 0xFFF)) & ~0x1FFF
    return torch.where(torch.isfinite(t), rounded.view(torch.float32), t)


def _product(mode: str):
    """a @ b as the mode computes it: float32/float64 plain; tf32 inputs rounded; 3xtf32 hi·hi + hi·lo + lo·hi."""
    if mode == "tf32":
        return lambda a, b: _tf32(a) @ _tf32(b)
    if mode == "3xtf32":
        def three(a, b):
            a_hi, b_hi = _tf32(a), _tf32(b)
            a_lo, b_lo = _tf32(a - a_hi), _tf32(b - b_hi)
            return a_hi @ b_lo + a_lo @ b_hi + a_hi @ b_hi  # small terms first, as the compensated kernels do
        return three
    return lambda a, b: a @ b


def emulated_rows(cfg: dict, emit) -> None:
    """CPU emulation of the precision modes' input rounding (not the GPU's accumulation order): the Fig. 1
    GD step written out (ReLU, c = 1, shared x), its two big products in each mode, against the same loop
    in float64; loss and δ_k = a_k² − ‖w_k‖² errors at the checkpoints."""
    import torch
    d, h, n, E, steps = cfg["d"], cfg["h"], cfg["n"], cfg["err_members"], cfg["err_steps"]
    ens, data = _setup(d, h, n, E, "cpu", torch.float64)
    checkpoints = sorted({0, *cfg["checkpoints"], steps})
    traj = {}
    for mode in ("float64", "float32", "tf32", "3xtf32"):
        dtype = torch.float64 if mode == "float64" else torch.float32
        mm = _product("float" if mode.startswith("float") else mode)
        w, a = ens.params["W1"].to(dtype).clone(), ens.params["W2"].to(dtype).clone()
        x, yt = data.x.to(dtype), data.y.T.to(dtype)
        m_w, m_a = (torch.as_tensor(ens.multipliers.get(k, 1.0), dtype=dtype).reshape(-1, 1, 1) for k in ("W1", "W2"))
        lr_w, lr_a = (ens.lr[k].to(dtype).reshape(-1, 1, 1) for k in ("W1", "W2"))
        out, start = [], time.perf_counter()
        for k in range(steps + 1):
            w_eff, a_eff = w * m_w, a * m_a
            z = mm(w_eff.reshape(E * h, d), x.T).reshape(E, h, n)
            hid = torch.relu(z)
            r = torch.bmm(a_eff, hid) - yt
            if k in checkpoints:
                out.append((r.pow(2).mean((1, 2)) * ens.loss_scale, a[:, 0, :] ** 2 - w.pow(2).sum(-1)))
            if k == steps:
                break
            g = r * (2 * ens.loss_scale / n)
            grad_a = torch.bmm(g, hid.transpose(1, 2)) * m_a
            dz = torch.bmm(a_eff.transpose(1, 2), g) * (z > 0)
            grad_w = mm(dz.reshape(E * h, n), x).reshape(E, h, d) * m_w
            w, a = w - lr_w * grad_w, a - lr_a * grad_a
        traj[mode] = [(lo.double(), dk.double()) for lo, dk in out]
        row = dict(engine=f"emulated {mode} (CPU)", steps=steps, members=E, seconds=time.perf_counter() - start)
        ref = traj["float64"]
        dk0 = ref[0][1].abs().amax(-1)
        row["delta_k_drift"] = max(float(((dk - ref[0][1]).abs().amax(-1) / dk0).max()) for _, dk in traj[mode])
        if mode != "float64":
            row["loss_rel_err"] = max(float(((lo - lr_) / lr_).abs().max()) for (lo, _), (lr_, _) in zip(traj[mode], ref))
            row["loss_err_vs_init"] = max(float(((lo - lr_) / ref[0][0]).abs().max()) for (lo, _), (lr_, _) in zip(traj[mode], ref))
            row["delta_k_rel_err"] = max(float(((dk - dr).abs().amax(-1) / dk0).max()) for (_, dk), (_, dr) in zip(traj[mode], ref))
        emit("errors", row)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    p.add_argument("--size", choices=tuple(SIZES), default="gpu")
    p.add_argument("--out", default="gpu_out/gpu_fig1")
    p.add_argument("--skip", default="", help="comma-separated sections to skip: speed, errors, emulated")
    p.add_argument("--err-steps", type=int, default=None, help="steps of the error runs (default: the size's)")
    args = p.parse_args()
    if args.device == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported
    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_fig1.py: --device cuda but no CUDA device is visible: use --device cpu --size tiny")
    cfg, out = dict(SIZES[args.size]), Path(args.out)
    if args.err_steps is not None:
        cfg["err_steps"] = args.err_steps
        cfg["checkpoints"] = [k for k in (10, 100, 1_000, 10_000, 100_000) if k < args.err_steps]
    out.mkdir(parents=True, exist_ok=True)
    for name in ("rates", "errors"):
        (out / f"{name}.jsonl").write_text("")
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    header = dict(device=name, torch=torch.__version__, size=args.size, threads=torch.get_num_threads())

    def emit(kind: str, row: dict) -> None:
        row = {**header, **row}
        with open(out / f"{kind}.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(kind, json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items() if k not in header}),
              flush=True)

    skip = set(filter(None, args.skip.split(",")))
    peaks = gemm_peaks(args.device, cfg["seconds"])
    emit("rates", {"method": "gemm peak", **{f"{k}_tflops": v / 1e12 for k, v in peaks.items()}})
    if "errors" not in skip:  # first: the errors decide which mode may be the default
        error_rows(cfg, args.device, emit)
    if "speed" not in skip:
        speed_rows(cfg, args.device, peaks, emit)
    if "emulated" not in skip and args.device == "cpu":  # on a GPU the modes themselves are measured above
        emulated_rows(cfg, emit)
    print(f"\n{name}, torch {torch.__version__}, size {args.size}")
    for line in (out / "rates.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "rate" in r:
            pk = "  ".join(f"{k[4:-5]} {r[k]:5.1f}%" for k in r if k.startswith("pct_"))
            print(f"{r['shape']:6} {r['method']:14} {r['rate']:12.4g} config-steps/s {r['tflops']:9.4f} TFLOP/s  {pk}")
        elif "error" in r:
            print(f"{r['shape']:6} {r['method']:14} failed: {r['error']}")
    for line in (out / "errors.jsonl").read_text().splitlines():
        r = json.loads(line)
        vals = "  ".join(f"{k} {r[k]:.2e}" for k in ("loss_rel_err", "loss_err_vs_init", "kernel_distance_abs_err", "delta_k_rel_err",
                                                    "delta_k_drift")
                         if k in r)
        print(f"{r['engine']:26} {r['steps']} steps: {vals}{'  failed: ' + r['error'] if 'error' in r else ''}")


if __name__ == "__main__":
    main()
