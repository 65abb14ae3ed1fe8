"""Time to refuse huge sweeps (issue 21): every size is checked by arithmetic before anything is
expanded, so asking for 10¹² members costs what asking for 4 does. Prints one line per case.

    python bench/validate_limits.py
"""
import time

from lazyrich.sweep import SpecError, from_dict

TINY = {"name": "b", "task": {"name": "teacher_student", "d": 5, "k": 2, "n": 20, "n_test": 10},
        "model": {"width": 6}, "init": {"kind": "kunin"}, "optimizer": {"kind": "gd", "lr": 0.05}, "steps": 30,
        "record": {"every": 10}, "axes": [{"grid": {"tau": [0.5, 1.0], "delta": [-0.5, 0.5]}}]}
CASES = {
    "valid (4 members)": {},
    "linspace of 1e12 values": {"axes": [{"grid": {"tau": {"linspace": [0.1, 1, 10**12]}}}]},
    "random block of 1e12 draws": {"axes": [{"random": {"n": 10**12, "dists": {"tau": {"uniform": [0.1, 1]}}}}]},
    "grid product of 1e12": {"axes": [{"grid": {"tau": {"linspace": [0.1, 1, 10**6]}, "seed": {"range": [0, 10**6]}}}]},
    "width 1e9": {"model": {"width": 10**9}},
    "n 1e9 samples": {"task": {"name": "teacher_student", "d": 5, "n": 10**9}},
    "1e8 record points": {"steps": 10**8, "record": {"every": 1}},
}
for name, change in CASES.items():
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        try:
            from_dict({**TINY, **change})
            outcome = "accepted"
        except SpecError as exc:
            outcome = str(exc)[:90]
        best = min(best, time.perf_counter() - start)
    print(f"{name:28s} {best * 1e3:7.1f} ms  {outcome}")
