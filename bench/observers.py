"""Benchmark: cost of recording every diagnostic on a log-spaced schedule, against training alone.

Issue 8 target: < 25 % of the training time of the Kunin et al. Fig. 1 configuration (d = 100,
h = 50, n = 1000, two-layer ReLU, Kunin init, full-batch GD, lr 5e-3/τ², 10⁵ steps). The bench runs
the same configuration with fewer members and steps and reports (a) the measured overhead at that
length and (b) the overhead at the full 10⁵ steps with the same log-spaced records (per-record cost ×
records / per-step cost × 10⁵), with the observers' own time measured inside the run. The linearized
baseline is timed apart (`--linearized`): it trains a second model.

    .venv/bin/python bench/observers.py [--members 2 --steps 5000 --threads 1 --linearized]
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from lazyrich import MLP, build, log_steps, train
from lazyrich.observe import REGISTRY, make
from lazyrich.tasks import teacher_student

DIAGNOSTICS = ("loss", "conserved", "kernel_distance", "hamming", "param_distance", "weight_change", "spectral",
               "alignment", "feature_change", "balance", "sharpness", "fact", "agop")


def setup(members: int):
    data = teacher_student(d=100, k=3, n=1000, n_test=1000, seed=0)
    taus = [0.1, 0.3, 1.0, 2.0][:members] + [0.5] * max(0, members - 4)
    rows = [{"seed": 100 + e, "tau": t, "delta": (-1) ** e * 0.5, "lr": 5e-3 / t**2} for e, t in enumerate(taus)]
    net = MLP((100, 50, 1), activation="relu")
    return build(net, pd.DataFrame(rows), scheme="sp", init="kunin", loss_scale=1.0), data


class Timed:
    """Wraps an observer and accumulates the seconds spent in it (robust to load drift between runs)."""

    def __init__(self, inner):
        self.inner, self.name, self.seconds = inner, inner.name, 0.0

    def __call__(self, state):
        t0 = time.perf_counter()
        out = list(self.inner(state))
        self.seconds += time.perf_counter() - t0
        return out


def timed_train(ens, data, steps, record, observers):
    t0 = time.perf_counter()
    run = train(ens, data, steps, record=record, observers=observers)
    return time.perf_counter() - t0, run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--full-steps", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--linearized", action="store_true", help="also time the linearized baseline (a second model)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ens, data = setup(a.members)
    record = log_steps(a.steps)
    missing = sorted(set(REGISTRY) - set(DIAGNOSTICS) - {"linearized"})
    timed_train(ens, data, 20, [0, 20], DIAGNOSTICS)  # warm up
    t_train, _ = timed_train(ens, data, a.steps, [], ())
    timers = [Timed(o) for o in make(DIAGNOSTICS)]
    t_all, run = timed_train(ens, data, a.steps, record, timers)
    t_obs = sum(t.seconds for t in timers)
    per_step = (t_all - t_obs) / a.steps  # training time of the instrumented run itself
    per_record = t_obs / len(record)
    full_records = len(log_steps(a.full_steps))
    full_overhead = per_record * full_records / (per_step * a.full_steps)
    print(f"Kunin Fig. 1 config: d=100 h=50 n=1000, {a.members} members, threads={a.threads}")
    print(f"diagnostics: {', '.join(DIAGNOSTICS)}" + (f" (not timed: {', '.join(missing)})" if missing else ""))
    print(f"training alone, {a.steps} steps: {t_train:.2f} s ({1e3 * t_train / a.steps:.2f} ms/step)")
    print(f"with all diagnostics at {len(record)} log-spaced records: {t_all:.2f} s, of which observers {t_obs:.2f} s "
          f"({1e3 * per_record:.1f} ms/record); overhead {100 * t_obs / (t_all - t_obs):.1f} % of its training time")
    print("per record: " + ", ".join(f"{t.name} {1e3 * t.seconds / len(record):.1f} ms" for t in timers))
    print(f"at {a.full_steps} steps with {full_records} log-spaced records: overhead {100 * full_overhead:.1f} % (target < 25 %)")
    if a.linearized:
        t_lin, _ = timed_train(ens, data, a.steps, record, ("linearized",))
        print(f"linearized baseline next to the network: {t_lin:.2f} s ({100 * (t_lin - t_train) / t_train:.0f} % "
              "extra; a second model trained, not a measurement)")
    r = run.records()
    last = r[(r.step == a.steps) & (r["index"] == 0) & (r.observable.isin(["kernel_distance", "hamming", "loss"]))]
    print(last.pivot_table(index="member", columns="observable", values="value", observed=True).round(4).to_string())


if __name__ == "__main__":
    main()
